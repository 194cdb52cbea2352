"""mlflow.yaml profiles: chosen by AISTUDIO_MLFLOW_PROFILE, overlaid on the top level, checked once."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aistudio.config import MLFLOW_PROFILE_ENV, load_mlflow_config
from aistudio.errors import UserError


def _mlflow_yaml(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "mlflow.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


BASE = {
    "tracking_uri": "sqlite:///mlflow.db",
    "experiment": "aistudio",
    "registry": {"smollm2": "aistudio-smollm2"},
    "profiles": {"team": {"tracking_uri": "http://127.0.0.1:55000"}, "ci": {"experiment": "ci-runs"}},
}


def test_without_a_profile_the_top_level_applies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MLFLOW_PROFILE_ENV, raising=False)
    cfg = load_mlflow_config(_mlflow_yaml(tmp_path, BASE))
    assert (cfg.tracking_uri, cfg.experiment, cfg.profile) == ("sqlite:///mlflow.db", "aistudio", None)


def test_the_environment_picks_a_profile_whose_keys_override_only_what_it_sets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _mlflow_yaml(tmp_path, BASE)
    monkeypatch.setenv(MLFLOW_PROFILE_ENV, "team")
    team = load_mlflow_config(path)
    assert (team.tracking_uri, team.experiment, team.profile) == (
        "http://127.0.0.1:55000",
        "aistudio",
        "team",
    )
    assert team.registry == {"smollm2": "aistudio-smollm2"}
    monkeypatch.setenv(MLFLOW_PROFILE_ENV, "ci")
    ci = load_mlflow_config(path)
    assert (ci.tracking_uri, ci.experiment) == ("sqlite:///mlflow.db", "ci-runs")


def test_an_explicit_profile_wins_over_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MLFLOW_PROFILE_ENV, "ci")
    assert load_mlflow_config(_mlflow_yaml(tmp_path, BASE), profile="team").profile == "team"


def test_an_unknown_profile_names_the_file_the_variable_and_the_defined_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MLFLOW_PROFILE_ENV, "staging")
    with pytest.raises(UserError) as caught:
        load_mlflow_config(_mlflow_yaml(tmp_path, BASE))
    assert caught.value.problems == [
        "mlflow.yaml: profile 'staging' (from AISTUDIO_MLFLOW_PROFILE) is not defined under profiles "
        "(defined: ci, team); add it there or unset AISTUDIO_MLFLOW_PROFILE"
    ]


def test_unknown_keys_inside_a_profile_are_errors(tmp_path: Path) -> None:
    data = {**BASE, "profiles": {"team": {"tracking_url": "http://127.0.0.1:55000"}}}
    with pytest.raises(UserError) as caught:
        load_mlflow_config(_mlflow_yaml(tmp_path, data))
    assert caught.value.problems == ["mlflow.yaml: profiles.team.tracking_url is not a known key"]


def test_the_active_profile_cannot_be_set_in_the_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="mlflow.yaml: profile is not a known key"):
        load_mlflow_config(_mlflow_yaml(tmp_path, {**BASE, "profile": "team"}))


def test_the_repository_team_profile_points_at_the_team_stack_mlflow_port(
    repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aistudio.team_stack.stack import StackPorts

    monkeypatch.setenv(MLFLOW_PROFILE_ENV, "team")
    cfg = load_mlflow_config(repo_root / "mlflow.yaml")
    assert cfg.tracking_uri == f"http://127.0.0.1:{StackPorts().mlflow}"
