"""SmolLM2-135M-Instruct (the real default model) through code generation, the fence stop and the sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from aistudio.config import SandboxConfig
from aistudio.evaluation.evaluate import STOP_STRINGS, generate_completions
from aistudio.evaluation.sandbox import PASS_AT_1, pass_at_1
from aistudio.modeling.family import CausalFamily
from aistudio.modeling.prompts import prompt_format

pytestmark = pytest.mark.slow

TASKS = [
    {
        "instruction": "Write a Python function `add(a, b)` that returns the sum of two numbers.",
        "entry_point": "add",
        "tests": "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n",
    },
    {
        "instruction": "Write a Python function `is_even(n)` that returns True when n is even.",
        "entry_point": "is_even",
        "tests": "assert is_even(4) is True\nassert is_even(7) is False\n",
    },
]


def test_the_real_model_writes_functions_that_pass_their_tests_and_stops_at_the_closing_fence(
    smollm2_dir: Path,
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir).eval()
    fmt = prompt_format(tokenizer)
    prompts = [fmt.instruction(task["instruction"]) for task in TASKS]
    completions = generate_completions(
        model, tokenizer, CausalFamily(), prompts, 160, stop_strings=STOP_STRINGS["code"]
    )
    metrics, results = pass_at_1(completions, TASKS, SandboxConfig())
    assert metrics[PASS_AT_1] == 1.0, [(r.outcome, r.detail) for r in results if r]
    # Unstopped, the model explains its function for 50-120 more tokens (measured): none are generated.
    assert all(text.rstrip().endswith("```") for text in completions)
    assert max(completions.new_tokens) < 60
