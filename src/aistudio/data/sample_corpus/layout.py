"""Where the sample corpus writes each file and how many records and planted defects it holds."""

from __future__ import annotations

# --- layout: the contract params.yaml sources are written against -------------------------------

CODE_SNIPPETS = "code/snippets.jsonl"
CODE_EXTRA = "code/extra.json"
ANALYSIS_REPORTS = "analysis/reports.csv"
ANALYSIS_EMPTY = "analysis/empty.csv"
ARTICLES_DIR = "summarization/articles"
ARTICLE_FILES = "summarization/articles/article_*.json"
# What a params.yaml source names: it takes in the corrupt file on purpose, to be rejected.
ARTICLES_GLOB = "summarization/articles/*.json"
CORRUPT_ARTICLE = "summarization/articles/corrupt_0000.json"
CREATIVE_STORIES = "creative/stories.txt"
CREATIVE_POEMS = "creative/poems.txt"

ANALYSIS_COLUMNS = ("question", "context", "answer", "domain")

# --- how much of what, at scale 1 -----------------------------------------------------------------

CLEAN_PER_DOMAIN = 360
# Share of clean code records that go to code/extra.json instead of code/snippets.jsonl.
CODE_EXTRA_SHARE = 0.3
# Records with one value of each PII kind, per domain (10 kinds x 2 = 20, about 5%).
PII_PER_KIND = 2
PII_KINDS: tuple[str, ...] = (
    "email", "phone", "credit_card", "ipv4", "ipv6", "ssn", "iban", "secret_sk", "secret_akia", "secret_ghp",
)  # fmt: skip
# Defects per domain at scale 1. "pii" and "bait" rewrite clean records in place; the others are
# extra records, so raw records per domain = CLEAN_PER_DOMAIN + sum of ADDED_DEFECTS.
MODIFIED_DEFECTS: dict[str, int] = {"pii": PII_PER_KIND * len(PII_KINDS), "bait": 10}
ADDED_DEFECTS: dict[str, int] = {
    "exact_duplicate": 6,
    "near_duplicate": 6,
    "too_short": 3,
    "repetitive": 3,
    "mojibake": 3,
    "unsafe": 3,
}
RAW_PER_DOMAIN = CLEAN_PER_DOMAIN + sum(ADDED_DEFECTS.values())
BROKEN_JSON_LINES = 3
INVALID_UTF8_LINES = 1
CSV_ROWS_MISSING_COLUMNS = 2

# Mild placeholder phrases for the safety screen; each appears only in the deliberate unsafe records.
SAMPLE_SAFETY_TERMS: dict[str, list[str]] = {
    "violence": ["build a pipe bomb", "how to kill someone", "hurt them with a knife"],
    "self_harm": ["how to hurt myself", "want to end my life", "ways to self-harm"],
    "hate": ["they are subhuman", "an inferior race", "should be wiped out"],
}
