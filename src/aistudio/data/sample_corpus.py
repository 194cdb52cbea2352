"""Deterministic generator of the sample corpus: four domains, original template text, known defects.

Nothing here is copied from anywhere: every record is composed from the vocabularies and templates
in this module with `random.Random(seed)`, so the same arguments write byte-identical files.

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

from __future__ import annotations

import csv
import io
import json
import random
import re
import string
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from string import Template
from textwrap import dedent
from typing import Generic, TypeVar

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


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# --- shared vocabulary ----------------------------------------------------------------------------

FIRST_NAMES = _words("""
Amara Bastian Chidi Dagny Elif Farid Greta Hiroshi Ines Jonas Kalani Leona Mateo Nadia Oskar Priya
Quentin Rosa Soren Talia Umar Vera Wen Ximena Yusuf Zora Aditi Bram Celeste Dmitri Esme Felix Gideon
Hana Ivo Jasmin Kofi Lucia Magnus Noor Otto Paloma Rafael Saskia Tomas Ulla Valentin Yara Zeno Anouk
Beatriz Cormac Delphine Emeka Freya Gustavo Ilse Joaquin Keiko Lorcan Mireille Nikhil Odette Pavel
Rina Stellan Thandiwe Uriel Vesna Wanjiru Xavier Yosef Zainab Chloé José Zoë Agnieszka Bjorn Catalina
Dario Eamon Fatima Goran Helka Imani Jarrah Kasimir Leilani Malik Nerys Orla Perpetua Ronan Sigrun Tariq
""")
SURNAMES = _words("""
Abara Lindqvist Okafor Moreau Castellano Nakamura Petrov Haddad Brennan Kowalski Oyelaran Fitzgerald
Sandoval Bergstrom Achterberg Mensah Villanueva Dubois Ramaswamy Whitlock Engel Farrow Gallagher Hoang
Iversen Jablonski Kariuki Lachance Mbeki Novak Ortega Pennington Quaresma Rasmussen Szabo Thorne Udeh
Valdez Wojcik Yamada Zielinski Albrecht Bianchi Carvalho Delacroix Eriksen Fontaine Gutierrez Holloway
Ibarra Janssen Kapoor Lindgren Marchetti Nwosu O'Hara Pereira Quint Rossi Salazar Tanaka Ulrich Vance
Whitaker Yilmaz Zamora Ashdown Blackwood Cordero Dunmore Everly Faulkner Greaves Hartigan
""")
TOWN_HEADS = _words("""
Ash Bram Cor Dun Elm Fen Gale Hart Ivy Kest Lark Marl North Oak Pell Raven Salt Thorn Umber Vale Wick
Yar Zel Alder Birch Cinder Dray Ember Frost Glen Heron Inch Juniper Kil Lowe Mire Nettle Osprey Pike
Rook Sedge Tarn Wren Brack Caldy Dove Eskin
""")
TOWN_TAILS = _words(
    "bridge ford haven mouth stead wick moor field combe by ton holm ridge water gate mere dale"
)
COMPANY_HEADS = _words("""
Bluefin Copperleaf Driftwood Emberline Foxglove Granite Halcyon Ironbark Juniper Keystone Lanternfish
Meridian Nettlefield Orchard Pinecrest Quillon Redwing Silverbirch Tidewater Umbra Verdant Willowmere
Yellowtail Zephyr Brightmoor Cobalt Duneside Evergreen Fernhill Goldcrest Indigo Jadeport Kingfisher
Larchwood Moonrake Northgate Oxbow Pebblebrook Quartzline Rushmere Saltmarsh Thistledown Upland Vesper
""")
COMPANY_KINDS = _words("""
Analytics Foods Logistics Robotics Textiles Bioworks Energy Ceramics Software Outdoor Pharma Mobility
Optics Furniture Beverages Materials Aerospace Dairy Paper Instruments Games Acoustics Marine Timber
""")
STREETS = _words("""
Mill Quay Chapel Orchard Tanner Ropewalk Foundry Market Station Abbey Canal Weaver Lantern Glebe Castle
Harbour Kiln Malt Cooper Saddler Granary Beacon Meadow Well
""")
STREET_KINDS = _words("Street Lane Road Row Walk Way Terrace Hill Square Parade")
ADJECTIVES = _words("""
amber ancient bitter brisk brittle calm copper crooked damp distant dusty eager faded feathered fierce
fragile gentle gilded glassy gleaming grey hollow humming hushed idle iron jagged keen lanky lazy
leaden lilac lonely loose lucky marbled mellow misty molten muddy narrow nimble oaken pale patient
peppery plain polished quiet ragged rattling restless rough rusty salted scarlet shallow sharp silver
sleepy slender smoky soft sour sparse speckled stubborn sudden sunlit swollen tangled tawny tender thin
timid tired tiny twisted velvet vivid wary weathered wet wild windy wiry wooden woollen worn young
bright dim heavy crisp frosted ochre blistered chalky cobbled dappled drowsy flinty gauzy glinting
""")
NOUNS = _words("""
anchor apple archway attic bakery balcony banner barrel basket beacon bell bench bicycle blanket boat
bonfire bottle bridge bucket button cabin candle canal canyon cart chimney clock cloud compass corridor
cottage courtyard crate creek curtain dock doorway drum ferry fence field fountain garden gate glacier
greenhouse hammock harbour hedge hill hive island kettle kite ladder lantern ledger lighthouse map
market meadow mill mirror notebook orchard paddle parcel pebble piano pier pillow pine platform pocket
quarry quilt radio railway river roof rope sail satchel scarf shed shelf shovel signal skiff sled spire
staircase station stove suitcase teapot telescope tent thimble tower tram trunk tunnel umbrella valley
vineyard violin wagon wall well wharf wheel window workshop yard
""")
COLOURS = _words("""
amber azure cobalt crimson ochre olive pewter rust saffron sage slate teal umber violet ivory indigo
charcoal coral jade mustard plum russet sepia tangerine
""")
WEEKDAYS = _words("Monday Tuesday Wednesday Thursday Friday Saturday Sunday")
MONTHS = _words("January February March April May June July August September October November December")
SEASONS = _words("spring summer autumn winter")
CURRENCIES = _words("EUR USD GBP CHF SEK NOK DKK CAD AUD NZD")
TEAMS = _words("""
billing platform search payments logistics research reporting onboarding warehouse ingestion mobile
growth infrastructure forecasting support compliance
""")
EMAIL_DOMAINS = _words("""
brightmoor-analytics.com kestrelmail.net harbourline.org fernhill.io example.com mail.example.org
quillon-tech.co.uk tidewater-labs.de northgate.example.net saltmarsh-coop.org
""")


_OBJECTS = _words("""
kettle clock radio lantern violin umbrella teapot compass telescope notebook music-box camera typewriter
accordion birdcage suitcase sewing-machine gramophone
""")
_PLACES = _words(
    "harbour station cottage market lighthouse workshop greenhouse bakery courtyard pier boathouse chapel"
)
_VEHICLES = ("ferry", "tram", "night bus", "train", "mail boat", "last coach", "cable car")


def _person(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(SURNAMES)}"


def _town(rng: random.Random) -> str:
    return rng.choice(TOWN_HEADS) + rng.choice(TOWN_TAILS)


def _company(rng: random.Random) -> str:
    return f"{rng.choice(COMPANY_HEADS)} {rng.choice(COMPANY_KINDS)}"


def _street(rng: random.Random) -> str:
    return f"{rng.choice(STREETS)} {rng.choice(STREET_KINDS)}"


def _join_and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# --- fill-in templates ----------------------------------------------------------------------------

# Random vocabulary a prose template may ask for by slot name, fresh for every sentence.
_SLOTS: dict[str, Callable[[random.Random], str]] = {
    "person": _person,
    "person2": _person,
    "first": lambda r: r.choice(FIRST_NAMES),
    "town": _town,
    "town2": _town,
    "company": _company,
    "street": _street,
    "adj": lambda r: r.choice(ADJECTIVES),
    "adj2": lambda r: r.choice(ADJECTIVES),
    "noun": lambda r: r.choice(NOUNS),
    "noun2": lambda r: r.choice(NOUNS),
    "colour": lambda r: r.choice(COLOURS),
    "weekday": lambda r: r.choice(WEEKDAYS),
    "month": lambda r: r.choice(MONTHS),
    "season": lambda r: r.choice(SEASONS),
    "num": lambda r: str(r.randint(3, 95)),
    "small": lambda r: str(r.randint(2, 9)),
    "small2": lambda r: str(r.randint(2, 9)),
    "object": lambda r: r.choice(_OBJECTS).replace("-", " "),
    "place": lambda r: r.choice(_PLACES),
    "vehicle": lambda r: r.choice(_VEHICLES),
    "big": lambda r: f"{r.randint(120, 9800):,}",
    "pct": lambda r: str(r.randint(3, 68)),
    "year": lambda r: str(r.randint(1962, 2019)),
}


class _Fill(dict[str, str]):
    """Template values: the fixed facts of one text, plus random vocabulary for any other slot."""

    def __init__(self, rng: random.Random, facts: dict[str, str]) -> None:
        super().__init__(facts)
        self.rng = rng

    def __missing__(self, key: str) -> str:
        value = _SLOTS[key](self.rng)
        self[key] = value
        return value


# "a amber cat" -> "an amber cat"; words that start with a vowel letter but a consonant sound keep "a".
_A_BEFORE_VOWEL = re.compile(r"\b([Aa]) (?=[AEIOUaeiou])(?!one|uni|use|eu|Eu|ur)")


def _expand(rng: random.Random, template: str, facts: dict[str, str] | None = None) -> str:
    return _A_BEFORE_VOWEL.sub(r"\1n ", template.format_map(_Fill(rng, facts or {})))


def _fill(rng: random.Random, template: str, facts: dict[str, str]) -> str:
    """The template filled in, as a sentence: first letter upper-cased."""
    text = _expand(rng, template, facts)
    return text[:1].upper() + text[1:]


# --- planted PII and its look-alikes --------------------------------------------------------------

_ALNUM = string.ascii_letters + string.digits


def _luhn_complete(rng: random.Random, prefix: str, length: int) -> str:
    """A card number with the given issuer prefix whose last digit makes the Luhn sum a multiple of 10."""
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    total = 0
    for position, char in enumerate(reversed(body)):
        value = int(char)
        if position % 2 == 0:  # doubled: these sit at odd positions once the check digit is appended
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return body + str((10 - total % 10) % 10)


def _iban(rng: random.Random) -> str:
    """A GB or DE IBAN with correct mod-97 check digits, printed in groups of four."""
    if rng.random() < 0.5:
        country = "GB"
        bban = "".join(rng.choice(string.ascii_uppercase) for _ in range(4))
        bban += "".join(rng.choice(string.digits) for _ in range(14))
    else:
        country = "DE"
        bban = "".join(rng.choice(string.digits) for _ in range(18))
    numeric = "".join(str(int(char, 36)) for char in bban + country + "00")
    compact = f"{country}{98 - int(numeric) % 97:02d}{bban}"
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def _phone(rng: random.Random) -> str:
    def d(n: int) -> str:
        return "".join(rng.choice(string.digits) for _ in range(n))

    return rng.choice(
        (
            f"+44 20 7946 {d(4)}",
            f"+1 415 555 {d(4)}",
            f"+49 30 {d(4)} {d(4)}",
            f"+33 1 {d(2)} {d(2)} {d(2)} {d(2)}",
            f"+81 3-{d(4)}-{d(4)}",
            f"+61 2 {d(4)} {d(4)}",
            f"+254 20 {d(3)} {d(4)}",
            f"+31 6 {d(4)} {d(4)}",
        )
    )


def _ipv6(rng: random.Random) -> str:
    groups = [f"{rng.randrange(1, 0xFFFF):x}" for _ in range(3)]
    if rng.random() < 0.5:
        return f"2001:db8:{groups[0]}::{groups[1]}:{groups[2]}"
    tail = ":".join(f"{rng.randrange(0x1000, 0xFFFF):x}" for _ in range(5))
    return f"2001:0db8:{tail}:{groups[0]}"


def _ascii_lower(name: str) -> str:
    """'Chloé' -> 'chloe', "O'Hara" -> 'ohara': a name as it appears in an e-mail address."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z]", "", ascii_name.lower())


def _pii_value(kind: str, rng: random.Random) -> str:
    if kind == "email":
        first, last = _ascii_lower(rng.choice(FIRST_NAMES)), _ascii_lower(rng.choice(SURNAMES))
        local = f"{first}.{last}" if rng.random() < 0.5 else f"{first[0]}.{last}"
        return f"{local}@{rng.choice(EMAIL_DOMAINS)}"
    if kind == "phone":
        return _phone(rng)
    if kind == "credit_card":
        prefix, length = rng.choice((("4", 16), ("51", 16), ("55", 16), ("37", 15)))
        digits = _luhn_complete(rng, prefix, length)
        sep = rng.choice((" ", "-"))
        if length == 15:
            return sep.join((digits[:4], digits[4:10], digits[10:]))
        return sep.join(digits[i : i + 4] for i in range(0, 16, 4))
    if kind == "ipv4":
        a, b, c = rng.randint(1, 254), rng.randint(0, 254), rng.randint(1, 254)
        return rng.choice((f"192.168.{b}.{c}", f"10.{b}.{a}.{c}", f"172.16.{b}.{c}", f"203.0.113.{c}"))
    if kind == "ipv6":
        return _ipv6(rng)
    if kind == "ssn":
        area = rng.randint(101, 665)  # 000, 666 and 9xx are never issued
        return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"
    if kind == "iban":
        return "GB82 WEST 1234 5698 7654 32" if rng.random() < 0.2 else _iban(rng)
    if kind == "secret_sk":
        return "sk-" + "".join(rng.choice(_ALNUM) for _ in range(32))
    if kind == "secret_akia":
        return "AKIA" + "".join(rng.choice(string.ascii_uppercase + "234567") for _ in range(16))
    if kind == "secret_ghp":
        return "ghp_" + "".join(rng.choice(_ALNUM) for _ in range(36))
    raise ValueError(f"unknown PII kind {kind!r}")


# One prose sentence per PII kind, so the value sits in an otherwise ordinary record.
_PII_SENTENCES: dict[str, tuple[str, ...]] = {
    "email": (
        "Questions about the figures can be sent to {first} at {value}.",
        "A copy of the notes was forwarded to {value} the same afternoon.",
    ),
    "phone": (
        "Anyone with more information was asked to call {value} before the end of the week.",
        "{first} left a voicemail on {value} asking for the original receipts.",
    ),
    "credit_card": (
        "The deposit was charged to card number {value} by mistake and later refunded.",
        "A photo of the booking showed the card {value} in full.",
    ),
    "ipv4": (
        "The shared dashboard is served from {value} on the office network.",
        "Logs showed the upload came from address {value} shortly after midnight.",
    ),
    "ipv6": (
        "The monitoring probe reports from host {value} every five minutes.",
        "Traffic was later traced to the address {value}.",
    ),
    "ssn": (
        "The scanned form still showed the social security number {value} in the margin.",
        "An intern typed {first}'s SSN, {value}, into the wrong field.",
    ),
    "iban": (
        "Refunds will be paid into the account {value} within ten working days.",
        "The invoice listed the bank account {value} for transfers.",
    ),
    "secret_sk": ("A configuration file pasted into the ticket contained the key {value}.",),
    "secret_akia": ("The leaked deployment notes included the access key {value}.",),
    "secret_ghp": ("Someone committed the personal token {value} to the shared notes by accident.",),
}


def _pii_sentence(kind: str, rng: random.Random) -> str:
    return _fill(rng, rng.choice(_PII_SENTENCES[kind]), {"value": _pii_value(kind, rng)})


def _git_sha(rng: random.Random) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(40))


# Harmless values that look like PII to a careless pattern: versions, dates, decimals, commit hashes.
_BAIT_SENTENCES = (
    "The numbers were rechecked with Python 3.11.7 on {date}.",
    "Version {version} of the tool, released on {date}, produced identical results.",
    "All ratios were rounded to {decimal} before publication.",
    "The calculation notebook was pinned at commit {sha} for the review.",
    "A measurement of {decimal} was logged at {time} on {date}.",
    "The build tagged v{version} (commit {short_sha}) was used throughout.",
)


def _bait_facts(rng: random.Random) -> dict[str, str]:
    return {
        "date": f"{rng.randint(2019, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "version": f"{rng.randint(1, 4)}.{rng.randint(0, 19)}.{rng.randint(0, 9)}",
        "decimal": f"{rng.uniform(0, 100):.{rng.randint(2, 5)}f}",
        "sha": _git_sha(rng),
        "short_sha": _git_sha(rng)[:7],
        "time": f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}",
    }


def _bait_sentence(rng: random.Random) -> str:
    return _fill(rng, rng.choice(_BAIT_SENTENCES), _bait_facts(rng))


# --- text damage used by the defects --------------------------------------------------------------

# UTF-8 read as cp1252: the classic "cafÃ©" / "donâ€™t" damage.
_MOJIBAKE_PHRASES = (
    "the café’s “special” crème brûlée",
    "a naïve résumé for the soirée",
    "don’t forget the piñata — it’s déjà vu",
    "Zoë’s “über” façade",
    "the fiancée’s São Paulo coördinates…",
)


def _mojibake(text: str) -> str:
    return text.encode("utf-8").decode("cp1252", errors="replace").replace("\ufffd", "")


