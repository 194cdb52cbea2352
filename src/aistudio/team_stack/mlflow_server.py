"""`mlflow server` as k8s/mlflow-deployment.yaml runs it: PostgreSQL backend, proxied S3 artifacts.

The backend store URI and the bucket keys reach the server through its environment
(MLFLOW_BACKEND_STORE_URI, AWS_*), never its arguments, so `ps` shows no password. Clients need only
the tracking URI: artifact uploads and downloads go through the server (--serve-artifacts).
"""

from __future__ import annotations

import os
import signal
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from aistudio.team_stack import processes
from aistudio.team_stack.processes import HOST
from aistudio.team_stack.s3 import Credentials

# The first start against an empty database runs every schema migration: tens of seconds on a
# loaded 2-core machine, as the startupProbe in the manifest allows for in the cluster.
START_TIMEOUT_S = 180
WORKERS = 1


@dataclass(frozen=True)
class MlflowServer:
    root: Path
    port: int
    backend_store_uri: str
    artifacts_destination: str
    s3_endpoint_url: str
    credentials: Credentials
    host: str = HOST

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log(self) -> Path:
        return self.root / "mlflow.log"

    @property
    def pid_file(self) -> Path:
        return self.root / "mlflow.pid"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            f"--host={self.host}",
            f"--port={self.port}",
            f"--workers={WORKERS}",
            "--serve-artifacts",
            f"--artifacts-destination={self.artifacts_destination}",
            # Host-header allow-list against DNS rebinding, as in the manifest: only the names
            # this server is reached by. /health is exempt.
            f"--allowed-hosts={self.host}:{self.port},localhost:{self.port}",
        ]

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            **self.credentials.env(),
            "MLFLOW_BACKEND_STORE_URI": self.backend_store_uri,
            "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint_url,
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }

    def healthy(self) -> bool:
        return self._answers("/health", timeout_s=2)

    def ready(self) -> bool:
        """Healthy and answering a query against the backend store (the first one opens it: slow)."""
        return self.healthy() and self._answers("/api/2.0/mlflow/experiments/search?max_results=1", 30)

    def _answers(self, path: str, timeout_s: float) -> bool:
        try:
            urllib.request.urlopen(f"{self.url}{path}", timeout=timeout_s).close()  # noqa: S310 - loopback
            return True
        except (urllib.error.URLError, OSError):
            return False

    def running(self) -> bool:
        return processes.alive(processes.read_pid(self.pid_file)) and self.healthy()

    def start(self) -> None:
        processes.require_free(self.port, "MLflow server")
        process = processes.spawn(self.command(), self.log, self.env(), self.pid_file)
        processes.wait_until(
            self.ready,
            START_TIMEOUT_S,
            f"MLflow server on {self.url}",
            self.log,
            alive=lambda: process.poll() is None,
        )

    def stop(self) -> None:
        # uvicorn drains in a second or two; the job-runner consumers may sit out SIGTERM, and the
        # state they hold is in PostgreSQL anyway, so they get SIGKILL after a short grace.
        processes.stop(self.pid_file, timeout_s=8)

    def kill(self) -> None:
        """SIGKILL the server and its workers: a crash, not a shutdown."""
        processes.stop(self.pid_file, timeout_s=5, sig=signal.SIGKILL)
