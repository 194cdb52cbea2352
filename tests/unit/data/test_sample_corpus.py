from __future__ import annotations

import ast
import csv
import json
import re
import subprocess
import sys
from collections import Counter
from itertools import combinations
from pathlib import Path

import pytest

from aistudio.data.sample_corpus import (
    ADDED_DEFECTS,
    ANALYSIS_COLUMNS,
    ANALYSIS_EMPTY,
    ANALYSIS_REPORTS,
    ARTICLE_FILES,
    ARTICLES_DIR,
    BROKEN_JSON_LINES,
    CODE_EXTRA,
    CODE_SNIPPETS,
    CORRUPT_ARTICLE,
    CREATIVE_POEMS,
    CREATIVE_STORIES,
    CSV_ROWS_MISSING_COLUMNS,
    INVALID_UTF8_LINES,
    PII_PER_KIND,
    SAMPLE_SAFETY_TERMS,
    write_sample_corpus,
    write_scaled_corpus,
)

DOMAINS = ("code", "analysis", "summarization", "creative")
_BLOCKS = re.compile(r"\n[ \t]*\n")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    write_sample_corpus(root)
    return root


def _snippet_lines(root: Path) -> tuple[list[dict[str, str]], int, int]:
    """(parsed snippet records, lines that are not JSON, lines that are not UTF-8)."""
    records, broken, not_utf8 = [], 0, 0
    for raw in (root / CODE_SNIPPETS).read_bytes().split(b"\n"):
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            not_utf8 += 1
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            broken += 1
    return records, broken, not_utf8


def _contents(root: Path) -> dict[str, list[str]]:
    """Every well-formed record's text per domain, fields joined as the pipeline's Record.content does."""
    snippets, _, _ = _snippet_lines(root)
    extra = json.loads((root / CODE_EXTRA).read_text(encoding="utf-8"))
    with (root / ANALYSIS_REPORTS).open(encoding="utf-8", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if None not in row.values()]
    article_files = sorted((root / ARTICLES_DIR).glob("article_*.json"))
    articles = [json.loads(p.read_text(encoding="utf-8")) for p in article_files]
    blocks = [
        block.strip()
        for path in (CREATIVE_STORIES, CREATIVE_POEMS)
        for block in _BLOCKS.split((root / path).read_text(encoding="utf-8"))
        if block.strip()
    ]

    def joined(*parts: str) -> str:
        return "\n".join(p for p in parts if p)

    return {
        "code": [joined(r["instruction"], r["input"], r["output"]) for r in snippets]
        + [joined(r["prompt"], r["completion"]) for r in extra],
        "analysis": [joined(r["question"], r["context"], r["answer"]) for r in rows],
        "summarization": [joined(a["title"], a["article"], a["summary"]) for a in articles],
        "creative": blocks,
    }


def _shingles(text: str, size: int = 5) -> set[tuple[str, ...]]:
    words = text.lower().split()
    return {tuple(words[i : i + size]) for i in range(max(1, len(words) - size + 1))}


def test_same_arguments_write_byte_identical_files(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    assert write_sample_corpus(first) == write_sample_corpus(second)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)


def test_a_different_seed_writes_different_records(tmp_path: Path) -> None:
    write_sample_corpus(tmp_path / "a", seed=7)
    write_sample_corpus(tmp_path / "b", seed=8)
    first, second = (tmp_path / name / ANALYSIS_REPORTS for name in ("a", "b"))
    assert first.read_bytes() != second.read_bytes()


def test_returned_counts_match_the_files(tmp_path: Path) -> None:
    counts = write_sample_corpus(tmp_path)
    assert counts[CODE_EXTRA] == len(json.loads((tmp_path / CODE_EXTRA).read_text(encoding="utf-8")))
    assert counts[CODE_SNIPPETS] == len((tmp_path / CODE_SNIPPETS).read_bytes().strip().split(b"\n"))
    articles = list((tmp_path / ARTICLES_DIR).glob("article_*.json"))
    assert counts[ARTICLE_FILES] == len(articles)
    assert counts[ANALYSIS_EMPTY] == 0


