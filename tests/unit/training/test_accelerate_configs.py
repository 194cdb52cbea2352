"""The shipped accelerate configs, checked offline the way `accelerate launch` and the Trainer read them.

No GPU and no deepspeed here: each config goes through accelerate's own launch validation and the
environment it would hand the workers, then into the plugin the Trainer's Accelerator would build.
FSDP: the plugin must wrap each family's `_no_split_modules`. DeepSpeed: the batch sizes, gradient
accumulation and clipping the Trainer fills from TrainingArguments (transformers'
`trainer_config_process`) must be "auto", so no params.yaml change can contradict them, and the
precision flags must agree with every training section at each precision a GPU can pick; ZeRO-3
must allow the gathered 16-bit save the trainer does at the end.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils import DeepSpeedPlugin, FullyShardedDataParallelPlugin
from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

from aistudio.config import Params, TinyArchitecture, TrainingConfig, load_params
from aistudio.modeling.family import family_for
from aistudio.modeling.tokenizer import train_bpe_tokenizer
from aistudio.training.sharding import check_wrap_classes, sharded_launch
from aistudio.training.trainer import training_arguments

REPO_ROOT = Path(__file__).resolve().parents[3]
CONFIGS = sorted((REPO_ROOT / "configs/accelerate").glob("*.yaml"))
DEEPSPEED_CONFIGS = [c for c in CONFIGS if c.name.startswith("deepspeed")]


def _launch_args(config: Path):
    args = launch_command_parser().parse_args(["--config_file", str(config), "train.py"])
    args, defaults, mixed_precision_from_config = _validate_launch_command(args)
    return args, defaults, mixed_precision_from_config


def _training_sections(params: Params) -> dict[str, TrainingConfig]:
    sections = {}
    for model in params.models:
        sections[f"models.{model}"] = params.base_training(model)
        for domain in params.data.domains:
            sections[f"lora.domains.{domain} ({model})"] = params.lora_training(model, domain)
            sections[f"finetune.domains.{domain} ({model})"] = params.finetune_training(model, domain)
    return sections


def test_the_configs_are_found() -> None:
    assert {c.name for c in CONFIGS} >= {"fsdp.yaml", "deepspeed_zero2.yaml", "deepspeed_zero3.yaml"}


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_accelerate_accepts_the_config(config: Path) -> None:
    args, defaults, _ = _launch_args(config)  # unknown keys and bad combinations raise here
    assert defaults is not None and args.num_processes >= 1


def _tiny(family_name: str):
    family = family_for(family_name)
    tokenizer = train_bpe_tokenizer(["the cat sat on a mat"] * 4, 300, 1, family.special_tokens)
    return family.build_tiny(TinyArchitecture(), tokenizer, seed=0)


@pytest.mark.parametrize("family_name", ["causal", "seq2seq"])
def test_fsdp_config_wraps_each_familys_own_blocks(family_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    args, _, _ = _launch_args(REPO_ROOT / "configs/accelerate/fsdp.yaml")
    env = prepare_multi_gpu_env(args)
    for key, value in env.items():
        if key.startswith(("ACCELERATE_", "FSDP_")):
            monkeypatch.setenv(key, value)
    model = _tiny(family_name)
    launch = sharded_launch()
    assert launch is not None and launch.strategy == "fsdp" and launch.wrap_classes == ()
    check_wrap_classes(model, launch, family_name)

    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2
    # Sharded checkpoints: what our completeness rule and consolidate_checkpoint understand.
    assert "SHARDED_STATE_DICT" in str(plugin.state_dict_type)
    plugin.set_auto_wrap_policy(model)  # raises for a class the model lacks
    wrapped = {cls.__name__ for cls in plugin.auto_wrap_policy.keywords["transformer_layer_cls"]}
    assert wrapped == set(model._no_split_modules)


def _deepspeed_plugin(config: Path, monkeypatch: pytest.MonkeyPatch, mixed_precision: str) -> DeepSpeedPlugin:
    args, defaults, mixed_precision_from_config = _launch_args(config)
    # What launch_command does before handing over to the DeepSpeed launcher.
    fields = list(defaults.deepspeed_config) + (["mixed_precision"] if mixed_precision_from_config else [])
    args.deepspeed_fields_from_accelerate_config = ",".join(fields)
    _, env = prepare_deepspeed_cmd_env(args)
    for key, value in env.items():
        if key.startswith("ACCELERATE_"):
            monkeypatch.setenv(key, value)
    plugin = DeepSpeedPlugin()
    # The Trainer's Accelerator passes TrainingArguments.mixed_precision, whatever the yaml says.
    plugin.set_mixed_precision(mixed_precision)
    return plugin


def _value(config: dict, dotted: str):
    node = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp32"])
@pytest.mark.parametrize("config", DEEPSPEED_CONFIGS, ids=lambda c: c.name)
def test_deepspeed_config_agrees_with_every_training_section(
    config: Path, precision: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = load_params(REPO_ROOT / "params.yaml")
    world_size = _launch_args(config)[0].num_processes
    gpu_args = {}
    for name, cfg in _training_sections(params).items():
        args = training_arguments(cfg.model_copy(update={"precision": "fp32"}), tmp_path, 0, name)
        # As on a GPU that resolved training.precision to `precision`.
        gpu_args[name] = dataclasses.replace(args, bf16=precision == "bf16", fp16=precision == "fp16")
    plugin = _deepspeed_plugin(config, monkeypatch, next(iter(gpu_args.values())).mixed_precision)
    mismatches = []
    for name, args in gpu_args.items():
        filled_by_trainer = {
            "train_micro_batch_size_per_gpu": args.per_device_train_batch_size,
            "gradient_accumulation_steps": args.gradient_accumulation_steps,
            "train_batch_size": world_size
            * args.per_device_train_batch_size
            * args.gradient_accumulation_steps,
            "gradient_clipping": args.max_grad_norm,
            "fp16.enabled": args.fp16,
            "bf16.enabled": args.bf16,
        }
        for key, wanted in filled_by_trainer.items():
            value = _value(plugin.deepspeed_config, key)
            # accelerate writes the precision flags from the Trainer's mixed_precision itself.
            allowed = (None, "auto", wanted) if key.endswith(".enabled") else (None, "auto")
            if value not in allowed:
                mismatches.append(
                    f"{name}: {key} is {value} in {config.name}; leave it to the Trainer (auto), which "
                    f"fills it from params.yaml ({wanted} here)"
                )
    assert not mismatches, "\n".join(mismatches)


def test_zero3_gathers_16bit_weights_for_the_final_save(monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = _deepspeed_plugin(REPO_ROOT / "configs/accelerate/deepspeed_zero3.yaml", monkeypatch, "bf16")
    assert plugin.zero_stage == 3
    assert plugin.deepspeed_config["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
