"""Deterministic generator of the sample corpus: four domains, original template text, known defects.

Nothing here is copied from anywhere: every record is composed with `random.Random(seed)` from the
vocabularies and templates in resources/*.yaml (read with importlib.resources), so the same
arguments write byte-identical files. The modules hold only the logic: one per domain (code,
analysis, articles, creative), the shared text helpers, the defect planting and the writer.

Layout under the root (the contract params.yaml sources are written against):

    code/snippets.jsonl          JSONL {"instruction", "input", "output"}; domain code
    code/extra.json              JSON array of {"prompt", "completion", "lang"}; ~30% of clean code
    analysis/reports.csv         CSV header question,context,answer,domain (domain always analysis)
    analysis/empty.csv           0 bytes
    summarization/articles/article_NNNN.json   one {"title", "article", "summary"} per file
    summarization/articles/corrupt_0000.json   random bytes with NULs (not JSON)
    creative/stories.txt         one story per blank-line-separated block; record field text
    creative/poems.txt           one poem per block, single newlines between its lines

At scale 1 each domain has 360 clean records plus 24 added defective ones (384 raw). Planted
defects, per domain and multiplied by `scale` (the malformed lines and files are planted once):

- pii (20, rewritten clean records): exactly one value each, 2 of each kind: email, phone
  (international, e.g. +44 20 7946 ...), credit_card (Luhn-valid Visa/Mastercard/Amex), ipv4, ipv6,
  ssn (valid US ranges), iban (GB/DE with valid mod-97, including GB82 WEST 1234 5698 7654 32),
  secret_sk (sk- + 32 alnum), secret_akia (AKIA + 16), secret_ghp (ghp_ + 36 alnum).
  In code they are a constant or comment line on top of the snippet; in creative, stories only.
- bait (10, rewritten clean records): false-positive bait that must survive PII scrubbing:
  "Python 3.11.7", ISO dates, times, decimals, versions (v2.14.0), 40-hex and 7-hex git SHAs.
- exact_duplicate (6): a clean record again with different case and whitespace.
- near_duplicate (6): a long clean record with one word changed (code: the instruction's opening
  verb; prose: the last word, the last two in some articles); 5-word-shingle Jaccard with its
  source about 0.95 or more.
- too_short (3), repetitive (3, "the the the ..." / "buy now buy now ..."), mojibake (3,
  UTF-8 read as cp1252: "cafÃ©", "donâ€™t"; dense enough to exceed a 1% damage ratio).
- unsafe (3): one record per SAMPLE_SAFETY_TERMS category (violence, self_harm, hate).
- code/snippets.jsonl: 3 lines that are not JSON and 1 line with invalid UTF-8 (a Latin-1 byte).
- analysis/reports.csv: 2 rows with missing columns.
- analysis/empty.csv (empty file) and summarization/articles/corrupt_0000.json (binary file).

In creative, too_short / repetitive / mojibake are 2 stories + 1 poem, and unsafe is violence and
self_harm in stories, hate in a poem. Every other record is clean: it passes the default quality
filters, holds no PII or safety term, and shares few 5-word shingles with any other record
(mean Jaccard about 0.01, at most about 0.6 for two code snippets of the same kind), so
near-duplicate detection only fires on the planted copies. Every code output on a line that is
valid JSON parses with `ast.parse`.
"""

from aistudio.data.sample_corpus.layout import (
    ADDED_DEFECTS,
    ANALYSIS_COLUMNS,
    ANALYSIS_EMPTY,
    ANALYSIS_REPORTS,
    ARTICLE_FILES,
    ARTICLES_DIR,
    ARTICLES_GLOB,
    BROKEN_JSON_LINES,
    CLEAN_PER_DOMAIN,
    CODE_EXTRA,
    CODE_SNIPPETS,
    CORRUPT_ARTICLE,
    CREATIVE_POEMS,
    CREATIVE_STORIES,
    CSV_ROWS_MISSING_COLUMNS,
    INVALID_UTF8_LINES,
    MODIFIED_DEFECTS,
    PII_KINDS,
    PII_PER_KIND,
    RAW_PER_DOMAIN,
    SAMPLE_SAFETY_TERMS,
)
from aistudio.data.sample_corpus.writer import write_sample_corpus, write_scaled_corpus

__all__ = [
    "ADDED_DEFECTS",
    "ANALYSIS_COLUMNS",
    "ANALYSIS_EMPTY",
    "ANALYSIS_REPORTS",
    "ARTICLE_FILES",
    "ARTICLES_DIR",
    "ARTICLES_GLOB",
    "BROKEN_JSON_LINES",
    "CLEAN_PER_DOMAIN",
    "CODE_EXTRA",
    "CODE_SNIPPETS",
    "CORRUPT_ARTICLE",
    "CREATIVE_POEMS",
    "CREATIVE_STORIES",
    "CSV_ROWS_MISSING_COLUMNS",
    "INVALID_UTF8_LINES",
    "MODIFIED_DEFECTS",
    "PII_KINDS",
    "PII_PER_KIND",
    "RAW_PER_DOMAIN",
    "SAMPLE_SAFETY_TERMS",
    "write_sample_corpus",
    "write_scaled_corpus",
]
