"""Input drift: do today's prompts look like the ones the model was trained on?

Every request is reduced to a few cheap features (`input_features`). A *reference profile*,
built once from the training split, fixes for each numeric feature a grid of quantile bins with
the reference's share in each, plus a reservoir of raw values; for the domain, its mix. The
server's `DriftMonitor` keeps the last `window_size` requests and, every `evaluate_every`
requests, compares them with the reference:

- PSI (population stability index) per feature over the reference's bins:
  sum((window - reference) * ln(window / reference)). Half a count is added to every bin on both
  sides, so an empty bin stays finite and a small window is not punished for one missing count.
- The two-sample Kolmogorov-Smirnov test against the reservoir, for shifts the bins blur. It
  counts only with a p-value below the configured threshold split over the numeric features
  (Bonferroni) and a CDF gap of at least `ks_min_statistic`.

A feature drifts when either test says so; the monitor reports drift when any feature drifts.

Observing is O(1) (a deque append); an evaluation costs a few milliseconds of numpy and scipy for
the default window and runs once every `evaluate_every` requests, so the cost per request stays
at microseconds.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, model_validator
from scipy.stats import ks_2samp

from aistudio.config import Strict, validate
from aistudio.errors import UserError
from aistudio.io import write_json
from aistudio.monitoring_config import (
    CATEGORICAL_DRIFT_FEATURES,
    NUMERIC_DRIFT_FEATURES,
    DriftConfig,
)

PROFILE_FORMAT = "aistudio-drift-profile/1"
DEFAULT_BINS = 10
DEFAULT_RESERVOIR = 1000
NO_DOMAIN = "unknown"  # a request whose domain nobody stated
OTHER_CATEGORY = "other"  # any value the reference never saw
_HALF_COUNT = 0.5

Features = dict[str, float | str]

# --- per-request features -----------------------------------------------------------------------


def _gpt2_byte_alphabet() -> dict[str, int]:
    """Byte-level BPE writes each byte as a printable character (GPT-2's bytes_to_unicode);
    this is the inverse map, character → byte."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=False)}


_BYTE_OF_CHAR = _gpt2_byte_alphabet()
_SENTENCEPIECE_BYTE = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")


def byte_fallback_ids(vocab: Mapping[str, int]) -> set[int]:
    """Ids of the tokens that stand for bytes rather than text: the tokenizer's way of saying
    "unknown" when it has no `<unk>` to say it with.

    For a byte-level BPE (ours, GPT-2's) nothing is ever `<unk>`; a character it never learned
    is spelled out byte by byte, and those tokens are not valid UTF-8 on their own (one byte of
    a multi-byte character, or a merge that cuts one). For SentencePiece with byte fallback they
    are the `<0xNN>` tokens. Special tokens and whole-character tokens are not fallback.
    """
    fallback: set[int] = set()
    for token, token_id in vocab.items():
        if _SENTENCEPIECE_BYTE.match(token):
            fallback.add(token_id)
            continue
        try:
            raw = bytes(_BYTE_OF_CHAR[c] for c in token)
        except KeyError:
            continue  # not written in the byte alphabet: a special or added token
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            fallback.add(token_id)
    return fallback


# str.isalpha/isdigit/isspace restricted to ASCII, as byte sets: for an ASCII prompt (most of
# them) bytes.translate counts each class at memcpy speed instead of a Python call per character.
_ASCII_ALPHA = bytes(b for b in range(128) if chr(b).isalpha())
_ASCII_DIGIT = bytes(b for b in range(128) if chr(b).isdigit())
_ASCII_SPACE = bytes(b for b in range(128) if chr(b).isspace())


def _char_classes(prompt: str) -> tuple[int, int, int]:
    """(letters, digits, whitespace) in the prompt, as str.isalpha / isdigit / isspace count them."""
    if prompt.isascii():
        raw = prompt.encode("ascii")
        n = len(raw)
        return (
            n - len(raw.translate(None, _ASCII_ALPHA)),
            n - len(raw.translate(None, _ASCII_DIGIT)),
            n - len(raw.translate(None, _ASCII_SPACE)),
        )
    return sum(map(str.isalpha, prompt)), sum(map(str.isdigit, prompt)), sum(map(str.isspace, prompt))


def input_features(
    prompt: str,
    token_ids: Sequence[int],
    unk_token_id: int | None = None,
    byte_fallback_ids: set[int] | frozenset[int] | None = None,
    domain: str | None = None,
) -> Features:
    """The drift features of one request (names: aistudio.monitoring_config.DRIFT_FEATURES).

    unknown_token_rate is the share of tokens that are `unk_token_id` or in `byte_fallback_ids`
    (see `byte_fallback_ids()`). The character ratios are shares of the prompt's characters;
    punct_ratio counts everything that is neither letter, digit nor whitespace (punctuation,
    symbols, emoji), so the four add up to 1.
    """
    chars = len(prompt)
    tokens = len(token_ids)
    unknown = 0
    if tokens and (unk_token_id is not None or byte_fallback_ids):
        fallback = byte_fallback_ids or frozenset()
        unknown = sum(1 for t in token_ids if t == unk_token_id or t in fallback)
    alpha, digit, space = _char_classes(prompt)
    non_ascii = 0 if prompt.isascii() else chars - len(prompt.encode("ascii", "ignore"))
    per_char = 1.0 / chars if chars else 0.0
    return {
        "prompt_chars": float(chars),
        "token_count": float(tokens),
        "unknown_token_rate": unknown / tokens if tokens else 0.0,
        "alpha_ratio": alpha * per_char,
        "digit_ratio": digit * per_char,
        "whitespace_ratio": space * per_char,
        "punct_ratio": (chars - alpha - digit - space) * per_char,
        "non_ascii_ratio": non_ascii * per_char,
        "domain": domain or NO_DOMAIN,
    }


# --- reference profile ----------------------------------------------------------------------------


def _bin_index(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    # Bins are (-inf, e0], (e0, e1], ..., (e_last, inf): a point mass such as "no digits at all"
    # (0.0, often a quantile edge itself) gets a bin of its own.
    return np.searchsorted(edges, values, side="left")


def build_reference_profile(
    samples: Iterable[Mapping[str, float | str]],
    bins: int = DEFAULT_BINS,
    reservoir_size: int = DEFAULT_RESERVOIR,
    seed: int = 0,
) -> dict[str, Any]:
    """A JSON-serialisable reference from `input_features` of the training prompts.

    Per numeric feature: interior quantile edges (repeated edges merged, so a feature that is
    mostly 0 has fewer bins), the reference's share in each bin and up to `reservoir_size` raw
    values (a seeded uniform sample) for the KS test. Per categorical feature: its value mix.
    """
    if bins < 2:
        raise ValueError(f"bins must be >= 2 (got {bins})")
    numeric: dict[str, list[float]] = {f: [] for f in NUMERIC_DRIFT_FEATURES}
    categorical: dict[str, Counter[str]] = {f: Counter() for f in CATEGORICAL_DRIFT_FEATURES}
    size = 0
    for i, sample in enumerate(samples):
        missing = [f for f in (*numeric, *categorical) if f not in sample]
        if missing:
            raise ValueError(f"sample {i} lacks feature(s) {missing}; build samples with input_features()")
        for feature, values in numeric.items():
            values.append(float(sample[feature]))
        for feature, counts in categorical.items():
            counts[str(sample[feature])] += 1
        size += 1
    if size == 0:
        raise UserError("no samples to build a drift reference profile from")

    rng = np.random.default_rng(seed)
    profile: dict[str, Any] = {"format": PROFILE_FORMAT, "size": size, "numeric": {}, "categorical": {}}
    for feature, values in numeric.items():
        data = np.asarray(values, dtype=float)
        edges = np.unique(np.quantile(data, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
        counts = np.bincount(_bin_index(edges, data), minlength=len(edges) + 1)
        reservoir = data if size <= reservoir_size else rng.choice(data, reservoir_size, replace=False)
        profile["numeric"][feature] = {
            "edges": edges.tolist(),
            "proportions": (counts / size).tolist(),
            "reservoir": sorted(reservoir.tolist()),
        }
    for feature, counts in categorical.items():
        profile["categorical"][feature] = {"proportions": {k: v / size for k, v in sorted(counts.items())}}
    return profile


class _NumericProfile(Strict):
    edges: list[float]
    proportions: list[float] = Field(min_length=1)
    reservoir: list[float] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> _NumericProfile:
        if len(self.proportions) != len(self.edges) + 1:
            raise ValueError(
                f"has {len(self.proportions)} proportions for {len(self.edges)} edges (needs edges + 1)"
            )
        if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError("edges must be strictly increasing")
        return self


class _CategoricalProfile(Strict):
    proportions: dict[str, float] = Field(min_length=1)


class _Profile(Strict):
    format: str
    size: int = Field(ge=1)
    numeric: dict[str, _NumericProfile]
    categorical: dict[str, _CategoricalProfile]

    @model_validator(mode="after")
    def _known_format(self) -> _Profile:
        if self.format != PROFILE_FORMAT:
            raise ValueError(f"format must be '{PROFILE_FORMAT}' (got '{self.format}'); rebuild the profile")
        return self


def profile_from_prompts(
    prompts: Iterable[tuple[str, str | None]],
    tokenize: Callable[[str], Sequence[int]],
    vocab: Mapping[str, int],
    unk_token_id: int | None,
    **profile_options: Any,
) -> dict[str, Any]:
    """The reference profile of (prompt, domain) pairs, featurised exactly as the server does per request."""
    fallback = byte_fallback_ids(vocab)
    return build_reference_profile(
        (
            input_features(prompt, tokenize(prompt), unk_token_id, fallback, domain)
            for prompt, domain in prompts
        ),
        **profile_options,
    )


def save_profile(profile: Mapping[str, Any], path: Path) -> None:
    write_json(Path(path), profile)


def load_profile(path: Path | str) -> dict[str, Any]:
    """Read and check a profile written by save_profile; a damaged file is a UserError naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: drift reference profile not found (build it with build_reference_profile)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: top level must be an object (got {type(data).__name__})")
    validate(_Profile, data, str(path))
    return data


# --- the monitor ------------------------------------------------------------------------------------


def _smoothed(counts: np.ndarray, total: float) -> np.ndarray:
    return (counts + _HALF_COUNT) / (total + _HALF_COUNT * len(counts))


def population_stability_index(current: np.ndarray, reference: np.ndarray) -> float:
    """PSI of two smoothed (all > 0) distributions over the same bins."""
    return float(np.sum((current - reference) * np.log(current / reference)))


class DriftMonitor:
    """Rolling comparison of recent requests with the reference profile; safe across threads."""

    def __init__(
        self, profile: Mapping[str, Any], cfg: DriftConfig, clock: Callable[[], float] = time.time
    ) -> None:
        self.cfg = cfg
        self._clock = clock
        self.reference_size = int(profile["size"])
        missing = [f for f in cfg.features if f not in profile["numeric"] and f not in profile["categorical"]]
        if missing:
            raise UserError(
                f"drift reference profile has no feature(s) {missing} that monitoring_config.yaml "
                "drift.features lists; rebuild the profile or drop them from drift.features"
            )
        self._numeric = [f for f in cfg.features if f in profile["numeric"]]
        self._categorical = [f for f in cfg.features if f not in profile["numeric"]]
        self._edges = {f: np.asarray(profile["numeric"][f]["edges"], dtype=float) for f in self._numeric}
        self._reference_bins = {
            f: _smoothed(
                np.asarray(profile["numeric"][f]["proportions"]) * self.reference_size, self.reference_size
            )
            for f in self._numeric
        }
        self._reservoir = {
            f: np.asarray(profile["numeric"][f]["reservoir"], dtype=float) for f in self._numeric
        }
        # Categories in reference order, and last one bucket for anything the reference lacks.
        self._categories = {
            f: [*(c for c in profile["categorical"][f]["proportions"] if c != OTHER_CATEGORY), OTHER_CATEGORY]
            for f in self._categorical
        }
        self._reference_mix = {}
        for f in self._categorical:
            shares = profile["categorical"][f]["proportions"]
            counts = np.asarray([shares.get(c, 0.0) for c in self._categories[f]]) * self.reference_size
            self._reference_mix[f] = _smoothed(counts, self.reference_size)

        self._window: deque[tuple[tuple[float, ...], tuple[str, ...]]] = deque(maxlen=cfg.window_size)
        self._observed = 0
        self._lock = threading.Lock()
        self._evaluation_lock = threading.Lock()
        self._results: dict[str, dict[str, Any]] = {}
        self._detected = False
        self._evaluations = 0
        self._last_evaluated_at: float | None = None

    def observe(self, features: Mapping[str, float | str]) -> bool:
        """Add one request's features; True when this call ran an evaluation."""
        numeric = tuple(float(features[f]) for f in self._numeric)
        categorical = tuple(str(features.get(f) or NO_DOMAIN) for f in self._categorical)
        with self._lock:
            self._window.append((numeric, categorical))
            self._observed += 1
            due = self._observed % self.cfg.evaluate_every == 0 and len(self._window) >= self.cfg.min_samples
            snapshot = list(self._window) if due else None
        if snapshot is not None:
            self._evaluate(snapshot)
        return snapshot is not None

    def evaluate(self) -> bool:
        """Compare the current window now (at least min_samples needed); True when it ran."""
        with self._lock:
            snapshot = list(self._window)
        if len(snapshot) < self.cfg.min_samples:
            return False
        self._evaluate(snapshot)
        return True

    def _evaluate(self, snapshot: list[tuple[tuple[float, ...], tuple[str, ...]]]) -> None:
        cfg = self.cfg
        results: dict[str, dict[str, Any]] = {}
        ks_pvalue_threshold = self.ks_pvalue_threshold
        if self._numeric:
            matrix = np.asarray([row for row, _ in snapshot], dtype=float)
            for j, feature in enumerate(self._numeric):
                values = matrix[:, j]
                edges = self._edges[feature]
                counts = np.bincount(_bin_index(edges, values), minlength=len(edges) + 1)
                psi = population_stability_index(
                    _smoothed(counts, len(values)), self._reference_bins[feature]
                )
                # "asymp": the default tries the exact distribution first, ~10x slower, and at
                # window sizes of hundreds the asymptotic p-value is as good.
                ks = ks_2samp(values, self._reservoir[feature], method="asymp")
                statistic, p_value = float(ks.statistic), float(ks.pvalue)
                drifted = psi > cfg.psi_threshold or (
                    p_value < ks_pvalue_threshold and statistic >= cfg.ks_min_statistic
                )
                results[feature] = {
                    "psi": psi,
                    "ks_statistic": statistic,
                    "p_value": p_value,
                    "drifted": bool(drifted),
                }
        for j, feature in enumerate(self._categorical):
            categories = self._categories[feature]
            index = {c: i for i, c in enumerate(categories)}
            counts = np.zeros(len(categories))
            for _, values in snapshot:
                counts[index.get(values[j], len(categories) - 1)] += 1
            psi = population_stability_index(_smoothed(counts, len(snapshot)), self._reference_mix[feature])
            results[feature] = {
                "psi": psi,
                "ks_statistic": None,
                "p_value": None,
                "drifted": psi > cfg.psi_threshold,
            }
        with self._evaluation_lock:
            self._results = results
            self._detected = any(r["drifted"] for r in results.values())
            self._evaluations += 1
            self._last_evaluated_at = self._clock()

    @property
    def ks_pvalue_threshold(self) -> float:
        """The per-feature KS threshold: the configured family-wise one split over the features."""
        return self.cfg.ks_pvalue_threshold / max(len(self._numeric), 1)

    def scores(self) -> dict[str, float]:
        """PSI per monitored feature from the latest evaluation (empty before the first)."""
        return {feature: r["psi"] for feature, r in self._results.items()}

    @property
    def detected(self) -> bool:
        return self._detected

    @property
    def evaluations(self) -> int:
        return self._evaluations

    def report(self) -> dict[str, Any]:
        """The state for GET /v1/monitoring/drift: per-feature scores, thresholds and window facts."""
        with self._evaluation_lock:
            results, detected, evaluated_at = self._results, self._detected, self._last_evaluated_at
            evaluations = self._evaluations
        with self._lock:
            window, observed = len(self._window), self._observed
        return {
            "detected": detected,
            "evaluations": evaluations,
            "last_evaluated_at": (
                None if evaluated_at is None else datetime.fromtimestamp(evaluated_at, UTC).isoformat()
            ),
            "observed": observed,
            "window_size": window,
            "window_capacity": self.cfg.window_size,
            "reference_size": self.reference_size,
            "thresholds": {
                "psi": self.cfg.psi_threshold,
                "ks_pvalue_per_feature": self.ks_pvalue_threshold,
                "ks_min_statistic": self.cfg.ks_min_statistic,
            },
            "features": {feature: dict(r) for feature, r in results.items()},
        }