def _mojibake_text(base: str, rng: random.Random) -> str:
    """Base text with several garbled phrases woven in, dense enough to exceed a 1% damage ratio."""
    words = base.split(" ")
    # About one damaged phrase per 120 characters keeps even a long article well above the ratio.
    for _ in range(max(4, len(base) // 120)):
        words.insert(rng.randrange(len(words) + 1), _mojibake(rng.choice(_MOJIBAKE_PHRASES)))
    return " ".join(words)


def _recased(text: str, rng: random.Random) -> str:
    """The same text up to case and whitespace: what an exact-duplicate check must still catch."""
    text = rng.choice((str.upper, str.lower, str.swapcase))(text)
    lines = text.split("\n")
    # Doubled inner spaces and trailing blanks; an empty line stays empty, so no blank line appears
    # inside a text block (which would split it in two).
    return "\n".join("  " + line.replace(" ", "  ", 3) + "   " if line else line for line in lines)


_SWAP_WORDS = _words("notably roughly quietly mostly briefly partly fairly largely simply openly")


def _with_words_changed(text: str, rng: random.Random, changes: int) -> str:
    """Replace the last one or two words: an edited ending, as when a copy was touched up.

    The last word sits in a single 5-word shingle, so the copy keeps a Jaccard similarity near 0.98
    with its source: MinHash LSH at a 0.8 threshold finds it with near certainty, where a copy at
    0.9 would be missed a few percent of the time.
    """
    spans = [m.span() for m in re.finditer(r"\b[a-z]{4,}\b", text)]
    for start, end in sorted(spans[-changes:], reverse=True):
        original = text[start:end]
        text = text[:start] + rng.choice([w for w in _SWAP_WORDS if w != original]) + text[end:]
    return text


_REPEATED_PHRASES = ("the", "buy now", "click here to win", "lorem ipsum", "very very")
# Too-short texts, indexed rather than drawn, so two planted ones are never accidental duplicates.
_TOO_SHORT = ("Add.", "Sum it.", "Fix", "Why?", "Total?", "TBD.", "Rain.", "Hush now", "n/a")


def _repetitive_text(rng: random.Random, i: int) -> str:
    return " ".join([_REPEATED_PHRASES[i % len(_REPEATED_PHRASES)]] * rng.randint(30, 60))


def _unsafe_sentence(category: str, rng: random.Random) -> str:
    term = rng.choice(SAMPLE_SAFETY_TERMS[category])
    return rng.choice(
        (
            f'A flagged message simply said "{term}" and nothing else.',
            f'The moderators removed a reply that read "{term}".',
            f'The prompt they sent was: "{term}".',
        )
    )


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


@lru_cache(maxsize=512)
def _template(text: str) -> Template:
    return Template(dedent(text).strip("\n"))


def _spec(
    *,
    tasks: Sequence[str],
    fns: Sequence[str],
    docs: Sequence[str],
    bodies: Sequence[str],
    names: dict[str, tuple[str, ...]] | None = None,
    demo: str = "",
    kind: str = "function",
) -> _CodeSpec:
    return _CodeSpec(tuple(tasks), tuple(fns), tuple(docs), tuple(bodies), dict(names or {}), demo, kind)


_ALGORITHM_SPECS: tuple[_CodeSpec, ...] = (
    _spec(
        tasks=(
            "checks whether a phrase is a palindrome when case and punctuation are ignored",
            "tells whether a string reads the same forwards and backwards, skipping anything that is not "
            "a letter or digit",
        ),
        fns=("is_palindrome", "reads_same_both_ways", "palindrome_check", "is_mirror_text"),
        docs=(
            "Return True when $s reads the same in both directions, ignoring case and punctuation.",
            "Palindrome test that skips spaces, punctuation and letter case.",
        ),
        names={
            "s": ("text", "phrase", "sentence", "raw", "candidate"),
            "c": ("ch", "c", "char", "symbol", "glyph"),
            "t": ("cleaned", "letters", "normalized", "kept", "core"),
        },
        bodies=(
            r'''
def $fn($s: str) -> bool:
    """$doc"""
    $t = [$c.lower() for $c in $s if $c.isalnum()]
    return $t == $t[::-1]
''',
            r'''
def $fn($s):
    """$doc"""
    $t = "".join($c for $c in $s.lower() if $c.isalnum())
    i, j = 0, len($t) - 1
    while i < j:
        if $t[i] != $t[j]:
            return False
        i, j = i + 1, j - 1
    return True
''',
        ),
        demo='print($fn("$phrase"))',
    ),
    _spec(
        tasks=(
            "counts how often each word appears in a text and returns the most common ones",
            "returns the top words of a document together with their counts",
        ),
        fns=("top_words", "most_common_words", "word_frequencies", "frequent_terms"),
        docs=(
            "Return the most frequent words in $text, most common first.",
            "Count case-insensitive words in $text and keep the leaders.",
        ),
        names={
            "text": ("text", "document", "passage", "body", "corpus_text"),
            "w": ("word", "token", "term", "w"),
            "counts": ("counts", "tally", "freq", "histogram"),
        },
        bodies=(
            r'''
from collections import Counter


def $fn($text: str, limit: int = $k) -> list[tuple[str, int]]:
    """$doc"""
    $counts = Counter($w.strip(".,;:!?()").lower() for $w in $text.split())
    $counts.pop("", None)
    return $counts.most_common(limit)
''',
            r'''
def $fn($text, limit=$k):
    """$doc"""
    $counts = {}
    for $w in $text.lower().split():
        $w = $w.strip(".,;:!?")
        if $w:
            $counts[$w] = $counts.get($w, 0) + 1
    ranked = sorted($counts.items(), key=lambda pair: (-pair[1], pair[0]))
    return ranked[:limit]
''',
        ),
        demo='print($fn("$phrase $phrase"))',
    ),
    _spec(
        tasks=(
            "reverses the order of the words in a sentence while keeping each word intact",
            "turns 'one two three' into 'three two one'",
        ),
        fns=("reverse_words", "flip_word_order", "words_backwards", "reversed_sentence"),
        docs=(
            "Return $s with its words in reverse order.",
            "Reverse word order; runs of spaces collapse to one.",
        ),
        names={"s": ("sentence", "line", "text", "phrase"), "parts": ("parts", "pieces", "tokens", "chunks")},
        bodies=(
            r'''
def $fn($s: str) -> str:
    """$doc"""
    return " ".join(reversed($s.split()))
''',
            r'''
def $fn($s):
    """$doc"""
    $parts = $s.split()
    $parts.reverse()
    return " ".join($parts)
''',
        ),
        demo='print($fn("$phrase"))',
    ),
    _spec(
        tasks=(
            "counts the vowels in a string",
            "returns how many characters of a text are vowels, upper or lower case",
        ),
        fns=("count_vowels", "vowel_count", "number_of_vowels", "tally_vowels"),
        docs=("Count a, e, i, o and u in $s, ignoring case.", "Return the number of vowels in $s."),
        names={"s": ("text", "word", "s", "sample"), "c": ("ch", "letter", "c", "char")},
        bodies=(
            r'''
def $fn($s: str) -> int:
    """$doc"""
    return sum(1 for $c in $s.lower() if $c in "aeiou")
''',
            r'''
VOWELS = frozenset("aeiouAEIOU")


def $fn($s):
    """$doc"""
    total = 0
    for $c in $s:
        if $c in VOWELS:
            total += 1
    return total
''',
        ),
        demo='print($fn("$phrase"))',
    ),
    _spec(
        tasks=(
            "applies a Caesar shift to the letters of a message, leaving other characters alone",
            "encodes text with a rotating-alphabet cipher given a shift amount",
        ),
        fns=("caesar_shift", "rotate_letters", "caesar_encode", "shift_cipher"),
        docs=(
            "Shift each ASCII letter of $msg by $by places, wrapping around the alphabet.",
            "Caesar cipher; non-letters pass through unchanged.",
        ),
        names={
            "msg": ("message", "plain", "msg", "text"),
            "by": ("shift", "offset", "k", "steps"),
            "c": ("ch", "c", "letter", "char"),
            "out": ("out", "result", "encoded", "chars"),
        },
        bodies=(
            r'''
import string


def $fn($msg: str, $by: int) -> str:
    """$doc"""
    lower, upper = string.ascii_lowercase, string.ascii_uppercase
    n = $by % 26
    table = str.maketrans(lower + upper, lower[n:] + lower[:n] + upper[n:] + upper[:n])
    return $msg.translate(table)
''',
            r'''
def $fn($msg, $by):
    """$doc"""
    $out = []
    for $c in $msg:
        if $c.isascii() and $c.isalpha():
            base = ord("A") if $c.isupper() else ord("a")
            $out.append(chr((ord($c) - base + $by) % 26 + base))
        else:
            $out.append($c)
    return "".join($out)
''',
        ),
        demo='print($fn("$phrase", $k))',
    ),
    _spec(
        tasks=(
            "compresses a string with run-length encoding, e.g. 'aaabcc' becomes 'a3b1c2'",
            "run-length encodes a string into letter-count pairs",
        ),
        fns=("run_length_encode", "rle_encode", "compress_runs", "encode_runs"),
        docs=("Encode $s as character-count pairs.", "Run-length encode $s; an empty string stays empty."),
        names={"s": ("text", "s", "raw", "data"), "parts": ("parts", "pieces", "encoded", "out")},
        bodies=(
            r'''
from itertools import groupby


def $fn($s: str) -> str:
    """$doc"""
    return "".join(f"{char}{len(list(run))}" for char, run in groupby($s))
''',
            r'''
def $fn($s):
    """$doc"""
    if not $s:
        return ""
    $parts = []
    current, count = $s[0], 1
    for char in $s[1:]:
        if char == current:
            count += 1
        else:
            $parts.append(f"{current}{count}")
            current, count = char, 1
    $parts.append(f"{current}{count}")
    return "".join($parts)
''',
        ),
        demo='print($fn("aaab$word"))',
    ),
    _spec(
        tasks=(
            "decodes a run-length encoded string such as 'a3b1c2' back into 'aaabcc'",
            "expands letter-count pairs produced by a run-length encoder",
        ),
        fns=("run_length_decode", "rle_decode", "expand_runs", "decode_runs"),
        docs=(
            "Expand pairs like 'x3' in $s back into repeated characters.",
            "Inverse of run-length encoding.",
        ),
        names={"s": ("encoded", "packed", "s", "compact"), "pairs": ("pairs", "matches", "groups", "found")},
        bodies=(
            r'''
import re


def $fn($s: str) -> str:
    """$doc"""
    $pairs = re.findall(r"(\D)(\d+)", $s)
    return "".join(char * int(count) for char, count in $pairs)
''',
            r'''
def $fn($s):
    """$doc"""
    out, i = [], 0
    while i < len($s):
        char, j = $s[i], i + 1
        while j < len($s) and $s[j].isdigit():
            j += 1
        out.append(char * int($s[i + 1:j] or "1"))
        i = j
    return "".join(out)
''',
        ),
        demo='print($fn("a3b1c$k"))',
    ),
    _spec(
        tasks=(
            "checks whether two words are anagrams of each other",
            "decides if two phrases use exactly the same letters",
        ),
        fns=("is_anagram", "are_anagrams", "same_letters", "anagram_pair"),
        docs=(
            "True when $a and $b contain the same letters, ignoring case and spaces.",
            "Compare letter multisets of two strings.",
        ),
        names={"a": ("first", "left", "a", "word_a"), "b": ("second", "right", "b", "word_b")},
        bodies=(
            r'''
from collections import Counter


def $fn($a: str, $b: str) -> bool:
    """$doc"""
    def letters(s: str) -> Counter:
        return Counter(c for c in s.lower() if not c.isspace())

    return letters($a) == letters($b)
''',
            r'''
def $fn($a, $b):
    """$doc"""
    return sorted($a.replace(" ", "").lower()) == sorted($b.replace(" ", "").lower())
''',
        ),
        demo='print($fn("$word", "$word2"))',
    ),
    _spec(
        tasks=(
            "turns a title into a URL slug, lowercase with hyphens",
            "builds a web-friendly slug from an arbitrary heading",
        ),
        fns=("slugify", "make_slug", "to_slug", "url_slug"),
        docs=(
            "Lowercase $title and join its alphanumeric runs with hyphens.",
            "Slug for $title, safe to use in a URL path.",
        ),
        names={
            "title": ("title", "heading", "name", "label"),
            "parts": ("parts", "runs", "chunks", "pieces"),
        },
        bodies=(
            r'''
import re


def $fn($title: str) -> str:
    """$doc"""
    $parts = re.findall(r"[a-z0-9]+", $title.lower())
    return "-".join($parts)
''',
            r'''
import re
import unicodedata


def $fn($title: str, max_length: int = $n) -> str:
    """$doc"""
    ascii_only = unicodedata.normalize("NFKD", $title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_only.lower()).strip("-")
    return slug[:max_length].rstrip("-")
''',
        ),
        demo='print($fn("$phrase"))',
    ),
    _spec(
        tasks=(
            "shortens a text to a maximum length without cutting a word in half, adding an ellipsis",
            "truncates long text at a word boundary and appends '...'",
        ),
        fns=("truncate_words", "shorten_text", "clip_at_word", "ellipsize"),
        docs=(
            "Cut $s to at most $limit characters on a word boundary.",
            "Shorten $s, keeping whole words only.",
        ),
        names={"s": ("text", "s", "message", "blurb"), "limit": ("limit", "width", "max_chars", "size")},
        bodies=(
            r'''
def $fn($s: str, $limit: int = $n) -> str:
    """$doc"""
    if len($s) <= $limit:
        return $s
    cut = $s[: $limit - 3].rsplit(" ", 1)[0]
    return cut.rstrip(",.;:") + "..."
''',
            r'''
def $fn($s, $limit=$n):
    """$doc"""
    words, used = [], 0
    for word in $s.split():
        extra = len(word) + (1 if words else 0)
        if used + extra > $limit - 3:
            return " ".join(words) + "..."
        words.append(word)
        used += extra
    return " ".join(words)
''',
        ),
        demo='print($fn("$phrase $phrase", $k))',
    ),
    _spec(
        tasks=(
            "splits a list into consecutive chunks of a given size",
            "breaks a sequence into batches of n items; the last batch may be shorter",
        ),
        fns=("chunked", "batches", "split_into_chunks", "in_groups_of"),
        docs=(
            "Return consecutive slices of $xs with at most $size items each.",
            "Batch $xs into lists of $size.",
        ),
        names={"xs": ("items", "values", "seq", "rows"), "size": ("size", "n", "batch_size", "width")},
        bodies=(
            r'''
def $fn($xs: list, $size: int) -> list[list]:
    """$doc"""
    if $size <= 0:
        raise ValueError("$size must be positive")
    return [$xs[i : i + $size] for i in range(0, len($xs), $size)]
''',
            r'''
from itertools import islice


def $fn($xs, $size):
    """$doc"""
    it = iter($xs)
    while batch := list(islice(it, $size)):
        yield batch
''',
        ),
        demo="print(list($fn($ints, $k)))",
    ),
    _spec(
        tasks=(
            "flattens arbitrarily nested lists into a single flat list",
            "recursively flattens a nested list structure",
        ),
        fns=("flatten", "flatten_nested", "deep_flatten", "unnest"),
        docs=("Return all non-list leaves of $tree in order.", "Flatten nested lists of any depth."),
        names={"tree": ("nested", "tree", "data", "items"), "x": ("element", "node", "x", "part")},
        bodies=(
            r'''
def $fn($tree: list) -> list:
    """$doc"""
    flat = []
    for $x in $tree:
        if isinstance($x, list):
            flat.extend($fn($x))
        else:
            flat.append($x)
    return flat
''',
            r'''
def $fn($tree):
    """$doc"""
    stack, flat = [iter($tree)], []
    while stack:
        for $x in stack[-1]:
            if isinstance($x, list):
                stack.append(iter($x))
                break
            flat.append($x)
        else:
            stack.pop()
    return flat
''',
        ),
        demo="print($fn($nested))",
    ),
    _spec(
        tasks=(
            "rotates a list to the right by k positions",
            "shifts the elements of a list k places, wrapping around",
        ),
        fns=("rotate_right", "rotate_list", "shift_items", "cycle_by"),
        docs=("Rotate $xs right by $by steps; k may exceed the length.", "Return a rotated copy of $xs."),
        names={"xs": ("items", "values", "ring", "seq"), "by": ("k", "steps", "places", "offset")},
        bodies=(
            r'''
def $fn($xs: list, $by: int) -> list:
    """$doc"""
    if not $xs:
        return []
    $by %= len($xs)
    return $xs[-$by:] + $xs[:-$by] if $by else list($xs)
''',
            r'''
from collections import deque


def $fn($xs, $by):
    """$doc"""
    d = deque($xs)
    d.rotate($by)
    return list(d)
''',
        ),
        demo="print($fn($ints, $k))",
    ),
    _spec(
        tasks=(
            "removes duplicates from a list while keeping the first occurrence order",
            "returns the unique items of a sequence in their original order",
        ),
        fns=("unique_in_order", "dedupe", "distinct", "drop_repeats"),
        docs=("Keep the first copy of each item in $xs.", "Order-preserving de-duplication of $xs."),
        names={
            "xs": ("items", "values", "seq", "names"),
            "seen": ("seen", "met", "known", "visited"),
            "x": ("item", "x", "value", "entry"),
        },
        bodies=(
            r'''
def $fn($xs):
    """$doc"""
    return list(dict.fromkeys($xs))
''',
            r'''
def $fn($xs: list) -> list:
    """$doc"""
    $seen = set()
    out = []
    for $x in $xs:
        if $x not in $seen:
            $seen.add($x)
            out.append($x)
    return out
''',
        ),
        demo="print($fn($ints + $ints))",
    ),
    _spec(
        tasks=(
            "merges two dictionaries of counts, adding values for keys that appear in both",
            "combines two tally dictionaries by summing shared keys",
        ),
        fns=("merge_counts", "add_tallies", "combine_counters", "sum_dicts"),
        docs=(
            "Return a new dict with the summed values of $a and $b.",
            "Merge two count maps without mutating either.",
        ),
        names={"a": ("first", "left", "a", "base"), "b": ("second", "right", "b", "extra")},
        bodies=(
            r'''
def $fn($a: dict, $b: dict) -> dict:
    """$doc"""
    merged = dict($a)
    for key, value in $b.items():
        merged[key] = merged.get(key, 0) + value
    return merged
''',
            r'''
from collections import Counter


def $fn($a, $b):
    """$doc"""
    return dict(Counter($a) + Counter($b))
''',
        ),
        demo="print($fn($mapping, $mapping2))",
    ),
    _spec(
        tasks=(
            "inverts a dictionary so each value maps to the list of keys that had it",
            "groups the keys of a mapping by their value",
        ),
        fns=("invert_dict", "keys_by_value", "reverse_mapping", "group_keys"),
        docs=(
            "Map every value of $d to the keys that carried it.",
            "Invert $d; repeated values collect their keys in a list.",
        ),
        names={"d": ("mapping", "table", "d", "lookup"), "inv": ("inverted", "by_value", "result", "inv")},
        bodies=(
            r'''
def $fn($d: dict) -> dict:
    """$doc"""
    $inv = {}
    for key, value in $d.items():
        $inv.setdefault(value, []).append(key)
    return $inv
''',
            r'''
from collections import defaultdict


def $fn($d):
    """$doc"""
    $inv = defaultdict(list)
    for key in sorted($d):
        $inv[$d[key]].append(key)
    return dict($inv)
''',
        ),
        demo="print($fn($mapping))",
    ),
    _spec(
        tasks=(
            "reads a value from nested dictionaries using a dotted path like 'a.b.c'",
            "safely looks up a deeply nested key by a dotted path with a default",
        ),
        fns=("get_path", "deep_get", "lookup_dotted", "dig"),
        docs=(
            "Follow the dotted $path through $d, returning $dflt when a step is missing.",
            "Nested lookup by dotted path.",
        ),
        names={
            "d": ("config", "data", "tree", "doc"),
            "path": ("path", "dotted", "key_path", "route"),
            "dflt": ("default", "fallback", "missing"),
        },
        bodies=(
            r'''
def $fn($d: dict, $path: str, $dflt=None):
    """$doc"""
    node = $d
    for part in $path.split("."):
        if not isinstance(node, dict) or part not in node:
            return $dflt
        node = node[part]
    return node
''',
            r'''
from functools import reduce


def $fn($d, $path, $dflt=None):
    """$doc"""
    try:
        return reduce(lambda node, part: node[part], $path.split("."), $d)
    except (KeyError, TypeError):
        return $dflt
''',
        ),
        demo='print($fn({"$word": {"$word2": $n}}, "$word.$word2"))',
    ),
    _spec(
        tasks=(
            "performs binary search on a sorted list and returns the index of the target or -1",
            "finds a value in a sorted sequence in logarithmic time",
        ),
        fns=("binary_search", "find_sorted", "bisect_index", "search_sorted"),
        docs=("Index of $target in the sorted $xs, or -1.", "Classic iterative binary search."),
        names={
            "xs": ("values", "sorted_items", "arr", "seq"),
            "target": ("target", "wanted", "needle", "key"),
            "lo": ("lo", "low", "left", "start"),
            "hi": ("hi", "high", "right", "end"),
        },
        bodies=(
            r'''
def $fn($xs: list[int], $target: int) -> int:
    """$doc"""
    $lo, $hi = 0, len($xs) - 1
    while $lo <= $hi:
        mid = ($lo + $hi) // 2
        if $xs[mid] == $target:
            return mid
        if $xs[mid] < $target:
            $lo = mid + 1
        else:
            $hi = mid - 1
    return -1
''',
            r'''
from bisect import bisect_left


def $fn($xs, $target):
    """$doc"""
    i = bisect_left($xs, $target)
    return i if i < len($xs) and $xs[i] == $target else -1
''',
        ),
        demo="print($fn($sorted_ints, $n))",
    ),
    _spec(
        tasks=(
            "computes the greatest common divisor and least common multiple of two integers",
            "returns gcd and lcm of two whole numbers using Euclid's algorithm",
        ),
        fns=("gcd_lcm", "divisor_and_multiple", "euclid_pair", "common_factors"),
        docs=("Return (gcd, lcm) of $a and $b.", "Euclid's algorithm for gcd; lcm follows from it."),
        names={"a": ("a", "m", "first", "x"), "b": ("b", "n", "second", "y")},
        bodies=(
            r'''
def $fn($a: int, $b: int) -> tuple[int, int]:
    """$doc"""
    x, y = abs($a), abs($b)
    while y:
        x, y = y, x % y
    lcm = abs($a * $b) // x if x else 0
    return x, lcm
''',
            r'''
import math


def $fn($a, $b):
    """$doc"""
    g = math.gcd($a, $b)
    return g, (abs($a * $b) // g if g else 0)
''',
        ),
        demo="print($fn($n, $k))",
    ),
    _spec(
        tasks=(
            "lists all prime numbers up to n with the sieve of Eratosthenes",
            "returns the primes not greater than a limit",
        ),
        fns=("primes_up_to", "sieve", "prime_list", "eratosthenes"),
        docs=("All primes <= $limit.", "Sieve of Eratosthenes up to $limit inclusive."),
        names={
            "limit": ("limit", "n", "upper", "ceiling"),
            "flags": ("is_prime", "flags", "marks", "candidates"),
        },
        bodies=(
            r'''
def $fn($limit: int) -> list[int]:
    """$doc"""
    if $limit < 2:
        return []
    $flags = [True] * ($limit + 1)
    $flags[0] = $flags[1] = False
    for p in range(2, int($limit ** 0.5) + 1):
        if $flags[p]:
            $flags[p * p :: p] = [False] * len(range(p * p, $limit + 1, p))
    return [i for i, ok in enumerate($flags) if ok]
''',
            r'''
def $fn($limit):
    """$doc"""
    found = []
    for candidate in range(2, $limit + 1):
        if all(candidate % p for p in found if p * p <= candidate):
            found.append(candidate)
    return found
''',
        ),
        demo="print($fn($n))",
    ),
    _spec(
        tasks=("generates Fibonacci numbers lazily", "yields the first n Fibonacci numbers"),
        fns=("fibonacci", "fib_sequence", "fib_numbers", "golden_steps"),
        docs=("Yield the first $count Fibonacci numbers.", "Lazy Fibonacci sequence starting 0, 1."),
        names={
            "count": ("count", "n", "how_many", "terms"),
            "a": ("a", "prev", "older"),
            "b": ("b", "curr", "newer"),
        },
        bodies=(
            r'''
def $fn($count: int):
    """$doc"""
    $a, $b = 0, 1
    for _ in range($count):
        yield $a
        $a, $b = $b, $a + $b
''',
            r'''
def $fn($count):
    """$doc"""
    seq = [0, 1]
    while len(seq) < $count:
        seq.append(seq[-1] + seq[-2])
    return seq[:$count]
''',
        ),
        demo="print(list($fn($n)))",
    ),
    _spec(
        tasks=(
            "computes n factorial iteratively and rejects negative input",
            "returns the factorial of a non-negative integer",
        ),
        fns=("factorial", "fact", "product_to_n", "n_factorial"),
        docs=("Return $num! for non-negative $num.", "Iterative factorial; raises ValueError for negatives."),
        names={"num": ("n", "number", "k", "value")},
        bodies=(
            r'''
def $fn($num: int) -> int:
    """$doc"""
    if $num < 0:
        raise ValueError("factorial is undefined for negative numbers")
    result = 1
    for i in range(2, $num + 1):
        result *= i
    return result
''',
            r'''
from functools import reduce
from operator import mul


def $fn($num):
    """$doc"""
    if $num < 0:
        raise ValueError(f"expected a non-negative integer, got {$num}")
    return reduce(mul, range(1, $num + 1), 1)
''',
        ),
        demo="print($fn($k))",
    ),
    _spec(
        tasks=(
            "computes the digital root of a number by summing its digits repeatedly",
            "sums the digits of an integer until one digit is left",
        ),
        fns=("digital_root", "digit_sum_root", "collapse_digits", "repeated_digit_sum"),
        docs=(
            "Sum the digits of $num until a single digit remains.",
            "Digital root of a non-negative integer.",
        ),
        names={"num": ("n", "number", "value", "num")},
        bodies=(
            r'''
def $fn($num: int) -> int:
    """$doc"""
    while $num >= 10:
        $num = sum(int(d) for d in str($num))
    return $num
''',
            r'''
def $fn($num):
    """$doc"""
    return 0 if $num == 0 else 1 + ($num - 1) % 9
''',
        ),
        demo="print($fn($big_int))",
    ),
    _spec(
        tasks=(
            "converts an integer between 1 and 3999 to a Roman numeral",
            "formats a year as Roman numerals",
        ),
        fns=("to_roman", "roman_numeral", "int_to_roman", "romanize"),
        docs=("Roman numeral for $num (1..3999).", "Greedy conversion of $num to Roman numerals."),
        names={"num": ("n", "number", "year", "value"), "parts": ("parts", "out", "glyphs", "pieces")},
        bodies=(
            r'''
NUMERALS = (
    (1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"),
    (50, "L"), (40, "XL"), (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I"),
)


def $fn($num: int) -> str:
    """$doc"""
    if not 0 < $num < 4000:
        raise ValueError("only 1..3999 can be written in standard Roman numerals")
    $parts = []
    for value, glyph in NUMERALS:
        count, $num = divmod($num, value)
        $parts.append(glyph * count)
    return "".join($parts)
''',
        ),
        demo="print($fn($year_int))",
    ),
    _spec(
        tasks=(
            "parses a Roman numeral string into an integer",
            "converts Roman numerals like 'MCMXC' back to numbers",
        ),
        fns=("from_roman", "roman_to_int", "parse_roman", "unroman"),
        docs=(
            "Integer value of the Roman numeral $s.",
            "Parse $s, handling subtractive pairs such as IV and CM.",
        ),
        names={"s": ("numeral", "s", "text", "roman")},
        bodies=(
            r'''
VALUES = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}


def $fn($s: str) -> int:
    """$doc"""
    total = 0
    for current, following in zip($s, $s[1:] + " "):
        value = VALUES[current]
        total += -value if VALUES.get(following, 0) > value else value
    return total
''',
        ),
        demo='print($fn("$numeral"))',
    ),
    _spec(
        tasks=(
            "converts temperatures between Celsius and Fahrenheit in either direction",
            "converts a temperature reading given its unit",
        ),
        fns=("convert_temperature", "to_other_scale", "celsius_fahrenheit", "temp_convert"),
        docs=(
            "Convert $deg from $unit ('C' or 'F') to the other scale.",
            "Temperature conversion between C and F.",
        ),
        names={"deg": ("degrees", "value", "reading", "temp"), "unit": ("unit", "scale", "source_unit")},
        bodies=(
            r'''
def $fn($deg: float, $unit: str) -> float:
    """$doc"""
    if $unit.upper() == "C":
        return $deg * 9 / 5 + 32
    if $unit.upper() == "F":
        return ($deg - 32) * 5 / 9
    raise ValueError(f"unknown unit {$unit!r}; use 'C' or 'F'")
''',
        ),
        demo='print($fn($small_float, "C"))',
    ),
    _spec(
        tasks=(
            "computes compound interest for a principal, annual rate and number of years",
            "returns the future value of a deposit with compounding",
        ),
        fns=("compound_interest", "future_value", "grow_savings", "compounded_total"),
        docs=(
            "Value of $p after $years years at $rate compounded $m times a year.",
            "Future value with periodic compounding.",
        ),
        names={
            "p": ("principal", "deposit", "amount", "start"),
            "rate": ("rate", "annual_rate", "interest"),
            "years": ("years", "term", "horizon"),
            "m": ("periods", "per_year", "compounding"),
        },
        bodies=(
            r'''
def $fn($p: float, $rate: float, $years: int, $m: int = 12) -> float:
    """$doc"""
    return $p * (1 + $rate / $m) ** ($m * $years)
''',
            r'''
def $fn($p, $rate, $years, $m=1):
    """$doc"""
    balance = $p
    for _ in range($years * $m):
        balance += balance * $rate / $m
    return round(balance, 2)
''',
        ),
        demo="print($fn($amount, $rate_float, $k))",
    ),
    _spec(
        tasks=(
            "computes a simple moving average over a window",
            "smooths a series of numbers with a sliding-window mean",
        ),
        fns=("moving_average", "rolling_mean", "sliding_average", "smooth_series"),
        docs=("Mean of each full window of $w consecutive values in $xs.", "Simple moving average of $xs."),
        names={"xs": ("values", "series", "points", "samples"), "w": ("window", "span", "width", "size")},
        bodies=(
            r'''
def $fn($xs: list[float], $w: int) -> list[float]:
    """$doc"""
    if $w <= 0:
        raise ValueError("$w must be positive")
    return [sum($xs[i : i + $w]) / $w for i in range(len($xs) - $w + 1)]
''',
            r'''
from collections import deque


def $fn($xs, $w):
    """$doc"""
    buf, total, out = deque(), 0.0, []
    for x in $xs:
        buf.append(x)
        total += x
        if len(buf) > $w:
            total -= buf.popleft()
        if len(buf) == $w:
            out.append(total / $w)
    return out
''',
        ),
        demo="print($fn($floats, $k))",
    ),
    _spec(
        tasks=(
            "returns the median of a list of numbers",
            "computes the middle value of unsorted numbers, averaging the two middle ones for even counts",
        ),
        fns=("median", "middle_value", "median_of", "find_median"),
        docs=(
            "Median of $xs; raises ValueError when empty.",
            "Return the median of $xs without modifying it.",
        ),
        names={
            "xs": ("values", "numbers", "data", "sample"),
            "ordered": ("ordered", "ranked", "sorted_values", "s"),
        },
        bodies=(
            r'''
def $fn($xs: list[float]) -> float:
    """$doc"""
    if not $xs:
        raise ValueError("median of an empty list is undefined")
    $ordered = sorted($xs)
    mid = len($ordered) // 2
    if len($ordered) % 2:
        return $ordered[mid]
    return ($ordered[mid - 1] + $ordered[mid]) / 2
''',
            r'''
import statistics


def $fn($xs):
    """$doc"""
    return statistics.median($xs)
''',
        ),
        demo="print($fn($ints))",
    ),
    _spec(
        tasks=(
            "computes the sample variance and standard deviation of numbers",
            "returns mean, variance and standard deviation in one pass",
        ),
        fns=("spread_stats", "variance_and_std", "dispersion", "describe_spread"),
        docs=("Return (mean, variance, std) of $xs using the n-1 denominator.", "Sample statistics of $xs."),
        names={"xs": ("values", "numbers", "readings", "sample"), "mu": ("mean", "mu", "avg", "centre")},
        bodies=(
            r'''
import math


def $fn($xs: list[float]) -> tuple[float, float, float]:
    """$doc"""
    n = len($xs)
    if n < 2:
        raise ValueError("need at least two values")
    $mu = sum($xs) / n
    var = sum((x - $mu) ** 2 for x in $xs) / (n - 1)
    return $mu, var, math.sqrt(var)
''',
            r'''
def $fn($xs):
    """$doc"""
    count, $mu, m2 = 0, 0.0, 0.0
    for x in $xs:
        count += 1
        delta = x - $mu
        $mu += delta / count
        m2 += delta * (x - $mu)
    var = m2 / (count - 1) if count > 1 else 0.0
    return $mu, var, var ** 0.5
''',
        ),
        demo="print($fn($floats))",
    ),
    _spec(
        tasks=(
            "computes the dot product of two equal-length vectors",
            "multiplies two vectors element-wise and sums the result",
        ),
        fns=("dot", "dot_product", "inner_product", "weighted_sum"),
        docs=("Dot product of $u and $v; lengths must match.", "Sum of pairwise products."),
        names={"u": ("u", "a", "left", "weights"), "v": ("v", "b", "right", "features")},
        bodies=(
            r'''
def $fn($u: list[float], $v: list[float]) -> float:
    """$doc"""
    if len($u) != len($v):
        raise ValueError(f"length mismatch: {len($u)} != {len($v)}")
    return sum(x * y for x, y in zip($u, $v))
''',
            r'''
def $fn($u, $v):
    """$doc"""
    return sum(map(lambda pair: pair[0] * pair[1], zip($u, $v, strict=True)))
''',
        ),
        demo="print($fn($ints, $ints))",
    ),
    _spec(
        tasks=(
            "transposes a matrix given as a list of rows",
            "swaps rows and columns of a rectangular 2D list",
        ),
        fns=("transpose", "flip_matrix", "columns_of", "swap_axes"),
        docs=("Rows of $m become columns.", "Transpose a rectangular list-of-lists matrix."),
        names={"m": ("matrix", "grid", "rows", "table")},
        bodies=(
            r'''
def $fn($m: list[list]) -> list[list]:
    """$doc"""
    return [list(col) for col in zip(*$m)]
''',
            r'''
def $fn($m):
    """$doc"""
    if not $m:
        return []
    return [[$m[r][c] for r in range(len($m))] for c in range(len($m[0]))]
''',
        ),
        demo="print($fn($matrix))",
    ),
    _spec(
        tasks=(
            "multiplies two matrices represented as nested lists",
            "implements naive matrix multiplication with a shape check",
        ),
        fns=("matmul", "multiply_matrices", "mat_product", "matrix_product"),
        docs=("Product of $a (n x m) and $b (m x p).", "Naive triple-loop matrix multiplication."),
        names={"a": ("a", "left", "lhs", "first"), "b": ("b", "right", "rhs", "second")},
        bodies=(
            r'''
def $fn($a: list[list[float]], $b: list[list[float]]) -> list[list[float]]:
    """$doc"""
    if len($a[0]) != len($b):
        raise ValueError("inner dimensions differ")
    return [[sum(x * y for x, y in zip(row, col)) for col in zip(*$b)] for row in $a]
''',
            r'''
def $fn($a, $b):
    """$doc"""
    n, m, p = len($a), len($b), len($b[0])
    out = [[0] * p for _ in range(n)]
    for i in range(n):
        for j in range(p):
            for k in range(m):
                out[i][j] += $a[i][k] * $b[k][j]
    return out
''',
        ),
        demo="print($fn($matrix, $matrix2))",
    ),
    _spec(
        tasks=("sorts a list in place with insertion sort", "implements insertion sort and returns the list"),
        fns=("insertion_sort", "sort_by_insertion", "insert_sort", "simple_sort"),
        docs=(
            "Sort $xs in place in ascending order and return it.",
            "Insertion sort; stable and fine for short lists.",
        ),
        names={"xs": ("items", "values", "arr", "cards"), "cur": ("current", "key", "moving", "held")},
        bodies=(
            r'''
def $fn($xs: list) -> list:
    """$doc"""
    for i in range(1, len($xs)):
        $cur = $xs[i]
        j = i - 1
        while j >= 0 and $xs[j] > $cur:
            $xs[j + 1] = $xs[j]
            j -= 1
        $xs[j + 1] = $cur
    return $xs
''',
        ),
        demo="print($fn($ints))",
    ),
    _spec(
        tasks=("sorts a list with merge sort and returns a new list", "implements a recursive merge sort"),
        fns=("merge_sort", "sorted_by_merging", "msort", "divide_and_sort"),
        docs=("Return a sorted copy of $xs using merge sort.", "Stable O(n log n) merge sort."),
        names={
            "xs": ("items", "values", "seq", "data"),
            "left": ("left", "lo_half", "first_half"),
            "right": ("right", "hi_half", "second_half"),
        },
        bodies=(
            r'''
def $fn($xs: list) -> list:
    """$doc"""
    if len($xs) <= 1:
        return list($xs)
    mid = len($xs) // 2
    $left, $right = $fn($xs[:mid]), $fn($xs[mid:])
    merged, i, j = [], 0, 0
    while i < len($left) and j < len($right):
        if $left[i] <= $right[j]:
            merged.append($left[i])
            i += 1
        else:
            merged.append($right[j])
            j += 1
    return merged + $left[i:] + $right[j:]
''',
            r'''
import heapq


def $fn($xs):
    """$doc"""
    if len($xs) < 2:
        return list($xs)
    mid = len($xs) // 2
    return list(heapq.merge($fn($xs[:mid]), $fn($xs[mid:])))
''',
        ),
        demo="print($fn($ints))",
    ),
    _spec(
        tasks=(
            "finds the indices of two numbers in a list that add up to a target",
            "solves the two-sum problem in linear time",
        ),
        fns=("two_sum", "pair_for_target", "find_pair", "indices_summing_to"),
        docs=(
            "Indices (i, j) with $xs[i] + $xs[j] == $target, or None.",
            "Two-sum with a dictionary of seen values.",
        ),
        names={
            "xs": ("numbers", "values", "nums", "amounts"),
            "target": ("target", "goal", "total"),
            "seen": ("seen", "index_of", "positions"),
        },
        bodies=(
            r'''
def $fn($xs: list[int], $target: int) -> tuple[int, int] | None:
    """$doc"""
    $seen = {}
    for i, x in enumerate($xs):
        if $target - x in $seen:
            return $seen[$target - x], i
        $seen[x] = i
    return None
''',
        ),
        demo="print($fn($ints, $n))",
    ),
    _spec(
        tasks=(
            "finds the largest sum of a contiguous sub-list (Kadane's algorithm)",
            "returns the maximum subarray sum of a list of integers",
        ),
        fns=("max_subarray", "kadane", "best_run_sum", "largest_window_sum"),
        docs=("Largest sum of any non-empty contiguous slice of $xs.", "Kadane's algorithm in one pass."),
        names={
            "xs": ("values", "gains", "deltas", "nums"),
            "best": ("best", "top", "record"),
            "cur": ("current", "running", "here"),
        },
        bodies=(
            r'''
def $fn($xs: list[int]) -> int:
    """$doc"""
    $best = $cur = $xs[0]
    for x in $xs[1:]:
        $cur = max(x, $cur + x)
        $best = max($best, $cur)
    return $best
''',
        ),
        demo="print($fn($ints))",
    ),
    _spec(
        tasks=(
            "checks whether brackets in a string are balanced",
            "validates that (), [] and {} are properly nested",
        ),
        fns=("balanced", "brackets_ok", "is_well_nested", "check_brackets"),
        docs=("True if every bracket in $s is closed in the right order.", "Stack-based bracket matcher."),
        names={"s": ("text", "expr", "source", "s"), "stack": ("stack", "opened", "pending")},
        bodies=(
            r'''
PAIRS = {")": "(", "]": "[", "}": "{"}


def $fn($s: str) -> bool:
    """$doc"""
    $stack = []
    for ch in $s:
        if ch in "([{":
            $stack.append(ch)
        elif ch in PAIRS:
            if not $stack or $stack.pop() != PAIRS[ch]:
                return False
    return not $stack
''',
        ),
        demo='print($fn("($word[$k])"))',
    ),
    _spec(
        tasks=(
            "computes the Levenshtein edit distance between two strings",
            "returns the minimum number of single-character edits turning one word into another",
        ),
        fns=("edit_distance", "levenshtein", "string_distance", "edits_between"),
        docs=("Levenshtein distance between $a and $b.", "Dynamic programming with two rows of memory."),
        names={
            "a": ("a", "source", "first", "word_a"),
            "b": ("b", "target", "second", "word_b"),
            "prev": ("prev", "above", "last_row"),
        },
        bodies=(
            r'''
def $fn($a: str, $b: str) -> int:
    """$doc"""
    $prev = list(range(len($b) + 1))
    for i, ca in enumerate($a, start=1):
        row = [i]
        for j, cb in enumerate($b, start=1):
            row.append(min($prev[j] + 1, row[j - 1] + 1, $prev[j - 1] + (ca != cb)))
        $prev = row
    return $prev[-1]
''',
        ),
        demo='print($fn("$word", "$word2"))',
    ),
    _spec(
        tasks=(
            "builds the first n rows of Pascal's triangle",
            "returns Pascal's triangle as a list of lists",
        ),
        fns=("pascal_rows", "pascal_triangle", "binomial_rows", "triangle_of_pascal"),
        docs=("First $num rows of Pascal's triangle.", "Each row is built from the previous one."),
        names={"num": ("n", "rows", "depth", "height"), "out": ("triangle", "out", "result")},
        bodies=(
            r'''
def $fn($num: int) -> list[list[int]]:
    """$doc"""
    $out = []
    for i in range($num):
        row = [1] * (i + 1)
        for j in range(1, i):
            row[j] = $out[i - 1][j - 1] + $out[i - 1][j]
        $out.append(row)
    return $out
''',
        ),
        demo="print($fn($k))",
    ),
    _spec(
        tasks=(
            "counts the steps a number takes to reach 1 under the Collatz rule",
            "returns the Collatz sequence length for a positive integer",
        ),
        fns=("collatz_steps", "hailstone_length", "steps_to_one", "collatz_length"),
        docs=(
            "Number of Collatz steps from $num down to 1.",
            "Halve evens, map odds to 3n + 1, count until 1.",
        ),
        names={"num": ("n", "start", "value", "seed_value"), "cnt": ("steps", "count", "hops")},
        bodies=(
            r'''
def $fn($num: int) -> int:
    """$doc"""
    if $num < 1:
        raise ValueError("Collatz is defined for positive integers")
    $cnt = 0
    while $num != 1:
        $num = $num // 2 if $num % 2 == 0 else 3 * $num + 1
        $cnt += 1
    return $cnt
''',
            r'''
def $fn($num):
    """$doc"""
    if $num < 1:
        raise ValueError(f"expected a positive integer, got {$num}")
    $cnt = 0
    while $num > 1:
        $num = 3 * $num + 1 if $num % 2 else $num // 2
        $cnt += 1
    return $cnt
''',
        ),
        demo="print($fn($n))",
    ),
    _spec(
        tasks=("returns the power set of a list", "lists every subset of a small collection"),
        fns=("power_set", "all_subsets", "subsets", "every_combination"),
        docs=("All subsets of $xs, from the empty one upwards.", "Power set via itertools.combinations."),
        names={"xs": ("items", "elements", "options", "choices")},
        bodies=(
            r'''
from itertools import chain, combinations


def $fn($xs: list) -> list[tuple]:
    """$doc"""
    return list(chain.from_iterable(combinations($xs, r) for r in range(len($xs) + 1)))
''',
            r'''
def $fn($xs):
    """$doc"""
    result = [[]]
    for x in $xs:
        result += [subset + [x] for subset in result]
    return result
''',
        ),
        demo="print($fn($short_words))",
    ),
    _spec(
        tasks=(
            "converts a binary string such as '1011' to an integer without using int(s, 2)",
            "parses a string of 0s and 1s into a number by hand",
        ),
        fns=("binary_to_int", "parse_bits", "bits_value", "from_binary"),
        docs=("Integer value of the bit string $bits.", "Manual base-2 parsing with validation."),
        names={"bits": ("bits", "binary", "digits", "s")},
        bodies=(
            r'''
def $fn($bits: str) -> int:
    """$doc"""
    value = 0
    for ch in $bits:
        if ch not in "01":
            raise ValueError(f"not a binary digit: {ch!r}")
        value = value * 2 + (ch == "1")
    return value
''',
        ),
        demo='print($fn("$bit_string"))',
    ),
    _spec(
        tasks=(
            "tells whether a year is a leap year in the Gregorian calendar",
            "returns True for leap years",
        ),
        fns=("is_leap_year", "leap", "has_feb_29", "gregorian_leap"),
        docs=("Gregorian leap-year rule for $y.", "Divisible by 4, except centuries not divisible by 400."),
        names={"y": ("year", "y", "yr")},
        bodies=(
            r'''
def $fn($y: int) -> bool:
    """$doc"""
    return $y % 4 == 0 and ($y % 100 != 0 or $y % 400 == 0)
''',
            r'''
import calendar


def $fn($y):
    """$doc"""
    return calendar.isleap($y)
''',
        ),
        demo="print($fn($year_int))",
    ),
    _spec(
        tasks=(
            "computes the number of days between two ISO dates",
            "returns how many days separate two 'YYYY-MM-DD' strings",
        ),
        fns=("days_between", "date_gap", "day_difference", "span_in_days"),
        docs=("Absolute number of days between $a and $b.", "Day count between two ISO-8601 dates."),
        names={"a": ("start", "first", "a", "since"), "b": ("end", "second", "b", "until")},
        bodies=(
            r'''
from datetime import date


def $fn($a: str, $b: str) -> int:
    """$doc"""
    return abs((date.fromisoformat($b) - date.fromisoformat($a)).days)
''',
        ),
        demo='print($fn("$date_a", "$date_b"))',
    ),
    _spec(
        tasks=(
            "clamps a number into a closed range",
            "limits a value so it stays between a lower and an upper bound",
        ),
        fns=("clamp", "bound", "limit_to_range", "constrain"),
        docs=("Return $x limited to [$lo, $hi].", "Clamp $x; the bounds must be ordered."),
        names={
            "x": ("value", "x", "level", "reading"),
            "lo": ("lo", "low", "minimum", "floor"),
            "hi": ("hi", "high", "maximum", "ceiling"),
        },
        bodies=(
            r'''
def $fn($x: float, $lo: float, $hi: float) -> float:
    """$doc"""
    if $lo > $hi:
        raise ValueError("lower bound exceeds upper bound")
    return max($lo, min($x, $hi))
''',
        ),
        demo="print($fn($n, 0, $k))",
    ),
    _spec(
        tasks=(
            "computes the great-circle distance between two latitude/longitude points",
            "returns the haversine distance in kilometres",
        ),
        fns=("haversine_km", "great_circle", "distance_km", "geo_distance"),
        docs=(
            "Distance in km between two points given in decimal degrees.",
            "Haversine formula on a spherical Earth.",
        ),
        names={"r": ("EARTH_RADIUS_KM", "RADIUS_KM", "MEAN_RADIUS")},
        bodies=(
            r'''
import math

$r = 6371.0


def $fn(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """$doc"""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * $r * math.asin(math.sqrt(h))
''',
        ),
        demo="print($fn($lat1, $lon1, $lat2, $lon2))",
    ),
    _spec(
        tasks=(
            "converts a hex colour such as '#1a2b3c' to an RGB tuple",
            "parses CSS hex colours, including the three-digit short form",
        ),
        fns=("hex_to_rgb", "parse_hex_colour", "rgb_from_hex", "colour_tuple"),
        docs=("(r, g, b) for the colour $h.", "Parse #rgb or #rrggbb."),
        names={"h": ("colour", "hex_code", "value", "spec"), "dg": ("digits", "hex_digits", "body", "raw")},
        bodies=(
            r'''
def $fn($h: str) -> tuple[int, int, int]:
    """$doc"""
    $dg = $h.lstrip("#")
    if len($dg) == 3:
        $dg = "".join(c * 2 for c in $dg)
    if len($dg) != 6:
        raise ValueError(f"not a hex colour: {$h!r}")
    return tuple(int($dg[i : i + 2], 16) for i in (0, 2, 4))
''',
            r'''
def $fn($h):
    """$doc"""
    $dg = $h.strip().lstrip("#")
    if len($dg) == 3:
        $dg = "".join(ch + ch for ch in $dg)
    if len($dg) != 6:
        raise ValueError("expected #rgb or #rrggbb")
    packed = int($dg, 16)
    return (packed >> 16) & 0xFF, (packed >> 8) & 0xFF, packed & 0xFF
''',
        ),
        demo='print($fn("$hexcolor"))',
    ),
    _spec(
        tasks=(
            "provides a decorator that retries a function a few times when it raises",
            "wraps a flaky call with retries and a growing delay",
        ),
        fns=("retry", "with_retries", "retrying", "try_again"),
        docs=(
            "Retry the wrapped call up to $attempts times, sleeping longer each time.",
            "Decorator: retry on exception with linear backoff.",
        ),
        names={"attempts": ("attempts", "tries", "max_tries"), "delay": ("delay", "pause", "wait_seconds")},
        bodies=(
            r'''
import functools
import time


def $fn($attempts: int = $k, $delay: float = 0.5):
    """$doc"""
    def decorator(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            for attempt in range(1, $attempts + 1):
                try:
                    return func(*args, **kwargs)
                except Exception:
                    if attempt == $attempts:
                        raise
                    time.sleep($delay * attempt)
        return wrapper
    return decorator
''',
        ),
    ),
    _spec(
        tasks=(
            "implements a memoizing decorator without functools.lru_cache",
            "caches results of a pure function keyed by its positional arguments",
        ),
        fns=("memoize", "remember", "cached", "memo"),
        docs=(
            "Cache results of a function by its positional arguments.",
            "Tiny memoization decorator for pure functions.",
        ),
        names={"store": ("cache", "store", "results", "memo_table")},
        bodies=(
            r'''
import functools


def $fn(func):
    """$doc"""
    $store = {}

    @functools.wraps(func)
    def wrapper(*args):
        if args not in $store:
            $store[args] = func(*args)
        return $store[args]

    wrapper.cache = $store
    return wrapper
''',
        ),
    ),
    _spec(
        tasks=(
            "provides a context manager that measures how long a block takes",
            "times a block of code and prints the elapsed seconds",
        ),
        fns=("timed", "stopwatch", "measure_block", "elapsed"),
        docs=(
            "Print how long the managed block took, labelled $label.",
            "Context manager timing a block with perf_counter.",
        ),
        names={"label": ("label", "name", "tag", "what")},
        bodies=(
            r'''
import time
from contextlib import contextmanager


@contextmanager
def $fn($label: str = "block"):
    """$doc"""
    start = time.perf_counter()
    try:
        yield
    finally:
        print(f"{$label}: {time.perf_counter() - start:.3f}s")
''',
        ),
        demo='with $fn("$word"):\n        sum(range($big_int))',
    ),
    _spec(
        tasks=(
            "reads a large file in fixed-size chunks with a generator",
            "yields a binary file piece by piece so it never sits in memory whole",
        ),
        fns=("read_in_chunks", "iter_chunks", "stream_file", "file_blocks"),
        docs=("Yield successive $size-byte blocks of the file at $path.", "Chunked binary reader."),
        names={"path": ("path", "filename", "location"), "size": ("size", "chunk_size", "block_size")},
        bodies=(
            r'''
from pathlib import Path


def $fn($path: Path, $size: int = 65536):
    """$doc"""
    with open($path, "rb") as handle:
        while block := handle.read($size):
            yield block
''',
        ),
    ),
    _spec(
        tasks=(
            "converts camelCase or PascalCase identifiers to snake_case",
            "renames 'parseHTTPResponse' style names to 'parse_http_response'",
        ),
        fns=("to_snake_case", "camel_to_snake", "snakeify", "underscore_name"),
        docs=("snake_case form of $name.", "Insert underscores at case boundaries and lowercase."),
        names={"name": ("name", "identifier", "ident", "camel")},
        bodies=(
            r'''
import re


def $fn($name: str) -> str:
    """$doc"""
    step = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", $name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", step).lower()
''',
        ),
        demo='print($fn("$camel_word"))',
    ),
    _spec(
        tasks=(
            "returns the nearest-rank percentile of a list of numbers",
            "computes the p-th percentile without numpy",
        ),
        fns=("percentile", "nearest_rank", "pct_value", "quantile_of"),
        docs=("The $p-th percentile of $xs by the nearest-rank method.", "Percentile without interpolation."),
        names={"xs": ("values", "latencies", "samples", "timings"), "p": ("p", "pct", "rank")},
        bodies=(
            r'''
import math


def $fn($xs: list[float], $p: float) -> float:
    """$doc"""
    if not $xs or not 0 < $p <= 100:
        raise ValueError("need values and 0 < p <= 100")
    ordered = sorted($xs)
    return ordered[math.ceil($p / 100 * len(ordered)) - 1]
''',
        ),
        demo="print($fn($floats, $n))",
    ),
    _spec(
        tasks=(
            "builds a histogram of numbers into equal-width buckets",
            "counts how many values fall into each of n bins",
        ),
        fns=("histogram", "bucket_counts", "bin_values", "equal_width_bins"),
        docs=(
            "Counts of $xs in $bins equal-width buckets between min and max.",
            "Simple fixed-width histogram.",
        ),
        names={"xs": ("values", "data", "samples"), "bins": ("bins", "buckets", "n_bins")},
        bodies=(
            r'''
def $fn($xs: list[float], $bins: int = $k) -> list[int]:
    """$doc"""
    lo, hi = min($xs), max($xs)
    width = (hi - lo) / $bins or 1
    counts = [0] * $bins
    for x in $xs:
        counts[min(int((x - lo) / width), $bins - 1)] += 1
    return counts
''',
        ),
        demo="print($fn($floats))",
    ),
    _spec(
        tasks=(
            "interleaves two lists, appending the leftovers of the longer one",
            "alternates items from two sequences",
        ),
        fns=("interleave", "alternate", "zip_merge", "weave"),
        docs=("Alternate items of $a and $b, then the remainder.", "Interleave two lists of any lengths."),
        names={"a": ("a", "first", "odds"), "b": ("b", "second", "evens")},
        bodies=(
            r'''
from itertools import chain, zip_longest

_GAP = object()


def $fn($a: list, $b: list) -> list:
    """$doc"""
    return [x for x in chain.from_iterable(zip_longest($a, $b, fillvalue=_GAP)) if x is not _GAP]
''',
            r'''
def $fn($a, $b):
    """$doc"""
    out = []
    for i in range(max(len($a), len($b))):
        if i < len($a):
            out.append($a[i])
        if i < len($b):
            out.append($b[i])
    return out
''',
        ),
        demo="print($fn($ints, $short_words))",
    ),
    _spec(
        tasks=(
            "finds the items that occur more than once in a list",
            "returns the duplicated values of a sequence, each reported once",
        ),
        fns=("find_duplicates", "repeated_items", "duplicates", "seen_twice"),
        docs=(
            "Values that appear at least twice in $xs, in first-seen order.",
            "Report each duplicated value once.",
        ),
        names={"xs": ("items", "values", "codes", "labels")},
        bodies=(
            r'''
from collections import Counter


def $fn($xs: list) -> list:
    """$doc"""
    counts = Counter($xs)
    return [x for x in dict.fromkeys($xs) if counts[x] > 1]
''',
        ),
        demo="print($fn($ints + $ints[:2]))",
    ),
    _spec(
        tasks=(
            "parses 'key = value' lines from a simple config text, ignoring comments",
            "reads an INI-like list of settings into a dict",
        ),
        fns=("parse_settings", "read_key_values", "load_simple_config", "parse_pairs"),
        docs=(
            "Dict of settings from $text; '#' starts a comment.",
            "Parse key=value lines, stripping whitespace.",
        ),
        names={
            "text": ("text", "raw", "source", "contents"),
            "out": ("settings", "options", "parsed", "conf"),
            "no": ("number", "lineno", "row_no"),
            "ln": ("line", "entry", "stripped"),
            "kv": ("key", "name", "option"),
        },
        bodies=(
            r'''
def $fn($text: str) -> dict[str, str]:
    """$doc"""
    $out = {}
    for $no, $ln in enumerate($text.splitlines(), start=1):
        $ln = $ln.split("#", 1)[0].strip()
        if not $ln:
            continue
        if "=" not in $ln:
            raise ValueError(f"line {$no}: expected key = value")
        $kv, value = (part.strip() for part in $ln.split("=", 1))
        $out[$kv] = value
    return $out
''',
        ),
        demo='print($fn("$word = $n\\n# note\\n$word2 = on"))',
    ),
    _spec(
        tasks=(
            "returns the longest common prefix of a list of strings",
            "finds the shared beginning of several words",
        ),
        fns=("common_prefix", "longest_prefix", "shared_start", "prefix_of_all"),
        docs=("Longest prefix shared by every string in $xs.", "Common prefix; empty input gives ''."),
        names={"xs": ("words", "strings", "paths", "names")},
        bodies=(
            r'''
def $fn($xs: list[str]) -> str:
    """$doc"""
    if not $xs:
        return ""
    first, last = min($xs), max($xs)
    i = 0
    while i < len(first) and first[i] == last[i]:
        i += 1
    return first[:i]
''',
            r'''
import os


def $fn($xs):
    """$doc"""
    return os.path.commonprefix(list($xs))
''',
        ),
        demo='print($fn(["$word", "$word$word2"]))',
    ),
    _spec(
        tasks=(
            "wraps a paragraph to a maximum line width without the textwrap module",
            "breaks text into lines no longer than a given width",
        ),
        fns=("wrap_text", "hard_wrap", "fold_lines", "wrap_paragraph"),
        docs=("Lines of $text no wider than $width, breaking at spaces.", "Greedy word wrapping."),
        names={"text": ("text", "paragraph", "prose"), "width": ("width", "columns", "max_width")},
        bodies=(
            r'''
def $fn($text: str, $width: int = $n) -> list[str]:
    """$doc"""
    lines, current = [], ""
    for word in $text.split():
        if current and len(current) + 1 + len(word) > $width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        lines.append(current)
    return lines
''',
        ),
        demo='print($fn("$phrase $phrase", 20))',
    ),
    _spec(
        tasks=(
            "merges overlapping intervals",
            "combines a list of (start, end) ranges that overlap or touch",
        ),
        fns=("merge_intervals", "coalesce_ranges", "join_spans", "union_of_ranges"),
        docs=("Merge overlapping (start, end) pairs in $spans.", "Sort by start, then sweep."),
        names={"spans": ("intervals", "spans", "ranges", "windows")},
        bodies=(
            r'''
def $fn($spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """$doc"""
    merged: list[tuple[int, int]] = []
    for start, end in sorted($spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
''',
        ),
        demo="print($fn([(1, $k), ($k, $n), ($big_small, $big_small2)]))",
    ),
)

_CLASS_SPECS: tuple[_CodeSpec, ...] = (
    _spec(
        kind="class",
        tasks=(
            "implements a last-in-first-out stack with push, pop, peek and a length",
            "wraps a list as a stack that raises a clear error when popped empty",
        ),
        fns=("Stack", "LifoStack", "UndoStack", "PlateStack"),
        docs=("A LIFO stack of $plural_text.", "Minimal stack; pop and peek raise IndexError when empty."),
        names={
            "items": ("_items", "_stack", "_data", "_entries"),
            "x": ("item", "value", "entry", "element"),
        },
        bodies=(
            r'''
class $fn:
    """$doc"""

    def __init__(self) -> None:
        self.$items: list = []

    def push(self, $x) -> None:
        self.$items.append($x)

    def pop(self):
        if not self.$items:
            raise IndexError("pop from an empty $fn")
        return self.$items.pop()

    def peek(self):
        if not self.$items:
            raise IndexError("peek at an empty $fn")
        return self.$items[-1]

    def __len__(self) -> int:
        return len(self.$items)
''',
        ),
        demo="s = $fn()\n    s.push($n)\n    print(s.pop(), len(s))",
    ),
    _spec(
        kind="class",
        tasks=(
            "keeps only the most recent N items, dropping the oldest when full",
            "implements a bounded FIFO buffer of recent $plural_text",
        ),
        fns=("RecentBuffer", "BoundedQueue", "RingLog", "LastN"),
        docs=(
            "Remember the latest $plural_text, at most capacity of them.",
            "FIFO buffer backed by a deque with maxlen.",
        ),
        names={"buf": ("_buffer", "_queue", "_recent", "_window"), "cap": ("capacity", "size", "limit")},
        bodies=(
            r'''
from collections import deque


class $fn:
    """$doc"""

    def __init__(self, $cap: int = $n) -> None:
        self.$buf = deque(maxlen=$cap)

    def add(self, $single) -> None:
        self.$buf.append($single)

    def oldest(self):
        return self.$buf[0] if self.$buf else None

    def snapshot(self) -> list:
        return list(self.$buf)
''',
        ),
        demo="buf = $fn(2)\n    for value in $ints:\n        buf.add(value)\n    print(buf.snapshot())",
    ),
    _spec(
        kind="class",
        tasks=(
            "implements a least-recently-used cache with a fixed capacity",
            "caches $plural_text by key and evicts the least recently used entry when full",
        ),
        fns=("LRUCache", "RecentCache", "LruStore", "BoundedCache"),
        docs=(
            "LRU cache for $plural_text keyed by $key_text.",
            "get() refreshes an entry; put() evicts the stalest one.",
        ),
        names={
            "data": ("_data", "_entries", "_store", "_table"),
            "cap": ("capacity", "max_items", "limit"),
            "kk": ("key", "name", "ident"),
            "vv": ("value", "item", "payload"),
        },
        bodies=(
            r'''
from collections import OrderedDict


class $fn:
    """$doc"""

    def __init__(self, $cap: int) -> None:
        if $cap <= 0:
            raise ValueError("$cap must be positive")
        self.$cap = $cap
        self.$data: OrderedDict = OrderedDict()

    def get(self, $kk, default=None):
        if $kk not in self.$data:
            return default
        self.$data.move_to_end($kk)
        return self.$data[$kk]

    def put(self, $kk, $vv) -> None:
        self.$data[$kk] = $vv
        self.$data.move_to_end($kk)
        if len(self.$data) > self.$cap:
            self.$data.popitem(last=False)
''',
        ),
        demo='cache = $fn(2)\n    cache.put("$word", $n)\n    print(cache.get("$word"))',
    ),
    _spec(
        kind="class",
        tasks=(
            "represents a 2D vector with addition, scaling and length",
            "models a small immutable two-dimensional vector type",
        ),
        fns=("Vector2", "Vec2D", "Point2D", "Displacement"),
        docs=("Immutable 2D vector.", "A pair of floats supporting +, scalar * and abs()."),
        names={"x": ("x", "dx", "east"), "y": ("y", "dy", "north")},
        bodies=(
            r'''
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class $fn:
    """$doc"""

    $x: float
    $y: float

    def __add__(self, other: "$fn") -> "$fn":
        return $fn(self.$x + other.$x, self.$y + other.$y)

    def __mul__(self, factor: float) -> "$fn":
        return $fn(self.$x * factor, self.$y * factor)

    def __abs__(self) -> float:
        return math.hypot(self.$x, self.$y)
''',
        ),
        demo="print(abs($fn($k, $n) + $fn(1, 1)))",
    ),
    _spec(
        kind="class",
        tasks=(
            "stores a temperature in Celsius and exposes Fahrenheit and Kelvin as properties",
            "wraps a temperature with validated unit-converting properties",
        ),
        fns=("Temperature", "Reading", "ThermoValue", "Temp"),
        docs=(
            "A temperature that cannot go below absolute zero.",
            "Celsius storage with derived F and K views.",
        ),
        names={
            "c": ("_celsius", "_c", "_degrees"),
            "v": ("value", "degrees", "new_value"),
            "f": ("fahrenheit", "as_fahrenheit", "in_fahrenheit"),
            "kv": ("kelvin", "as_kelvin", "in_kelvin"),
        },
        bodies=(
            r'''
class $fn:
    """$doc"""

    def __init__(self, celsius: float) -> None:
        self.celsius = celsius

    @property
    def celsius(self) -> float:
        return self.$c

    @celsius.setter
    def celsius(self, $v: float) -> None:
        if $v < -273.15:
            raise ValueError("below absolute zero")
        self.$c = $v

    @property
    def $f(self) -> float:
        return self.$c * 9 / 5 + 32

    @property
    def $kv(self) -> float:
        return self.$c + 273.15
''',
        ),
        demo="print($fn($small_float).$f)",
    ),
    _spec(
        kind="class",
        tasks=(
            "implements a token-bucket rate limiter",
            "limits how many $plural_text can be processed per second with a token bucket",
        ),
        fns=("TokenBucket", "RateLimiter", "Throttle", "BucketLimiter"),
        docs=(
            "Allow bursts up to capacity, refilled at rate tokens per second.",
            "Token bucket; allow() is non-blocking.",
        ),
        names={
            "rate": ("rate", "per_second", "refill_rate"),
            "cap": ("capacity", "burst", "max_tokens"),
            "tok": ("tokens", "available", "budget"),
            "upd": ("updated", "last_refill", "stamp"),
        },
        bodies=(
            r'''
import time


class $fn:
    """$doc"""

    def __init__(self, $rate: float, $cap: int) -> None:
        self.$rate, self.$cap = $rate, $cap
        self.$tok = float($cap)
        self.$upd = time.monotonic()

    def allow(self, cost: float = 1.0) -> bool:
        now = time.monotonic()
        self.$tok = min(self.$cap, self.$tok + (now - self.$upd) * self.$rate)
        self.$upd = now
        if self.$tok >= cost:
            self.$tok -= cost
            return True
        return False
''',
        ),
        demo="limiter = $fn($k, $n)\n    print(sum(limiter.allow() for _ in range($big_small)))",
    ),
    _spec(
        kind="class",
        tasks=(
            "implements a tiny publish/subscribe event bus",
            "lets handlers subscribe to named events about $plural_text and be called on publish",
        ),
        fns=("EventBus", "Dispatcher", "PubSub", "Signals"),
        docs=("Synchronous in-process publish/subscribe.", "Handlers run in subscription order."),
        names={
            "subs": ("_handlers", "_subscribers", "_listeners"),
            "ev": ("event", "topic", "channel"),
            "h": ("handler", "callback", "listener"),
        },
        bodies=(
            r'''
from collections import defaultdict
from typing import Callable


class $fn:
    """$doc"""

    def __init__(self) -> None:
        self.$subs: dict[str, list[Callable]] = defaultdict(list)

    def subscribe(self, $ev: str, $h: Callable) -> None:
        self.$subs[$ev].append($h)

    def publish(self, $ev: str, *args) -> int:
        for $h in self.$subs.get($ev, []):
            $h(*args)
        return len(self.$subs.get($ev, []))
''',
        ),
        demo='bus = $fn()\n    bus.subscribe("$single_text.created", print)\n    '
        'bus.publish("$single_text.created", $n)',
    ),
    _spec(
        kind="class",
        tasks=(
            "tracks stock levels of $plural_text with add, remove and a low-stock report",
            "implements an inventory of $plural_text that refuses to go negative",
        ),
        fns=("${cls}Inventory", "${cls}Stock", "${cls}Store", "${cls}Ledger"),
        docs=(
            "Quantities of $plural_text keyed by $key_text.",
            "Stock levels for $plural_text; removal beyond stock fails.",
        ),
        names={"levels": ("_levels", "_stock", "_counts", "_on_hand")},
        bodies=(
            r'''
class $fn:
    """$doc"""

    def __init__(self) -> None:
        self.$levels: dict[str, int] = {}

    def add(self, $key: str, quantity: int = 1) -> None:
        self.$levels[$key] = self.$levels.get($key, 0) + quantity

    def remove(self, $key: str, quantity: int = 1) -> None:
        have = self.$levels.get($key, 0)
        if quantity > have:
            raise ValueError(f"only {have} of {$key!r} in stock")
        self.$levels[$key] = have - quantity

    def low(self, threshold: int = $k) -> list[str]:
        return sorted(k for k, v in self.$levels.items() if v < threshold)
''',
        ),
        demo='inv = $fn()\n    inv.add("$tag", $n)\n    print(inv.low())',
    ),
    _spec(
        kind="class",
        tasks=(
            "models an account balance with deposits, withdrawals and a transaction history",
            "keeps a running balance and rejects overdrafts",
        ),
        fns=("Account", "Wallet", "Balance", "PettyCash"),
        docs=(
            "Balance with an append-only history of (kind, amount).",
            "Deposits and withdrawals; no overdraft.",
        ),
        names={
            "hist": ("history", "journal", "log"),
            "bal": ("balance", "funds", "total"),
            "amt": ("amount", "value", "money"),
        },
        bodies=(
            r'''
class $fn:
    """$doc"""

    def __init__(self, opening: float = 0.0) -> None:
        self.$bal = opening
        self.$hist: list[tuple[str, float]] = []

    def deposit(self, $amt: float) -> None:
        if $amt <= 0:
            raise ValueError("deposit must be positive")
        self.$bal += $amt
        self.$hist.append(("deposit", $amt))

    def withdraw(self, $amt: float) -> None:
        if $amt > self.$bal:
            raise ValueError("insufficient funds")
        self.$bal -= $amt
        self.$hist.append(("withdraw", $amt))
''',
        ),
        demo="acct = $fn($amount)\n    acct.withdraw($k)\n    print(acct.$bal)",
    ),
    _spec(
        kind="class",
        tasks=(
            "implements a prefix tree (trie) with insert and prefix search",
            "stores words in a trie and lists all words starting with a prefix",
        ),
        fns=("Trie", "PrefixTree", "WordTrie", "Autocomplete"),
        docs=(
            "Prefix tree over lowercase words.",
            "insert() adds a word; starting_with() lists completions.",
        ),
        names={
            "root": ("root", "_root", "head"),
            "node": ("node", "cursor", "here"),
            "w": ("word", "term", "text"),
            "pre": ("prefix", "start", "stem"),
        },
        bodies=(
            r'''
class $fn:
    """$doc"""

    END = "$$"

    def __init__(self) -> None:
        self.$root: dict = {}

    def insert(self, $w: str) -> None:
        $node = self.$root
        for ch in $w:
            $node = $node.setdefault(ch, {})
        $node[self.END] = True

    def starting_with(self, $pre: str) -> list[str]:
        $node = self.$root
        for ch in $pre:
            if ch not in $node:
                return []
            $node = $node[ch]
        found, stack = [], [($node, $pre)]
        while stack:
            current, sofar = stack.pop()
            for ch, child in current.items():
                if ch == self.END:
                    found.append(sofar)
                else:
                    stack.append((child, sofar + ch))
        return sorted(found)
''',
        ),
        demo='t = $fn()\n    t.insert("$word")\n    print(t.starting_with("$word"[:2]))',
    ),
)

# (plural, singular, numeric fields, grouping keys): the nouns entity snippets are written about.
_ENTITIES: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("orders", "order", ("amount", "quantity", "discount"), ("customer", "region", "status")),
    ("students", "student", ("grade", "age", "credits"), ("school", "cohort", "major")),
    ("sensors", "sensor", ("reading", "voltage", "temperature"), ("site", "model", "zone")),
    ("books", "book", ("pages", "price", "rating"), ("author", "genre", "publisher")),
    ("flights", "flight", ("delay_minutes", "distance_km", "seats"), ("airline", "origin", "gate")),
    ("invoices", "invoice", ("total", "tax", "balance"), ("vendor", "currency", "quarter")),
    (
        "employees",
        "employee",
        ("salary", "tenure_years", "overtime_hours"),
        ("department", "title", "office"),
    ),
    ("tickets", "ticket", ("priority", "age_hours", "reopen_count"), ("assignee", "queue", "severity")),
    ("songs", "song", ("duration_seconds", "plays", "bpm"), ("artist", "album", "mood")),
    ("plants", "plant", ("height_cm", "water_ml", "yield_kg"), ("species", "bed", "soil")),
    ("trips", "trip", ("fare", "minutes", "miles"), ("driver", "city", "vehicle")),
    ("recipes", "recipe", ("calories", "prep_minutes", "servings"), ("cuisine", "course", "chef")),
    ("parcels", "parcel", ("weight_kg", "volume_l", "postage"), ("carrier", "destination", "service")),
    ("fixtures", "fixture", ("goals", "attendance", "fouls"), ("venue", "league", "referee")),
    ("shipments", "shipment", ("containers", "cost", "days_in_transit"), ("port", "vessel", "route")),
    ("listings", "listing", ("rent", "bedrooms", "floor_area"), ("neighbourhood", "landlord", "kind")),
    ("loans", "loan", ("principal", "rate", "term_months"), ("branch", "product", "officer")),
    ("workouts", "workout", ("distance_km", "pace", "heart_rate"), ("runner", "course", "weather")),
    (
        "experiments",
        "experiment",
        ("yield_pct", "temperature", "duration_h"),
        ("lab", "catalyst", "operator"),
    ),
    ("servers", "server", ("cpu_load", "memory_gb", "uptime_days"), ("cluster", "region", "role")),
    ("deliveries", "delivery", ("minutes_late", "items", "tip"), ("courier", "district", "restaurant")),
    ("games", "game", ("score", "moves", "duration"), ("player", "opening", "result")),
    ("photos", "photo", ("width", "height", "file_size_kb"), ("camera", "album", "photographer")),
    ("courses", "course", ("enrolled", "hours", "fee"), ("faculty", "level", "term")),
    ("tasks", "task", ("estimate_hours", "spent_hours", "story_points"), ("owner", "sprint", "component")),
    ("wines", "wine", ("vintage", "price", "alcohol"), ("region", "grape", "producer")),
    ("bikes", "bike", ("rides", "battery", "km_total"), ("dock", "model", "district")),
    ("reviews", "review", ("stars", "helpful_votes", "length"), ("product", "reviewer", "language")),
    ("samples", "sample", ("value", "error", "depth_m"), ("station", "instrument", "crew")),
    ("bookings", "booking", ("nights", "guests", "price"), ("hotel", "channel", "season")),
)
_TAGS = _words("""
north south east west alpha beta gold silver retail online pending closed open urgent draft archived
blue green red oslo lima kyoto porto quito accra hanoi riga bergen tallinn dakar cusco perth
""")

_ENTITY_SPECS: tuple[_CodeSpec, ...] = (
    _spec(
        kind="entity",
        tasks=(
            "takes a list of $plural_text as dictionaries and returns those whose $field_text is above a "
            "threshold",
            "filters $plural_text records, keeping only the ones with $field_text greater than a given value",
        ),
        fns=(
            "${plural}_above",
            "filter_${plural}_by_${field}",
            "${plural}_with_high_${field}",
            "select_${plural}_over",
        ),
        docs=(
            "Return the $plural_text whose $field_text exceeds threshold.",
            "Keep only $plural_text with $field_text above threshold; order is kept.",
        ),
        names={"acc": ("selected", "kept", "result", "picked")},
        bodies=(
            r'''
def $fn($plural: list[dict], threshold: float) -> list[dict]:
    """$doc"""
    return [$single for $single in $plural if $single["$field"] > threshold]
''',
            r'''
def $fn($plural, threshold):
    """$doc"""
    $acc = []
    for $single in $plural:
        if $single.get("$field", 0) > threshold:
            $acc.append($single)
    return $acc
''',
        ),
        demo="print($fn($rows, $n))",
    ),
    _spec(
        kind="entity",
        tasks=(
            "adds up the $field_text of a list of $plural_text",
            "returns the total $field_text across all $plural_text",
        ),
        fns=("total_${field}", "sum_${field}", "${plural}_${field}_total", "overall_${field}"),
        docs=("Sum of $field_text over $plural_text.", "Total $field_text; missing values count as zero."),
        bodies=(
            r'''
def $fn($plural: list[dict]) -> float:
    """$doc"""
    return sum($single["$field"] for $single in $plural)
''',
            r'''
import math


def $fn($plural):
    """$doc"""
    return math.fsum(float($single.get("$field", 0)) for $single in $plural)
''',
        ),
        demo="print($fn($rows))",
    ),
    _spec(
        kind="entity",
        tasks=(
            "computes the average $field_text of a list of $plural_text, returning None for an empty list",
            "returns the mean $field_text per $single_text",
        ),
        fns=("average_${field}", "mean_${field}", "${single}_${field}_mean", "avg_${field}_of_${plural}"),
        docs=(
            "Mean $field_text of $plural_text, or None when there are none.",
            "Average $field_text across $plural_text.",
        ),
        names={"vals": ("values", "amounts", "figures", "numbers")},
        bodies=(
            r'''
def $fn($plural: list[dict]) -> float | None:
    """$doc"""
    if not $plural:
        return None
    return sum($single["$field"] for $single in $plural) / len($plural)
''',
            r'''
import statistics


def $fn($plural):
    """$doc"""
    $vals = [$single["$field"] for $single in $plural if "$field" in $single]
    return statistics.fmean($vals) if $vals else None
''',
        ),
        demo="print($fn($rows))",
    ),
    _spec(
        kind="entity",
        tasks=(
            "groups a list of $plural_text by their $key_text",
            "returns a dictionary from each $key_text to the list of its $plural_text",
        ),
        fns=(
            "group_${plural}_by_${key}",
            "${plural}_by_${key}",
            "bucket_by_${key}",
            "index_${plural}_per_${key}",
        ),
        docs=(
            "Map each $key_text to its $plural_text, keeping input order.",
            "Group $plural_text on $key_text.",
        ),
        names={"groups": ("groups", "buckets", "by_key", "grouped")},
        bodies=(
            r'''
from collections import defaultdict


def $fn($plural):
    """$doc"""
    $groups = defaultdict(list)
    for $single in $plural:
        $groups[$single["$key"]].append($single)
    return dict($groups)
''',
            r'''
def $fn($plural: list[dict]) -> dict[str, list[dict]]:
    """$doc"""
    $groups: dict[str, list[dict]] = {}
    for $single in $plural:
        $groups.setdefault($single["$key"], []).append($single)
    return $groups
''',
        ),
        demo="print($fn($rows))",
    ),
    _spec(
        kind="entity",
        tasks=("counts how many $plural_text there are per $key_text", "tallies $plural_text by $key_text"),
        fns=("count_${plural}_by_${key}", "${key}_counts", "tally_${key}", "${plural}_per_${key}"),
        docs=("Number of $plural_text for every $key_text.", "Count $plural_text grouped by $key_text."),
        bodies=(
            r'''
from collections import Counter


def $fn($plural: list[dict]) -> Counter:
    """$doc"""
    return Counter($single["$key"] for $single in $plural)
''',
            r'''
def $fn($plural):
    """$doc"""
    counts = {}
    for $single in $plural:
        counts[$single["$key"]] = counts.get($single["$key"], 0) + 1
    return counts
''',
        ),
        demo="print($fn($rows))",
    ),
    _spec(
        kind="entity",
        tasks=(
            "returns the n $plural_text with the highest $field_text",
            "picks the top $plural_text ranked by $field_text",
        ),
        fns=("top_${plural}_by_${field}", "highest_${field}", "best_${plural}", "leading_${plural}"),
        docs=(
            "The $limit $plural_text with the largest $field_text.",
            "Top-$limit $plural_text by $field_text, largest first.",
        ),
        names={"limit": ("n", "limit", "count", "top")},
        bodies=(
            r'''
def $fn($plural: list[dict], $limit: int = $k) -> list[dict]:
    """$doc"""
    return sorted($plural, key=lambda $single: $single["$field"], reverse=True)[:$limit]
''',
            r'''
import heapq
from operator import itemgetter


def $fn($plural, $limit=$k):
    """$doc"""
    return heapq.nlargest($limit, $plural, key=itemgetter("$field"))
''',
        ),
        demo="print($fn($rows, 2))",
    ),
    _spec(
        kind="entity",
        tasks=(
            "indexes $plural_text by their $key_text and rejects duplicate keys",
            "builds a lookup dictionary of $plural_text keyed on $key_text",
        ),
        fns=("index_by_${key}", "${plural}_lookup", "${single}_by_${key}", "map_${plural}"),
        docs=(
            "Dictionary from $key_text to $single_text.",
            "Lookup of $plural_text; a repeated $key_text is an error.",
        ),
        bodies=(
            r'''
def $fn($plural):
    """$doc"""
    return {$single["$key"]: $single for $single in $plural}
''',
            r'''
def $fn($plural: list[dict]) -> dict[str, dict]:
    """$doc"""
    index: dict[str, dict] = {}
    for position, $single in enumerate($plural):
        key = $single["$key"]
        if key in index:
            raise ValueError(f"duplicate $key_text {key!r} at position {position}")
        index[key] = $single
    return index
''',
        ),
        demo="print($fn($rows))",
    ),
    _spec(
        kind="entity",
        tasks=(
            "rescales the $field_text of $plural_text to the range 0..1",
            "adds a min-max normalised copy of $field_text to each $single_text",
        ),
        fns=("normalize_${field}", "scale_${field}", "${field}_to_unit_range", "minmax_${plural}"),
        docs=(
            "Copies of $plural_text with ${field}_scaled in [0, 1].",
            "Min-max scale $field_text; constant input maps to 0.",
        ),
        names={"lo": ("lo", "smallest", "floor_value"), "hi": ("hi", "largest", "peak")},
        bodies=(
            r'''
def $fn($plural: list[dict]) -> list[dict]:
    """$doc"""
    if not $plural:
        return []
    $lo = min($single["$field"] for $single in $plural)
    $hi = max($single["$field"] for $single in $plural)
    span = ($hi - $lo) or 1
    return [{**$single, "${field}_scaled": ($single["$field"] - $lo) / span} for $single in $plural]
''',
        ),
        demo="print($fn($rows))",
    ),
    _spec(
        kind="entity",
        tasks=(
            "sums the $field_text of $plural_text for each $key_text",
            "returns total $field_text per $key_text, largest first",
        ),
        fns=(
            "${field}_per_${key}",
            "total_${field}_by_${key}",
            "${key}_${field}_totals",
            "sum_${field}_grouped",
        ),
        docs=(
            "Total $field_text for every $key_text, sorted descending.",
            "Per-$key_text sums of $field_text.",
        ),
        names={"totals": ("totals", "sums", "subtotals", "by_group")},
        bodies=(
            r'''
from collections import defaultdict


def $fn($plural):
    """$doc"""
    $totals = defaultdict(float)
    for $single in $plural:
        $totals[$single["$key"]] += $single["$field"]
    return dict(sorted($totals.items(), key=lambda kv: kv[1], reverse=True))
''',
        ),
        demo="print($fn($rows))",
    ),
    _spec(
        kind="entity",
        tasks=(
            "checks a list of $plural_text for missing $field_text or $key_text fields and reports the "
            "problems",
            "validates $single_text dictionaries and returns a list of readable errors",
        ),
        fns=("validate_${plural}", "check_${plural}", "${single}_problems", "find_bad_${plural}"),
        docs=(
            "Human-readable problems, one per missing or invalid field.",
            "Validate $plural_text; an empty list means all good.",
        ),
        names={"errs": ("errors", "problems", "issues", "complaints")},
        bodies=(
            r'''
REQUIRED = ("$field", "$key")


def $fn($plural: list[dict]) -> list[str]:
    """$doc"""
    $errs = []
    for i, $single in enumerate($plural):
        for name in REQUIRED:
            if $single.get(name) in (None, ""):
                $errs.append(f"$single_text {i}: missing {name}")
        value = $single.get("$field")
        if value is not None and not isinstance(value, (int, float)):
            $errs.append(f"$single_text {i}: $field must be a number, got {value!r}")
    return $errs
''',
        ),
        demo='print($fn($rows + [{"$key": ""}]))',
    ),
    _spec(
        kind="entity",
        tasks=(
            "defines a dataclass for a $single_text with a from_dict constructor and a helper method",
            "models a $single_text as a typed dataclass that can be built from a raw dictionary",
        ),
        fns=("$cls", "${cls}Record", "${cls}Row", "Parsed${cls}"),
        docs=(
            "One $single_text with its $key_text and $field_text.",
            "Typed view of a raw $single_text dictionary.",
        ),
        bodies=(
            r'''
from dataclasses import dataclass


@dataclass(frozen=True)
class $fn:
    """$doc"""

    $key: str
    $field: float

    @classmethod
    def from_dict(cls, raw: dict) -> "$fn":
        return cls($key=str(raw["$key"]), $field=float(raw["$field"]))

    def exceeds(self, limit: float) -> bool:
        return self.$field > limit
''',
        ),
        demo="print($fn.from_dict($row).exceeds($n))",
    ),
    _spec(
        kind="entity",
        tasks=(
            "formats $plural_text as aligned text report lines showing $key_text and $field_text",
            "prints a small fixed-width table of $plural_text",
        ),
        fns=("format_${plural}_report", "${plural}_table", "render_${plural}", "report_lines"),
        docs=(
            "One aligned line per $single_text plus a total line.",
            "Fixed-width $key_text / $field_text table.",
        ),
        names={"width": ("width", "pad", "column")},
        bodies=(
            r'''
def $fn($plural: list[dict], $width: int = $n) -> list[str]:
    """$doc"""
    lines = [f"{'$key':<{$width}} {'$field':>10}"]
    for $single in $plural:
        lines.append(f"{str($single['$key']):<{$width}} {$single['$field']:>10.2f}")
    lines.append(f"{'total':<{$width}} {sum(r['$field'] for r in $plural):>10.2f}")
    return lines
''',
        ),
        demo='print("\\n".join($fn($rows)))',
    ),
    _spec(
        kind="entity",
        tasks=(
            "parses lines like '$field=12;$key=north' into $single_text dictionaries, skipping comments",
            "reads semicolon-separated key=value lines describing $plural_text",
        ),
        fns=("parse_${plural}", "read_${single}_lines", "load_${plural}", "${plural}_from_text"),
        docs=(
            "Parse key=value;key=value lines into dicts; '#' lines are skipped.",
            "Turn text lines into $single_text dicts with numeric $field_text.",
        ),
        names={"recs": ("records", "parsed", "rows_out", "found")},
        bodies=(
            r'''
def $fn(lines: list[str]) -> list[dict]:
    """$doc"""
    $recs = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        pairs = (part.split("=", 1) for part in line.split(";"))
        raw = {name.strip(): value.strip() for name, value in pairs}
        raw["$field"] = float(raw["$field"])
        $recs.append(raw)
    return $recs
''',
        ),
        demo='print($fn(["$field=$n;$key=$tag"]))',
    ),
    _spec(
        kind="entity",
        tasks=(
            "removes $plural_text with a repeated $key_text, keeping the first one",
            "de-duplicates $plural_text on $key_text",
        ),
        fns=(
            "dedupe_${plural}",
            "unique_${plural}_by_${key}",
            "first_${single}_per_${key}",
            "drop_duplicate_${plural}",
        ),
        docs=(
            "First $single_text for each $key_text, input order kept.",
            "Drop later $plural_text sharing a $key_text.",
        ),
        names={"seen": ("seen", "used_keys", "met")},
        bodies=(
            r'''
def $fn($plural: list[dict]) -> list[dict]:
    """$doc"""
    $seen = set()
    out = []
    for $single in $plural:
        if $single["$key"] not in $seen:
            $seen.add($single["$key"])
            out.append($single)
    return out
''',
        ),
        demo="print($fn($rows + $rows))",
    ),
    _spec(
        kind="entity",
        tasks=(
            "splits $plural_text into two lists depending on whether $field_text reaches a cutoff",
            "partitions $plural_text by a $field_text threshold",
        ),
        fns=("partition_${plural}", "split_by_${field}", "${plural}_above_and_below", "divide_${plural}"),
        docs=(
            "(at_or_above, below) lists of $plural_text for the cutoff.",
            "Partition on $field_text >= cutoff.",
        ),
        names={"yes": ("high", "passing", "at_or_above"), "no": ("low", "failing", "below")},
        bodies=(
            r'''
def $fn($plural: list[dict], cutoff: float) -> tuple[list[dict], list[dict]]:
    """$doc"""
    $yes, $no = [], []
    for $single in $plural:
        ($yes if $single["$field"] >= cutoff else $no).append($single)
    return $yes, $no
''',
        ),
        demo="print($fn($rows, $n))",
    ),
    _spec(
        kind="entity",
        tasks=(
            "returns the running total of $field_text across $plural_text in order",
            "computes cumulative $field_text for a sequence of $plural_text",
        ),
        fns=("running_${field}", "cumulative_${field}", "${field}_so_far", "accumulate_${field}"),
        docs=("Cumulative sums of $field_text, one per $single_text.", "Running total of $field_text."),
        bodies=(
            r'''
from itertools import accumulate


def $fn($plural: list[dict]) -> list[float]:
    """$doc"""
    return list(accumulate($single["$field"] for $single in $plural))
''',
        ),
        demo="print($fn($rows))",
    ),
    _spec(
        kind="entity",
        tasks=(
            "computes each $key_text's percentage share of the total $field_text",
            "returns what percent of all $field_text each $key_text accounts for",
        ),
        fns=("${key}_share", "${field}_share_by_${key}", "percent_of_${field}", "${key}_percentages"),
        docs=(
            "Percent of total $field_text per $key_text, rounded to one decimal.",
            "Share of $field_text by $key_text.",
        ),
        bodies=(
            r'''
def $fn($plural: list[dict]) -> dict[str, float]:
    """$doc"""
    grand = sum($single["$field"] for $single in $plural)
    if not grand:
        return {}
    shares: dict[str, float] = {}
    for $single in $plural:
        shares[$single["$key"]] = shares.get($single["$key"], 0) + $single["$field"]
    return {key: round(100 * value / grand, 1) for key, value in shares.items()}
''',
        ),
        demo="print($fn($rows))",
    ),
    _spec(
        kind="entity",
        tasks=(
            "sorts $plural_text by $key_text and then by descending $field_text",
            "orders $plural_text alphabetically by $key_text, largest $field_text first within each",
        ),
        fns=("sort_${plural}", "order_${plural}", "${plural}_sorted", "rank_${plural}"),
        docs=(
            "Sorted copy: $key_text ascending, then $field_text descending.",
            "Two-key sort of $plural_text.",
        ),
        bodies=(
            r'''
def $fn($plural: list[dict]) -> list[dict]:
    """$doc"""
    return sorted($plural, key=lambda $single: ($single["$key"], -$single["$field"]))
''',
        ),
        demo="print($fn($rows))",
    ),
)


@dataclass(frozen=True)
class CodeSample:
    instruction: str
    input: str
    output: str


_FUNCTION_OPENERS = (
    "Write a Python function that", "Implement a Python function that", "Create a Python function which",
    "Write a small Python helper that", "Using only the standard library, write a function that",
    "Could you write a Python function that", "Please write a Python function that",
    "I need a Python function that",
    "Write a function in Python that", "Show me a Python function that", "Give me a Python function that",
    "Draft a Python function that",
)  # fmt: skip
_CLASS_OPENERS = (
    "Write a Python class that", "Implement a small Python class which", "Create a Python class that",
    "Design a compact Python class that", "I need a Python class that", "Please write a Python class that",
)  # fmt: skip
_CODE_ASIDES = (
    "Include a docstring.", "Use type hints where they help.", "Keep it readable rather than clever.",
    "Avoid third-party packages.", "Call it `{fn}`.", "It will be used by the {team} team at {company}.",
    "This is for a {adj} little script I maintain in {town}.", "Handle the empty case sensibly.",
    "Prefer clarity over speed.", "A short example under a main guard would help.",
    "Name the parameters clearly.", "It runs inside a {team} job every {num} minutes.",
    "Reviewers at {company} care about edge cases.", "Keep it under twenty lines if you can.",
)  # fmt: skip
_CODE_INPUTS = (
    "Example call: {example}", "For instance: {example}", "Function name: {fn}",
    "Existing helpers live in {team}/{noun}.py and use snake_case.", "Constraints: no external dependencies.",
    "The caller is a {team} job owned by {person}.", "Target runtime: CPython, standard library only.",
)  # fmt: skip
_CODE_HEADERS = (
    "# Part of the {team} utilities.", "# Kept free of third-party imports on purpose.",
    "# Small helper; tests live next to this module.", "# Written for the {company} {team} service.",
    "# Reviewed by {person}.", "# See the {team} runbook before changing behaviour.",
)  # fmt: skip


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
            self._nouns = self.rng.sample(NOUNS, 4)
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
                {self.fld: rng.randint(1, 500), self.key: tag} for tag in rng.sample(_TAGS, rng.randint(2, 4))
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
            "word": lambda: rng.choice(NOUNS),
            "word2": lambda: rng.choice(NOUNS),
            "short_words": lambda: _literal_list(words()[:3]),
            "phrase": lambda: " ".join(rng.sample(ADJECTIVES, 3) + words()),
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
            "tag": lambda: rng.choice(_TAGS),
        }  # fmt: skip
        return makers[name]()


