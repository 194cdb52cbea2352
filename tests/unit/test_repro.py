"""scripts/train_models.py's chain: the training stages of layout.PIPELINE_STAGES that dvc.yaml has."""

from __future__ import annotations

from pathlib import Path

import pytest

from aistudio import layout
from aistudio.errors import UserError
from aistudio.repro import chain_until, dvc_stages

WITHOUT_IMPORT = ["prepare_data", "train_base_models", "finetune_domain_models", "train_lora_adapters"]


def test_the_training_chain_runs_from_import_to_the_lora_adapters_in_pipeline_order() -> None:
    assert layout.TRAINING_STAGES == (
        "import_base_models",
        "train_base_models",
        "build_features",
        "finetune_domain_models",
        "train_lora_adapters",
    )


def test_a_training_stage_missing_from_dvc_yaml_is_left_out_of_the_chain() -> None:
    assert chain_until(None, WITHOUT_IMPORT) == WITHOUT_IMPORT[1:]
    assert chain_until("finetune_domain_models", WITHOUT_IMPORT) == WITHOUT_IMPORT[1:3]


def test_until_an_unknown_stage_is_a_user_error_listing_the_training_stages() -> None:
    with pytest.raises(UserError, match="--until 'evaluate'.*import_base_models, train_base_models"):
        chain_until("evaluate", WITHOUT_IMPORT)


def test_until_a_training_stage_dvc_yaml_lacks_is_a_user_error_listing_those_it_has() -> None:
    with pytest.raises(UserError, match="dvc.yaml has no such stage; choose one of train_base_models"):
        chain_until("import_base_models", WITHOUT_IMPORT)


def test_the_repository_dvc_yaml_defines_the_training_stages_after_import(tmp_path: Path) -> None:
    defined = dvc_stages(Path(__file__).resolve().parents[2])
    assert [stage for stage in layout.TRAINING_STAGES[1:] if stage not in defined] == []
    with pytest.raises(UserError, match="dvc.yaml: not found"):
        dvc_stages(tmp_path)
