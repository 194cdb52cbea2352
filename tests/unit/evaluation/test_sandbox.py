"""The code sandbox on real subprocesses: what passes, and every way a sample is stopped or fails."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
from pathlib import Path

import pytest

from aistudio.config import SandboxConfig
from aistudio.evaluation.sandbox import (
    ERROR,
    FAILED,
    KILLED,
    NO_ENTRY_POINT,
    NO_REPORT,
    PASS_AT_1,
    PASS_AT_1_SAMPLES,
    PASSED,
    TIMEOUT,
    pass_at_1,
    run_sample,
)

# Short limits: a looping sample costs one CPU second, a sleeping one two seconds of wall clock.
CFG = SandboxConfig(timeout_s=2.0, cpu_seconds=1, memory_mb=256, max_output_kb=64)
ADD = "def add(a, b):\n    return a + b\n"
TESTS = "assert add(1, 2) == 3\nassert add(-1, 1) == 0\n"


def run(code: str, tests: str = TESTS, cfg: SandboxConfig = CFG):
    return run_sample(code, tests, "add", cfg)


def test_a_correct_function_passes_its_tests() -> None:
    result = run(ADD)
    assert result.outcome == PASSED and result.passed


def test_a_wrong_function_fails_on_its_assert() -> None:
    result = run("def add(a, b):\n    return a - b\n")
    assert result.outcome == FAILED
    assert result.detail.startswith("AssertionError")


def test_code_without_the_entry_point_is_reported_as_such() -> None:
    assert run("def plus(a, b):\n    return a + b\n").outcome == NO_ENTRY_POINT


def test_a_syntax_error_is_an_error_naming_it() -> None:
    result = run("def add(a, b:\n    return a + b\n")
    assert result.outcome == ERROR
    assert "SyntaxError" in result.detail


def test_an_endless_loop_is_killed_at_the_cpu_limit() -> None:
    # A wall clock far beyond the CPU limit: on a loaded machine a CPU second takes longer than one.
    result = run(
        "def add(a, b):\n    while True:\n        pass\n", cfg=CFG.model_copy(update={"timeout_s": 30.0})
    )
    assert result.outcome == KILLED
    assert "SIGXCPU" in result.detail


def test_a_sample_that_sleeps_is_killed_at_the_wall_clock_timeout() -> None:
    result = run("import time\ntime.sleep(60)\n" + ADD)
    assert result.outcome == TIMEOUT
    assert result.seconds < 10


def test_fork_is_refused_even_though_the_evaluator_runs_as_root() -> None:
    code = "import os\npid = os.fork()\nif pid == 0:\n    os._exit(0)\n" + ADD
    result = run(code)
    assert result.outcome == ERROR
    assert "BlockingIOError" in result.detail


def test_a_fork_bomb_stops_at_its_first_fork() -> None:
    result = run("import os\nwhile True:\n    os.fork()\n")
    assert result.outcome == ERROR and "BlockingIOError" in result.detail


@pytest.mark.parametrize(
    "code",
    ["blob = bytearray(10 ** 11)\n", "chunks = []\nwhile True:\n    chunks.append(bytearray(10 ** 7))\n"],
    ids=["one-huge-allocation", "growing-list"],
)
def test_unbounded_allocation_fails_with_a_memory_error(code: str) -> None:
    result = run(code)
    assert result.outcome == ERROR
    assert "MemoryError" in result.detail


def test_flooding_stdout_is_cut_at_the_output_limit() -> None:
    result = run("while True:\n    print('x' * 10000)\n")
    assert result.outcome == ERROR
    assert "File too large" in result.detail


@pytest.mark.parametrize("exit_call", ["import sys\nsys.exit(0)\n", "import os\nos._exit(0)\n"])
def test_exiting_early_with_status_zero_does_not_pass(exit_call: str) -> None:
    result = run(ADD + exit_call)
    assert result.outcome in (ERROR, NO_REPORT)
    assert not result.passed


def test_the_sample_sees_no_inherited_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AISTUDIO_TEST_SECRET", "hunter2")
    # Python itself may set LC_CTYPE (PEP 538 locale coercion); nothing else may be there.
    code = ADD + "import os\nassert set(os.environ) <= {'LC_CTYPE'}, sorted(os.environ)\n"
    assert run(code).outcome == PASSED


def test_the_sample_runs_unprivileged_in_a_fresh_directory_removed_afterwards() -> None:
    # Not tmp_path: pytest keeps it private to root, and the sandbox user writes its cwd here.
    drop = Path(tempfile.mkdtemp(prefix="aistudio-sandbox-test-"))
    drop.chmod(0o777)
    code = ADD + (
        "import os\n"
        f"open({str(drop / 'cwd')!r}, 'w').write(os.getcwd())\n"
        "open('scratch.txt', 'w').write('written')\n"
        f"assert os.getcwd() != {os.getcwd()!r}\n"
        "assert os.listdir('.') == ['scratch.txt']\n"
    )
    if os.geteuid() == 0:
        code += "assert os.geteuid() != 0 and os.getegid() != 0\n"
    try:
        result = run(code)
        workdir = Path((drop / "cwd").read_text())
    finally:
        shutil.rmtree(drop)
    assert result.outcome == PASSED, result.detail
    assert workdir.name == "work" and workdir.parent.name.startswith("aistudio-sandbox-")
    assert not workdir.parent.exists()


class Listener:
    """A TCP server on 127.0.0.1 that counts the connections it accepts."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.server.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.server.close()


