"""Tracking-store checks without a server: masked URIs, a closed port, a missing sqlite directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from aistudio.errors import UserError
from aistudio.team_stack.processes import free_port
from aistudio.tracking_store import check_tracking_store, redact


def test_passwords_are_masked_and_everything_else_kept() -> None:
    assert redact("postgresql://ml:s3cr%40t@db:5432/mlflow") == "postgresql://ml:***@db:5432/mlflow"
    assert redact("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_a_closed_server_port_is_one_line_naming_the_uri_and_the_fix() -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(UserError) as caught:
        check_tracking_store(uri)
    (line,) = caught.value.problems
    assert line.startswith(f"MLflow tracking server at {uri} is unreachable: ")
    assert "make team-up" in line


def test_a_database_that_refuses_names_the_uri_without_its_password() -> None:
    uri = f"postgresql://aistudio:hunter2@127.0.0.1:{free_port()}/mlflow"
    with pytest.raises(UserError) as caught:
        check_tracking_store(uri)
    (line,) = caught.value.problems
    assert "hunter2" not in line
    assert line.startswith(f"MLflow tracking store at {redact(uri)} is unreachable: ")


def test_a_sqlite_store_in_a_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no .*missing"):
        check_tracking_store(f"sqlite:///{tmp_path}/missing/mlflow.db")
    check_tracking_store(f"sqlite:///{tmp_path}/mlflow.db")  # its directory exists: fine