def _render_code(spec: _CodeSpec, rng: random.Random) -> tuple[str, str, str, str]:
    """(task sentence, function name, code, example call) for one instance of spec."""
    entity = rng.choice(_ENTITIES)
    plural, single, fields, keys = entity
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
    return task, mapping["fn"], code, example


def _code_sample(spec: _CodeSpec, rng: random.Random) -> CodeSample:
    task, fn, code, example = _render_code(spec, rng)
    facts = {"fn": fn, "team": rng.choice(TEAMS), "example": example.split("\n")[-1].strip() or fn}
    opener = rng.choice(_CLASS_OPENERS if spec.kind == "class" else _FUNCTION_OPENERS)
    instruction = f"{opener} {task}."
    for aside in rng.sample(_CODE_ASIDES, rng.randint(0, 2)):
        instruction += " " + _fill(rng, aside, facts)
    user_input = ""
    if rng.random() < 0.55:
        choices = _CODE_INPUTS if example else _CODE_INPUTS[2:]
        user_input = _fill(rng, rng.choice(choices), facts)
    output = code
    if rng.random() < 0.3:
        output = _fill(rng, rng.choice(_CODE_HEADERS), facts) + "\n" + output
    if example and rng.random() < 0.5:
        output += f'\n\n\nif __name__ == "__main__":\n    {example}'
    return CodeSample(instruction, user_input, output + "\n")


