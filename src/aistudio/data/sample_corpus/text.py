"""Text helpers shared by the four domains: template filling, planted PII values, look-alike bait
and the kinds of damage the defects apply (mojibake, recasing, changed words)."""

from __future__ import annotations

import random
import re
import string
import unicodedata
from collections.abc import Callable, Sequence

from aistudio.data.sample_corpus.layout import SAMPLE_SAFETY_TERMS
from aistudio.data.sample_corpus.resources import PHRASES, VOCABULARY


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# --- shared vocabulary ----------------------------------------------------------------------------


def person_name(rng: random.Random) -> str:
    return f"{rng.choice(VOCABULARY.first_names)} {rng.choice(VOCABULARY.surnames)}"


def town_name(rng: random.Random) -> str:
    return rng.choice(VOCABULARY.town_heads) + rng.choice(VOCABULARY.town_tails)


def company_name(rng: random.Random) -> str:
    return f"{rng.choice(VOCABULARY.company_heads)} {rng.choice(VOCABULARY.company_kinds)}"


def street_name(rng: random.Random) -> str:
    return f"{rng.choice(VOCABULARY.streets)} {rng.choice(VOCABULARY.street_kinds)}"


def join_and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# --- fill-in templates ----------------------------------------------------------------------------

# Random vocabulary a prose template may ask for by slot name, fresh for every sentence.
_SLOTS: dict[str, Callable[[random.Random], str]] = {
    "person": person_name,
    "person2": person_name,
    "first": lambda r: r.choice(VOCABULARY.first_names),
    "town": town_name,
    "town2": town_name,
    "company": company_name,
    "street": street_name,
    "adj": lambda r: r.choice(VOCABULARY.adjectives),
    "adj2": lambda r: r.choice(VOCABULARY.adjectives),
    "noun": lambda r: r.choice(VOCABULARY.nouns),
    "noun2": lambda r: r.choice(VOCABULARY.nouns),
    "colour": lambda r: r.choice(VOCABULARY.colours),
    "weekday": lambda r: r.choice(VOCABULARY.weekdays),
    "month": lambda r: r.choice(VOCABULARY.months),
    "season": lambda r: r.choice(VOCABULARY.seasons),
    "num": lambda r: str(r.randint(3, 95)),
    "small": lambda r: str(r.randint(2, 9)),
    "small2": lambda r: str(r.randint(2, 9)),
    "object": lambda r: r.choice(VOCABULARY.objects).replace("-", " "),
    "place": lambda r: r.choice(VOCABULARY.places),
    "vehicle": lambda r: r.choice(VOCABULARY.vehicles),
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


def expand(rng: random.Random, template: str, facts: dict[str, str] | None = None) -> str:
    return _A_BEFORE_VOWEL.sub(r"\1n ", template.format_map(_Fill(rng, facts or {})))


def fill(rng: random.Random, template: str, facts: dict[str, str]) -> str:
    """The template filled in, as a sentence: first letter upper-cased."""
    text = expand(rng, template, facts)
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


def pii_value(kind: str, rng: random.Random) -> str:
    if kind == "email":
        first, last = (
            _ascii_lower(rng.choice(VOCABULARY.first_names)),
            _ascii_lower(rng.choice(VOCABULARY.surnames)),
        )
        local = f"{first}.{last}" if rng.random() < 0.5 else f"{first[0]}.{last}"
        return f"{local}@{rng.choice(VOCABULARY.email_domains)}"
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


def pii_sentence(kind: str, rng: random.Random) -> str:
    return fill(rng, rng.choice(PHRASES.pii_sentences[kind]), {"value": pii_value(kind, rng)})


def _git_sha(rng: random.Random) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(40))


# Harmless values that look like PII to a careless pattern: versions, dates, decimals, commit hashes.


def bait_facts(rng: random.Random) -> dict[str, str]:
    return {
        "date": f"{rng.randint(2019, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "version": f"{rng.randint(1, 4)}.{rng.randint(0, 19)}.{rng.randint(0, 9)}",
        "decimal": f"{rng.uniform(0, 100):.{rng.randint(2, 5)}f}",
        "sha": _git_sha(rng),
        "short_sha": _git_sha(rng)[:7],
        "time": f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}",
    }


def bait_sentence(rng: random.Random) -> str:
    return fill(rng, rng.choice(PHRASES.bait_sentences), bait_facts(rng))


# --- text damage used by the defects --------------------------------------------------------------

# UTF-8 read as cp1252: the classic "cafÃ©" / "donâ€™t" damage.


def mojibake(text: str) -> str:
    return text.encode("utf-8").decode("cp1252", errors="replace").replace("\ufffd", "")


def mojibake_text(base: str, rng: random.Random) -> str:
    """Base text with several garbled phrases woven in, dense enough to exceed a 1% damage ratio."""
    words = base.split(" ")
    # About one damaged phrase per 120 characters keeps even a long article well above the ratio.
    for _ in range(max(4, len(base) // 120)):
        words.insert(rng.randrange(len(words) + 1), mojibake(rng.choice(PHRASES.mojibake_phrases)))
    return " ".join(words)


def recased(text: str, rng: random.Random) -> str:
    """The same text up to case and whitespace: what an exact-duplicate check must still catch."""
    text = rng.choice((str.upper, str.lower, str.swapcase))(text)
    lines = text.split("\n")
    # Doubled inner spaces and trailing blanks; an empty line stays empty, so no blank line appears
    # inside a text block (which would split it in two).
    return "\n".join("  " + line.replace(" ", "  ", 3) + "   " if line else line for line in lines)


def with_words_changed(text: str, rng: random.Random, changes: int) -> str:
    """Replace the last one or two words: an edited ending, as when a copy was touched up.

    The last word sits in a single 5-word shingle, so the copy keeps a Jaccard similarity near 0.98
    with its source: MinHash LSH at a 0.8 threshold finds it with near certainty, where a copy at
    0.9 would be missed a few percent of the time.
    """
    spans = [m.span() for m in re.finditer(r"\b[a-z]{4,}\b", text)]
    for start, end in sorted(spans[-changes:], reverse=True):
        original = text[start:end]
        text = text[:start] + rng.choice([w for w in VOCABULARY.swap_words if w != original]) + text[end:]
    return text


# Too-short texts, indexed rather than drawn, so two planted ones are never accidental duplicates.


def repetitive_text(rng: random.Random, i: int) -> str:
    return " ".join([PHRASES.repeated_phrases[i % len(PHRASES.repeated_phrases)]] * rng.randint(30, 60))


def unsafe_sentence(category: str, rng: random.Random) -> str:
    term = rng.choice(SAMPLE_SAFETY_TERMS[category])
    return rng.choice(
        (
            f'A flagged message simply said "{term}" and nothing else.',
            f'The moderators removed a reply that read "{term}".',
            f'The prompt they sent was: "{term}".',
        )
    )
