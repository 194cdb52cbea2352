"""What a sharded launch (FSDP or DeepSpeed under `accelerate launch`) asked for, and whether it can work.

`accelerate launch --config_file X` hands its config to every worker as environment variables
(ACCELERATE_USE_FSDP, FSDP_*, ACCELERATE_USE_DEEPSPEED, ...) that the Trainer's Accelerator reads
later. We read the same variables before any work, so a config that cannot work for this model
fails in one line naming the file instead of deep inside accelerate, or worse, trains unsharded.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from aistudio.errors import UserError
from aistudio.training.distributed import is_main_process

log = logging.getLogger(__name__)
Strategy = Literal["fsdp", "deepspeed"]
TRANSFORMER_BASED_WRAP = "TRANSFORMER_BASED_WRAP"
_CONFIG_FLAGS = ("--config_file", "--config-file")


@dataclass(frozen=True)
class ShardedLaunch:
    strategy: Strategy
    config_file: str
    wrap_policy: str | None = None
    wrap_classes: tuple[str, ...] = ()
    world_size: int = 1


def _flag(environ: Mapping[str, str], name: str) -> bool:
    return environ.get(name, "false").lower() in ("1", "true", "yes")


def launch_config_file(parent_pid: int | None = None) -> str:
    """The config file of the `accelerate launch` that started this worker, to name it in errors.

    accelerate exports the config's values but not its path; the launcher is this process's parent.
    """
    pid = os.getppid() if parent_pid is None else parent_pid
    try:
        argv = [a.decode(errors="replace") for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")]
    except OSError:
        argv = []
    for i, arg in enumerate(argv):
        if arg in _CONFIG_FLAGS and i + 1 < len(argv):
            return argv[i + 1]
        name, _, value = arg.partition("=")
        if name in _CONFIG_FLAGS and value:
            return value
    from accelerate.commands.config.config_args import default_config_file

    if argv and any(a.endswith("accelerate") for a in argv[:2]) and Path(default_config_file).is_file():
        return default_config_file
    return "the accelerate launch config"


def sharded_launch(environ: Mapping[str, str] | None = None) -> ShardedLaunch | None:
    """FSDP or DeepSpeed settings of this launch; None for a plain, DDP or single-device run."""
    env = os.environ if environ is None else environ
    if _flag(env, "ACCELERATE_USE_DEEPSPEED"):
        strategy: Strategy = "deepspeed"
    elif _flag(env, "ACCELERATE_USE_FSDP"):
        strategy = "fsdp"
    else:
        return None
    classes = tuple(c.strip() for c in env.get("FSDP_TRANSFORMER_CLS_TO_WRAP", "").split(",") if c.strip())
    return ShardedLaunch(
        strategy=strategy,
        config_file=launch_config_file(),
        wrap_policy=env.get("FSDP_AUTO_WRAP_POLICY") if strategy == "fsdp" else None,
        wrap_classes=classes if strategy == "fsdp" else (),
        world_size=int(env.get("WORLD_SIZE", "1")),
    )


def no_split_modules(model: torch.nn.Module) -> list[str]:
    """The blocks HF says must stay whole on one device: accelerate's default FSDP wrap units."""
    # A PeftModel forwards attribute lookups to the model it wraps; transformers keeps a set.
    return sorted(getattr(model, "_no_split_modules", None) or [])


def check_wrap_classes(model: torch.nn.Module, launch: ShardedLaunch, name: str) -> None:
    """A wrap class the model lacks makes accelerate fail after loading; fail first, with the fix."""
    if launch.strategy != "fsdp" or launch.wrap_policy != TRANSFORMER_BASED_WRAP or not launch.wrap_classes:
        return
    present = {type(module).__name__ for module in model.modules()}
    missing = [c for c in launch.wrap_classes if c not in present]
    if missing:
        raise UserError(
            f"{launch.config_file}: fsdp_config.fsdp_transformer_layer_cls_to_wrap names "
            f"{', '.join(missing)}, which model '{name}' ({type(model).__name__}) does not have; its "
            f"_no_split_modules are {no_split_modules(model)}: remove the key so every model wraps its own "
            "_no_split_modules"
        )


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def worth_sharding(
    model: torch.nn.Module, launch: ShardedLaunch, min_params: int, name: str, key: str
) -> bool:
    """False, with a warning, for a model too small for FSDP to save memory that matters.

    Below `min_params` the replicated training state (weights, grads, Adam moments: ~16 bytes a
    parameter) is small on any accelerator, and every step would still pay FSDP's all-gathers. Such a
    model falls back to replicated data-parallel training in the same launch, rather than refusing
    the whole stage: one FSDP launch can then train a 135M model sharded and a tiny one beside it.
    """
    if launch.strategy != "fsdp":
        return True
    count = parameter_count(model)
    if count >= min_params:
        return True
    if not is_main_process():
        return False
    log.warning(
        "%s: %s parameters is below %s.fsdp_min_params (%s), too small to shard: training it replicated "
        "(DDP) on %d processes; set %s.fsdp_min_params: 0 to shard it anyway",
        name,
        f"{count:,}",
        key,
        f"{min_params:,}",
        launch.world_size,
        key,
    )
    return False


