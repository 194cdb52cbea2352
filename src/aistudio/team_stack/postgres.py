"""A throwaway PostgreSQL cluster (Debian's `postgresql` package) for MLflow's backend store.

Started with `pg_ctl`, listening on 127.0.0.1 only (no Unix socket), password (scram-sha-256) auth
for every connection. PostgreSQL refuses to run as root; as root the cluster belongs to Debian's
unprivileged `postgres` user and every server command runs through `runuser -u postgres`.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from aistudio.errors import UserError
from aistudio.team_stack.processes import HOST, log_tail, port_open, require_free

SERVICE_USER = "postgres"
START_TIMEOUT_S = 60


def pg_tool(name: str) -> str:
    """A PostgreSQL server tool: on PATH, or in Debian's versioned /usr/lib/postgresql/<v>/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    if not candidates:
        raise UserError(
            f"PostgreSQL's {name} is not installed: run make setup (Debian package postgresql) "
            "or put the PostgreSQL server binaries on PATH"
        )
    return candidates[-1]


def _as_root() -> bool:
    return os.geteuid() == 0


@dataclass(frozen=True)
class PostgresCluster:
    """One cluster: its directory (data/ and server.log), port, superuser and password."""

    root: Path
    port: int
    password: str
    user: str = "aistudio"
    host: str = HOST

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def uri(self, database: str) -> str:
        return f"postgresql://{self.user}:{quote(self.password, safe='')}@{self.host}:{self.port}/{database}"

    def _run(self, *command: str, timeout_s: float = START_TIMEOUT_S) -> subprocess.CompletedProcess:
        prefix = ["runuser", "-u", SERVICE_USER, "--"] if _as_root() else []
        return subprocess.run(
            [*prefix, *command], capture_output=True, text=True, timeout=timeout_s, check=False
        )

    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").is_file()

    def init(self) -> None:
        """initdb with the password from a file that exists only for the call."""
        self.root.mkdir(parents=True, exist_ok=True)
        pwfile = self.root / "initdb.pw"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        if _as_root():
            shutil.chown(self.root, SERVICE_USER, SERVICE_USER)
            shutil.chown(pwfile, SERVICE_USER, SERVICE_USER)
            self.root.chmod(0o700)
            if self._run("test", "-w", str(self.root)).returncode:
                raise UserError(
                    f"PostgreSQL runs as the user '{SERVICE_USER}', which cannot reach {self.root}: "
                    "make its parent directories world-executable, or set AISTUDIO_TEAM_DIR to a "
                    "directory it can reach (for example under /tmp)"
                )
        try:
            done = self._run(
                pg_tool("initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                self.user,
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "-E",
                "UTF8",
                "--no-instructions",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if done.returncode:
            raise UserError(f"initdb {self.data_dir} failed: {(done.stderr or done.stdout).strip()[-300:]}")

    def start(self) -> None:
        require_free(self.port, "PostgreSQL")
        options = f"-c listen_addresses={self.host} -p {self.port} -c unix_socket_directories=''"
        done = self._run(
            pg_tool("pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            str(START_TIMEOUT_S),
            "start",
        )
        if done.returncode or not port_open(self.port, self.host):
            raise UserError(
                f"PostgreSQL did not start on {self.host}:{self.port}; log {self.log}: {log_tail(self.log)}"
            )

    def stop(self, mode: str = "fast") -> None:
        """`fast` rolls back open transactions cleanly; `immediate` is a crash (recovery on next start)."""
        if self.running():
            self._run(pg_tool("pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        if not self.initialized():
            return False
        return self._run(pg_tool("pg_ctl"), "-D", str(self.data_dir), "status").returncode == 0

    def create_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.uri("postgres"), autocommit=True, connect_timeout=10) as connection:
            exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                connection.execute(f'CREATE DATABASE "{name}"')