def test_every_domain_has_at_least_320_raw_records(corpus: Path) -> None:
    per_domain = {domain: len(texts) for domain, texts in _contents(corpus).items()}
    assert all(count >= 320 for count in per_domain.values()), per_domain


def test_code_outputs_parse_except_the_planted_broken_lines(corpus: Path) -> None:
    snippets, broken, not_utf8 = _snippet_lines(corpus)
    assert (broken, not_utf8) == (BROKEN_JSON_LINES, INVALID_UTF8_LINES)
    extra = json.loads((corpus / CODE_EXTRA).read_text(encoding="utf-8"))
    assert {r["lang"] for r in extra} == {"python"}
    for source in [r["output"] for r in snippets] + [r["completion"] for r in extra]:
        ast.parse(source)


def test_malformed_files_are_planted_as_described(corpus: Path) -> None:
    assert (corpus / ANALYSIS_EMPTY).read_bytes() == b""
    corrupt = (corpus / CORRUPT_ARTICLE).read_bytes()
    assert b"\x00" in corrupt
    with pytest.raises(ValueError):
        json.loads(corrupt)
    with (corpus / ANALYSIS_REPORTS).open(encoding="utf-8", newline="") as handle:
        header, *rows = list(csv.reader(handle))
    assert tuple(header) == ANALYSIS_COLUMNS
    assert sum(len(row) < len(header) for row in rows) == CSV_ROWS_MISSING_COLUMNS
    assert {row[3] for row in rows if len(row) == len(header)} == {"analysis"}


def test_safety_terms_occur_only_in_the_planted_unsafe_records(corpus: Path) -> None:
    terms = [t for group in SAMPLE_SAFETY_TERMS.values() for t in group]
    for domain, texts in _contents(corpus).items():
        unsafe = [t for t in texts if any(term in t.lower() for term in terms)]
        assert len(unsafe) == ADDED_DEFECTS["unsafe"], domain


@pytest.mark.parametrize(
    ("kind", "pattern"),
    [
        ("secret_sk", r"\bsk-[A-Za-z0-9]{32}\b"),
        ("secret_akia", r"\bAKIA[A-Z2-7]{16}\b"),
        ("secret_ghp", r"\bghp_[A-Za-z0-9]{36}\b"),
        ("email", r"[\w.]+@[\w-]+(?:\.[\w-]+)+"),
        ("ssn", r"\b\d{3}-\d{2}-\d{4}\b"),
    ],
)
def test_each_planted_pii_kind_appears_in_exactly_its_records(corpus: Path, kind: str, pattern: str) -> None:
    for domain, texts in _contents(corpus).items():
        assert sum(bool(re.search(pattern, t)) for t in texts) == PII_PER_KIND, (domain, kind)


def test_false_positive_bait_is_present(corpus: Path) -> None:
    everything = "\n".join(t for texts in _contents(corpus).values() for t in texts)
    assert "Python 3.11.7" in everything
    assert re.search(r"\b[0-9a-f]{40}\b", everything)
    assert re.search(r"\b20\d\d-\d\d-\d\d\b", everything)


def test_only_planted_copies_are_duplicates_or_near_duplicates(corpus: Path) -> None:
    for domain, texts in _contents(corpus).items():
        keys = Counter(" ".join(t.lower().split()) for t in texts)
        assert sum(n - 1 for n in keys.values()) == ADDED_DEFECTS["exact_duplicate"], domain
        # Planted repetitive and too-short texts have a handful of distinct words; the quality
        # filter drops them before deduplication, and their shingle sets say nothing here.
        shingles = [_shingles(key) for key in keys if len(set(key.split())) >= 8]
        similar = []
        for a, b in combinations(range(len(shingles)), 2):
            shared = len(shingles[a] & shingles[b])
            if shared:
                similar.append(shared / (len(shingles[a]) + len(shingles[b]) - shared))
        near = [j for j in similar if j >= 0.8]
        ordinary = [j for j in similar if j < 0.8]
        assert len(near) == ADDED_DEFECTS["near_duplicate"], domain
        assert min(near) >= 0.9, domain  # comfortably above a MinHash threshold of 0.8
        assert max(ordinary) < 0.6, domain  # well below it: no ordinary record collapses into another
        pairs = len(shingles) * (len(shingles) - 1) / 2
        assert sum(ordinary) / pairs < 0.05, domain


