"""DVC remote checks that need no S3 server: unknown names, non-S3 remotes, a closed port."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from aistudio.errors import UserError
from aistudio.remotes import check_remote, remote_info
from aistudio.team_stack.processes import free_port
from aistudio.team_stack.stack import DVC_BUCKET, StackPorts


def _dvc_repo(tmp_path: Path, *remote_commands: list[str]) -> Path:
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run([*dvc, "init", "-q"], cwd=tmp_path, check=True)
    for command in remote_commands:
        subprocess.run([*dvc, "remote", *command], cwd=tmp_path, check=True)
    return tmp_path


def test_the_repository_team_remote_is_the_team_stack_bucket_and_port(repo_root: Path) -> None:
    team = remote_info(repo_root, "team")
    assert (team.bucket, team.prefix) == (DVC_BUCKET, "store")
    assert team.endpoint == f"http://127.0.0.1:{StackPorts().s3}"


def test_an_undefined_remote_lists_the_defined_ones(tmp_path: Path) -> None:
    repo = _dvc_repo(tmp_path, ["add", "-d", "shared", "/srv/dvc"])
    with pytest.raises(UserError) as caught:
        remote_info(repo, "team")
    assert caught.value.problems == [
        ".dvc/config: remote 'team' is not defined (defined: shared); add it with dvc remote add team <url>"
    ]


def test_without_a_default_remote_the_error_asks_for_one(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"no default remote \(core.remote\); pass --remote <name>"):
        remote_info(_dvc_repo(tmp_path))


def test_a_local_remote_is_left_to_dvc(tmp_path: Path) -> None:
    repo = _dvc_repo(tmp_path, ["add", "-d", "shared", str(tmp_path / "store")])
    assert not check_remote(repo).is_s3


def test_a_closed_endpoint_fails_in_seconds_naming_the_remote_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    repo = _dvc_repo(tmp_path, ["add", "team", "s3://bucket/path"], ["modify", "team", "endpointurl", dead])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    with pytest.raises(UserError) as caught:
        check_remote(repo, "team")
    (line,) = caught.value.problems
    assert line.startswith(f"DVC remote 'team' (s3://bucket/path at {dead}) is unreachable: ")
    assert line.endswith("dvc remote modify --local team endpointurl <url>")
