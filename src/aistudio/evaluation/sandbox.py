"""Run generated code against a record's unit tests in a sandboxed subprocess: pass@1.

Each sample runs in its own `python -I -S` child (`sandbox_child.py`) that, before it executes a
byte of generated code, isolates the network (a new network namespace where the kernel allows
it, and always an audit hook refusing sockets and ctypes), drops from root to the unprivileged
`nobody` (root ignores RLIMIT_NPROC, so this is what stops forks), and sets rlimits on address
space, CPU seconds, file size and processes. The parent adds what the child cannot do itself: a
wall-clock timeout that kills the child's process group, an empty environment (no inherited
secrets, no PYTHONPATH), and a fresh temp directory as cwd, removed afterwards.

A sample that loops, forks, allocates without bound or floods its output is killed or fails,
and is counted as not passed; the caller moves on to the next sample. The outcome and a short
detail are kept per sample, so a report can say *why* pass@1 is low.

This contains accidents of a small model's code; it is not a hardened jail against code written
to escape (the same interpreter, the same kernel, the same filesystem, read-only to `nobody`).
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aistudio.config import SandboxConfig
from aistudio.evaluation.metrics import PASS_AT_1, extract_code

CHILD = Path(__file__).with_name("sandbox_child.py")
SANDBOX_USER = "nobody"
_NOBODY_ID = 65534

PASSED = "passed"
FAILED = "failed"  # a test's assert failed
ERROR = "error"  # an exception in the solution or the tests (syntax error, MemoryError, fork refused...)
NO_ENTRY_POINT = "no_entry_point"
TIMEOUT = "timeout"  # wall clock: sleeping or blocked; CPU-bound loops hit the CPU limit first
KILLED = "killed"  # a signal: CPU limit (SIGXCPU), output limit (SIGXFSZ), a crash
NO_REPORT = "no_report"  # exited before the harness could report (sys.exit / os._exit in the code)
OUTCOMES = (PASSED, FAILED, ERROR, NO_ENTRY_POINT, TIMEOUT, KILLED, NO_REPORT)

PASS_AT_1_SAMPLES = "pass_at_1_samples"


@dataclass(frozen=True)
class SandboxResult:
    outcome: str
    detail: str
    seconds: float
    network: str = ""  # how the network was isolated: namespace, user-namespace or audit-hook

    @property
    def passed(self) -> bool:
        return self.outcome == PASSED


def sandbox_ids() -> tuple[int, int]:
    """(uid, gid) the child drops to when started as root."""
    try:
        entry = pwd.getpwnam(SANDBOX_USER)
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        return _NOBODY_ID, _NOBODY_ID


def _signal_name(number: int) -> str:
    try:
        name = signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
    why = {"SIGXCPU": "CPU time limit", "SIGXFSZ": "output size limit", "SIGKILL": "killed"}.get(name)
    return f"{name} ({why})" if why else name


def _read_report(path: Path, nonce: str) -> dict[str, Any] | None:
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(report, dict) or report.get("nonce") != nonce or report.get("outcome") not in OUTCOMES:
        return None
    return report


def _tail(path: Path, chars: int = 300) -> str:
    try:
        return path.read_bytes()[-chars:].decode("utf-8", errors="replace").strip()
    except OSError:
        return ""


def run_sample(code: str, tests: str, entry_point: str, cfg: SandboxConfig) -> SandboxResult:
    """Execute `code`, check it defines `entry_point`, then run `tests` (assert statements) on it."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="aistudio-sandbox-", ignore_cleanup_errors=True) as scratch:
        root = Path(scratch)
        work = root / "work"
        work.mkdir()
        uid, gid = sandbox_ids()
        if os.geteuid() == 0:
            os.chown(work, uid, gid)
            root.chmod(0o711)  # nobody may enter work/, but not list or read the report beside it
        report = root / "report.json"
        nonce = secrets.token_hex(16)
        job = {
            "code": code,
            "tests": tests,
            "entry_point": entry_point,
            "nonce": nonce,
            "report_path": str(report),
            "uid": uid,
            "gid": gid,
            "network_namespace": cfg.network_namespace,
            "cpu_seconds": cfg.cpu_seconds,
            "memory_bytes": cfg.memory_mb * 1024 * 1024,
            "max_output_bytes": cfg.max_output_kb * 1024,
        }
        stdout, stderr = root / "stdout", root / "stderr"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            child = subprocess.Popen(  # noqa: S603 - our own interpreter and script, no shell
                [sys.executable, "-I", "-S", str(CHILD)],
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=err,
                cwd=work,
                env={},
                start_new_session=True,
            )
            timed_out = False
            try:
                child.communicate(json.dumps(job).encode("utf-8"), timeout=cfg.timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                # The whole session, while the child is unreaped (its pid cannot have been reused).
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
        seconds = time.perf_counter() - start
        if timed_out:
            return SandboxResult(TIMEOUT, f"no result within {cfg.timeout_s:g} s (wall clock)", seconds)
        if child.returncode < 0:
            return SandboxResult(KILLED, _signal_name(-child.returncode), seconds)
        found = _read_report(report, nonce)
        if found is None:
            detail = f"exited with code {child.returncode} before the tests reported"
            tail = _tail(stderr)
            return SandboxResult(NO_REPORT, f"{detail}: {tail}" if tail else detail, seconds)
        return SandboxResult(found["outcome"], str(found.get("detail", "")), seconds, str(found["network"]))


def has_tests(record: Mapping[str, Any]) -> bool:
    return bool(str(record.get("tests") or "").strip() and str(record.get("entry_point") or "").strip())


def pass_at_1(
    predictions: Sequence[str], records: Sequence[Mapping[str, Any]], cfg: SandboxConfig
) -> tuple[dict[str, float], list[SandboxResult | None]]:
    """Greedy pass@1 over the records that carry `tests` and `entry_point`, and each sample's result.

    One greedy completion per task, so pass@1 is simply the share that passes (the unbiased
    estimator of Chen et al. 2021 reduces to it for n = 1). Records without tests get None and
    are left out of the denominator, which `pass_at_1_samples` reports.
    """
    if len(predictions) != len(records):
        raise ValueError(f"{len(predictions)} predictions for {len(records)} records; pair them one to one")
    results: list[SandboxResult | None] = []
    for prediction, record in zip(predictions, records, strict=True):
        if not has_tests(record):
            results.append(None)
            continue
        entry_point = str(record["entry_point"]).strip()
        results.append(
            run_sample(extract_code(prediction, entry_point), str(record["tests"]), entry_point, cfg)
        )
    ran = [r for r in results if r is not None]
    if not ran:  # no tests at all: pass@1 is unknown, not 0 (a gate on it then says it is missing)
        return {PASS_AT_1_SAMPLES: 0.0}, results
    counts = Counter(r.outcome for r in ran)
    metrics: dict[str, float] = {PASS_AT_1: counts[PASSED] / len(ran), PASS_AT_1_SAMPLES: float(len(ran))}
    metrics.update({f"sandbox_{o}": float(counts[o]) for o in OUTCOMES if o != PASSED and counts[o]})
    return metrics, results
