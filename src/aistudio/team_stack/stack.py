"""The whole local team stack: start it, describe it, write the client env file, stop it.

State lives in one directory (`.team/` by default, git-ignored): the PostgreSQL cluster, each
server's log and pid, `state.json` (ports and generated secrets, mode 0600) and `env`, the file a
shell sources to use the stack. The stack is throwaway: moto keeps the buckets in memory, so
`down` removes the whole directory rather than leave a database whose artifacts are gone.
"""

from __future__ import annotations

import json
import secrets
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from aistudio.errors import UserError
from aistudio.team_stack.mlflow_server import MlflowServer
from aistudio.team_stack.postgres import PostgresCluster
from aistudio.team_stack.s3 import REGION, Credentials, S3Endpoint

DVC_BUCKET = "aistudio-dvc"
MLFLOW_BUCKET = "aistudio-mlflow"
ARTIFACTS_DESTINATION = f"s3://{MLFLOW_BUCKET}/artifacts"
DATABASE = "mlflow"
# IAM users: one for people and DVC (its key goes into the env file), one for the MLflow server.
DEV_USER = "aistudio-dev"
SERVER_USER = "mlflow-server"
STATE_FILE = "state.json"
ENV_FILE = "env"


@dataclass(frozen=True)
class StackPorts:
    """The defaults match mlflow.yaml's `team` profile and .dvc/config's `team` remote."""

    postgres: int = 55432
    s3: int = 59000
    mlflow: int = 55000


@dataclass(frozen=True)
class StackState:
    ports: StackPorts
    postgres_password: str
    dev: Credentials
    server: Credentials

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> StackState:
        data = json.loads(text)
        return cls(
            StackPorts(**data["ports"]),
            data["postgres_password"],
            Credentials(**data["dev"]),
            Credentials(**data["server"]),
        )


class TeamStack:
    """PostgreSQL + S3 endpoint + MLflow server, all on 127.0.0.1, state under `root`."""

    def __init__(self, root: Path, ports: StackPorts | None = None) -> None:
        self.root = Path(root).absolute()
        self.ports = ports or StackPorts()

    # --- the parts, for a stack that is (or was) up ---------------------------------------------

    def state(self) -> StackState | None:
        path = self.root / STATE_FILE
        return StackState.from_json(path.read_text()) if path.is_file() else None

    def _parts(self, state: StackState) -> tuple[PostgresCluster, S3Endpoint, MlflowServer]:
        postgres = PostgresCluster(self.root / "postgres", state.ports.postgres, state.postgres_password)
        s3 = S3Endpoint(self.root, state.ports.s3)
        mlflow = MlflowServer(
            self.root, state.ports.mlflow, postgres.uri(DATABASE), ARTIFACTS_DESTINATION, s3.url, state.server
        )
        return postgres, s3, mlflow

    @property
    def postgres(self) -> PostgresCluster:
        return self._parts(self._require_state())[0]

    @property
    def s3(self) -> S3Endpoint:
        return self._parts(self._require_state())[1]

    @property
    def mlflow(self) -> MlflowServer:
        return self._parts(self._require_state())[2]

    def _require_state(self) -> StackState:
        state = self.state()
        if state is None:
            raise UserError(f"no team stack in {self.root}; start one with make team-up")
        return state

    # --- lifecycle ----------------------------------------------------------------------------------

    def status(self) -> dict[str, bool]:
        state = self.state()
        if state is None:
            return {"postgres": False, "s3": False, "mlflow": False}
        postgres, s3, mlflow = self._parts(state)
        return {"postgres": postgres.running(), "s3": s3.running(), "mlflow": mlflow.running()}

    def up(self) -> StackState:
        """Start every part, or restart the parts of a running stack that stopped.

        PostgreSQL keeps its data on disk, so a stopped (or crashed) database or MLflow server is
        simply started again. The S3 endpoint keeps its data in memory: once it is gone, the stack
        must be recreated (`down`, then `up`).
        """
        state = self.state()
        if state is not None:
            return self._restart_stopped(state)
        if self.root.exists():
            self.down()  # the leftovers of a start that failed (its logs were named in that error)
        self.root.mkdir(parents=True)
        self.root.chmod(0o711)  # PostgreSQL (another user when we are root) must traverse it
        state = StackState(self.ports, secrets.token_urlsafe(24), Credentials("", ""), Credentials("", ""))
        postgres, s3, _ = self._parts(state)
        try:
            postgres.init()
            postgres.start()
            postgres.create_database(DATABASE)
            s3.start()
            keys = s3.bootstrap([DEV_USER, SERVER_USER], [DVC_BUCKET, MLFLOW_BUCKET])
            state = StackState(self.ports, state.postgres_password, keys[DEV_USER], keys[SERVER_USER])
            self._write_private(STATE_FILE, state.to_json())
            self._parts(state)[2].start()
            self._write_private(ENV_FILE, self.env_file_text(state))
        except BaseException:
            self._stop_parts(state)
            raise
        return state

    def _restart_stopped(self, state: StackState) -> StackState:
        postgres, s3, mlflow = self._parts(state)
        if not s3.running():
            raise UserError(
                f"the team stack in {self.root} lost its S3 endpoint, and with it the buckets (moto keeps "
                "them in memory); recreate the stack: make team-down, then make team-up"
            )
        if not postgres.running():
            postgres.start()
        if not mlflow.running():
            mlflow.stop()  # a hung one still holds the port
            mlflow.start()
        return state

    def down(self) -> None:
        """Stop every part and remove the state directory."""
        state = self.state()
        if state is not None:
            self._stop_parts(state)
        elif (self.root / "postgres").exists():
            PostgresCluster(self.root / "postgres", self.ports.postgres, "").stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def _stop_parts(self, state: StackState) -> None:
        postgres, s3, mlflow = self._parts(state)
        mlflow.stop()
        s3.stop()
        postgres.stop()

    # --- what clients use ------------------------------------------------------------------------

    def client_env(self, state: StackState | None = None) -> dict[str, str]:
        """What a shell needs: the dev key for DVC and boto3, the S3 endpoint, the MLflow profile."""
        state = state or self._require_state()
        s3_url = f"http://127.0.0.1:{state.ports.s3}"
        return {
            **state.dev.env(),
            "AWS_ENDPOINT_URL_S3": s3_url,
            "MLFLOW_S3_ENDPOINT_URL": s3_url,
            "AISTUDIO_MLFLOW_PROFILE": "team",
        }

    def env_file_text(self, state: StackState) -> str:
        lines = [
            "# Written by `make team-up`: client settings of the local team stack. Never commit it",
            "# (.team/ is git-ignored). Load it with:  source .team/env",
            f"# MLflow: http://127.0.0.1:{state.ports.mlflow}  S3: http://127.0.0.1:{state.ports.s3} "
            f"(region {REGION})  PostgreSQL: 127.0.0.1:{state.ports.postgres}",
        ]
        lines += [f"export {key}={value}" for key, value in self.client_env(state).items()]
        return "\n".join(lines) + "\n"

    def _write_private(self, name: str, text: str) -> None:
        path = self.root / name
        path.touch(mode=0o600, exist_ok=True)
        path.chmod(0o600)
        path.write_text(text)