def test_scaled_corpus_writes_about_the_requested_number_of_records(tmp_path: Path) -> None:
    write_scaled_corpus(tmp_path, 4000)
    total = sum(len(texts) for texts in _contents(tmp_path).values())
    assert 0.9 * 4000 <= total <= 1.1 * 4000


def test_scale_below_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="scale must be >= 1"):
        write_sample_corpus(tmp_path, scale=0)


def test_committed_raw_corpus_is_what_the_generator_writes(tmp_path: Path) -> None:
    # data/raw is generated, never hand-edited: regenerate it with scripts/generate_sample_corpus.py.
    committed = Path(__file__).resolve().parents[3] / "data" / "raw"
    write_sample_corpus(tmp_path)
    files = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(committed) for p in committed.rglob("*") if p.is_file())
    changed = [f for f in files if (tmp_path / f).read_bytes() != (committed / f).read_bytes()]
    assert not changed, f"{len(changed)} file(s) differ from the generator, e.g. {changed[:3]}"


# Runs each record's output, then its tests, in a fresh module; prints the entry points that fail.
_RUN_CODE_TESTS = """
import contextlib, io, json, sys, traceback, types
failed = []
for record in json.load(sys.stdin):
    module = types.ModuleType("answer")
    sys.modules["answer"] = module
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(record["output"], "<output>", "exec"), module.__dict__)
            exec(compile(record["tests"], "<tests>", "exec"), module.__dict__)
    except Exception:
        failed.append([record["entry_point"], traceback.format_exc(limit=1)])
print(json.dumps(failed))
"""


def _code_records(root: Path) -> list[dict[str, str]]:
    snippets, _, _ = _snippet_lines(root)
    extra = json.loads((root / CODE_EXTRA).read_text(encoding="utf-8"))
    with_tests = [r for r in snippets if "tests" in r]
    return with_tests + [{"instruction": r["prompt"], "output": r["completion"], **r} for r in extra]


def test_every_clean_code_record_names_its_entry_point_and_carries_tests(corpus: Path) -> None:
    records = _code_records(corpus)
    snippets, _, _ = _snippet_lines(corpus)
    # Only planted too-short and repetitive records, which quality filters drop, lack tests.
    assert (
        len(snippets) - sum("tests" in r for r in snippets)
        == ADDED_DEFECTS["too_short"] + ADDED_DEFECTS["repetitive"]
    )
    for record in records:
        assert re.fullmatch(r"[A-Za-z_]\w*", record["entry_point"]), record["entry_point"]
        # casefold: the planted exact duplicates repeat a record in another letter case
        assert f"`{record['entry_point']}(".casefold() in record["instruction"].casefold(), record[
            "instruction"
        ]
        assert record["entry_point"] in record["tests"] and "assert " in record["tests"]
        ast.parse(record["tests"])


@pytest.mark.parametrize("seed", [7, 11])
def test_every_code_record_output_passes_its_own_tests(tmp_path: Path, seed: int) -> None:
    # A failure here is a generator bug: the two bodies of a snippet kind disagree, or a check is wrong.
    write_sample_corpus(tmp_path, seed=seed)
    records = _code_records(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", _RUN_CODE_TESTS],
        input=json.dumps(records),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    failed = json.loads(result.stdout)
    assert len(records) > 300
    assert failed == [], failed[:3]


def test_a_wrong_output_fails_its_tests(corpus: Path) -> None:
    # The harness above can fail: an answer that defines the entry point but computes nothing.
    record = _code_records(corpus)[0]
    broken = {**record, "output": f"def {record['entry_point']}(*args, **kwargs):\n    return None\n"}
    if record["entry_point"][:1].isupper():
        broken["output"] = f"class {record['entry_point']}:\n    pass\n"
    result = subprocess.run(
        [sys.executable, "-c", _RUN_CODE_TESTS],
        input=json.dumps([broken]),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert [name for name, _ in json.loads(result.stdout)] == [record["entry_point"]]
