from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

import pytest
import torch
from transformers import T5Config, T5ForConditionalGeneration

from aistudio.errors import UserError
from aistudio.training.sharding import (
    ShardedLaunch,
    check_strategy_applied,
    check_wrap_classes,
    launch_config_file,
    replicated_training,
    sharded_launch,
    share_tied_embedding_modules,
    worth_sharding,
)

FSDP = ShardedLaunch("fsdp", "configs/accelerate/fsdp.yaml", "TRANSFORMER_BASED_WRAP", (), world_size=8)


def _t5() -> T5ForConditionalGeneration:
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=64,
        d_model=64,
        d_kv=16,
        d_ff=128,
        num_layers=1,
        num_heads=4,
        dropout_rate=0.0,
        decoder_start_token_id=0,
        pad_token_id=0,
    )
    return T5ForConditionalGeneration(config).eval()


def test_a_plain_or_ddp_launch_is_not_sharded() -> None:
    assert sharded_launch({}) is None
    assert sharded_launch({"ACCELERATE_USE_FSDP": "false", "WORLD_SIZE": "2"}) is None


def test_fsdp_launch_settings_come_from_the_variables_accelerate_exports() -> None:
    launch = sharded_launch(
        {
            "ACCELERATE_USE_FSDP": "true",
            "FSDP_AUTO_WRAP_POLICY": "TRANSFORMER_BASED_WRAP",
            "FSDP_TRANSFORMER_CLS_TO_WRAP": "LlamaDecoderLayer, T5Block",
            "WORLD_SIZE": "4",
        }
    )
    assert launch is not None
    assert (launch.strategy, launch.wrap_classes, launch.world_size) == (
        "fsdp",
        ("LlamaDecoderLayer", "T5Block"),
        4,
    )
    deepspeed = sharded_launch({"ACCELERATE_USE_DEEPSPEED": "true", "FSDP_TRANSFORMER_CLS_TO_WRAP": "X"})
    assert deepspeed is not None and (deepspeed.strategy, deepspeed.wrap_classes) == ("deepspeed", ())


@pytest.mark.parametrize("flag", ["--config_file", "--config-file"])
def test_the_config_file_is_read_from_the_launching_process(flag: str) -> None:
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", flag, "my/fsdp.yaml"])
    try:
        deadline = time.monotonic() + 10
        while b"my/fsdp.yaml" not in open(f"/proc/{parent.pid}/cmdline", "rb").read():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert launch_config_file(parent.pid) == "my/fsdp.yaml"
    finally:
        parent.kill()
        parent.wait()
    assert launch_config_file(os.getpid()) == "the accelerate launch config"


def test_a_wrap_class_the_model_lacks_names_file_key_and_its_no_split_modules() -> None:
    launch = ShardedLaunch("fsdp", "fsdp.yaml", "TRANSFORMER_BASED_WRAP", ("T5Block", "PhiDecoderLayer"))
    with pytest.raises(UserError) as caught:
        check_wrap_classes(_t5(), launch, "t5_small")
    assert str(caught.value) == (
        "fsdp.yaml: fsdp_config.fsdp_transformer_layer_cls_to_wrap names PhiDecoderLayer, which model "
        "'t5_small' (T5ForConditionalGeneration) does not have; its _no_split_modules are ['T5Block']: "
        "remove the key so every model wraps its own _no_split_modules"
    )


def test_wrap_classes_the_model_has_or_none_at_all_pass() -> None:
    check_wrap_classes(_t5(), ShardedLaunch("fsdp", "f", "TRANSFORMER_BASED_WRAP", ("T5Block",)), "t5")
    check_wrap_classes(_t5(), FSDP, "t5")
    check_wrap_classes(_t5(), ShardedLaunch("fsdp", "f", "SIZE_BASED_WRAP", ("Missing",)), "t5")


def test_a_model_below_the_threshold_is_not_worth_sharding(caplog: pytest.LogCaptureFixture) -> None:
    model = _t5()
    count = sum(p.numel() for p in model.parameters())
    with caplog.at_level(logging.WARNING):
        assert worth_sharding(model, FSDP, count, "t5", "training")
        assert not caplog.records
        assert not worth_sharding(model, FSDP, count + 1, "t5", "training")
    assert f"t5: {count:,} parameters is below training.fsdp_min_params ({count + 1:,})" in caplog.text
    assert "training it replicated (DDP) on 8 processes" in caplog.text
    assert worth_sharding(model, ShardedLaunch("deepspeed", "ds.yaml"), 10**12, "t5", "training")


def test_replicated_training_switches_fsdp_off_for_the_job_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with replicated_training():
        assert os.environ["ACCELERATE_USE_FSDP"] == "false"
    assert os.environ["ACCELERATE_USE_FSDP"] == "true"
    monkeypatch.delenv("ACCELERATE_USE_FSDP")
    with pytest.raises(RuntimeError), replicated_training():
        raise RuntimeError("training failed")
    assert "ACCELERATE_USE_FSDP" not in os.environ


def test_t5_embedding_twins_become_one_module_computing_the_same_loss() -> None:
    model = _t5()
    batch = {"input_ids": torch.tensor([[5, 6, 7, 1]]), "labels": torch.tensor([[8, 9, 1]])}
    before = model(**batch).loss
    assert model.encoder.embed_tokens is not model.shared
    assert share_tied_embedding_modules(model) == 2
    assert model.encoder.embed_tokens is model.shared and model.decoder.embed_tokens is model.shared
    assert torch.equal(model(**batch).loss, before)
    assert share_tied_embedding_modules(model) == 0


def test_a_launch_accelerate_ran_unsharded_is_refused() -> None:
    check_strategy_applied(FSDP, fsdp_enabled=True, deepspeed_enabled=False)
    with pytest.raises(UserError, match=r"^configs/accelerate/fsdp.yaml: asks for FSDP, but accelerate"):
        check_strategy_applied(FSDP, fsdp_enabled=False, deepspeed_enabled=False)
    with pytest.raises(UserError, match=r"^ds.yaml: asks for DEEPSPEED"):
        check_strategy_applied(
            ShardedLaunch("deepspeed", "ds.yaml"), fsdp_enabled=True, deepspeed_enabled=False
        )
