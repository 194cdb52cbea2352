"""pytest's default import mode imports each test module by its basename (the tests/ tree has no
packages, so helpers such as tests/e2e/plots_browser.py import as top-level modules): two test
files with one basename fail collection on a clean checkout, whatever a local __pycache__ says."""

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_two_test_modules_share_a_basename() -> None:
    names = Counter(path.name for path in TESTS.rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
