"""The stacked LoRA term of a mixed step equals PEFT's own per-row routing, and adapters it cannot
hold are left to PEFT."""

from __future__ import annotations

import copy

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import PhiConfig, PhiForCausalLM

from aistudio.serving.lora_stack import LoraStack
from aistudio.training.adapters import PEFT_BASE_ROW


def _tiny_phi() -> PhiForCausalLM:
    torch.manual_seed(0)
    config = PhiConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4
    )
    return PhiForCausalLM(config).eval()


def _with_adapters(ranks: dict[str, int], **extra: object) -> PeftModel:
    base = _tiny_phi()
    model: PeftModel | None = None
    for seed, (name, r) in enumerate(ranks.items()):
        config = LoraConfig(r=r, lora_alpha=2 * r, target_modules=["q_proj", "v_proj", "fc1"], **extra)
        if model is None:
            model = get_peft_model(copy.deepcopy(base), config, adapter_name=name)
        else:
            model.add_adapter(name, config)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for key, param in model.named_parameters():
                if f"lora_B.{name}." in key:
                    param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    assert model is not None
    return model.eval()


def test_a_mixed_step_through_the_stack_equals_peft_per_row_routing() -> None:
    model = _with_adapters({"a": 4, "b": 2, "c": 8})
    rows = ["a", None, "c", "b", "a", None]
    ids = torch.randint(0, 64, (len(rows), 5), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = model(input_ids=ids, adapter_names=[r or PEFT_BASE_ROW for r in rows]).logits
        stack = LoraStack()
        assert stack.rebuild(model, ["a", "b", "c"])
        model.base_model.disable_adapter_layers()
        with stack.route(rows):
            stacked = model(input_ids=ids).logits
        plain = model(input_ids=ids).logits  # outside route(): the base model only
    torch.testing.assert_close(stacked, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(plain[1], expected[1], rtol=1e-5, atol=1e-5)  # row 1 is a base row
    assert not torch.allclose(plain[0], expected[0])


def test_variants_the_stack_cannot_hold_are_left_to_peft() -> None:
    model = _with_adapters({"d": 4}, use_dora=True)
    assert LoraStack().rebuild(model, ["d"]) is False


@pytest.mark.parametrize("adapters", [[], ["a"]])
def test_rebuilding_replaces_the_hooks_instead_of_adding_more(adapters: list[str]) -> None:
    model = _with_adapters({"a": 4})
    stack = LoraStack()
    stack.rebuild(model, ["a"])
    stack.rebuild(model, adapters)
    hooks = sum(len(m._forward_hooks) for m in model.modules())
    assert hooks == (3 * 2 if adapters else 0)  # three targets x two layers
