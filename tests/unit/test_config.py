from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aistudio.config import load_mlflow_config, load_params
from aistudio.errors import UserError


def _write(tmp_path: Path, data: object, name: str = "params.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def params_dict(repo_root: Path) -> dict:
    return yaml.safe_load((repo_root / "params.yaml").read_text())


def _problems(tmp_path: Path, data: dict) -> list[str]:
    with pytest.raises(UserError) as caught:
        load_params(_write(tmp_path, data))
    return caught.value.problems


def test_repository_params_are_valid(repo_root: Path) -> None:
    params = load_params(repo_root / "params.yaml")
    assert params.data.sources
    assert load_mlflow_config(repo_root / "mlflow.yaml").tracking_uri.startswith("sqlite:///")


def test_out_of_range_split_names_file_key_and_value(tmp_path: Path, params_dict: dict) -> None:
    params_dict["data"]["split"]["validation"] = 1.5
    assert "params.yaml: data.split.validation must be in (0, 1) (got 1.5)" in _problems(
        tmp_path, params_dict
    )


def test_unknown_key_is_an_error_not_ignored(tmp_path: Path, params_dict: dict) -> None:
    params_dict["data"]["dedup"]["treshold"] = 0.9
    assert _problems(tmp_path, params_dict) == ["params.yaml: data.dedup.treshold is not a known key"]


def test_every_problem_is_reported_at_once(tmp_path: Path, params_dict: dict) -> None:
    params_dict["data"]["quality"]["min_chars"] = -1
    params_dict["data"]["dedup"]["num_perm"] = "many"
    problems = _problems(tmp_path, params_dict)
    assert any(p.startswith("params.yaml: data.quality.min_chars must be >= 0 (got -1)") for p in problems)
    assert any(p.startswith("params.yaml: data.dedup.num_perm ") and "'many'" in p for p in problems)


def test_incompatible_combination_is_rejected(tmp_path: Path, params_dict: dict) -> None:
    params_dict["data"]["split"] = {"validation": 0.6, "test": 0.5}
    problems = _problems(tmp_path, params_dict)
    assert problems == ["params.yaml: data.split: validation + test must be < 1 so a training split remains"]


def test_wrong_format_lists_the_choices(tmp_path: Path, params_dict: dict) -> None:
    params_dict["data"]["sources"][0]["format"] = "xml"
    (problem,) = _problems(tmp_path, params_dict)
    assert problem.startswith("params.yaml: data.sources.0.format must be one of")
    assert "(got 'xml')" in problem


def test_missing_file_and_bad_yaml_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="file not found"):
        load_params(tmp_path / "absent.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(UserError, match=r"params.yaml: not valid YAML at line \d+"):
        load_params(bad)


def test_a_params_file_that_still_sets_processed_dir_is_told_where_the_path_went(
    tmp_path: Path, params_dict: dict
) -> None:
    params_dict["data"]["processed_dir"] = "data/processed"
    assert _problems(tmp_path, params_dict) == [
        "params.yaml: data: processed_dir is not a param any more, delete it: the stage scripts take "
        "--data and --out (default data/processed)"
    ]
