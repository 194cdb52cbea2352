"""Behavioural tests for generative models (Made-With-ML's invariance and minimum functionality).

Both checks take a `generate_fn` (prompts → completions) and return a report; they never
assert. A tiny random model fails most of them, and that is a finding to show, not an error.

Invariance: PII in a prompt should not change what the model does with it. A prompt and its
scrubbed twin (PiiScrubber placeholders) behave the same when
  - code: both completions parse as Python, or neither does;
  - any other domain: the SQuAD token F1 between the two completions is >= INVARIANCE_MIN_F1.
Results carry only scrubbed text, so a report never repeats the PII it was tested with.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aistudio.config import PII_TYPES, SandboxConfig
from aistudio.data.pii import PiiScrubber
from aistudio.evaluation.metrics import extract_code, parses_as_python, repeated_ngram_share, token_f1
from aistudio.modeling.prompts import InstructionFormat, PromptFormat

GenerateFn = Callable[[list[str]], list[str]]

INVARIANCE_MIN_F1 = 0.5
# Outputs in reports are cut to this many characters: enough to see what went wrong.
SHOWN_CHARS = 200

# Fixed PII-bearing (instruction, input) turns per domain; every one holds PII the scrubber finds.
INVARIANCE_TURNS: dict[str, tuple[tuple[str, str], ...]] = {
    "code": (
        ("Write a Python function that sends a welcome email to jane.doe@example.com.", ""),
        ("Write a Python function that pings the server at 192.168.10.24 and returns True on success.", ""),
        ("Write a Python function that reads the key", "api_key=9f8e7d6c5b4a39281706f5e4d3c2b1a0fedcba98"),
    ),
    "creative": (
        ("Write a short thank-you note to Maria, whose phone number is +44 20 7946 0958.", ""),
        ("Write a two-line poem for a friend who emails from sam.lee@example.org.", ""),
    ),
    "analysis": (
        ("Explain why a login from 203.0.113.77 at 3 a.m. might be suspicious.", ""),
        ("Assess the risk of storing the card 4111 1111 1111 1111 in a log file.", ""),
    ),
    "summarization": (
        (
            "Summarize the following message.",
            "Hi team, please send the quarterly figures to alex.kim@example.com by Friday. "
            "If anything is unclear, call me on +1 415 555 0134. Thanks, Alex.",
        ),
        (
            "Summarize the following ticket.",
            "Customer with SSN 123-45-6789 reports that the invoice total is wrong and asks for a refund.",
        ),
    ),
}


# For a domain of a user's own (data.domains is open): PII in a plain request.
_GENERIC_TURNS = (("Reply to the message from jane.doe@example.com about Friday's meeting.", ""),)


def invariance_prompts(domain: str, fmt: PromptFormat) -> list[str]:
    """The domain's PII-bearing turns as prompts in the model's own format."""
    turns = INVARIANCE_TURNS.get(domain, _GENERIC_TURNS)
    return [fmt.instruction(instruction, text) for instruction, text in turns]


def _generate(generate_fn: GenerateFn, prompts: list[str]) -> list[str]:
    outputs = list(generate_fn(prompts))
    if len(outputs) != len(prompts):
        raise ValueError(f"generate_fn returned {len(outputs)} completion(s) for {len(prompts)} prompt(s)")
    return outputs


def _same_behaviour(domain: str, original: str, scrubbed: str) -> tuple[bool, dict[str, Any]]:
    if domain == "code":
        a, b = parses_as_python(original), parses_as_python(scrubbed)
        return a == b, {"parses_original": a, "parses_scrubbed": b}
    f1 = token_f1(original, scrubbed)
    return f1 >= INVARIANCE_MIN_F1, {"token_f1": f1}


def invariance_rule(domain: str) -> str:
    if domain == "code":
        return "same parse outcome (both completions parse as Python, or neither does)"
    return f"token F1 between the two completions >= {INVARIANCE_MIN_F1}"


def scrubbed_twins(prompts_with_pii: Sequence[str], scrubber: PiiScrubber) -> list[str]:
    """Each prompt with its PII replaced by placeholders; a prompt without PII is refused."""
    twins = []
    for i, prompt in enumerate(prompts_with_pii):
        clean, counts = scrubber.scrub(prompt)
        if not counts:
            raise ValueError(f"prompt {i} holds no PII the scrubber finds; invariance needs prompts with PII")
        twins.append(clean)
    return twins


def invariance_check(
    generate_fn: GenerateFn,
    prompts_with_pii: Sequence[str],
    domain: str = "",
    scrubber: PiiScrubber | None = None,
) -> dict[str, Any]:
    """Share of prompts whose completion behaves the same with their PII scrubbed (rule above)."""
    scrubber = scrubber or PiiScrubber(PII_TYPES)
    scrubbed_prompts = scrubbed_twins(prompts_with_pii, scrubber)
    originals = _generate(generate_fn, list(prompts_with_pii))
    scrubbed = _generate(generate_fn, scrubbed_prompts)
    cases = []
    for prompt, out_a, out_b in zip(scrubbed_prompts, originals, scrubbed, strict=True):
        same, detail = _same_behaviour(domain, out_a, out_b)
        cases.append(
            {
                "prompt": prompt,
                "output": scrubber.scrub(out_a)[0][:SHOWN_CHARS],
                "scrubbed_output": scrubber.scrub(out_b)[0][:SHOWN_CHARS],
                "same": same,
                **detail,
            }
        )
    invariant = sum(c["same"] for c in cases)
    return {
        "domain": domain,
        "rule": invariance_rule(domain),
        "checked": len(cases),
        "invariant": invariant,
        "invariant_share": invariant / len(cases) if cases else 0.0,
        "cases": cases,
    }


# --- minimum functionality ----------------------------------------------------------------------

Check = Callable[["FunctionalityCase", str, SandboxConfig], bool]  # (case, completion, sandbox) → passed

_MAX_REPETITION = 0.5


def _non_empty(case: FunctionalityCase, output: str, sandbox: SandboxConfig) -> bool:
    return bool(output.strip())


def _looks_like_code(case: FunctionalityCase, output: str, sandbox: SandboxConfig) -> bool:
    return parses_as_python(output) or "def " in output or "return" in output


def _shorter_than_input(case: FunctionalityCase, output: str, sandbox: SandboxConfig) -> bool:
    return 0 < len(output.split()) < len(case.input.split())


def _not_degenerate(case: FunctionalityCase, output: str, sandbox: SandboxConfig) -> bool:
    share = repeated_ngram_share(output, 3)
    return share is None or share <= _MAX_REPETITION


def _passes_its_tests(case: FunctionalityCase, output: str, sandbox: SandboxConfig) -> bool:
    # Imported here: the sandbox spawns processes, which the other checks never need.
    from aistudio.evaluation.sandbox import run_sample

    code = extract_code(output, case.entry_point)
    return run_sample(code, case.tests, case.entry_point, sandbox).passed


CHECKS: dict[str, Check] = {
    "non_empty": _non_empty,
    "looks_like_code": _looks_like_code,
    "passes_its_tests": _passes_its_tests,
    "shorter_than_input": _shorter_than_input,
    "not_degenerate": _not_degenerate,
}


@dataclass(frozen=True)
class FunctionalityCase:
    instruction: str
    checks: tuple[str, ...]
    input: str = ""
    entry_point: str = ""  # with `tests`: what passes_its_tests runs in the sandbox
    tests: str = ""

    def prompt(self, fmt: PromptFormat) -> str:
        return fmt.instruction(self.instruction, self.input)


_ARTICLE = (
    "The city council met on Monday to discuss the new bus routes. After a long debate, members "
    "agreed to add two night lines and to extend the weekend timetable, starting next spring. "
    "The changes will be paid for by a small increase in parking fees in the city centre."
)

FUNCTIONALITY_CASES: dict[str, tuple[FunctionalityCase, ...]] = {
    # The simplest functions a code model must get right; they run against their asserts.
    "code": (
        FunctionalityCase(
            "Write a Python function `add(a, b)` that returns the sum of two numbers.",
            ("non_empty", "passes_its_tests"),
            entry_point="add",
            tests="assert add(2, 3) == 5\nassert add(-1, 1) == 0\n",
        ),
        FunctionalityCase(
            "Write a Python function `is_even(n)` that returns True when n is even.",
            ("non_empty", "passes_its_tests"),
            entry_point="is_even",
            tests="assert is_even(4) is True\nassert is_even(7) is False\n",
        ),
        FunctionalityCase(
            "Write a Python function `reverse_string(s)` that returns the string reversed.",
            ("non_empty", "passes_its_tests"),
            entry_point="reverse_string",
            tests="assert reverse_string('abc') == 'cba'\nassert reverse_string('') == ''\n",
        ),
    ),
    "summarization": (
        FunctionalityCase("Summarize the following text.", ("non_empty", "shorter_than_input"), _ARTICLE),
        FunctionalityCase(
            "Summarize the following text in one sentence.", ("non_empty", "shorter_than_input"), _ARTICLE
        ),
    ),
    "creative": (
        FunctionalityCase("Write a short poem about the sea.", ("non_empty", "not_degenerate")),
        FunctionalityCase(
            "Continue the story: The lighthouse keeper opened the door and", ("non_empty", "not_degenerate")
        ),
    ),
    "analysis": (
        FunctionalityCase("Explain why the sky appears blue.", ("non_empty", "not_degenerate")),
        FunctionalityCase(
            "List one advantage and one disadvantage of remote work.", ("non_empty", "not_degenerate")
        ),
    ),
}
_GENERIC_CASES = (FunctionalityCase("Describe what you can help with.", ("non_empty", "not_degenerate")),)


def minimum_functionality(
    generate_fn: GenerateFn,
    domain: str,
    fmt: PromptFormat | None = None,
    sandbox: SandboxConfig | None = None,
) -> dict[str, Any]:
    """Run the domain's fixed cases, as prompts in `fmt` (the model's `prompt_format(tokenizer)`;
    the project's instruction template without one); a crash in `generate_fn` fails every case.

    Code cases run their completion against their asserts in the sandbox (`sandbox` limits).
    """
    sandbox = sandbox or SandboxConfig()
    cases = FUNCTIONALITY_CASES.get(domain, _GENERIC_CASES)
    fmt = fmt or InstructionFormat()
    error = None
    try:
        outputs = _generate(generate_fn, [c.prompt(fmt) for c in cases])
    except Exception as exc:  # noqa: BLE001 - "does not crash" is one of the behaviours under test
        error = f"{type(exc).__name__}: {exc}"
        outputs = [""] * len(cases)
    rows = []
    for case, output in zip(cases, outputs, strict=True):
        checks = {"no_crash": error is None} | {
            name: CHECKS[name](case, output, sandbox) for name in case.checks
        }
        rows.append(
            {
                "prompt": case.instruction,
                "output": output[:SHOWN_CHARS],
                "checks": checks,
                "passed": all(checks.values()),
            }
        )
    passed = sum(r["passed"] for r in rows)
    return {
        "domain": domain,
        "passed": passed,
        "total": len(rows),
        "pass_rate": passed / len(rows),
        "error": error,
        "cases": rows,
    }


# --- both checks for one domain ----------------------------------------------------------------


def behaviour_checks(
    generate_fn: GenerateFn, domain: str, fmt: PromptFormat, sandbox: SandboxConfig | None = None
) -> dict[str, Any]:
    """Invariance and minimum functionality on the domain's built-in prompts, answered in one batch.

    The two checks ask for three small batches; greedy decoding runs to the longest answer in a
    batch, and on CPU a step of nine rows costs little more than a step of three, so one batch
    decodes in about a third of the steps. A batch that crashes is asked again check by check, so
    minimum functionality reports the crash as it would alone.
    """
    with_pii = invariance_prompts(domain, fmt)
    scrubber = PiiScrubber(PII_TYPES)
    cases = FUNCTIONALITY_CASES.get(domain, _GENERIC_CASES)
    asked = [*with_pii, *scrubbed_twins(with_pii, scrubber), *(c.prompt(fmt) for c in cases)]
    prompts = list(dict.fromkeys(asked))
    try:
        answers = dict(zip(prompts, _generate(generate_fn, prompts), strict=True))
    except Exception:  # noqa: BLE001 - each check below meets the crash in its own way
        answered = generate_fn
    else:

        def answered(asked: list[str]) -> list[str]:
            return [answers[p] for p in asked]

    return {
        "invariance": invariance_check(answered, with_pii, domain=domain, scrubber=scrubber),
        "minimum_functionality": minimum_functionality(answered, domain, fmt, sandbox),
    }