_ALL_CODE_SPECS = _ALGORITHM_SPECS + _CLASS_SPECS + _ENTITY_SPECS
# Entity snippets vary most (30 entities x fields x keys), so they carry the largest share.
_WEIGHTED_CODE_SPECS = _ALGORITHM_SPECS + _CLASS_SPECS + _ENTITY_SPECS * 6


def _random_code_sample(rng: random.Random) -> CodeSample:
    return _code_sample(rng.choice(_WEIGHTED_CODE_SPECS), rng)


def _clean_code_samples(rng: random.Random, count: int) -> list[CodeSample]:
    return _distinct(rng, count, lambda i: _random_code_sample(rng), _code_content)


def _code_content(sample: CodeSample) -> str:
    return "\n".join(p for p in (sample.instruction, sample.input, sample.output) if p)


def _code_with_line(sample: CodeSample, line: str) -> CodeSample:
    """Prepend a module-level line (a constant or a comment) to the snippet; it stays valid Python."""
    return replace(sample, output=line + "\n" + sample.output)


_CODE_PII_LINES: dict[str, tuple[str, ...]] = {
    "email": ('MAINTAINER = "{first} <{value}>"', "# Questions: {value}"),
    "phone": ('SUPPORT_LINE = "{value}"', "# On-call phone: {value}"),
    "credit_card": ('TEST_CARD = "{value}"',),
    "ipv4": ('DEFAULT_HOST = "{value}"', "# Staging database at {value}"),
    "ipv6": ('FALLBACK_HOST = "{value}"',),
    "ssn": ('SAMPLE_ROW = {{"name": "{first}", "ssn": "{value}"}}',),
    "iban": ('PAYOUT_ACCOUNT = "{value}"',),
    "secret_sk": ('OPENAI_API_KEY = "{value}"',),
    "secret_akia": ('AWS_ACCESS_KEY_ID = "{value}"',),
    "secret_ghp": ('GITHUB_TOKEN = "{value}"',),
}
_CODE_BAIT_LINES = (
    "# Verified on Python 3.11.7 on {date}.",
    '__version__ = "{version}"',
    "# Ported from upstream commit {sha}.",
    "TOLERANCE = {decimal}",
    'RELEASED = "{date}"  # build {short_sha}',
)


