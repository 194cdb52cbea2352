"""Code records: snippet kinds from resources/code_*.yaml rendered into instruction, input and output."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cache, lru_cache
from string import Template
from textwrap import dedent

from aistudio.data.sample_corpus.defects import DefectKit, distinct
from aistudio.data.sample_corpus.resources import CODE, PHRASES, VOCABULARY, load_resource
from aistudio.data.sample_corpus.text import (
    bait_facts,
    fill,
    mojibake,
    mojibake_text,
    pii_value,
    recased,
    repetitive_text,
    unsafe_sentence,
)
from aistudio.data.sample_corpus.unit_tests import render_tests, signature

# --- code: templates over identifier pools --------------------------------------------------------


@dataclass(frozen=True)
class _CodeSpec:
    """One kind of snippet: task phrasings, function names, body variants and identifier pools.

    Bodies are string.Template text ($name), since Python code is full of the braces str.format
    would need escaped. Every identifier a body introduces comes from a pool, so two snippets of
    the same kind rarely share a run of five tokens.
    """

    tasks: tuple[str, ...]
    fns: tuple[str, ...]
    docs: tuple[str, ...]
    bodies: tuple[str, ...]
    names: dict[str, tuple[str, ...]] = field(default_factory=dict)
    demo: str = ""
    kind: str = "function"  # function | class | entity
    tests: tuple[str, ...] = ()  # check lines, see unit_tests.py


@lru_cache(maxsize=512)
def _template(text: str) -> Template:
    return Template(dedent(text).strip("\n"))


def _spec(entry: dict) -> _CodeSpec:
    return _CodeSpec(
        entry["tasks"],
        entry["fns"],
        entry["docs"],
        entry["bodies"],
        dict(entry.get("names", {})),
        entry.get("demo", ""),
        entry["kind"],
        entry.get("tests", ()),
    )


@cache
def weighted_code_specs() -> tuple[_CodeSpec, ...]:
    """Every snippet kind, entity kinds six times: they vary most (30 entities x fields x keys)."""
    groups = {
        name: tuple(map(_spec, load_resource(f"code_{name}")))
        for name in ("algorithms", "classes", "entities")
    }
    return groups["algorithms"] + groups["classes"] + groups["entities"] * 6


# (plural, singular, numeric fields, grouping keys): the nouns entity snippets are written about.


@dataclass(frozen=True)
class CodeSample:
    instruction: str
    input: str
    output: str
    # The name the answer must define and assert statements its output passes (empty for defects
    # that are rejected before training, such as too-short or repetitive records).
    entry_point: str = ""
    tests: str = ""


def _literal_list(values: Sequence[object]) -> str:
    return "[" + ", ".join(repr(v) for v in values) + "]"


class _DemoValues(dict[str, str]):
    """Literal values for example calls, generated only when a template asks for them."""

    def __init__(self, rng: random.Random, fld: str, key: str, known: dict[str, str]) -> None:
        super().__init__(known)
        self.rng, self.fld, self.key = rng, fld, key
        self._nouns: list[str] = []

    def nouns(self) -> list[str]:
        """Four nouns shared by the word-based values of one snippet."""
        if not self._nouns:
            self._nouns = self.rng.sample(VOCABULARY.nouns, 4)
        return self._nouns

    def __missing__(self, name: str) -> str:
        value = self._make(name)
        self[name] = value
        return value

    def _make(self, name: str) -> str:
        rng = self.rng
        if name in ("ints", "sorted_ints"):
            ints = [rng.randint(-20, 99) for _ in range(rng.randint(4, 8))]
            self["ints"], self["sorted_ints"] = _literal_list(ints), _literal_list(sorted(ints))
            return self[name]
        if name in ("rows", "row"):
            rows = [
                {self.fld: rng.randint(1, 500), self.key: tag}
                for tag in rng.sample(VOCABULARY.tags, rng.randint(2, 4))
            ]
            self["rows"], self["row"] = repr(rows), repr(rows[0])
            return self[name]
        if name in ("big_small", "big_small2"):
            lo = rng.randint(40, 90)
            self["big_small"], self["big_small2"] = str(lo), str(lo + rng.randint(3, 30))
            return self[name]
        words = self.nouns
        makers: dict[str, Callable[[], str]] = {
            "floats": lambda: _literal_list(
                [round(rng.uniform(0, 120), 1) for _ in range(rng.randint(4, 7))]
            ),
            "n": lambda: str(rng.randint(5, 40)),
            "k": lambda: str(rng.randint(2, 6)),
            "big_int": lambda: str(rng.randint(10_000, 9_999_999)),
            "year_int": lambda: str(rng.randint(1066, 2099)),
            "numeral": lambda: rng.choice(("MCMXC", "XLII", "MMXXIV", "CDXLIV", "DCCCXC", "LXXVII",
                                           "MMMCMXCIX", "XIV")),
            "small_float": lambda: f"{rng.uniform(-30, 45):.1f}",
            "amount": lambda: f"{rng.uniform(100, 5000):.2f}",
            "rate_float": lambda: f"{rng.uniform(0.01, 0.09):.3f}",
            "word": lambda: rng.choice(VOCABULARY.nouns),
            "word2": lambda: rng.choice(VOCABULARY.nouns),
            "short_words": lambda: _literal_list(words()[:3]),
            "phrase": lambda: " ".join(rng.sample(VOCABULARY.adjectives, 3) + words()),
            "camel_word": lambda: "".join(w.capitalize() for w in words()[:3]),
            "bit_string": lambda: "".join(rng.choice("01") for _ in range(rng.randint(4, 12))),
            "mapping": lambda: "{" + ", ".join(f"{w!r}: {rng.randint(1, 9)}" for w in words()[:3]) + "}",
            "mapping2": lambda: "{" + ", ".join(f"{w!r}: {rng.randint(1, 9)}" for w in words()[1:]) + "}",
            "nested": lambda: f"[{rng.randint(0, 9)}, [{rng.randint(0, 9)}, [{rng.randint(0, 9)}, "
                              f"{rng.randint(0, 9)}]], {rng.randint(0, 9)}]",
            "matrix": lambda: repr([[rng.randint(0, 9) for _ in range(3)] for _ in range(2)]),
            "matrix2": lambda: repr([[rng.randint(0, 9) for _ in range(2)] for _ in range(3)]),
            "date_a": lambda: f"{rng.randint(2015, 2020)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            "date_b": lambda: f"{rng.randint(2021, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            "lat1": lambda: f"{rng.uniform(-60, 60):.4f}", "lon1": lambda: f"{rng.uniform(-170, 170):.4f}",
            "lat2": lambda: f"{rng.uniform(-60, 60):.4f}", "lon2": lambda: f"{rng.uniform(-170, 170):.4f}",
            "hexcolor": lambda: "#" + "".join(rng.choices("0123456789abcdef", k=rng.choice((3, 6)))),
            "tag": lambda: rng.choice(VOCABULARY.tags),
        }  # fmt: skip
        return makers[name]()


@dataclass(frozen=True)
class _RenderedCode:
    task: str
    fn: str
    code: str
    example: str
    tests: str


def _render_code(spec: _CodeSpec, rng: random.Random) -> _RenderedCode:
    """One instance of spec: its task sentence, names, code, example call and unit tests."""
    entity = rng.choice(CODE.entities)
    plural, single, fields, keys = entity["plural"], entity["single"], entity["fields"], entity["keys"]
    fld, key = rng.choice(fields), rng.choice(keys)
    known = {
        "plural": plural, "single": single, "field": fld, "key": key,
        "plural_text": plural, "single_text": single,
        "field_text": fld.replace("_", " "), "key_text": key.replace("_", " "),
        "cls": single.capitalize(),
    }  # fmt: skip
    known.update({name: rng.choice(pool) for name, pool in spec.names.items()})
    mapping = _DemoValues(rng, fld, key, known)
    mapping["fn"] = Template(rng.choice(spec.fns)).substitute(mapping)
    mapping["doc"] = Template(rng.choice(spec.docs)).substitute(mapping)
    task = Template(rng.choice(spec.tasks)).substitute(mapping)
    code = _template(rng.choice(spec.bodies)).substitute(mapping)
    example = _template(spec.demo).substitute(mapping) if spec.demo else ""
    reference = _template(spec.bodies[0]).substitute(mapping)
    checks = [Template(line).substitute(mapping) for line in spec.tests]
    tests = render_tests(reference, checks) if checks else ""
    return _RenderedCode(task, mapping["fn"], code, example, tests)


def _named_opener(opener: str, spec: _CodeSpec, code: str, fn: str) -> str:
    """'Write a Python function that' -> 'Write a Python function `top_words(text, limit=3)` that'."""
    head, connector = opener.rsplit(" ", 1)
    call, methods = signature(code, fn)
    if not methods:
        return f"{head} `{call}` {connector}"
    listed = (
        ", ".join(f"`{m}`" for m in methods[:-1]) + (" and " if len(methods) > 1 else "") + f"`{methods[-1]}`"
    )
    return f"{head} `{call}` (with {listed}) {connector}"


def _code_sample(spec: _CodeSpec, rng: random.Random) -> CodeSample:
    rendered = _render_code(spec, rng)
    task, fn, code, example = rendered.task, rendered.fn, rendered.code, rendered.example
    facts = {"fn": fn, "team": rng.choice(VOCABULARY.teams), "example": example.split("\n")[-1].strip() or fn}
    opener = rng.choice(
        CODE.class_openers if spec.kind == "class" or fn[:1].isupper() else CODE.function_openers
    )
    instruction = f"{_named_opener(opener, spec, code, fn)} {task}."
    for aside in rng.sample(CODE.code_asides, rng.randint(0, 2)):
        instruction += " " + fill(rng, aside, facts)
    user_input = ""
    if rng.random() < 0.55:
        choices = CODE.code_inputs if example else CODE.code_inputs[2:]
        user_input = fill(rng, rng.choice(choices), facts)
    output = code
    if rng.random() < 0.3:
        output = fill(rng, rng.choice(CODE.code_headers), facts) + "\n" + output
    if example and rng.random() < 0.5:
        output += f'\n\n\nif __name__ == "__main__":\n    {example}'
    return CodeSample(instruction, user_input, output + "\n", fn, rendered.tests)


# Entity snippets vary most (30 entities x fields x keys), so they carry the largest share.


def _random_code_sample(rng: random.Random) -> CodeSample:
    return _code_sample(rng.choice(weighted_code_specs()), rng)


def clean_code_samples(rng: random.Random, count: int) -> list[CodeSample]:
    return distinct(rng, count, lambda i: _random_code_sample(rng), code_content)


def code_content(sample: CodeSample) -> str:
    return "\n".join(p for p in (sample.instruction, sample.input, sample.output) if p)


def _code_with_line(sample: CodeSample, line: str) -> CodeSample:
    """Prepend a module-level line (a constant or a comment) to the snippet; it stays valid Python."""
    return replace(sample, output=line + "\n" + sample.output)


def code_pii(sample: CodeSample, kind: str, rng: random.Random) -> CodeSample:
    line = rng.choice(CODE.code_pii_lines[kind]).format(
        value=pii_value(kind, rng), first=rng.choice(VOCABULARY.first_names)
    )
    return _code_with_line(sample, line)


def code_bait(sample: CodeSample, rng: random.Random) -> CodeSample:
    return _code_with_line(sample, rng.choice(CODE.code_bait_lines).format(**bait_facts(rng)))


def code_too_short(rng: random.Random, i: int) -> CodeSample:
    return CodeSample(PHRASES.too_short[i % len(PHRASES.too_short)], "", ("pass", "x = 1", "...")[i % 3])


def code_repetitive(rng: random.Random, i: int) -> CodeSample:
    words = repetitive_text(rng, i)
    return CodeSample(words, "", f"# {words}\npass\n")


def code_mojibake(rng: random.Random, i: int) -> CodeSample:
    base = _random_code_sample(rng)
    garbled = mojibake_text(base.instruction, rng)
    note = mojibake("# Don’t rename: the café’s “legacy” résumé parser calls this.")
    return replace(base, instruction=garbled, output=note + "\n" + base.output)


def code_unsafe(rng: random.Random, category: str) -> CodeSample:
    base = _random_code_sample(rng)
    return replace(base, instruction=base.instruction + " " + unsafe_sentence(category, rng))


def code_recased(sample: CodeSample, rng: random.Random) -> CodeSample:
    # Only the prose changes case; trailing blanks on code lines keep it valid Python.
    output = "\n".join(line + "  " for line in sample.output.split("\n"))
    return replace(sample, instruction=recased(sample.instruction, rng), output=output)


def code_near_copy(sample: CodeSample, rng: random.Random) -> CodeSample:
    # The opening verb changes ("Write" -> "Create"): the first word sits in a single shingle.
    first, rest = sample.instruction.split(" ", 1)
    verb = rng.choice([v for v in ("Write", "Create", "Implement", "Draft", "Produce") if v != first])
    return replace(sample, instruction=f"{verb} {rest}")


CODE_KIT: DefectKit[CodeSample] = DefectKit(
    code_content, code_pii, code_bait, code_recased, code_near_copy,
    code_too_short, code_repetitive, code_mojibake, code_unsafe,
)  # fmt: skip