def share_tied_embedding_modules(model: torch.nn.Module) -> int:
    """Let the input embedding module own its weight alone; returns how many modules were replaced.

    FSDP2 refuses a parameter that two sharding groups can see. accelerate groups the input
    embedding with the tied output head, but T5 holds the same weight in two more modules
    (`encoder.embed_tokens`, `decoder.embed_tokens`) that land in the root group: training fails at
    the first step, on GPUs as on CPU. Pointing those attributes at the embedding module itself
    leaves one owner and computes the same thing.
    """
    embedding = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    weight = getattr(embedding, "weight", None)
    if weight is None:
        return 0
    twins = [
        (name, module)
        for name, module in model.named_modules(remove_duplicate=False)
        if module is not embedding and type(module) is type(embedding) and module.weight is weight
    ]
    for name, _ in twins:
        parent_name, _, attribute = name.rpartition(".")
        setattr(model.get_submodule(parent_name), attribute, embedding)
    return len(twins)


@contextmanager
def replicated_training() -> Iterator[None]:
    """Build the next Trainer without FSDP although the launch asked for it.

    The Trainer's Accelerator (and transformers' low-memory loading) decide FSDP from
    ACCELERATE_USE_FSDP when they are created, so the variable is switched off for the whole job.
    """
    saved = os.environ.get("ACCELERATE_USE_FSDP")
    os.environ["ACCELERATE_USE_FSDP"] = "false"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("ACCELERATE_USE_FSDP", None)
        else:
            os.environ["ACCELERATE_USE_FSDP"] = saved


def check_no_meta_parameters(model: torch.nn.Module, name: str) -> None:
    """Replicated training needs real weights on every rank.

    transformers loads weights on the meta device on ranks > 0 under an FSDP launch with
    fsdp_cpu_ram_efficient_loading, expecting FSDP to broadcast them from rank 0; DDP cannot.
    """
    if any(p.is_meta for p in model.parameters()):
        raise UserError(
            f"{name}: falls back to replicated training, but this rank loaded it without weights "
            "(fsdp_cpu_ram_efficient_loading); set fsdp_cpu_ram_efficient_loading: false in the accelerate "
            "config, or shard it (fsdp_min_params: 0)"
        )


def check_strategy_applied(launch: ShardedLaunch, fsdp_enabled: bool, deepspeed_enabled: bool) -> None:
    """accelerate quietly trains unsharded (plain DDP) when it cannot shard, e.g. on CPU; refuse that."""
    applied = fsdp_enabled if launch.strategy == "fsdp" else deepspeed_enabled
    if applied:
        return
    import accelerate

    device = "CUDA GPUs" if torch.cuda.is_available() else "CPU processes"
    raise UserError(
        f"{launch.config_file}: asks for {launch.strategy.upper()}, but accelerate {accelerate.__version__} "
        f"does not shard on {device} (it would train replicated, as DDP): on a CPU machine launch with "
        "configs/accelerate/cpu_ddp.yaml"
    )


def check_deepspeed_installed(launch: ShardedLaunch) -> None:
    """DeepSpeed is an optional, GPU-only extra (requirements-deepspeed.txt)."""
    if launch.strategy != "deepspeed":
        return
    import importlib.util

    if importlib.util.find_spec("deepspeed") is None:
        raise UserError(
            f"{launch.config_file}: asks for DeepSpeed, which is not installed: on the GPU machine run "
            "pip install -c constraints.txt -r requirements-deepspeed.txt"
        )