def _code_pii(sample: CodeSample, kind: str, rng: random.Random) -> CodeSample:
    line = rng.choice(_CODE_PII_LINES[kind]).format(
        value=_pii_value(kind, rng), first=rng.choice(FIRST_NAMES)
    )
    return _code_with_line(sample, line)


def _code_bait(sample: CodeSample, rng: random.Random) -> CodeSample:
    return _code_with_line(sample, rng.choice(_CODE_BAIT_LINES).format(**_bait_facts(rng)))


def _code_too_short(rng: random.Random, i: int) -> CodeSample:
    return CodeSample(_TOO_SHORT[i % len(_TOO_SHORT)], "", ("pass", "x = 1", "...")[i % 3])


def _code_repetitive(rng: random.Random, i: int) -> CodeSample:
    words = _repetitive_text(rng, i)
    return CodeSample(words, "", f"# {words}\npass\n")


def _code_mojibake(rng: random.Random, i: int) -> CodeSample:
    base = _random_code_sample(rng)
    garbled = _mojibake_text(base.instruction, rng)
    note = _mojibake("# Don’t rename: the café’s “legacy” résumé parser calls this.")
    return CodeSample(garbled, base.input, note + "\n" + base.output)


def _code_unsafe(rng: random.Random, category: str) -> CodeSample:
    base = _random_code_sample(rng)
    return replace(base, instruction=base.instruction + " " + _unsafe_sentence(category, rng))


def _code_recased(sample: CodeSample, rng: random.Random) -> CodeSample:
    # Only the prose changes case; trailing blanks on code lines keep it valid Python.
    output = "\n".join(line + "  " for line in sample.output.split("\n"))
    return CodeSample(_recased(sample.instruction, rng), sample.input, output)


def _code_near_copy(sample: CodeSample, rng: random.Random) -> CodeSample:
    # The opening verb changes ("Write" -> "Create"): the first word sits in a single shingle.
    first, rest = sample.instruction.split(" ", 1)
    verb = rng.choice([v for v in ("Write", "Create", "Implement", "Draft", "Produce") if v != first])
    return replace(sample, instruction=f"{verb} {rest}")


# --- analysis: question, context, worked answer ---------------------------------------------------


@dataclass(frozen=True)
class AnalysisSample:
    question: str
    context: str
    answer: str


_DEPARTMENTS = _words(
    "finance operations marketing research sales logistics product strategy planning quality"
)
_INDUSTRIES = (
    "logistics", "food processing", "outdoor equipment", "software", "textile", "biotech", "renewable energy",
    "furniture", "ceramics", "regional airline", "brewing", "publishing", "medical devices", "water utility",
)  # fmt: skip
_INTROS = (
    "{person}, an analyst in the {dept} team at {company}, compiled these figures.",
    "The {dept} department of {company}, a {industry} firm based in {town}, shared the following data.",
    "A quarterly review at {company} in {town} summarised the numbers below.",
    "{person} prepared this brief for the board of {company}.",
    "The following comes from an internal memo at {company}, a mid-sized {industry} business.",
    "Figures from the {town} office of {company} were collected by {person}.",
    "During a planning session in {town}, the {dept} lead at {company} presented these numbers.",
    "An audit note written by {person} for {company} states the following.",
    "A {industry} cooperative in {town} reported the data below to its members.",
    "The {dept} dashboard that {company} keeps for {town} showed these values last {season}.",
)  # fmt: skip
_SCIENCE_INTROS = (
    "Researchers at the {town} Institute of {field} recorded the measurements below.",
    "A field team led by {person} from the {town} {field} Station collected these data.",
    "In a lab course at {town} University, students in {field} measured the following.",
    "{person}, a doctoral student in {field}, logged these results over {num} days.",
    "A citizen-science project in {town} coordinated by {person} gathered the numbers below.",
)  # fmt: skip
_SCIENCE_FIELDS = (
    "Marine Biology", "Soil Science", "Materials Research", "Atmospheric Physics", "Plant Genetics",
    "Hydrology",
    "Ecology", "Analytical Chemistry", "Glaciology", "Entomology",
)  # fmt: skip
_DISTRACTORS = (
    "Headcount stayed at about {big} over the period.",
    "The figures exclude a one-off grant received in {month}.",
    "All values are rounded to one decimal place.",
    "Data for {town2} are reported separately and not included here.",
    "The numbers were reviewed by {person2} before release.",
    "A new reporting system was introduced in {month}, but definitions did not change.",
    "Seasonal effects are known to be small for this measure.",
    "Two smaller sites closed in {season}, which the team considers immaterial.",
)  # fmt: skip
_CAVEATS = (
    "This assumes the figures are measured the same way in both periods.",
    "A longer series would be needed to say whether the trend will hold.",
    "Rounding in the source data could move the result by a few tenths of a point.",
    "The calculation ignores inflation, which would reduce the real change.",
    "It would be worth checking whether one unusual month drives the result.",
    "With so few data points, the figure should be read as indicative rather than precise.",
    "Comparing against a peer group in {town2} would show whether this is unusual.",
)  # fmt: skip


def _r(x: float, digits: int = 1) -> str:
    return f"{x:,.{digits}f}"


def _analysis_frame(rng: random.Random, body: str, science: bool = False) -> str:
    facts = {
        "dept": rng.choice(_DEPARTMENTS),
        "industry": rng.choice(_INDUSTRIES),
        "field": rng.choice(_SCIENCE_FIELDS),
    }
    intro = _fill(rng, rng.choice(_SCIENCE_INTROS if science else _INTROS), facts)
    parts = [intro, body]
    if rng.random() < 0.6:
        parts.append(_fill(rng, rng.choice(_DISTRACTORS), facts))
    return " ".join(parts)


def _with_caveat(rng: random.Random, answer: str) -> str:
    caveat = _fill(rng, rng.choice(_CAVEATS), {}) if rng.random() < 0.7 else ""
    return f"{answer} {caveat}".strip()


