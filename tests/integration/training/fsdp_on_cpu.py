"""Run a stage script under accelerate's FSDP on CPU processes (gloo): the suite's way to shard.

    accelerate launch --config_file configs/accelerate/fsdp.yaml --num_processes 2 \
        tests/integration/training/fsdp_on_cpu.py scripts/train_base_models.py --model ...

accelerate 1.15 shards only on accelerators: on CPU its state types the launch MULTI_CPU and drops
the FSDP plugin, so training silently runs as DDP (the stages refuse that). torch's FSDP2
(`fully_shard`) itself runs on a CPU device mesh over gloo, so this shim types the state back to
FSDP when accelerate was handed a plugin. Everything after that is the GPU code path: the wrap
policy from `_no_split_modules`, `fully_shard`, sharded checkpoints, resume, the full-state gather.
Test-only on purpose: production code does not patch accelerate.
"""

from __future__ import annotations

import runpy
import sys

import accelerate.state
from accelerate.utils import DistributedType

_accelerator_state_init = accelerate.state.AcceleratorState.__init__


def _fsdp_on_cpu(self, *args, **kwargs) -> None:
    _accelerator_state_init(self, *args, **kwargs)
    plugin = kwargs.get("fsdp_plugin")
    if plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
        self.distributed_type = DistributedType.FSDP
        self.fsdp_plugin = plugin
        accelerate.state.PartialState._shared_state["distributed_type"] = DistributedType.FSDP


if __name__ == "__main__":
    accelerate.state.AcceleratorState.__init__ = _fsdp_on_cpu
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
