from __future__ import annotations

from pathlib import Path

import pytest

from aistudio import layout
from aistudio.cli import selected_models, stage_args
from aistudio.config import load_params
from aistudio.errors import UserError


def test_no_request_selects_every_model_in_params_order() -> None:
    assert selected_models({"phi2": 1, "t5_small": 2}, None) == ["phi2", "t5_small"]


def test_an_unknown_model_is_one_clear_line() -> None:
    with pytest.raises(UserError) as caught:
        selected_models({"phi2": 1}, ["phi3", "phi2"])
    assert caught.value.problems == ["--model ['phi3'] is not in params.yaml models ['phi2']"]


def test_params_without_models_is_an_error() -> None:
    with pytest.raises(UserError, match="models has no entry"):
        selected_models({}, None)


# --- stage_args -----------------------------------------------------------------------------------


@pytest.fixture
def in_repo(repo_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(repo_root)
    return repo_root


@pytest.fixture
def model(repo_root: Path) -> str:
    return next(iter(load_params(repo_root / "params.yaml").models))


def _lora_args(*argv: str):
    return stage_args(
        "train_lora_adapters", "doc", model="one", out=lambda model, _: layout.lora_dir(model), argv=argv
    )


def test_a_bare_matrix_stage_reads_and_writes_the_layout_paths_of_its_item(in_repo: Path, model: str) -> None:
    args = _lora_args("--model", model)
    assert (args.model, args.data, args.out) == (model, layout.PROCESSED_DIR, layout.lora_dir(model))
    assert args.mlflow is not None and args.params.data.domains


def test_data_and_out_on_the_command_line_replace_the_defaults(
    in_repo: Path, tmp_path: Path, model: str
) -> None:
    args = _lora_args("--model", model, "--data", str(tmp_path / "in"), "--out", str(tmp_path / "out"))
    assert (args.data, args.out) == (tmp_path / "in", tmp_path / "out")


def test_a_domain_outside_params_is_one_line_naming_the_known_domains(in_repo: Path, model: str) -> None:
    with pytest.raises(UserError) as caught:
        stage_args(
            "finetune_domain_models",
            "doc",
            model="one",
            domain=True,
            argv=["--model", model, "--domain", "poetry"],
        )
    [problem] = caught.value.problems
    assert problem.startswith("--domain 'poetry' is not in params.yaml data.domains [")


def test_some_models_means_all_of_params_unless_named(in_repo: Path) -> None:
    every = stage_args("quantize_models", "doc", model="some", argv=[])
    assert every.models == list(every.params.models) and every.out is None
    with pytest.raises(UserError, match=r"--model \['nope'\] is not in params.yaml models"):
        stage_args("quantize_models", "doc", model="some", argv=["--model", "nope"])


def test_a_missing_params_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"params\.yaml: file not found"):
        stage_args("prepare_data", "doc", argv=["--params", str(tmp_path / "params.yaml")])


def test_a_stage_adds_its_own_flags_and_reads_them_back(in_repo: Path) -> None:
    args = stage_args(
        "prepare_data",
        "doc",
        data=False,
        mlflow=False,
        out=layout.PROCESSED_DIR,
        options=lambda p: p.add_argument("--no-progress", action="store_true"),
        argv=["--no-progress"],
    )
    assert args.options.no_progress is True and args.mlflow is None and args.out == layout.PROCESSED_DIR
