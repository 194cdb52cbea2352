"""The team stack for tests: real PostgreSQL, moto's S3 server and `mlflow server`, on free ports.

Started once per module through `TeamStack` (the code `make team-up` runs) in a temp directory
under /tmp: PostgreSQL runs as the unprivileged `postgres` user when we are root, and pytest's own
temp root is private to root.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from aistudio.errors import UserError
from aistudio.team_stack.postgres import pg_tool
from aistudio.team_stack.processes import free_port
from aistudio.team_stack.stack import StackPorts, TeamStack


@pytest.fixture(scope="module")
def team_stack() -> Iterator[TeamStack]:
    try:
        pg_tool("pg_ctl")
    except UserError as err:
        pytest.skip(str(err))
    scratch = Path(tempfile.mkdtemp(prefix="aistudio-team-"))
    scratch.chmod(0o711)
    stack = TeamStack(scratch / "stack", StackPorts(postgres=free_port(), s3=free_port(), mlflow=free_port()))
    try:
        stack.up()
        yield stack
    finally:
        stack.down()
        shutil.rmtree(scratch, ignore_errors=True)
