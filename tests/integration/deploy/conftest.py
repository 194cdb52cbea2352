"""Real collaborators for the deployment scripts: an MLflow registry on sqlite, stand-ins for the
external binaries (kubectl, the Argo Rollouts plugin, dvc) that record how they were called, and
a metrics endpoint that serves the model server's own metrics code over HTTP.

The stand-ins are executables on PATH, not patches: the scripts run as subprocesses exactly as a
user runs them and find whatever PATH offers. Test modules cannot import a conftest by name, so
the helpers come as fixtures (`deploy_kit`).
"""

from __future__ import annotations

import io
import json
import os
import runpy
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
REGISTERED_NAME = "aistudio-smollm2"  # mlflow.yaml registry.smollm2, the deploy default


def run_script(script: str, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    """Run scripts/<script> with the test's interpreter; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
        cwd=cwd or REPO,
    )


@dataclass(frozen=True)
class ScriptResult:
    returncode: int
    stdout: str
    stderr: str


def run_script_in_process(script: str, *args: str, cwd: Path | None = None) -> ScriptResult:
    """Run scripts/<script> as __main__ in this process: the same run_cli exit codes and output,
    without paying for a fresh interpreter importing MLflow (seconds) on every call."""
    out, err = io.StringIO(), io.StringIO()
    saved_argv, saved_cwd = sys.argv, Path.cwd()
    sys.argv = [str(REPO / "scripts" / script), *args]
    code: int | str | None = 0
    try:
        os.chdir(cwd or REPO)
        with redirect_stdout(out), redirect_stderr(err):
            runpy.run_path(sys.argv[0], run_name="__main__")
    except SystemExit as exit_:
        code = exit_.code
    finally:
        sys.argv = saved_argv
        os.chdir(saved_cwd)
    return ScriptResult(code if isinstance(code, int) else 1, out.getvalue(), err.getvalue())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- recorded external binaries ----------------------------------------------------------------------

_RECORDER = """#!{python}
import json, os, sys
with open({log!r}, "a", encoding="utf-8") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
canned = os.environ.get("FAKE_{upper}_STDOUT")
if canned and sys.argv[1:2] == ["get"]:
    sys.stdout.write(open(canned, encoding="utf-8").read())
"""


@dataclass
class RecordedBinary:
    """An executable `name` in `bin_dir` that appends its argv (JSON, one line) to `log`."""

    name: str
    bin_dir: Path
    log: Path

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


def make_recorded_binary(bin_dir: Path, name: str) -> RecordedBinary:
    bin_dir.mkdir(parents=True, exist_ok=True)
    log = bin_dir.parent / f"{name}.calls.jsonl"
    path = bin_dir / name
    upper = name.upper().replace("-", "_")
    path.write_text(_RECORDER.format(python=sys.executable, log=str(log), upper=upper))
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return RecordedBinary(name, bin_dir, log)


# --- an MLflow registry with versions and aliases -------------------------------------------------------


@dataclass(frozen=True)
class RegistryStore:
    tracking_uri: str
    name: str
    aliases: dict[str, int]


@pytest.fixture(scope="session")
def registry_store(tmp_path_factory: pytest.TempPathFactory) -> RegistryStore:
    """aistudio-smollm2 with versions 1-3: champion=v2, challenger=v3, previous-champion=v1.

    The versions' sources are an empty directory: rendering only resolves names and numbers, it
    never downloads a bundle.
    """
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(REGISTERED_NAME)
    source = root / "bundle"
    source.mkdir()
    for _ in range(3):
        client.create_model_version(REGISTERED_NAME, source=str(source))
    aliases = {"champion": 2, "challenger": 3, "previous-champion": 1}
    for alias, version in aliases.items():
        client.set_registered_model_alias(REGISTERED_NAME, alias, str(version))
    return RegistryStore(uri, REGISTERED_NAME, aliases)


# --- a metrics endpoint serving the model server's metrics code -----------------------------------------


@contextmanager
def metrics_endpoint(metrics: Any, drift_report: dict[str, Any]) -> Iterator[str]:
    """HTTP on 127.0.0.1: GET /metrics renders `metrics` (a ServerMetrics), GET
    /v1/monitoring/drift answers `drift_report`, as the server's routes do. Yields the base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the http.server API names it so
            if self.path == "/metrics":
                body, content_type = metrics.render(), metrics.content_type
            elif self.path == "/v1/monitoring/drift":
                body, content_type = json.dumps(drift_report).encode(), "application/json"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass(frozen=True)
class DeployKit:
    """The helpers above, for test modules (which cannot import conftest by name)."""

    repo: Path = REPO
    run_script: Any = run_script
    run_script_in_process: Any = run_script_in_process
    free_port: Any = free_port
    make_recorded_binary: Any = make_recorded_binary
    metrics_endpoint: Any = metrics_endpoint


@pytest.fixture(scope="session")
def deploy_kit() -> DeployKit:
    return DeployKit()
