"""A/B experiments: which variant serves a request, and what users said about the answers.

Convention: a client takes part in an experiment by asking for it as its model,
``"model": "ab:<experiment>"``, or by one of the experiment's `aliases` (so an existing client can
be moved into an experiment by aliasing the model name it already sends). Any other model name
is not an experiment and `ABRouter.route` returns None.

Assignment is sticky without any state: the variant is a pure function of the experiment name
and the sticky key (the user, or a header value), sha256 mapped onto [0, 1) and looked up in the
cumulative weights. The same user gets the same variant on every replica and after restarts,
and changing one experiment's weights moves only the users on the boundary that moved.

`FeedbackStore` remembers which variant answered each request for a while, so that a later
`POST /v1/feedback {request_id, outcome}` can be attributed; its `summary()` is the body of
`GET /v1/ab/summary`, which `scripts/ab_report.py` reads:

    {"experiments": {"<experiment>": {"<variant>": {
        "model": str, "assignments": int, "positive": int, "negative": int,
        "feedback": int, "positive_rate": float | null}}}}
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from aistudio.monitoring_config import AB_MODEL_PREFIX, FEEDBACK_OUTCOMES, ExperimentConfig


@dataclass(frozen=True)
class Assignment:
    """The variant chosen for one request, and the model (adapter name or base model id) serving it."""

    experiment: str
    variant: str
    model: str


def bucket(experiment: str, key: str) -> float:
    """A uniform point in [0, 1) fixed by (experiment, key); the experiment salts it so one user
    does not land on the same side of every experiment."""
    digest = hashlib.sha256(f"{experiment}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class ABRouter:
    """Deterministic, weighted variant assignment for the configured experiments."""

    def __init__(self, experiments: Iterable[ExperimentConfig]) -> None:
        self.experiments: dict[str, ExperimentConfig] = {e.name: e for e in experiments}
        self._aliases = {alias: e.name for e in self.experiments.values() for alias in e.aliases}
        self._cumulative: dict[str, list[float]] = {}
        for name, exp in self.experiments.items():
            bounds = list(accumulate(exp.shares()))
            bounds[-1] = 1.0  # float sums can fall short of 1; no point may fall past the last variant
            self._cumulative[name] = bounds

    def experiment_for(self, request_model: str) -> str | None:
        """The experiment a request's model names, None for an ordinary model name.

        `ab:<name>` for an experiment that does not exist raises KeyError (the app answers 404):
        the client clearly meant an experiment, and serving it something else would be wrong.
        """
        if request_model.startswith(AB_MODEL_PREFIX):
            name = request_model.removeprefix(AB_MODEL_PREFIX)
            if name not in self.experiments:
                known = ", ".join(sorted(self.experiments)) or "none configured"
                raise KeyError(f"unknown experiment '{name}' (experiments: {known})")
            return name
        return self._aliases.get(request_model)

    def assign(self, experiment: str, key: str) -> str:
        """The variant name `key` gets in `experiment`; the same on every call and every process."""
        index = bisect_right(self._cumulative[experiment], bucket(experiment, key))
        return self.experiments[experiment].variants[index].name

    def route(
        self,
        request_model: str,
        user: str | None,
        header_value: str | None,
        fallback_key: str | None = None,
    ) -> Assignment | None:
        """The assignment for a request, or None when its model names no experiment.

        The sticky key is the user (`sticky_by: user`) or the configured header's value
        (`sticky_by: header`). A request without one is still assigned by the weights, from
        `fallback_key` (the request id) or a random key: a fair draw, but not sticky.
        """
        name = self.experiment_for(request_model)
        if name is None:
            return None
        exp = self.experiments[name]
        key = user if exp.sticky_by == "user" else header_value
        if not key:
            key = fallback_key or os.urandom(16).hex()
        variant = self.assign(name, key)
        model = next(v.model for v in exp.variants if v.name == variant)
        return Assignment(name, variant, model)

    def unknown_models(self, served: Iterable[str]) -> list[str]:
        """One problem per variant whose model this server cannot serve (for a start-up check)."""
        available = set(served)
        return [
            f"monitoring_config.yaml: ab experiment '{e.name}' variant '{v.name}' uses model '{v.model}', "
            f"which this server does not serve (it serves {', '.join(sorted(available))})"
            for e in self.experiments.values()
            for v in e.variants
            if v.model not in available
        ]


class FeedbackAlreadyRecorded(Exception):
    """A request can be rated once; the app answers 409."""


@dataclass
class _Pending:
    experiment: str
    variant: str
    at: float
    rated: bool = False


@dataclass
class _Tally:
    model: str = ""
    assignments: int = 0
    positive: int = 0
    negative: int = 0


class FeedbackStore:
    """Which variant answered each recent request, and running totals per variant.

    Bounded in both directions: an entry is forgotten `ttl_s` after its request, and beyond
    `max_entries` the oldest go first, so memory stays fixed however long the server runs.
    The totals (`summary()`) cover the whole life of the process.
    """

    def __init__(
        self,
        experiments: Sequence[ExperimentConfig] = (),
        max_entries: int = 100_000,
        ttl_s: float = 24 * 3600,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or ttl_s <= 0:
            raise ValueError(f"max_entries must be >= 1 and ttl_s > 0 (got {max_entries}, {ttl_s})")
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._clock = clock
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._tallies: dict[str, dict[str, _Tally]] = {
            e.name: {v.name: _Tally(model=v.model) for v in e.variants} for e in experiments
        }
        self._lock = threading.Lock()

    def _expire(self, now: float) -> None:
        # Entries are in arrival order with a monotonic clock: the expired ones are at the front.
        while self._pending:
            _, oldest = next(iter(self._pending.items()))
            if now - oldest.at < self.ttl_s and len(self._pending) <= self.max_entries:
                break
            self._pending.popitem(last=False)

    def _tally(self, experiment: str, variant: str) -> _Tally:
        return self._tallies.setdefault(experiment, {}).setdefault(variant, _Tally())

    def record_assignment(self, request_id: str, assignment: Assignment) -> None:
        """Remember that `request_id` was answered by this variant, and count the assignment."""
        now = self._clock()
        with self._lock:
            self._pending[request_id] = _Pending(assignment.experiment, assignment.variant, now)
            self._pending.move_to_end(request_id)
            tally = self._tally(assignment.experiment, assignment.variant)
            tally.model = tally.model or assignment.model
            tally.assignments += 1
            self._expire(now)

    def record_feedback(self, request_id: str, outcome: str) -> tuple[str, str]:
        """Attribute feedback to the variant that answered; returns (experiment, variant).

        KeyError: the request id is unknown, or so old it was forgotten (the app answers 404).
        FeedbackAlreadyRecorded: it was rated before (409). ValueError: a bad outcome (422).
        """
        if outcome not in FEEDBACK_OUTCOMES:
            raise ValueError(f"outcome must be one of {FEEDBACK_OUTCOMES} (got {outcome!r})")
        now = self._clock()
        with self._lock:
            self._expire(now)
            pending = self._pending.get(request_id)
            if pending is None:
                raise KeyError(f"no A/B request with id '{request_id}' in the last {self.ttl_s:g} s")
            if pending.rated:
                raise FeedbackAlreadyRecorded(f"request '{request_id}' already has feedback")
            pending.rated = True
            tally = self._tally(pending.experiment, pending.variant)
            if outcome == "positive":
                tally.positive += 1
            else:
                tally.negative += 1
            return pending.experiment, pending.variant

    def record_signed(self, request_id: str, experiment: str, variant: str, outcome: str) -> None:
        """Count feedback whose variant a verified token names (the request may have been served by
        another replica); one this replica already counted for the request id is refused (409)."""
        if outcome not in FEEDBACK_OUTCOMES:
            raise ValueError(f"outcome must be one of {FEEDBACK_OUTCOMES} (got {outcome!r})")
        with self._lock:
            pending = self._pending.get(request_id)
            if pending is not None:
                if pending.rated:
                    raise FeedbackAlreadyRecorded(f"request '{request_id}' already has feedback")
                pending.rated = True
            tally = self._tally(experiment, variant)
            if outcome == "positive":
                tally.positive += 1
            else:
                tally.negative += 1

    def __len__(self) -> int:
        return len(self._pending)

    def summary(self) -> dict[str, Any]:
        """Counts and positive rate per experiment and variant (the GET /v1/ab/summary body)."""
        with self._lock:
            return {
                "experiments": {
                    experiment: {
                        variant: {
                            "model": t.model,
                            "assignments": t.assignments,
                            "positive": t.positive,
                            "negative": t.negative,
                            "feedback": t.positive + t.negative,
                            "positive_rate": (
                                t.positive / (t.positive + t.negative) if t.positive + t.negative else None
                            ),
                        }
                        for variant, t in variants.items()
                    }
                    for experiment, variants in self._tallies.items()
                }
            }
