"""scripts/ab_report.py end to end: from a file, a server and Prometheus, and on bad input."""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

import pytest

from aistudio.deploy.contract import SERVER_METRICS
from aistudio.serving.ab import Assignment, FeedbackStore
from aistudio.serving.ab_report import (
    ASSIGNMENTS_METRIC,
    FEEDBACK_METRIC,
    analyse,
    compare_variants,
    parse_summary,
    prometheus_queries,
)

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "scripts" / "ab_report.py"
API_KEY = "test-key-0123456789"


def summary(control: tuple[int, int], treatment: tuple[int, int]) -> dict:
    def row(model: str, positive: int, negative: int) -> dict:
        return {
            "model": model,
            "assignments": 2 * (positive + negative),
            "positive": positive,
            "negative": negative,
        }

    return {
        "experiments": {"code-adapter": {"control": row("base", *control), "lora": row("code", *treatment)}}
    }


def run_script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The script as a user runs it, in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
        cwd=REPO,
    )


@pytest.fixture
def run_in_process(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """The same script run in this interpreter (a fresh one spends seconds importing scipy)."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        monkeypatch.setattr(sys, "argv", [str(SCRIPT), *args])
        with pytest.raises(SystemExit) as exited:
            runpy.run_path(str(SCRIPT), run_name="__main__")
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, exited.value.code, out, err)

    return run


def test_a_clear_difference_is_significant(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(summary(control=(300, 200), treatment=(400, 100))))
    result = run_script("--input", str(path))
    assert result.returncode == 0, result.stderr
    assert "control" in result.stdout and "60.0%" in result.stdout and "80.0%" in result.stdout
    assert (
        "chi-square" in result.stdout
        and "significant at alpha = 0.05; highest positive rate: lora" in result.stdout
    )


def test_a_small_difference_is_not_significant_and_json_output_parses(tmp_path: Path, run_in_process) -> None:
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(summary(control=(50, 50), treatment=(53, 47))))
    result = run_in_process("--input", str(path), "--json")
    assert result.returncode == 0, result.stderr
    (experiment,) = json.loads(result.stdout)
    assert experiment["test"] == "chi-square" and experiment["significant"] is False
    assert experiment["p_value"] == pytest.approx(0.6714, abs=1e-3)  # two-proportion z-test, z = 0.424
    assert [v["positive_rate"] for v in experiment["variants"]] == [0.5, 0.53]


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    path.write_text("{not json")
    result = run_script("--input", str(path))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "not valid JSON" in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            '{"experiments": {"e": {"a": {"positive": -1, "negative": 2}}}}',
            "summary.json: experiments.e.a.positive must be >= 0",
        ),
        ("[1, 2]", "expected a JSON object"),
        (None, "file not found"),
    ],
)
def test_every_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, run_in_process, content: str | None, expected: str
) -> None:
    path = tmp_path / "summary.json"
    if content is not None:
        path.write_text(content)
    result = run_in_process("--input", str(path))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and expected in result.stderr, result.stderr


# --- live sources -------------------------------------------------------------------------------------


class _Fake(BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, Any]] = {}
    seen: ClassVar[list[tuple[str, dict[str, str]]]] = []

    def do_GET(self) -> None:
        url = urlparse(self.path)
        _Fake.seen.append((self.path, dict(self.headers)))
        if url.path == "/api/v1/query":
            query = parse_qs(url.query)["query"][0]
            body = self.routes["prometheus"](query)
        elif url.path in self.routes:
            body = self.routes[url.path]
        else:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Fake)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    _Fake.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_reads_the_servers_summary_endpoint_with_the_api_key_from_the_environment(fake_server: str) -> None:
    store = FeedbackStore()
    for i in range(40):
        store.record_assignment(f"r{i}", Assignment("exp", "a" if i % 2 else "b", "m"))
        store.record_feedback(f"r{i}", "positive" if i % 3 else "negative")
    _Fake.routes = {"/v1/ab/summary": store.summary()}
    result = run_script("--server", fake_server, env={"PATH": "/usr/bin:/bin", "AISTUDIO_API_KEY": API_KEY})
    assert result.returncode == 0, result.stderr
    assert "experiment exp" in result.stdout
    path, headers = _Fake.seen[0]
    assert path == "/v1/ab/summary" and headers["Authorization"] == f"Bearer {API_KEY}"
    assert API_KEY not in result.stdout + result.stderr


def test_reads_counts_from_prometheus(fake_server: str, run_in_process) -> None:
    def vector(result: list[dict]) -> dict:
        return {"status": "success", "data": {"resultType": "vector", "result": result}}

    def answer(query: str) -> dict:
        if ASSIGNMENTS_METRIC in query:
            return vector([
                {"metric": {"experiment": "exp", "variant": v}, "value": [0, "1000.4"]} for v in ("a", "b")
            ])  # fmt: skip
        return vector([
            {"metric": {"experiment": "exp", "variant": "a", "outcome": "positive"}, "value": [0, "300"]},
            {"metric": {"experiment": "exp", "variant": "a", "outcome": "negative"}, "value": [0, "200"]},
            {"metric": {"experiment": "exp", "variant": "b", "outcome": "positive"}, "value": [0, "400.2"]},
            {"metric": {"experiment": "exp", "variant": "b", "outcome": "negative"}, "value": [0, "100"]},
        ])  # fmt: skip

    _Fake.routes = {"prometheus": answer}
    result = run_in_process("--prometheus", fake_server, "--window", "24h", "--json")
    assert result.returncode == 0, result.stderr
    (experiment,) = json.loads(result.stdout)
    assert [(v["variant"], v["assignments"], v["positive"]) for v in experiment["variants"]] == [
        ("a", 1000, 300),
        ("b", 1000, 400),
    ]
    assert experiment["significant"] is True
    assert all("[24h]" in parse_qs(urlparse(path).query)["query"][0] for path, _ in _Fake.seen)


def test_an_unreachable_source_is_exit_2(fake_server: str, run_in_process) -> None:
    _Fake.routes = {}
    result = run_in_process("--server", fake_server)
    assert result.returncode == 2 and "HTTP 404" in result.stderr


# --- the statistics -----------------------------------------------------------------------------------


def test_queries_name_contract_metrics() -> None:
    assert {ASSIGNMENTS_METRIC, FEEDBACK_METRIC} <= SERVER_METRICS
    assert all("[7d]" in q for q in prometheus_queries("7d").values())


def test_small_samples_use_fishers_exact_test() -> None:
    (result,) = analyse(parse_summary(summary(control=(1, 4), treatment=(5, 0)), "s"))
    assert result.test == "fisher-exact"
    assert result.p_value == pytest.approx(0.0476, abs=1e-3)


def test_no_test_without_feedback_on_two_variants_and_none_needed_when_all_agree() -> None:
    (lonely,) = analyse(parse_summary(summary(control=(0, 0), treatment=(5, 5)), "s"))
    assert lonely.p_value is None and not lonely.significant and "two variants" in lonely.note
    unanimous = compare_variants("e", parse_summary(summary((10, 0), (20, 0)), "s")["code-adapter"])
    assert unanimous.p_value == 1.0 and not unanimous.significant


def test_more_than_two_variants_use_one_chi_square_test() -> None:
    data = summary(control=(100, 100), treatment=(100, 100))
    data["experiments"]["code-adapter"]["third"] = {"positive": 160, "negative": 40}
    (result,) = analyse(parse_summary(data, "s"))
    assert result.test == "chi-square" and result.significant and result.best == "third"