@pytest.mark.parametrize("namespace", [True, False], ids=["namespace-and-hook", "hook-only"])
def test_a_sample_cannot_reach_a_server_on_loopback(namespace: bool) -> None:
    listener = Listener()
    try:
        code = f"import socket\nsocket.socket().connect(('127.0.0.1', {listener.port}))\n"
        result = run(code + ADD, cfg=CFG.model_copy(update={"network_namespace": namespace}))
    finally:
        listener.close()
    assert result.outcome == ERROR
    assert "PermissionError" in result.detail
    assert listener.accepted == 0
    if not namespace:
        assert result.network == "audit-hook"


def test_the_sample_gets_its_own_network_namespace_where_the_kernel_allows_it() -> None:
    # /proc/self/net/dev lists the interfaces of the process's namespace: a new one has only `lo`.
    code = ADD + "devices = open('/proc/self/net/dev').read().splitlines()[2:]\nassert len(devices) == 1\n"
    result = run(code)
    if os.geteuid() == 0:  # root may always unshare: a namespace is not optional there
        assert result.network == "namespace"
    assert result.passed == (result.network != "audit-hook")


def test_pass_at_1_goes_on_after_a_stuck_sample_and_skips_records_without_tests() -> None:
    records = [
        {"entry_point": "add", "tests": TESTS},
        {"entry_point": "add", "tests": TESTS},
        {"entry_point": "add", "tests": TESTS},
        {"entry_point": "", "tests": ""},
    ]
    predictions = [
        "Here you go:\n```python\n" + ADD + "```\nIt adds.",
        "import time\ntime.sleep(60)\n",
        "def add(a, b):\n    return a * b\n",
        ADD,
    ]
    metrics, results = pass_at_1(predictions, records, CFG)
    assert metrics[PASS_AT_1] == pytest.approx(1 / 3)
    assert metrics[PASS_AT_1_SAMPLES] == 3
    assert metrics["sandbox_timeout"] == 1 and metrics["sandbox_failed"] == 1
    assert [r.outcome if r else None for r in results] == [PASSED, TIMEOUT, FAILED, None]


def test_pass_at_1_is_absent_when_no_record_has_tests() -> None:
    metrics, results = pass_at_1([ADD], [{"output": ADD}], CFG)
    assert PASS_AT_1 not in metrics and metrics[PASS_AT_1_SAMPLES] == 0
    assert results == [None]
