"""Writing the corpus files in the layout params.yaml's sources are written against."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

from aistudio.data.sample_corpus.analysis import ANALYSIS_KIT, clean_analysis_samples
from aistudio.data.sample_corpus.articles import ARTICLE_KIT, clean_articles
from aistudio.data.sample_corpus.code import CODE_KIT, CodeSample, clean_code_samples
from aistudio.data.sample_corpus.creative import CREATIVE_KIT, clean_creative
from aistudio.data.sample_corpus.defects import interleave, plant_defects
from aistudio.data.sample_corpus.layout import (
    ADDED_DEFECTS,
    ANALYSIS_COLUMNS,
    ANALYSIS_EMPTY,
    ANALYSIS_REPORTS,
    ARTICLE_FILES,
    ARTICLES_DIR,
    CLEAN_PER_DOMAIN,
    CODE_EXTRA,
    CODE_EXTRA_SHARE,
    CODE_SNIPPETS,
    CORRUPT_ARTICLE,
    CREATIVE_POEMS,
    CREATIVE_STORIES,
    CSV_ROWS_MISSING_COLUMNS,
    RAW_PER_DOMAIN,
)

# --- writing files --------------------------------------------------------------------------------

# Malformed lines planted in code/snippets.jsonl: each must be rejected, never crash a reader.
_BROKEN_JSON_LINES: tuple[bytes, ...] = (
    # Truncated mid-string, as a crashed writer leaves it.
    b'{"instruction": "Write a Python function that reverses a string", "input": "", '
    b'"output": "def rev(s):\\n    return s[::-1]',
    # A Python dict literal, not JSON: single quotes and a trailing comma.
    b"{'instruction': 'Write a function that adds two numbers', 'input': '', "
    b"'output': 'def add(a, b): return a + b',}",
    # Merge-conflict residue.
    b"<<<<<<< HEAD",
)
# Latin-1 encoded text in a UTF-8 file: the byte 0xE9 alone is not valid UTF-8.
_INVALID_UTF8_LINE = (
    b'{"instruction": "Write a Python function that normalises caf\xe9 names", "input": "", '
    b'"output": "def normalise(name):\\n    return name.strip().lower()\\n"}'
)


def _rng(seed: int, part: str) -> random.Random:
    # A string seed is hashed with SHA-512, so each part's stream is independent and stable across runs.
    return random.Random(f"{seed}:{part}")


def _snippet_fields(sample: CodeSample) -> dict[str, str]:
    fields = {"instruction": sample.instruction, "input": sample.input, "output": sample.output}
    if sample.entry_point:  # planted defects such as too-short records have no tests
        fields |= {"entry_point": sample.entry_point, "tests": sample.tests}
    return fields


def _write_code(root: Path, rng: random.Random, clean_count: int, multiplier: int) -> dict[str, int]:
    clean, extras = plant_defects(clean_code_samples(rng, clean_count), CODE_KIT, rng, multiplier)
    n_extra = round(clean_count * CODE_EXTRA_SHARE)
    extra_json, snippets = clean[:n_extra], interleave(rng, clean[n_extra:], extras)
    lines = [json.dumps(_snippet_fields(s), ensure_ascii=False).encode("utf-8") for s in snippets]
    for bad in (*_BROKEN_JSON_LINES, _INVALID_UTF8_LINE):
        lines.insert(rng.randint(1, len(lines)), bad)
    (root / "code").mkdir(parents=True, exist_ok=True)
    (root / CODE_SNIPPETS).write_bytes(b"\n".join(lines) + b"\n")
    # The prompt carries the input too: this source has no separate field for it.
    array = [
        {
            "prompt": s.instruction + (f"\n\n{s.input}" if s.input else ""),
            "completion": s.output,
            "lang": "python",
            "entry_point": s.entry_point,
            "tests": s.tests,
        }
        for s in extra_json
    ]
    (root / CODE_EXTRA).write_text(json.dumps(array, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return {CODE_SNIPPETS: len(lines), CODE_EXTRA: len(array)}


def _write_analysis(root: Path, rng: random.Random, clean_count: int, multiplier: int) -> dict[str, int]:
    clean, extras = plant_defects(clean_analysis_samples(rng, clean_count), ANALYSIS_KIT, rng, multiplier)
    samples = interleave(rng, clean, extras)
    rows: list[list[str]] = [[s.question, s.context, s.answer, "analysis"] for s in samples]
    # Rows that lost their trailing columns, as a hand-edited spreadsheet export produces.
    short_rows = [
        [rows[rng.randrange(len(rows))][0], "Context was not exported."],
        ["What changed in the last quarter?"],
    ]
    for short in short_rows[:CSV_ROWS_MISSING_COLUMNS]:
        rows.insert(rng.randint(0, len(rows)), short)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(ANALYSIS_COLUMNS)
    writer.writerows(rows)
    (root / "analysis").mkdir(parents=True, exist_ok=True)
    (root / ANALYSIS_REPORTS).write_text(buffer.getvalue(), encoding="utf-8")
    (root / ANALYSIS_EMPTY).write_bytes(b"")
    return {ANALYSIS_REPORTS: len(rows), ANALYSIS_EMPTY: 0}


def _write_articles(root: Path, rng: random.Random, clean_count: int, multiplier: int) -> dict[str, int]:
    clean, extras = plant_defects(clean_articles(rng, clean_count), ARTICLE_KIT, rng, multiplier)
    articles = interleave(rng, clean, extras)
    folder = root / ARTICLES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("article_*.json"):  # a smaller rerun must not leave old articles behind
        stale.unlink()
    width = max(4, len(str(len(articles))))
    for number, sample in enumerate(articles, start=1):
        body = {"title": sample.title, "article": sample.article, "summary": sample.summary}
        text = json.dumps(body, ensure_ascii=False, indent=2) + "\n"
        (folder / f"article_{number:0{width}d}.json").write_text(text, encoding="utf-8")
    # A truncated zip header and random bytes: what a bad download saved under a .json name looks like.
    (root / CORRUPT_ARTICLE).write_bytes(b"PK\x03\x04\x00\x00" + rng.randbytes(250) + b"\x00")
    return {ARTICLE_FILES: len(articles), CORRUPT_ARTICLE: 1}


def _write_creative(root: Path, rng: random.Random, clean_count: int, multiplier: int) -> dict[str, int]:
    clean, extras = plant_defects(clean_creative(rng, clean_count), CREATIVE_KIT, rng, multiplier)
    written: dict[str, int] = {}
    (root / "creative").mkdir(parents=True, exist_ok=True)
    for kind, path in (("story", CREATIVE_STORIES), ("poem", CREATIVE_POEMS)):
        blocks = interleave(rng, [s for s in clean if s.kind == kind], [s for s in extras if s.kind == kind])
        (root / path).write_text("\n\n".join(s.text for s in blocks) + "\n", encoding="utf-8")
        written[path] = len(blocks)
    return written


def _write_corpus(root: Path, clean_per_domain: int, multiplier: int, seed: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    counts |= _write_code(root, _rng(seed, "code"), clean_per_domain, multiplier)
    counts |= _write_analysis(root, _rng(seed, "analysis"), clean_per_domain, multiplier)
    counts |= _write_articles(root, _rng(seed, "summarization"), clean_per_domain, multiplier)
    counts |= _write_creative(root, _rng(seed, "creative"), clean_per_domain, multiplier)
    return counts


def write_sample_corpus(root: Path, scale: int = 1, seed: int = 7) -> dict[str, int]:
    """Write the sample corpus under root; returns the records (lines, rows, files, blocks) per file.

    Same arguments, byte-identical files. Defect counts grow with scale; the malformed lines and
    files are planted once.
    """
    if scale < 1:
        raise ValueError(f"scale must be >= 1 (got {scale})")
    return _write_corpus(Path(root), CLEAN_PER_DOMAIN * scale, scale, seed)


def write_scaled_corpus(root: Path, n_records: int, seed: int = 7) -> None:
    """The same layout with about n_records records in all, for throughput benchmarks."""
    multiplier = max(1, round(n_records / (4 * RAW_PER_DOMAIN)))
    # Enough clean records to draw every planted defect from, however small n_records is.
    clean = max(n_records // 4 - sum(ADDED_DEFECTS.values()) * multiplier, 100 * multiplier)
    _write_corpus(Path(root), clean, multiplier, seed)