def _growth(rng: random.Random) -> AnalysisSample:
    metric = rng.choice(
        (
            "revenue",
            "subscription income",
            "export sales",
            "online sales",
            "service revenue",
            "licensing income",
            "wholesale turnover",
            "membership fees",
        )
    )
    cur = rng.choice(CURRENCIES)
    y1 = rng.randint(2012, 2022)
    a = round(rng.uniform(1.5, 60), 1)
    b = round(a * (1 + rng.uniform(-0.3, 0.7)), 1)
    if b == a:
        b = round(a + 0.4, 1)
    rate = (b - a) / a
    context = _analysis_frame(
        rng, f"{metric.capitalize()} came to {a}M {cur} in {y1} and {b}M {cur} in {y1 + 1}."
    )
    question = rng.choice(
        (
            f"What is the growth rate of {metric} from {y1} to {y1 + 1}?",
            f"By what percentage did {metric} change between {y1} and {y1 + 1}?",
            f"How much did {metric} grow in relative terms over the year?",
        )
    )
    verb = "grew" if rate > 0 else "fell"
    answer = (
        f"The change is {b} - {a} = {b - a:.1f}M {cur}. Dividing by the starting value gives "
        f"{b - a:.1f} / {a} = {rate:.3f}, so {metric} {verb} by about {abs(rate) * 100:.1f}%."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _cagr(rng: random.Random) -> AnalysisSample:
    what = rng.choice(
        (
            "annual visitors",
            "active users",
            "tonnes shipped",
            "patents filed",
            "households served",
            "solar capacity in megawatts",
            "library loans",
        )
    )
    years = rng.randint(3, 9)
    start = rng.randint(1_000, 90_000)
    end = int(start * (1 + rng.uniform(0.02, 0.25)) ** years)
    y0 = rng.randint(2005, 2014)
    cagr = (end / start) ** (1 / years) - 1
    context = _analysis_frame(
        rng, f"The count of {what} rose from {start:,} in {y0} to {end:,} in {y0 + years}."
    )
    question = rng.choice(
        (
            f"What is the compound annual growth rate of {what} over the period?",
            f"Estimate the average yearly growth rate (CAGR) of {what} between {y0} and {y0 + years}.",
        )
    )
    answer = (
        f"Over {years} years the ratio is {end:,} / {start:,} = {end / start:.3f}. Taking the "
        f"{years}th root gives {(end / start) ** (1 / years):.4f}, so the CAGR is about "
        f"{cagr * 100:.1f}% per year."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _segment_share(rng: random.Random) -> AnalysisSample:
    names = rng.sample(
        (
            "retail",
            "wholesale",
            "online",
            "export",
            "services",
            "licensing",
            "catering",
            "repairs",
            "rentals",
            "training",
            "subscriptions",
            "events",
        ),
        rng.randint(3, 5),
    )
    values = [round(rng.uniform(0.4, 25), 1) for _ in names]
    cur = rng.choice(CURRENCIES)
    target = rng.randrange(len(names))
    total = sum(values)
    listing = "; ".join(f"{n}: {v}M {cur}" for n, v in zip(names, values, strict=False))
    context = _analysis_frame(rng, f"Revenue by segment last year was {listing}.")
    question = rng.choice(
        (
            f"What share of total revenue came from {names[target]}?",
            f"What percentage of the total does the {names[target]} segment represent?",
        )
    )
    answer = (
        f"Total revenue is {' + '.join(str(v) for v in values)} = {total:.1f}M {cur}. The "
        f"{names[target]} segment contributed {values[target]}M, so its share is {values[target]} / "
        f"{total:.1f} = {values[target] / total * 100:.1f}%."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _mean_series(rng: random.Random) -> AnalysisSample:
    unit, what = rng.choice(
        (
            ("kWh", "electricity use"),
            ("orders", "order volume"),
            ("mm", "rainfall"),
            ("calls", "support calls"),
            ("visits", "clinic visits"),
            ("kg", "waste collected"),
        )
    )
    months = rng.sample(MONTHS, rng.randint(4, 6))
    values = [rng.randint(40, 2_000) for _ in months]
    listing = ", ".join(f"{m} {v:,} {unit}" for m, v in zip(months, values, strict=False))
    context = _analysis_frame(rng, f"Monthly {what} was recorded as follows: {listing}.")
    question = rng.choice((f"What was the average monthly {what}?", f"Compute the mean {what} per month."))
    answer = (
        f"The sum is {sum(values):,} {unit} over {len(values)} months, so the mean is {sum(values):,} "
        f"/ {len(values)} = {sum(values) / len(values):,.1f} {unit} per month. The highest month was "
        f"{months[values.index(max(values))]} and the lowest {months[values.index(min(values))]}."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _median(rng: random.Random) -> AnalysisSample:
    what, unit = rng.choice(
        (
            ("delivery times", "hours"),
            ("response times", "minutes"),
            ("batch weights", "grams"),
            ("commute times", "minutes"),
            ("reaction times", "milliseconds"),
        )
    )
    values = [rng.randint(5, 400) for _ in range(rng.randint(5, 9))]
    ordered = sorted(values)
    n = len(ordered)
    median = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    context = _analysis_frame(
        rng, f"A sample of {what} in {unit}: {', '.join(map(str, values))}.", science=rng.random() < 0.4
    )
    question = rng.choice(
        (f"What is the median of these {what}?", f"Find the median value of the sampled {what}.")
    )
    how = (
        f"the middle (position {n // 2 + 1}) value is {median}"
        if n % 2
        else f"the two middle values are {ordered[n // 2 - 1]} and {ordered[n // 2]}, whose average is "
        f"{median}"
    )
    answer = (
        f"Sorted, the {n} values are {', '.join(map(str, ordered))}. With {n} values {how} {unit}. The "
        f"mean, {sum(values) / n:.1f}, is {'above' if sum(values) / n > median else 'below'} the "
        f"median."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _ab_test(rng: random.Random) -> AnalysisSample:
    change = rng.choice(
        (
            "a shorter checkout form",
            "a new product photo layout",
            "free-shipping banners",
            "a simplified sign-up page",
            "personalised recommendations",
            "a green call-to-action button",
        )
    )
    va, vb = rng.randint(2_000, 40_000), rng.randint(2_000, 40_000)
    ca = int(va * rng.uniform(0.01, 0.12))
    cb = int(vb * rng.uniform(0.01, 0.12))
    ra, rb = ca / va, cb / vb
    context = _analysis_frame(
        rng,
        f"An A/B test compared the current page (A) with {change} (B). Variant A "
        f"had {va:,} visitors and {ca:,} conversions; variant B had {vb:,} "
        f"visitors and {cb:,} conversions.",
    )
    question = rng.choice(
        (
            "Which variant converted better, and by how much?",
            "What are the conversion rates and the relative lift of B over A?",
        )
    )
    better = "B" if rb > ra else "A"
    answer = (
        f"A converts at {ca:,} / {va:,} = {ra * 100:.2f}% and B at {cb:,} / {vb:,} = {rb * 100:.2f}%. "
        f"The absolute difference is {(rb - ra) * 100:+.2f} percentage points, a relative change of "
        f"{(rb - ra) / ra * 100:+.1f}% for B versus A, so variant {better} performed better."
    )
    answer += " A significance test should confirm the gap before rolling it out."
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _break_even(rng: random.Random) -> AnalysisSample:
    product = rng.choice(NOUNS)
    fixed = rng.randint(20, 900) * 1_000
    price = round(rng.uniform(8, 250), 2)
    var = round(price * rng.uniform(0.3, 0.8), 2)
    cur = rng.choice(CURRENCIES)
    units = fixed / (price - var)
    context = _analysis_frame(
        rng,
        f"A new {product} line has fixed costs of {fixed:,} {cur} per year. Each unit "
        f"sells for {price} {cur} and costs {var} {cur} to make and ship.",
    )
    question = rng.choice(
        (
            "How many units must be sold to break even?",
            f"What is the break-even volume for the {product} line?",
        )
    )
    answer = (
        f"Each unit contributes {price} - {var} = {price - var:.2f} {cur} towards fixed costs. "
        f"Break-even volume is {fixed:,} / {price - var:.2f} = {units:,.1f}, so about "
        f"{int(units) + 1:,} units a year."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _margin(rng: random.Random) -> AnalysisSample:
    cur = rng.choice(CURRENCIES)
    revenue = round(rng.uniform(2, 80), 1)
    cogs = round(revenue * rng.uniform(0.35, 0.9), 1)
    opex = round((revenue - cogs) * rng.uniform(0.2, 1.1), 1)
    context = _analysis_frame(
        rng,
        f"Revenue was {revenue}M {cur}, cost of goods sold {cogs}M {cur} and operating "
        f"expenses {opex}M {cur}.",
    )
    question = rng.choice(
        (
            "What are the gross and operating margins?",
            "Compute gross margin and operating margin as percentages.",
        )
    )
    gross = revenue - cogs
    operating = gross - opex
    answer = (
        f"Gross profit is {revenue} - {cogs} = {gross:.1f}M, a gross margin of "
        f"{gross / revenue * 100:.1f}%. Subtracting operating expenses leaves {operating:.1f}M, an "
        f"operating margin of {operating / revenue * 100:.1f}%."
    )
    if operating < 0:
        answer += " The business is making an operating loss."
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _per_capita(rng: random.Random) -> AnalysisSample:
    town = _town(rng)
    pop = rng.randint(4_000, 400_000)
    what, unit = rng.choice(
        (
            ("water consumption", "litres per day"),
            ("household waste", "tonnes per year"),
            ("library budget", "EUR per year"),
            ("bus journeys", "trips per year"),
        )
    )
    total = pop * rng.uniform(0.05, 180)
    distractor = _fill(rng, rng.choice(_DISTRACTORS), {})
    context = f"{town} has {pop:,} residents. Its total {what} is {total:,.0f} {unit}. {distractor}"
    question = rng.choice(
        (f"What is the {what} per resident in {town}?", f"Express {town}'s {what} per capita.")
    )
    answer = f"Per capita {what} is {total:,.0f} / {pop:,} = {total / pop:,.2f} {unit} per resident."
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _weighted_average(rng: random.Random) -> AnalysisSample:
    commodity = rng.choice(("coffee", "cocoa", "wool", "copper", "barley", "paper pulp", "olive oil", "rice"))
    lots = [(rng.randint(5, 200), round(rng.uniform(1, 30), 2)) for _ in range(rng.randint(3, 4))]
    cur = rng.choice(CURRENCIES)
    listing = "; ".join(f"{q} tonnes at {p} {cur}/kg" for q, p in lots)
    total_q = sum(q for q, _ in lots)
    avg = sum(q * p for q, p in lots) / total_q
    context = _analysis_frame(rng, f"Purchases of {commodity} this {rng.choice(SEASONS)}: {listing}.")
    question = rng.choice(
        (
            "What was the weighted average price paid?",
            f"What is the volume-weighted average {commodity} price?",
        )
    )
    answer = (
        f"Weighting each price by tonnage: ({' + '.join(f'{q}x{p}' for q, p in lots)}) / {total_q} = "
        f"{sum(q * p for q, p in lots):,.2f} / {total_q} = {avg:.2f} {cur}/kg. A simple average of the "
        f"prices would give {sum(p for _, p in lots) / len(lots):.2f}, which ignores the different "
        f"volumes."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _largest_jump(rng: random.Random) -> AnalysisSample:
    what = rng.choice(
        (
            "new subscribers",
            "app downloads",
            "guest nights",
            "parcels handled",
            "trees planted",
            "tickets sold",
        )
    )
    start = rng.randrange(12)
    months = [MONTHS[(start + i) % 12] for i in range(rng.randint(5, 7))]
    values = [rng.randint(100, 9_000) for _ in months]
    diffs = [b - a for a, b in zip(values, values[1:], strict=False)]
    i = max(range(len(diffs)), key=lambda j: diffs[j])
    listing = ", ".join(f"{m}: {v:,}" for m, v in zip(months, values, strict=False))
    context = _analysis_frame(rng, f"Monthly {what}: {listing}.")
    question = rng.choice(
        (
            "Which month saw the largest increase over the previous month?",
            f"Between which consecutive months did {what} rise the most?",
        )
    )
    answer = (
        f"The month-on-month changes are {', '.join(f'{d:+,}' for d in diffs)}. The largest is "
        f"{diffs[i]:+,}, from {months[i]} ({values[i]:,}) to {months[i + 1]} ({values[i + 1]:,})."
    )
    if diffs[i] <= 0:
        answer += f" Every month declined, so {months[i + 1]} simply had the smallest drop."
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _percent_error(rng: random.Random) -> AnalysisSample:
    quantity, unit, true = rng.choice(
        (
            ("the density of aluminium", "g/cm3", 2.70),
            ("the boiling point of ethanol", "C", 78.4),
            ("gravitational acceleration", "m/s2", 9.81),
            ("the speed of sound in air", "m/s", 343.0),
            ("the specific heat of water", "J/gK", 4.18),
            ("the density of copper", "g/cm3", 8.96),
        )
    )
    trials = [round(true * rng.uniform(0.9, 1.1), 2) for _ in range(rng.randint(3, 5))]
    mean = sum(trials) / len(trials)
    context = _analysis_frame(
        rng,
        f"Repeated measurements of {quantity} gave {', '.join(map(str, trials))} "
        f"{unit}. The accepted value is {true} {unit}.",
        science=True,
    )
    question = rng.choice(
        (
            "What is the percent error of the mean measurement?",
            "How far is the average result from the accepted value, in percent?",
        )
    )
    answer = (
        f"The mean is ({' + '.join(map(str, trials))}) / {len(trials)} = {mean:.3f} {unit}. Percent "
        f"error is |{mean:.3f} - {true}| / {true} x 100 = {abs(mean - true) / true * 100:.2f}%. The "
        f"spread of the trials, {min(trials)} to {max(trials)}, suggests "
        f"{'mostly random' if max(trials) - min(trials) > abs(mean - true) else 'a systematic'} error."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _expected_defects(rng: random.Random) -> AnalysisSample:
    item = rng.choice(NOUNS)
    rate = round(rng.uniform(0.2, 6), 2)
    batch = rng.randint(500, 80_000)
    context = _analysis_frame(
        rng,
        f"Quality control found a defect rate of {rate}% for {item} components. The "
        f"next batch holds {batch:,} units.",
    )
    question = rng.choice(
        (
            "How many defective units should be expected in the batch?",
            "Estimate the number of faulty components in the next batch.",
        )
    )
    answer = (
        f"Expected defects = {batch:,} x {rate}% = {batch:,} x {rate / 100:.4f} = "
        f"{batch * rate / 100:,.1f}, so plan for roughly {round(batch * rate / 100):,} defective "
        f"units."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _inventory_turnover(rng: random.Random) -> AnalysisSample:
    cur = rng.choice(CURRENCIES)
    cogs = round(rng.uniform(5, 120), 1)
    inv_a, inv_b = round(rng.uniform(1, 30), 1), round(rng.uniform(1, 30), 1)
    avg = (inv_a + inv_b) / 2
    turns = cogs / avg
    context = _analysis_frame(
        rng,
        f"Annual cost of goods sold was {cogs}M {cur}. Inventory was {inv_a}M {cur} at "
        f"the start of the year and {inv_b}M {cur} at the end.",
    )
    question = rng.choice(
        (
            "What is the inventory turnover, and how many days of stock does it imply?",
            "How quickly does inventory turn over?",
        )
    )
    answer = (
        f"Average inventory is ({inv_a} + {inv_b}) / 2 = {avg:.2f}M. Turnover is {cogs} / {avg:.2f} = "
        f"{turns:.2f} times a year, which is about 365 / {turns:.2f} = {365 / turns:.0f} days of stock "
        f"on hand."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _survey(rng: random.Random) -> AnalysisSample:
    topic = rng.choice(
        (
            "a new park layout",
            "extended library hours",
            "a four-day school week",
            "car-free Sundays",
            "a merged bus route",
            "a community orchard",
            "later market closing times",
        )
    )
    support, oppose, undecided = (rng.randint(20, 900) for _ in range(3))
    total = support + oppose + undecided
    context = _analysis_frame(
        rng,
        f"A survey in {_town(rng)} asked residents about {topic}. {support} said "
        f"they support it, {oppose} oppose it and {undecided} are undecided.",
    )
    question = rng.choice(
        (
            "What percentage supports the proposal, and what is the margin over opposition?",
            "By how many percentage points does support lead or trail opposition?",
        )
    )
    s, o = support / total * 100, oppose / total * 100
    swing = undecided > abs(support - oppose)
    decisive = "enough to change the outcome" if swing else "not enough to close the gap"
    answer = (
        f"There are {total:,} responses. Support is {support} / {total} = {s:.1f}% and opposition "
        f"{oppose} / {total} = {o:.1f}%, a gap of {s - o:+.1f} points; {undecided / total * 100:.1f}% "
        f"are undecided, {decisive}."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _churn(rng: random.Random) -> AnalysisSample:
    start = rng.randint(800, 60_000)
    lost = int(start * rng.uniform(0.01, 0.2))
    new = int(start * rng.uniform(0.01, 0.3))
    context = _analysis_frame(
        rng,
        f"The quarter began with {start:,} customers. During the quarter {new:,} new "
        f"customers signed up and {lost:,} cancelled.",
    )
    question = rng.choice(
        ("What was the churn rate for the quarter?", "Compute quarterly churn and net customer growth.")
    )
    end = start + new - lost
    answer = (
        f"Churn is cancellations divided by the starting base: {lost:,} / {start:,} = "
        f"{lost / start * 100:.2f}%. The quarter ends with {start:,} + {new:,} - {lost:,} = {end:,} "
        f"customers, net growth of {(end - start) / start * 100:+.2f}%."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _speed(rng: random.Random) -> AnalysisSample:
    animal = rng.choice(
        (
            "a tagged grey seal",
            "a satellite-tracked stork",
            "a migrating eel",
            "a radio-collared wolf",
            "a monarch butterfly cohort",
            "a tagged bluefin tuna",
            "a ringed swift",
        )
    )
    km = rng.randint(40, 6_000)
    days = rng.randint(2, 60)
    context = _analysis_frame(
        rng, f"Tracking data show {animal} travelled {km:,} km in {days} days.", science=True
    )
    question = rng.choice(
        (
            "What was the average distance covered per day?",
            "Estimate the average speed in km per day and km per hour.",
        )
    )
    answer = (
        f"Average daily distance is {km:,} / {days} = {km / days:,.1f} km per day, or "
        f"{km / days / 24:.2f} km/h averaged over the whole time, rests included."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _dilution(rng: random.Random) -> AnalysisSample:
    solute = rng.choice(
        ("sodium chloride", "glucose", "copper sulfate", "ethanol", "acetic acid", "potassium nitrate")
    )
    c1 = round(rng.uniform(0.5, 6), 2)
    c2 = round(c1 * rng.uniform(0.05, 0.6), 3)
    v2 = rng.choice((100, 250, 500, 1000, 2000))
    v1 = c2 * v2 / c1
    context = _analysis_frame(
        rng,
        f"A stock solution of {solute} is {c1} mol/L. The protocol needs {v2} mL at {c2} mol/L.",
        science=True,
    )
    question = rng.choice(
        (
            "How much stock solution is needed?",
            "What volume of stock should be diluted to make the working solution?",
        )
    )
    answer = (
        f"Using C1V1 = C2V2: V1 = {c2} x {v2} / {c1} = {v1:.1f} mL of stock, topped up with "
        f"{v2 - v1:.1f} mL of solvent to reach {v2} mL."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _roi(rng: random.Random) -> AnalysisSample:
    project = rng.choice(
        (
            "warehouse automation",
            "a staff training scheme",
            "rooftop solar panels",
            "a new CRM system",
            "a marketing campaign",
            "delivery route software",
        )
    )
    cur = rng.choice(CURRENCIES)
    cost = rng.randint(20, 2_000) * 1_000
    gain = int(cost * rng.uniform(0.6, 2.5))
    years = rng.randint(1, 5)
    context = _analysis_frame(
        rng,
        f"{project.capitalize()} cost {cost:,} {cur} and is expected to return "
        f"{gain:,} {cur} in total over {years} years.",
    )
    question = rng.choice(
        (f"What is the return on investment of {project}?", "Compute the ROI and the simple annual return.")
    )
    roi = (gain - cost) / cost
    answer = (
        f"ROI = ({gain:,} - {cost:,}) / {cost:,} = {roi * 100:.1f}%. Spread evenly over {years} "
        f"year(s) that is a simple {roi / years * 100:.1f}% per year."
    )
    if roi < 0:
        answer += " The project does not pay back its cost."
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _half_life(rng: random.Random) -> AnalysisSample:
    isotope = rng.choice(
        (
            "a tracer isotope",
            "iodine-131",
            "a medical contrast agent",
            "a soil pesticide",
            "caffeine in the body",
        )
    )
    half = rng.randint(2, 40)
    elapsed = half * rng.randint(1, 5) + rng.choice((0, half // 2))
    amount = rng.randint(50, 900)
    left = amount * 0.5 ** (elapsed / half)
    context = _analysis_frame(
        rng,
        f"A sample contains {amount} mg of {isotope}, which has a half-life of {half} hours.",
        science=True,
    )
    question = f"How much remains after {elapsed} hours?"
    answer = (
        f"{elapsed} hours is {elapsed / half:.2f} half-lives. Remaining = {amount} x "
        f"0.5^{elapsed / half:.2f} = {left:.1f} mg, or {left / amount * 100:.1f}% of the original."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _market_share(rng: random.Random) -> AnalysisSample:
    company = _company(rng)
    a = round(rng.uniform(3, 40), 1)
    b = round(a + rng.uniform(-6, 8), 1)
    context = _analysis_frame(
        rng, f"{company} held {a}% of its regional market two years ago and {b}% this year."
    )
    question = rng.choice(
        (
            f"How much did {company}'s market share change?",
            "Express the change in percentage points and in relative terms.",
        )
    )
    answer = (
        f"The change is {b} - {a} = {b - a:+.1f} percentage points. Relative to the starting share "
        f"that is {(b - a) / a * 100:+.1f}%. Percentage points and percent should not be confused: the "
        f"first compares shares, the second scales by the base."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _energy_saving(rng: random.Random) -> AnalysisSample:
    site = rng.choice(
        (
            "the main depot",
            "a cold-storage warehouse",
            "the head office",
            "a bakery",
            "a school campus",
            "a data room",
        )
    )
    before = rng.randint(20_000, 900_000)
    after = int(before * rng.uniform(0.55, 0.97))
    price = round(rng.uniform(0.08, 0.35), 3)
    cur = rng.choice(CURRENCIES)
    context = _analysis_frame(
        rng,
        f"After an efficiency retrofit at {site}, annual electricity use went from "
        f"{before:,} kWh to {after:,} kWh. Power costs {price} {cur} per kWh.",
    )
    question = rng.choice(
        (
            "What is the percentage reduction and the annual saving?",
            "How much energy and money does the retrofit save each year?",
        )
    )
    saved = before - after
    answer = (
        f"Energy saved is {before:,} - {after:,} = {saved:,} kWh, a {saved / before * 100:.1f}% "
        f"reduction. At {price} {cur}/kWh that is {saved * price:,.0f} {cur} a year."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _productivity(rng: random.Random) -> AnalysisSample:
    lines = rng.sample(
        ("Line A", "Line B", "Line C", "the night shift", "the day shift", "the pilot cell"), 2
    )
    units = [rng.randint(500, 20_000) for _ in lines]
    hours = [rng.randint(40, 900) for _ in lines]
    context = _analysis_frame(
        rng,
        f"{lines[0]} produced {units[0]:,} units in {hours[0]} labour hours; "
        f"{lines[1]} produced {units[1]:,} units in {hours[1]} labour hours.",
    )
    question = rng.choice(
        (
            "Which is more productive per labour hour, and by how much?",
            "Compare units per labour hour for the two.",
        )
    )
    p = [u / h for u, h in zip(units, hours, strict=False)]
    best = 0 if p[0] > p[1] else 1
    answer = (
        f"{lines[0]} makes {units[0]:,} / {hours[0]} = {p[0]:.1f} units per hour and {lines[1]} makes "
        f"{units[1]:,} / {hours[1]} = {p[1]:.1f}. {lines[best]} is more productive by "
        f"{abs(p[0] - p[1]):.1f} units per hour ({abs(p[0] - p[1]) / min(p) * 100:.0f}% higher)."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _elasticity(rng: random.Random) -> AnalysisSample:
    product = rng.choice(
        ("a cinema ticket", "a monthly gym pass", "a bus fare", "a coffee subscription", "a paperback novel")
    )
    cur = rng.choice(CURRENCIES)
    p1 = round(rng.uniform(2, 60), 2)
    p2 = round(p1 * rng.uniform(1.03, 1.4), 2)
    q1 = rng.randint(1_000, 50_000)
    q2 = int(q1 * rng.uniform(0.5, 0.99))
    dq, dp = (q2 - q1) / q1, (p2 - p1) / p1
    e = dq / dp
    context = _analysis_frame(
        rng,
        f"When the price of {product} rose from {p1} to {p2} {cur}, monthly sales went "
        f"from {q1:,} to {q2:,}.",
    )
    question = rng.choice(
        ("What is the price elasticity of demand?", "Is demand elastic or inelastic over this price change?")
    )
    answer = (
        f"Quantity changed by {dq * 100:.1f}% and price by {dp * 100:.1f}%, so elasticity is "
        f"{dq * 100:.1f} / {dp * 100:.1f} = {e:.2f}. Since |{e:.2f}| is "
        f"{'greater' if abs(e) > 1 else 'less'} than 1, demand is "
        f"{'elastic' if abs(e) > 1 else 'inelastic'} here."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


def _doubling(rng: random.Random) -> AnalysisSample:
    what = rng.choice(
        (
            "the town's population",
            "the bacterial culture",
            "the fund's assets",
            "the number of charging points",
            "the bee colony count",
        )
    )
    g = round(rng.uniform(0.8, 14), 1)
    context = _analysis_frame(
        rng, f"Over recent years {what} has grown at a steady {g}% per year.", science=rng.random() < 0.5
    )
    question = rng.choice(("Roughly how long until it doubles?", f"Estimate the doubling time of {what}."))
    rule_of_70 = 70 / g
    answer = (
        f"By the rule of 70, doubling time is about 70 / {g} = {rule_of_70:.1f} years. The exact "
        f"value, ln 2 / ln(1 + {g / 100:.3f}), is close to that for rates this small."
    )
    return AnalysisSample(question, context, _with_caveat(rng, answer))


_ANALYSIS_TEMPLATES: tuple[Callable[[random.Random], AnalysisSample], ...] = (
    _growth, _cagr, _segment_share, _mean_series, _median, _ab_test, _break_even, _margin, _per_capita,
    _weighted_average, _largest_jump, _percent_error, _expected_defects, _inventory_turnover, _survey, _churn,
    _speed, _dilution, _roi, _half_life, _market_share, _energy_saving, _productivity, _elasticity, _doubling,
)  # fmt: skip


def _analysis_content(sample: AnalysisSample) -> str:
    return "\n".join((sample.question, sample.context, sample.answer))


def _clean_analysis_samples(rng: random.Random, count: int) -> list[AnalysisSample]:
    return _distinct(
        rng, count, lambda i: _ANALYSIS_TEMPLATES[i % len(_ANALYSIS_TEMPLATES)](rng), _analysis_content
    )


def _analysis_with_sentence(sample: AnalysisSample, sentence: str) -> AnalysisSample:
    return replace(sample, context=f"{sample.context} {sentence}")


def _analysis_too_short(rng: random.Random, i: int) -> AnalysisSample:
    return AnalysisSample(_TOO_SHORT[(i + 3) % len(_TOO_SHORT)], "", ("Yes.", "42", "Up.")[i % 3])


def _analysis_repetitive(rng: random.Random, i: int) -> AnalysisSample:
    return AnalysisSample("What is the trend?", _repetitive_text(rng, i), _repetitive_text(rng, i + 1))


def _analysis_mojibake(rng: random.Random, i: int) -> AnalysisSample:
    base = rng.choice(_ANALYSIS_TEMPLATES)(rng)
    return replace(base, context=_mojibake_text(base.context, rng), answer=_mojibake_text(base.answer, rng))


def _analysis_unsafe(rng: random.Random, category: str) -> AnalysisSample:
    return _analysis_with_sentence(rng.choice(_ANALYSIS_TEMPLATES)(rng), _unsafe_sentence(category, rng))


def _analysis_recased(sample: AnalysisSample, rng: random.Random) -> AnalysisSample:
    return AnalysisSample(
        _recased(sample.question, rng), _recased(sample.context, rng), _recased(sample.answer, rng)
    )


def _analysis_near_copy(sample: AnalysisSample, rng: random.Random) -> AnalysisSample:
    return replace(sample, answer=_with_words_changed(sample.answer, rng, 1))


# --- summarization: articles built from facts, summaries from the same facts ----------------------


@dataclass(frozen=True)
class ArticleSample:
    title: str
    article: str
    summary: str


@dataclass(frozen=True)
class _Topic:
    """A news story shape. Lead and key sentences always appear, so a summary built from the same
    facts can only state what the article says; body sentences are sampled for length and variety."""

    facts: Callable[[random.Random], dict[str, str]]
    titles: tuple[str, ...]
    leads: tuple[str, ...]
    keys: tuple[str, ...]
    body: tuple[str, ...]
    summaries: tuple[str, ...]


_RIVERS = _words("Esk Wenn Arle Tarrow Lune Callan Brede Ouselet Fray Kellow Mardle Skerry")


def _council_facts(rng: random.Random) -> dict[str, str]:
    project, short = rng.choice((
        ("a pedestrian bridge over the River {river}", "the footbridge"),
        ("a new public library on {street}", "the library"),
        ("protected cycle lanes along {street}", "the cycle lanes"),
        ("a covered market hall beside the station", "the market hall"),
        ("a flood barrier along the harbour front", "the flood barrier"),
        ("a community solar farm on the old airfield", "the solar farm"),
        ("a youth sports centre on {street}", "the sports centre"),
        ("the restoration of the old corn exchange", "the restoration"),
        ("a tram extension to the hospital", "the tram extension"),
        ("a heat network for council housing", "the heat network"),
    ))  # fmt: skip
    votes_for = rng.randint(14, 40)
    street = _street(rng)
    return {
        "town": _town(rng), "street": street, "river": rng.choice(_RIVERS),
        "project": project.format(river=rng.choice(_RIVERS), street=street), "project_short": short,
        "votes_for": str(votes_for), "votes_against": str(rng.randint(1, votes_for - 2)),
        "budget": f"{rng.uniform(0.8, 95):.1f}", "currency": rng.choice(CURRENCIES),
        "year_done": str(rng.randint(2026, 2033)),
        "start_month": rng.choice(MONTHS), "councillor": _person(rng), "opponent": _person(rng),
        "hours": str(rng.randint(2, 7)),
        "benefit": rng.choice(("bring more visitors into the centre",
                               "cut journey times for thousands of commuters",
                               "protect low-lying streets from winter floods",
                               "give teenagers somewhere safe to go", "lower heating bills for tenants",
                               "revive a neglected corner of town")),
        "alt": rng.choice(("road repairs", "social care", "school buildings", "street lighting",
                           "bus subsidies")),
        "mitigation": rng.choice(("double glazing", "free parking permits", "noise monitoring",
                                  "a hotline for complaints")),
    }  # fmt: skip


def _festival_facts(rng: random.Random) -> dict[str, str]:
    town = _town(rng)
    theme = rng.choice(
        (
            "Lantern",
            "Harvest",
            "Kite",
            "Folk Music",
            "Street Food",
            "Storytelling",
            "Jazz",
            "Puppet",
            "Cider",
            "Glassblowing",
        )
    )
    return {
        "town": town, "festival": f"the {town} {theme} Festival",
        "visitors": f"{rng.randint(3, 90) * 1000:,}",
        "days": str(rng.randint(2, 5)), "raised": f"{rng.randint(5, 300) * 1000:,}",
            "currency": rng.choice(CURRENCIES),
        "cause": rng.choice(("the local hospice", "a new lifeboat", "school music lessons", "the food bank",
                             "flood relief", "restoring the bandstand")),
        "founded": str(rng.randint(1951, 2015)), "organiser": _person(rng), "street": _street(rng),
        "headline": _expand(rng, rng.choice(("a brass band from {town2}",
                                             "a lantern procession across the harbour", "a {adj} puppet show",
                                             "a cookery contest judged by {person}",
                                             "fireworks over the {noun}"))),
        "supply": rng.choice(("programmes", "paper cups", "parking space", "bread", "volunteer T-shirts")),
    }  # fmt: skip


def _earnings_facts(rng: random.Random) -> dict[str, str]:
    change = rng.uniform(-18, 35)
    quarter = rng.choice(("first", "second", "third", "fourth"))
    return {
        "company": _company(rng), "industry": rng.choice(_INDUSTRIES), "town": _town(rng),
        "quarter_long": f"{quarter} quarter of {rng.randint(2019, 2025)}", "quarter": quarter,
        "revenue": f"{rng.uniform(12, 2400):.1f}", "currency": rng.choice(CURRENCIES),
        "direction": "up" if change >= 0 else "down", "change": f"{abs(change):.1f}",
        "profit": f"{rng.uniform(0.5, 180):.1f}", "ceo": _person(rng),
        "driver": rng.choice(("strong demand in export markets", "lower energy costs",
                              "a price increase in the spring", "the sale of a loss-making unit",
                              "higher volumes at its new plant")),
        "outlook": rng.choice(("slower growth for the rest of the year", "demand to stay firm into next year",
                               "margins to improve as costs ease",
                               "a difficult winter for its retail customers")),
        "share_move": rng.choice(("rose", "fell")), "share_pct": f"{rng.uniform(0.4, 9):.1f}",
    }  # fmt: skip


def _launch_facts(rng: random.Random) -> dict[str, str]:
    series = rng.choice(("X", "S", "Mini", "Pro", "One", "Go", "Trail"))
    model = f"{rng.choice(COMPANY_HEADS)} {series}{rng.randint(1, 9)}"
    return {
        "company": _company(rng), "product": model,
        "category": rng.choice(("e-bike", "water filter", "smart thermostat", "hiking boot",
                                "espresso grinder", "children's tablet", "electric outboard motor",
                                "solar lantern", "cargo trailer", "sleeping bag")),
        "price": f"{rng.randint(19, 2900)}", "currency": rng.choice(CURRENCIES),
            "launch_month": rng.choice(MONTHS),
        "feature1": rng.choice(("a replaceable battery", "a recycled aluminium frame", "an app-free setup",
                                "a ten-year guarantee")),
        "feature2": rng.choice(("weatherproof seals", "a modular design", "low standby power",
                                "a weight under two kilograms")),
        "designer": _person(rng), "town2": _town(rng), "markets": _join_and(rng.sample(
            ["Norway", "Portugal", "Canada", "Kenya", "Japan", "Chile", "Ireland", "Poland"], 3)),
    }  # fmt: skip


def _expansion_facts(rng: random.Random) -> dict[str, str]:
    return {
        "company": _company(rng), "site": _town(rng),
        "facility": rng.choice(("distribution centre", "battery plant", "research laboratory",
                                "industrial bakery", "customer service centre", "recycling plant",
                                "training campus")),
        "jobs": f"{rng.randint(40, 1800):,}", "investment": f"{rng.uniform(4, 600):.0f}",
            "currency": rng.choice(CURRENCIES),
        "open_year": str(rng.randint(2026, 2031)), "official": _person(rng),
        "former": rng.choice(("a disused rail yard", "former farmland", "the old brickworks",
                              "an empty retail park")),
        "green_feature": rng.choice(("solar panels on the roof", "rainwater harvesting",
                                     "a wildlife corridor", "heat pumps")),
    }  # fmt: skip


def _study_facts(rng: random.Random) -> dict[str, str]:
    finding, short = rng.choice((
        ("people who walked at least {n} minutes a day slept better", "daily walking to better sleep"),
        ("children who read aloud every day built their vocabulary faster",
         "reading aloud to faster vocabulary growth"),
        ("bees exposed to street lighting visited fewer flowers", "street lighting to fewer bee visits"),
        ("office workers near windows reported fewer headaches", "window seats to fewer headaches"),
        ("regular gardeners had more varied gut bacteria", "gardening to varied gut bacteria"),
        ("students who took handwritten notes remembered more a week later",
         "handwritten notes to better recall"),
        ("cows given access to rotating brushes produced more milk", "cow brushes to higher milk yields"),
        ("older adults who sang in choirs reported less loneliness", "choir singing to less loneliness"),
    ))  # fmt: skip
    town = _town(rng)
    return {
        "institution": rng.choice((f"the University of {town}", f"the {town} Institute of Technology",
                                   f"{town} Medical School")),
        "finding": finding.format(n=rng.randint(20, 45)), "short": short,
            "participants": f"{rng.randint(80, 12000):,}",
        "duration": str(rng.randint(3, 36)), "effect": str(rng.randint(4, 40)), "author": _person(rng),
        "journal": rng.choice(("Journal of Applied Wellbeing", "Northern Review of Ecology",
                               "Annals of Everyday Science", "Bulletin of Field Studies",
                               "Quarterly Journal of Behaviour")),
        "confounder": rng.choice(("smoking", "diet", "commuting distance", "prior health", "screen time")),
    }  # fmt: skip


def _discovery_facts(rng: random.Random) -> dict[str, str]:
    find = rng.choice(
        (
            "a new species of ground beetle",
            "a previously unknown orchid",
            "the wreck of a nineteenth-century schooner",
            "a hoard of Bronze Age bracelets",
            "a trail of fossil footprints",
            "a painted cave chamber",
            "a Roman milestone",
            "a colony of rare freshwater mussels",
        )
    )
    institution = rng.choice(
        (f"the University of {_town(rng)}", "the national museum", f"the {_town(rng)} Field Society")
    )
    return {
        "find": find, "town": _town(rng), "institution": institution,
        "age": rng.choice(("150", "2,800", "3,500", "1,900", "40,000", "120")),
        "decades": str(rng.randint(2, 9)),
        "finder": _person(rng),
        "place": rng.choice(("a flooded quarry", "a hillside farm", "the tidal flats", "a limestone ridge")),
    }  # fmt: skip


def _storm_facts(rng: random.Random) -> dict[str, str]:
    return {
        "name": rng.choice(FIRST_NAMES), "town": _town(rng), "rain": str(rng.randint(40, 220)),
        "wind": str(rng.randint(70, 160)),
        "homes": str(rng.randint(12, 1400)), "outage": f"{rng.randint(300, 60000):,}",
            "weeks": str(rng.randint(2, 14)),
        "river": rng.choice(_RIVERS), "official": _person(rng),
            "road": f"the {rng.choice(('A', 'B'))}{rng.randint(10, 999)}",
    }  # fmt: skip


def _heat_facts(rng: random.Random) -> dict[str, str]:
    return {
        "town": _town(rng), "temp": f"{rng.uniform(33, 44):.1f}", "days": str(rng.randint(4, 16)),
        "old_record": f"{rng.uniform(30, 38):.1f}", "old_year": str(rng.randint(1976, 2019)),
        "reservoir": str(rng.randint(18, 55)), "official": _person(rng),
        "admissions": str(rng.randint(20, 600)),
    }  # fmt: skip


def _drought_facts(rng: random.Random) -> dict[str, str]:
    return {
        "town": _town(rng), "rain_pct": str(rng.randint(12, 60)), "months": str(rng.randint(3, 11)),
        "reservoir": str(rng.randint(15, 48)), "utility": f"{_town(rng)} Water", "official": _person(rng),
        "ban_date": f"{rng.randint(1, 28)} {rng.choice(MONTHS)}", "farmers": f"{rng.randint(40, 900):,}",
    }  # fmt: skip


_TOPICS: tuple[_Topic, ...] = (
    _Topic(
        _council_facts,
        titles=(
            "{town} council approves plan for {project_short}",
            "Green light for {project_short} in {town}",
            "{town} votes {votes_for} to {votes_against} for {project_short}",
        ),
        leads=(
            "Councillors in {town} voted {votes_for} to {votes_against} on {weekday} to approve "
            "{project}, a scheme expected to cost {budget} million {currency}.",
            "{town} council has approved {project} after a {hours}-hour debate, with {votes_for} members "
            "in favour and {votes_against} against; the plan is budgeted at {budget} million {currency}.",
        ),
        keys=(
            "Supporters argued that {project_short} would {benefit}.",
            "Work is due to start in {start_month}, and the council expects {project_short} to be finished "
            "by {year_done}.",
        ),
        body=(
            "{opponent}, who voted against, said the money would be better spent on {alt}.",
            "The proposal drew {big} written comments during a {small}-week consultation.",
            "About {pct} percent of the cost will be covered by a regional grant, with the rest borrowed "
            "over {num} years.",
            "{councillor}, who chairs the planning committee, called the vote a {adj} but necessary step.",
            "Residents living near {street} will be offered {mitigation} while work is under way.",
            "An earlier version of the scheme was rejected in {year} after its cost estimate rose.",
            "Shop owners on {street} have asked for extra signage and loading bays during construction.",
            "Engineers who surveyed the site in {month} found old {noun} foundations that will need to be "
            "removed.",
            "The council will publish monthly progress reports and hold open evenings at the {noun} "
            "community hall.",
            "Opposition members plan to ask for an independent review of the cost estimates.",
            "The nearest comparable project, in {town2}, came in {pct} percent over budget.",
        ),
        summaries=(
            "{town} councillors voted {votes_for}-{votes_against} to approve {project}, costing about "
            "{budget} million {currency}. Work starts in {start_month} and should finish by "
            "{year_done}.",
            "{town} has approved {project} for {budget} million {currency}; supporters say it will "
            "{benefit}, and completion is expected by {year_done}.",
        ),
    ),
    _Topic(
        _festival_facts,
        titles=(
            "Record crowds at {festival}",
            "{festival} draws {visitors} visitors",
            "{town} festival raises {raised} {currency} for {cause}",
        ),
        leads=(
            "More than {visitors} people attended {festival} over {days} days, organisers said on "
            "{weekday}, the best turnout since it began in {founded}.",
            "{festival} ended on {weekday} after {days} days, with organisers counting more than "
            "{visitors} visitors.",
        ),
        keys=("The event raised {raised} {currency} for {cause}.", "Highlights included {headline}."),
        body=(
            "Volunteers from {num} local groups ran stalls along {street}.",
            "Organiser {organiser} said the team ran out of {supply} on the second day.",
            "Traffic was diverted around the {noun} for most of the weekend.",
            "Cafés near the square reported takings up by as much as {pct} percent.",
            "A {adj} parade closed the final evening.",
            "Workshops for children sold out within hours of opening.",
            "Some residents complained about noise late into the night near {street}.",
            "Next year's dates will be announced in {month}.",
            "Bus operators added {small} extra services each evening.",
            "Lost property included {num} umbrellas and a {adj} {noun}.",
        ),
        summaries=(
            "{festival} drew more than {visitors} visitors over {days} days and raised {raised} "
            "{currency} for {cause}.",
            "More than {visitors} people came to {festival}, which raised {raised} {currency} for "
            "{cause}. Highlights included {headline}.",
        ),
    ),
    _Topic(
        _earnings_facts,
        titles=(
            "{company} revenue {direction} {change}% in {quarter} quarter",
            "{company} reports {quarter}-quarter results",
        ),
        leads=(
            "{company}, the {industry} group based in {town}, reported revenue of {revenue} million "
            "{currency} for the {quarter_long}, {direction} {change} percent on a year earlier.",
        ),
        keys=(
            "Net profit came in at {profit} million {currency}, which the company put down mainly to "
            "{driver}.",
            "Chief executive {ceo} said the company expects {outlook}.",
        ),
        body=(
            "Shares in the company {share_move} {share_pct} percent in early trading.",
            "The group employs about {big} people across {small} sites.",
            "Analysts had pencilled in slightly weaker numbers before the release.",
            "Spending on research rose to {num} million {currency}.",
            "The board proposed a dividend of {small}.{num} {currency} per share.",
            "Costs for packaging and freight rose during the quarter.",
            "Its smallest division grew fastest, helped by orders from {town2}.",
            "Management repeated its target of a {pct} percent operating margin within three years.",
            "The company also confirmed it is looking for a new warehouse near {town2}.",
        ),
        summaries=(
            "{company} reported {quarter_long} revenue of {revenue} million {currency}, {direction} "
            "{change}% year on year, with net profit of {profit} million. {ceo} said the company "
            "expects {outlook}.",
            "Revenue at {company} was {direction} {change}% to {revenue} million {currency} in the "
            "{quarter_long}, helped mainly by {driver}.",
        ),
    ),
    _Topic(
        _launch_facts,
        titles=(
            "{company} unveils the {product}",
            "{company}'s new {category} goes on sale in {launch_month}",
        ),
        leads=(
            "{company} has unveiled the {product}, a {category} priced at {price} {currency}, which goes "
            "on sale in {launch_month}.",
        ),
        keys=(
            "The company says its main selling points are {feature1} and {feature2}.",
            "It will first be sold in {markets}.",
        ),
        body=(
            "Design lead {designer} said the team built {num} prototypes before settling on the final shape.",
            "Early reviewers praised the {adj} finish but questioned the price.",
            "Production will take place at the company's plant in {town2}.",
            "A cheaper version is planned for next {season}.",
            "Pre-orders opened on {weekday} and the first batch of {big} units sold out within {small} "
            "hours.",
            "The product carries a {small}-year warranty.",
            "Rival makers have launched similar products in the past year.",
            "Repair parts will be available for at least {num} years, the company said.",
            "The colour options include {colour} and {adj} grey.",
        ),
        summaries=(
            "{company} has launched the {product}, a {price} {currency} {category} with {feature1} "
            "and {feature2}, on sale from {launch_month}.",
            "The {product}, a new {category} from {company}, goes on sale in {markets} in "
            "{launch_month} for {price} {currency}.",
        ),
    ),
    _Topic(
        _expansion_facts,
        titles=("{company} to open {facility} in {site}", "{jobs} jobs promised as {company} picks {site}"),
        leads=(
            "{company} will build a {facility} in {site}, creating about {jobs} jobs, the company "
            "announced on {weekday}.",
        ),
        keys=(
            "The project represents an investment of {investment} million {currency}, and the site is "
            "expected to open in {open_year}.",
        ),
        body=(
            "The facility will occupy {former}.",
            "Local official {official} called it the largest private investment in the area for a decade.",
            "Training places will be offered through the college in {town2}.",
            "Unions welcomed the news but asked for guarantees on pay.",
            "The company considered {small} other locations before choosing {site}.",
            "Construction traffic will use a new access road from the {noun} roundabout.",
            "Environmental groups want the building to include {green_feature}.",
            "About {pct} percent of the new roles will be skilled technical positions.",
            "Housing officials warned that rents in {site} could rise as workers arrive.",
        ),
        summaries=(
            "{company} plans a {investment} million {currency} {facility} in {site}, creating about "
            "{jobs} jobs and opening in {open_year}.",
        ),
    ),
    _Topic(
        _study_facts,
        titles=("Study links {short}", "Researchers connect {short}"),
        leads=(
            "Researchers at {institution} found that {finding}, in a study of {participants} participants "
            "followed for {duration} months.",
        ),
        keys=(
            "The difference amounted to about {effect} percent, according to the paper published in the "
            "{journal}.",
            "Lead author {author} cautioned that the study shows an association, not proof of cause.",
        ),
        body=(
            "Participants were recruited through local clinics and community centres in {town}.",
            "The team adjusted for age, income and {confounder}.",
            "A similar study in {town2} found a smaller effect.",
            "The research was funded by a charitable trust based in {town}.",
            "The authors plan a follow-up trial with {big} volunteers next {season}.",
            "Independent experts described the sample as {adj} but said the method was sound.",
            "Dropout was low, with {small} percent leaving before the end.",
            "Data were collected with wrist-worn sensors and short weekly questionnaires.",
        ),
        summaries=(
            "A study of {participants} people over {duration} months at {institution} found that "
            "{finding}, a difference of about {effect}%. The authors stress it shows an association, "
            "not causation.",
            "Researchers at {institution} report that {finding}; the effect was about {effect}% in "
            "{participants} participants.",
        ),
    ),
    _Topic(
        _discovery_facts,
        titles=("Discovery near {town}: {find}", "Team uncovers {find} near {town}"),
        leads=(
            "A team from {institution} has found {find} near {town}, in what they call the most important "
            "discovery in the region for {decades} decades.",
        ),
        keys=(
            "Initial dating suggests the find is about {age} years old.",
            "It was spotted by {finder} during a survey of {place}.",
        ),
        body=(
            "The exact location is being kept secret to deter collectors.",
            "Specialists from {town2} will spend the {season} recording the site.",
            "Local schoolchildren have been invited to name the find.",
            "Similar finds in the region are rare, with only {small} recorded before.",
            "The landowner said they were astonished by the attention.",
            "Samples have been sent for laboratory analysis, with results expected in {month}.",
            "Volunteers sifted through about {num} tonnes of soil by hand.",
            "The team hopes to put some of the material on display at the {noun} museum.",
        ),
        summaries=(
            "A team from {institution} has found {find} near {town}, thought to be about {age} years old.",
            "{finder} spotted {find} near {town} during a survey of {place}; initial dating puts it "
            "at about {age} years old.",
        ),
    ),
    _Topic(
        _storm_facts,
        titles=("Storm {name} floods homes in {town}", "{town} counts the cost of Storm {name}"),
        leads=(
            "Storm {name} brought {rain} mm of rain and gusts of up to {wind} km/h to {town} on "
            "{weekday}, flooding {homes} homes.",
        ),
        keys=(
            "At the peak about {outage} households were without power, and officials expect repairs to "
            "take {weeks} weeks.",
        ),
        body=(
            "The River {river} burst its banks near the {noun}.",
            "{road} was closed for most of the day after trees came down.",
            "Emergency crews rescued {small} people from cars stranded in floodwater.",
            "Schools across the district stayed closed on {weekday}.",
            "{official}, who leads the council's emergency team, praised volunteers who filled sandbags "
            "overnight.",
            "Insurers said claims could take months to settle.",
            "A rest centre opened at the {noun} sports hall for families unable to return home.",
            "Forecasters said it was the wettest day recorded in the area since {year}.",
            "Farmers reported that fields near the {river} were under water.",
        ),
        summaries=(
            "Storm {name} dumped {rain} mm of rain on {town}, flooding {homes} homes and cutting "
            "power to about {outage} households; repairs may take {weeks} weeks.",
            "{homes} homes in {town} were flooded when Storm {name} brought {rain} mm of rain and "
            "{wind} km/h gusts.",
        ),
    ),
    _Topic(
        _heat_facts,
        titles=("{town} breaks temperature record", "Heatwave grips {town} for {days} days"),
        leads=(
            "Temperatures in {town} reached {temp}C on {weekday}, beating the previous record of "
            "{old_record}C set in {old_year}.",
        ),
        keys=(
            "The hot spell has now lasted {days} days, and reservoir levels have dropped to {reservoir} "
            "percent.",
        ),
        body=(
            "Hospitals reported {admissions} heat-related admissions over the week.",
            "{official} urged people to check on elderly neighbours.",
            "Rail services ran at reduced speed because of fears that tracks could buckle.",
            "The council opened cool rooms in libraries and the {noun} community centre.",
            "Outdoor workers were told to start early and stop by midday.",
            "Ice-cream vans reported record trade near {street}.",
            "Firefighters dealt with {small} grass fires on the edge of town.",
            "Forecasters expect cooler air to arrive by {weekday}.",
        ),
        summaries=(
            "{town} recorded {temp}C, breaking the {old_year} record of {old_record}C, in a heatwave "
            "now {days} days long that has left reservoirs at {reservoir}%.",
        ),
    ),
    _Topic(
        _drought_facts,
        titles=(
            "Hosepipe ban for {town} as reservoirs fall",
            "{town} faces drought after dry {months} months",
        ),
        leads=(
            "{utility} will ban hosepipe use in {town} from {ban_date} after {months} months of rainfall "
            "at just {rain_pct} percent of the usual level.",
        ),
        keys=("Reservoirs serving the area are {reservoir} percent full.",),
        body=(
            "About {farmers} farmers have applied for emergency extraction permits.",
            "{official} of {utility} said leaks were being fixed as fast as crews could find them.",
            "Gardeners have been asked to reuse bath water on plants.",
            "Boating on the {noun} lake has been suspended.",
            "The last ban of this kind in the area was in {year}.",
            "Fish were moved from shrinking ponds by volunteers from {town2}.",
            "Anyone ignoring the ban could be fined, though officials said warnings would come first.",
        ),
        summaries=(
            "{town} faces a hosepipe ban from {ban_date} after {months} months of low rainfall left "
            "reservoirs {reservoir}% full.",
        ),
    ),
)

_GENERIC_BODY = (
    "The story was first reported by the {town2} Courier.",
    "{person}, who has lived in the area for {num} years, said it had been the main topic of conversation "
    "all week.",
    "A follow-up meeting is planned for {month}.",
    "Officials declined to give further details while a review is under way.",
    "Comparable figures from {town2} were published last {season}.",
    "The local radio station devoted its morning programme to the subject.",
    "Several readers wrote in to ask how the news would affect parking near {street}.",
    "{person} of the regional chamber of commerce said it was too early to judge the long-term effect.",
    "Photographs shared online showed a {adj} sky over the {noun}.",
    "A petition on the subject has gathered {big} signatures.",
    "The mayor is expected to comment at next {weekday}'s meeting.",
    "Neighbouring councils are watching closely.",
    "Younger residents seemed the most enthusiastic, according to a straw poll by a student newspaper.",
    "Local historian {person} noted that something similar happened in {year}.",
    "Further updates will be posted on the council noticeboard outside the {noun}.",
)  # fmt: skip
_QUOTES = (
    "We have waited a long time for this", "Nobody expected the numbers to be this large",
    "It is a good start, but there is more to do", "People will look back on this week as a turning point",
    "I just hope someone is listening", "We planned for the worst and got something in between",
    "It has been a {adj} few days for everyone", "The community really pulled together",
    "We will learn from this and do better", "Honestly, I did not think it would happen in my lifetime",
    "The details matter more than the headline", "My grandmother would have loved to see it",
    "We need clear answers, not more promises", "This is what {town} does best",
)  # fmt: skip
_QUOTE_FRAMES = (
    '"{quote}," said {person}.',
    '"{quote}," {person} told reporters.',
    '{person} put it simply: "{quote}."',
)


def _article_sentences(
    rng: random.Random, topic: _Topic, facts: dict[str, str], target_words: int
) -> list[str]:
    sentences = [_fill(rng, rng.choice(topic.leads), facts)] + [_fill(rng, k, facts) for k in topic.keys]
    pool = list(topic.body) + rng.sample(_GENERIC_BODY, 5)
    rng.shuffle(pool)
    words = sum(len(s.split()) for s in sentences)
    while words < target_words:
        if pool and rng.random() < 0.8:
            sentence = _fill(rng, pool.pop(), facts)
        else:
            quote = _fill(rng, rng.choice(_QUOTES), facts)
            sentence = _fill(rng, rng.choice(_QUOTE_FRAMES), {**facts, "quote": quote})
        if words + len(sentence.split()) > 395:
            break
        sentences.append(sentence)
        words += len(sentence.split())
    return sentences


def _paragraphs(rng: random.Random, sentences: list[str]) -> str:
    paragraphs, i = [], 0
    while i < len(sentences):
        size = rng.choice((1, 2, 2, 3))
        paragraphs.append(" ".join(sentences[i : i + size]))
        i += size
    return "\n\n".join(paragraphs)


def _article_sample(rng: random.Random, topic: _Topic) -> ArticleSample:
    facts = topic.facts(rng)
    sentences = _article_sentences(rng, topic, facts, rng.randint(140, 370))
    title = _fill(rng, rng.choice(topic.titles), facts)
    summary = _fill(rng, rng.choice(topic.summaries), facts)
    return ArticleSample(title, _paragraphs(rng, sentences), summary)


def _article_content(sample: ArticleSample) -> str:
    return "\n".join((sample.title, sample.article, sample.summary))


def _clean_articles(rng: random.Random, count: int) -> list[ArticleSample]:
    return _distinct(rng, count, lambda i: _article_sample(rng, _TOPICS[i % len(_TOPICS)]), _article_content)


def _article_with_sentence(sample: ArticleSample, sentence: str) -> ArticleSample:
    paragraphs = sample.article.split("\n\n")
    at = len(paragraphs) // 2
    paragraphs.insert(at, sentence)
    return replace(sample, article="\n\n".join(paragraphs))


def _article_too_short(rng: random.Random, i: int) -> ArticleSample:
    return ArticleSample("Note", _TOO_SHORT[(i + 5) % len(_TOO_SHORT)], "-")


def _article_repetitive(rng: random.Random, i: int) -> ArticleSample:
    return ArticleSample("Update", _repetitive_text(rng, i), "Nothing new.")


def _article_mojibake(rng: random.Random, i: int) -> ArticleSample:
    base = _article_sample(rng, rng.choice(_TOPICS))
    return replace(
        base, title=_mojibake(base.title + " — café edition"), article=_mojibake_text(base.article, rng)
    )


def _article_unsafe(rng: random.Random, category: str) -> ArticleSample:
    return _article_with_sentence(_article_sample(rng, rng.choice(_TOPICS)), _unsafe_sentence(category, rng))


def _article_recased(sample: ArticleSample, rng: random.Random) -> ArticleSample:
    return ArticleSample(
        _recased(sample.title, rng), _recased(sample.article, rng), _recased(sample.summary, rng)
    )


def _article_near_copy(sample: ArticleSample, rng: random.Random) -> ArticleSample:
    return replace(sample, article=_with_words_changed(sample.article, rng, rng.randint(1, 2)))


# --- creative: short scenes and poems -------------------------------------------------------------


@dataclass(frozen=True)
class CreativeSample:
    kind: str  # "story" | "poem"
    text: str


_OCCUPATIONS = _words("""
baker ferryman cartographer beekeeper clockmaker nurse locksmith translator lighthouse-keeper gardener
archivist welder violinist postwoman fisherman librarian potter surveyor tailor mechanic
""")
_STORY_OPENINGS = (
    "{name} arrived at the {adj} {place} just as the light began to fail.",
    "Nobody in {town} remembered the last time {name} had been late, so the empty chair by the {noun} "
    "worried everyone.",
    "The letter reached {name} on a {adj} {weekday} in {month}, folded around a {colour} ribbon.",
    "For {num} years {name}, a {job}, had walked the same route past the {noun}.",
    "It started to rain the moment {name} stepped off the {vehicle} at {town}.",
    "{name} found the {object} in the attic, wrapped in a {adj} scarf that smelled of {smell}.",
    "The {job} from {town} had one rule: never open the {object} after dark. {name} was about to break it.",
    "On the last night of {season}, {name} climbed the hill above {town} with a {noun} and a flask of tea.",
    "The market in {town} was closing when {name} noticed the stranger by the {place}.",
    "{name} had rehearsed the apology all the way from {town2}, and forgot every word at the door.",
)  # fmt: skip
_STORY_MIDDLES = (
    "The air smelled of {smell} and something {adj2} underneath.",
    "Somewhere behind the {noun2}, a {sound} rose and fell.",
    "{name} counted the steps: {small} up, {small2} across, and then the {adj} door.",
    "A {colour} cat watched from the windowsill without blinking.",
    "The {noun} was smaller than {name} remembered, and older.",
    "Every surface was covered in {adj} dust except one {object}, wiped clean.",
    "{name} thought of the {job} who had taught them to mend a {object}, years ago in {town2}.",
    "Outside, the wind worried at the shutters like a {adj} dog.",
    "There was a note on the table in handwriting {name} did not recognise.",
    "The clock in the hall had stopped at {num} minutes past {small}.",
    "{name} set the {object} down carefully, as if it might wake.",
    "Footsteps crossed the floor above, paused, and crossed back.",
    "The light through the {colour} glass made the room look underwater.",
    "It had been a {adj} year, and {name} was tired of pretending otherwise.",
    "A ferry horn sounded twice from the direction of the {place}.",
    "{name} tried the handle; it turned, {adj} and cold.",
    "Someone had left a half-finished game of cards by the {noun}.",
    "The smell of {smell} followed {name} down the corridor.",
)  # fmt: skip
_STORY_LINES = (
    "You kept it all this time?", "I was going to tell you on {weekday}.", "It is not broken, only {adj}.",
    "Leave the light on for me.", "We should have asked someone from {town2}.", "Do you hear that {sound}?",
    "That {object} belonged to my mother.", "Nobody goes to {town} in {season}.",
    "Tell me the truth for once.",
    "I think it is still warm.", "Sit down, the tea is nearly ready.", "Count to {small} and then open it.",
)  # fmt: skip
# Questions keep their "?"; statements before a speech tag end in a comma instead of a full stop.
_QUESTION_TAGS = ('"{line}" {name} asked.', '"{line}" someone called from the {place}.')
_STATEMENT_TAGS = (
    '"{line_comma}" said the {job}.',
    '{name} whispered, "{line}"',
    '"{line_comma}" someone called from the {place}.',
)
_STORY_ENDINGS = (
    "By morning the {object} was gone, and {name} decided not to mention it to anyone.",
    "{name} laughed for the first time in weeks, and the sound surprised them both.",
    "They walked back to {town} together, not talking, which was its own kind of answer.",
    "The rain stopped. {name} folded the letter and put it in a {adj} pocket for later.",
    "When the {job} finally came, {name} was already asleep in the chair by the {noun}.",
    "{name} closed the {object} gently and turned off the light.",
    "It would be {season} before anyone in {town} heard the whole story.",
    "And that, more or less, was how {name} came to keep bees.",
    "The last ferry left without them, and neither of them minded.",
)  # fmt: skip
_SMELLS = _words(
    "woodsmoke cinnamon tar rain seaweed varnish oranges diesel lavender bread wet-wool pine-resin"
)
_SOUNDS = _words("whistle hum creak rattle hiss chime murmur clatter tapping drone")


def _story(rng: random.Random) -> str:
    facts = {
        "name": rng.choice(FIRST_NAMES),
        "job": rng.choice(_OCCUPATIONS).replace("-", " "),
        "smell": rng.choice(_SMELLS).replace("-", " "),
        "sound": rng.choice(_SOUNDS),
    }
    target = rng.randint(70, 230)
    sentences = [_fill(rng, rng.choice(_STORY_OPENINGS), facts)]
    middles = rng.sample(_STORY_MIDDLES, len(_STORY_MIDDLES))
    lines = rng.sample(_STORY_LINES, len(_STORY_LINES))  # each line of dialogue at most once per story
    words = len(sentences[0].split())
    while words < target and middles:
        if rng.random() < 0.25 and lines:
            line = _fill(rng, lines.pop(), facts)
            tags = _QUESTION_TAGS if line.endswith("?") else _STATEMENT_TAGS
            sentence = _fill(
                rng, rng.choice(tags), {**facts, "line": line, "line_comma": line.rstrip(".") + ","}
            )
        else:
            sentence = _fill(rng, middles.pop(), facts)
        sentences.append(sentence)
        words += len(sentence.split())
    sentences.append(_fill(rng, rng.choice(_STORY_ENDINGS), facts))
    return " ".join(sentences)


_POEM_LINES = (
    "the {adj} {noun} leans into the {season} wind",
    "I keep a {colour} {noun} for the days that forget me",
    "somewhere a {noun2} is learning how to be {adj}",
    "{first} hums beside the {noun} at dusk",
    "rain on the {noun}, rain on the {adj2} {noun2}",
    "we were {adj} once, and {adj2}, and briefly brave",
    "the {sound} of {town} folding into night",
    "salt on the {noun}, {colour} on the hill",
    "a {noun} remembers every hand that turned it",
    "how {adj} the morning, how slow the {noun2}",
    "under the {noun}, a {colour} hush",
    "and the {noun2} said nothing, which was kind",
    "you left the {noun} open and the {season} came in",
    "my {noun} is full of {adj} letters",
    "the river carries {num} {noun}s to the sea",
    "count the {noun}s, count the {adj} hours",
    "light on the {noun2}, {adj} as a vow",
    "what the {noun} knows, the {noun2} forgets",
    "{season} again, and the {colour} gate unlatched",
    "I heard your {sound} through the {adj} wall",
    "a {adj} bell over {town}",
    "the {noun} sleeps; the {noun2} keeps watch",
)  # fmt: skip


def _poem(rng: random.Random) -> str:
    facts = {"sound": rng.choice(_SOUNDS)}
    lines = rng.sample(_POEM_LINES, rng.randint(4, 16))
    rendered = [_fill(rng, line, facts) for line in lines]
    if rng.random() < 0.5:  # lowercase free verse or capitalised lines
        rendered = [line[0].lower() + line[1:] for line in rendered]
    return "\n".join(rendered)


def _creative_content(sample: CreativeSample) -> str:
    return sample.text


def _clean_creative(rng: random.Random, count: int) -> list[CreativeSample]:
    # Slightly more stories than poems: stories are longer and carry most of the planted defects.
    def make(i: int) -> CreativeSample:
        return CreativeSample("story", _story(rng)) if i % 20 < 11 else CreativeSample("poem", _poem(rng))

    return _distinct(rng, count, make, _creative_content)


def _creative_with_sentence(sample: CreativeSample, sentence: str) -> CreativeSample:
    if sample.kind == "poem":
        return replace(sample, text=f"{sample.text}\n{sentence}")
    sentences = sample.text.split(". ")
    middle = len(sentences) // 2
    return replace(sample, text=". ".join(sentences[:middle] + [sentence.rstrip(".")] + sentences[middle:]))


def _creative_too_short(rng: random.Random, i: int) -> CreativeSample:
    return CreativeSample("story" if i % 2 == 0 else "poem", _TOO_SHORT[(i + 6) % len(_TOO_SHORT)])


def _creative_repetitive(rng: random.Random, i: int) -> CreativeSample:
    return CreativeSample("story" if i % 2 == 0 else "poem", _repetitive_text(rng, i))


def _creative_mojibake(rng: random.Random, i: int) -> CreativeSample:
    if i % 2 == 0:
        return CreativeSample("story", _mojibake_text(_story(rng), rng))
    lines = _poem(rng).split("\n") + [_mojibake(p) for p in rng.sample(_MOJIBAKE_PHRASES, 3)]
    return CreativeSample("poem", "\n".join(lines))


def _creative_unsafe(rng: random.Random, category: str) -> CreativeSample:
    kind = "poem" if category == "hate" else "story"
    base = CreativeSample(kind, _story(rng) if kind == "story" else _poem(rng))
    return _creative_with_sentence(base, _unsafe_sentence(category, rng))


def _creative_recased(sample: CreativeSample, rng: random.Random) -> CreativeSample:
    return replace(sample, text=_recased(sample.text, rng))


def _creative_near_copy(sample: CreativeSample, rng: random.Random) -> CreativeSample:
    return replace(sample, text=_with_words_changed(sample.text, rng, 1))


# --- defects, shared by the four domains ----------------------------------------------------------

Sample = TypeVar("Sample")


def _normalized(text: str) -> str:
    return " ".join(text.lower().split())


def _distinct(
    rng: random.Random, count: int, make: Callable[[int], Sample], content: Callable[[Sample], str]
) -> list[Sample]:
    """count samples with pairwise different normalised text, so planted duplicates are the only ones."""
    seen: set[str] = set()
    out: list[Sample] = []
    attempt = 0
    while len(out) < count:
        sample = make(attempt)
        attempt += 1
        key = _normalized(content(sample))
        # A generous retry budget; past it a repeat is accepted rather than looping for ever.
        if key in seen and attempt < 5 * count + 100:
            continue
        seen.add(key)
        out.append(sample)
    return out


@dataclass(frozen=True)
class _DefectKit(Generic[Sample]):
    """How one domain plants each defect into (or next to) its clean samples."""

    content: Callable[[Sample], str]
    with_pii: Callable[[Sample, str, random.Random], Sample]
    with_bait: Callable[[Sample, random.Random], Sample]
    recased: Callable[[Sample, random.Random], Sample]
    near_copy: Callable[[Sample, random.Random], Sample]
    too_short: Callable[[random.Random, int], Sample]
    repetitive: Callable[[random.Random, int], Sample]
    mojibake: Callable[[random.Random, int], Sample]
    unsafe: Callable[[random.Random, str], Sample]
    takes_pii: Callable[[Sample], bool] = lambda sample: True


def _plant_defects(
    clean: list[Sample], kit: _DefectKit[Sample], rng: random.Random, multiplier: int
) -> tuple[list[Sample], list[Sample]]:
    """(clean samples with PII and bait rewritten in place, extra defective samples to interleave)."""
    samples = list(clean)
    n_pii, n_bait = MODIFIED_DEFECTS["pii"] * multiplier, MODIFIED_DEFECTS["bait"] * multiplier
    pii_slots = rng.sample([i for i, s in enumerate(samples) if kit.takes_pii(s)], n_pii)
    taken = set(pii_slots)
    bait_slots = rng.sample([i for i in range(len(samples)) if i not in taken], n_bait)
    kinds = [k for k in PII_KINDS for _ in range(PII_PER_KIND * multiplier)]
    for slot, kind in zip(pii_slots, kinds, strict=False):
        samples[slot] = kit.with_pii(samples[slot], kind, rng)
    for slot in bait_slots:
        samples[slot] = kit.with_bait(samples[slot], rng)

    touched = set(pii_slots) | set(bait_slots)
    untouched = [i for i in range(len(samples)) if i not in touched]
    n = {name: count * multiplier for name, count in ADDED_DEFECTS.items()}
    exact_sources = rng.sample(untouched, n["exact_duplicate"])
    # Near copies come from long records: one changed word then moves few of many 5-word shingles.
    longest = sorted(set(untouched) - set(exact_sources), key=lambda i: -len(kit.content(samples[i]).split()))
    near_sources = rng.sample(longest[: 4 * n["near_duplicate"]], n["near_duplicate"])
    categories = sorted(SAMPLE_SAFETY_TERMS)
    extras = (
        [kit.recased(samples[i], rng) for i in exact_sources]
        + [kit.near_copy(samples[i], rng) for i in near_sources]
        + [kit.too_short(rng, j) for j in range(n["too_short"])]
        + [kit.repetitive(rng, j) for j in range(n["repetitive"])]
        + [kit.mojibake(rng, j) for j in range(n["mojibake"])]
        + [kit.unsafe(rng, categories[j % len(categories)]) for j in range(n["unsafe"])]
    )
    return samples, extras


def _interleave(rng: random.Random, base: list[Sample], extras: list[Sample]) -> list[Sample]:
    out = list(base)
    for extra in extras:
        out.insert(rng.randint(0, len(out)), extra)
    return out


def _prose_pii(
    with_sentence: Callable[[Sample, str], Sample],
) -> Callable[[Sample, str, random.Random], Sample]:
    return lambda sample, kind, rng: with_sentence(sample, _pii_sentence(kind, rng))


def _prose_bait(with_sentence: Callable[[Sample, str], Sample]) -> Callable[[Sample, random.Random], Sample]:
    return lambda sample, rng: with_sentence(sample, _bait_sentence(rng))


_CODE_KIT: _DefectKit[CodeSample] = _DefectKit(
    _code_content, _code_pii, _code_bait, _code_recased, _code_near_copy,
    _code_too_short, _code_repetitive, _code_mojibake, _code_unsafe,
)  # fmt: skip
_ANALYSIS_KIT: _DefectKit[AnalysisSample] = _DefectKit(
    _analysis_content, _prose_pii(_analysis_with_sentence), _prose_bait(_analysis_with_sentence),
    _analysis_recased, _analysis_near_copy, _analysis_too_short, _analysis_repetitive, _analysis_mojibake,
    _analysis_unsafe,
)  # fmt: skip
_ARTICLE_KIT: _DefectKit[ArticleSample] = _DefectKit(
    _article_content, _prose_pii(_article_with_sentence), _prose_bait(_article_with_sentence),
    _article_recased, _article_near_copy, _article_too_short, _article_repetitive, _article_mojibake,
    _article_unsafe,
)  # fmt: skip
_CREATIVE_KIT: _DefectKit[CreativeSample] = _DefectKit(
    _creative_content, _prose_pii(_creative_with_sentence), _prose_bait(_creative_with_sentence),
    _creative_recased, _creative_near_copy, _creative_too_short, _creative_repetitive, _creative_mojibake,
    _creative_unsafe, takes_pii=lambda sample: sample.kind == "story",
)  # fmt: skip


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


def _write_code(root: Path, rng: random.Random, clean_count: int, multiplier: int) -> dict[str, int]:
    clean, extras = _plant_defects(_clean_code_samples(rng, clean_count), _CODE_KIT, rng, multiplier)
    n_extra = round(clean_count * CODE_EXTRA_SHARE)
    extra_json, snippets = clean[:n_extra], _interleave(rng, clean[n_extra:], extras)
    lines = [json.dumps({"instruction": s.instruction, "input": s.input, "output": s.output},
                        ensure_ascii=False).encode("utf-8") for s in snippets]  # fmt: skip
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
        }
        for s in extra_json
    ]
    (root / CODE_EXTRA).write_text(json.dumps(array, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return {CODE_SNIPPETS: len(lines), CODE_EXTRA: len(array)}


def _write_analysis(root: Path, rng: random.Random, clean_count: int, multiplier: int) -> dict[str, int]:
    clean, extras = _plant_defects(_clean_analysis_samples(rng, clean_count), _ANALYSIS_KIT, rng, multiplier)
    samples = _interleave(rng, clean, extras)
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
    clean, extras = _plant_defects(_clean_articles(rng, clean_count), _ARTICLE_KIT, rng, multiplier)
    articles = _interleave(rng, clean, extras)
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
    clean, extras = _plant_defects(_clean_creative(rng, clean_count), _CREATIVE_KIT, rng, multiplier)
    written: dict[str, int] = {}
    (root / "creative").mkdir(parents=True, exist_ok=True)
    for kind, path in (("story", CREATIVE_STORIES), ("poem", CREATIVE_POEMS)):
        blocks = _interleave(rng, [s for s in clean if s.kind == kind], [s for s in extras if s.kind == kind])
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
