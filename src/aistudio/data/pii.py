"""PII scrubbing: find personal data and secrets in text and replace them with typed placeholders.

Each type is a compiled pattern plus a validator (Luhn and issuer prefix for cards, mod-97 and the
country's length for IBANs, never-issued ranges for SSNs, octet ranges for IPs), because shape
alone matches too much: order numbers, versions, dates and commit hashes all look like PII to a
bare regex. Speed comes from not scanning: the regex engine pays per character, so the numeric
types share one scan for digit runs and only search those, IPv6 only looks where colons chain,
and the rest are skipped unless a cheap substring test ('@', 'sk-', '=') says they could match.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from aistudio.config import PII_TYPES

PLACEHOLDERS: dict[str, str] = {
    "email": "[EMAIL]",
    "phone": "[PHONE]",
    "credit_card": "[CREDIT_CARD]",
    "ipv4": "[IPV4]",
    "ipv6": "[IPV6]",
    "ssn": "[SSN]",
    "iban": "[IBAN]",
    "secret": "[SECRET]",
}

# When two types claim overlapping text the more specific one wins: an API key can contain a
# digit run that looks like a card, an IBAN contains digit groups, an IPv6 can embed an IPv4.
_PRECEDENCE: tuple[str, ...] = ("secret", "email", "iban", "ipv6", "credit_card", "ssn", "ipv4", "phone")


@dataclass(frozen=True)
class PiiMatch:
    """text[start:end] is PII of this kind (one of PII_TYPES)."""

    kind: str
    start: int
    end: int


# --- validators ---------------------------------------------------------------------------------


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment card number carries."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


# ISO 13616 lengths. Knowing the length lets a spaced IBAN stop at the right character instead of
# swallowing the next word ("... 7654 32 AND"), and an unknown country is a cheap rejection.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30,
    "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
    "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


def iban_valid(compact: str) -> bool:
    """ISO 7064 mod-97 check on an IBAN without spaces (letters count as 10..35)."""
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


# --- patterns -----------------------------------------------------------------------------------

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4_CORE = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_HEX4 = r"[0-9A-Fa-f]{1,4}"

_EMAIL = re.compile(
    # The look-behind makes every start position inside a long local part fail at once, which
    # keeps a text with one '@' and long runs of word characters linear.
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])"
)
_PHONE = re.compile(
    # International: +CC then groups split by one separator each, or an unbroken digit run.
    r"(?<![\w+])\+\d{1,3}(?:(?:[ .-]?\(\d{1,4}\)[ .-]?|[ .-])\d{1,6}(?:[ .-]\d{1,6}){0,5}|\d{5,12})"
    r"(?!\w|[.-]\d)"
    # North American: (555) 123-4567, 555-123-4567, 555.123.4567, 1-800-555-0199.
    r"|(?<![\w+.-])(?:1[ .-])?(?:\(\d{3}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4}(?!\w|[.-]\d)"
)
_CREDIT_CARD = re.compile(r"(?<![\w.-])\d(?:[ -]?\d){12,18}(?!\w|[.-]\d)")
_IPV4 = re.compile(rf"(?<![\w.]){_IPV4_CORE}(?!\w|\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:"
    rf"(?:{_HEX4}:){{7}}{_HEX4}"
    rf"|(?:{_HEX4}:){{6}}{_IPV4_CORE}"
    rf"|(?:{_HEX4}(?::{_HEX4}){{0,6}})?::(?:(?:{_HEX4}:){{0,5}}{_IPV4_CORE}|{_HEX4}(?::{_HEX4}){{0,6}})?"
    r")(?![\w:]|\.\d)"
)
_SSN = re.compile(r"(?<![\w-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w-])")
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}")
_SECRET_TOKEN = re.compile(
    r"(?<![\w-])(?:"
    r"sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"
    r"|gh[psour]_[A-Za-z0-9]{20,}"
    r"|github_pat_[A-Za-z0-9_]{20,}"
    r"|xox[bapsr]-[A-Za-z0-9-]{10,}"
    r")(?![\w-])"
)
# key=value context: only the value (group "value") is replaced, so `api_key=[SECRET]` still tells
# a reader what was there. Hex and base64 values must be long; short values are too often code.
_ASSIGNED_VALUE = re.compile(
    # Anchored on the '=' or ':' (rare) rather than on the key name (a scan of every word start);
    # the name is checked afterwards on the few characters before it. JWTs keep their dotted parts.
    r"(?:=>?|:)\s*[\"']?"
    r"(?P<value>[A-Za-z0-9+/_-]{32,}={0,2}(?:\.[A-Za-z0-9_-]{8,}){0,2})(?![A-Za-z0-9+/=_.-])"
)
_SECRET_KEY_NAME = re.compile(
    r"(?:api[_-]?key|access[_-]?key|secret|token|passw(?:or)?d|pwd|credentials?|private[_-]?key|key|auth)"
    r"[\"']?\s*$",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(?i)\bbearer\s+(?P<value>[A-Za-z0-9._~+/-]{32,}=*)(?![A-Za-z0-9._~+/=-])")
_HEX_VALUE = re.compile(r"[0-9a-fA-F]+")

# A dotted quad right after a version marker is a version, not a host.
_VERSION_CONTEXT = re.compile(r"(?:\bv|\bver\.?|\bversion|\brelease|\bsection|§|[=~<>]=)\s*$", re.IGNORECASE)
# Issuer prefixes: Mastercard 2221-2720, Diners/Amex/JCB 30 and 34-38, Visa 4, Mastercard and
# Maestro 5, Discover/UnionPay/Maestro 6. Luhn alone passes one random digit run in ten; the prefix
# rules out millisecond timestamps (1...), ISBN-13s (978...) and runs of years (2019 2020 ...).
_CARD_ISSUER = re.compile(r"2(?:22[1-9]|2[3-9]\d|[3-6]\d\d|7[01]\d|720)|3[04-8]|[456]")


# --- per-type finders ---------------------------------------------------------------------------

Span = tuple[int, int]

# Every phone, card, SSN and IPv4 lies inside a run of digits and separators that starts with a
# digit. One scan for such runs replaces four full-text scans (the regex engine's cost is per
# character scanned, ~10 ns); each type's pattern then only searches the few runs long enough.
_DIGIT_CLUSTER = re.compile(r"\d[\d .()+\-]*")
_SHORTEST_NUMERIC_PII = 7  # "1.1.1.1"; phones have 8+ digits, SSNs 11 characters, cards 13+


@dataclass(frozen=True)
class _DigitClusters:
    """Where numeric PII can be in one text, from a single scan shared by the numeric types."""

    # Cluster plus one character each side: '+' / '(' may open a phone number, and the look-arounds
    # that keep matches off token edges need to see the neighbours.
    windows: list[Span]
    # Two capitals that name an IBAN country, right before a cluster (its check digits).
    iban_starts: list[int]

    @classmethod
    def scan(cls, text: str) -> _DigitClusters:
        windows: list[Span] = []
        iban_starts: list[int] = []
        for m in _DIGIT_CLUSTER.finditer(text):
            start, end = m.span()
            if end - start >= _SHORTEST_NUMERIC_PII:
                windows.append((max(0, start - 1), end + 1))
            if start >= 2 and text[start - 2 : start] in IBAN_LENGTHS:
                iban_starts.append(start - 2)
        return cls(windows, iban_starts)


def _in_windows(pattern: re.Pattern[str], text: str, clusters: _DigitClusters) -> Iterator[re.Match[str]]:
    for pos, endpos in clusters.windows:
        yield from pattern.finditer(text, pos, endpos)


def _email_spans(text: str, clusters: _DigitClusters) -> Iterator[Span]:
    if "@" not in text:
        return
    for m in _EMAIL.finditer(text):
        yield m.span()


def _phone_spans(text: str, clusters: _DigitClusters) -> Iterator[Span]:
    for m in _in_windows(_PHONE, text, clusters):
        digits = sum(char.isdigit() for char in m.group())
        if 8 <= digits <= 15:  # E.164 allows at most 15; fewer than 8 is a short code or a sum
            yield m.span()


def _credit_card_spans(text: str, clusters: _DigitClusters) -> Iterator[Span]:
    for m in _in_windows(_CREDIT_CARD, text, clusters):
        raw = m.group()
        groups = re.split(r"[ -]", raw)
        # Cards are written in blocks of 4-6 (4-4-4-4, 4-6-5) with one kind of separator; single
        # digits split by spaces are a list of numbers, not a card.
        if len(groups) > 1 and (min(len(g) for g in groups) < 3 or ("-" in raw and " " in raw)):
            continue
        digits = "".join(groups)
        if _CARD_ISSUER.match(digits) and luhn_valid(digits):
            yield m.span()


def _ipv4_spans(text: str, clusters: _DigitClusters) -> Iterator[Span]:
    for m in _in_windows(_IPV4, text, clusters):
        if not _VERSION_CONTEXT.search(text, max(0, m.start() - 12), m.start()):
            yield m.span()


def _plausible_compressed_ipv6(address: str) -> bool:
    """`a::b`, `dead::beef` and the slice `x[1::2]` match the compressed shape; addresses
    have at least two groups, a digit unless they are long, and a full group when there are two."""
    groups = [g for g in re.split(r"[:.]", address) if g]
    if len(groups) < 2:
        return False
    if len(groups) < 4 and not any(c.isdigit() for c in address):
        return False
    return len(groups) > 2 or max(len(g) for g in groups) == 4


_HEX_DIGITS = "0123456789abcdefABCDEF"
# Longest text an address can run past its last colon: an embedded IPv4 "255.255.255.255".
_IPV6_TAIL = 15


def _ipv6_windows(text: str) -> list[Span]:
    """Stretches of text holding a chain of colons an address could be made of ("::", or seven
    colons each 1-4 hex digits apart). Docs and code are full of colons ("Note:", "a: int"), and
    walking them with str.find is far cheaper than running the address pattern over the text."""
    windows: list[Span] = []
    first = previous = text.find(":")
    colons, compressed = 1, False
    while previous != -1:
        following = text.find(":", previous + 1)
        gap = text[previous + 1 : following]
        if following != -1 and len(gap) <= 4 and not gap.strip(_HEX_DIGITS):
            colons += 1
            compressed = compressed or not gap
        else:
            if compressed or colons >= 7:
                windows.append((max(0, first - 5), previous + _IPV6_TAIL + 2))
            first, colons, compressed = following, 1, False
        previous = following
    return windows


def _ipv6_spans(text: str, clusters: _DigitClusters) -> Iterator[Span]:
    if "::" not in text and text.count(":") < 7:
        return
    for pos, endpos in _ipv6_windows(text):
        for m in _IPV6.finditer(text, pos, endpos):
            address = m.group()
            if "::" not in address or _plausible_compressed_ipv6(address):
                yield m.span()


def _ssn_spans(text: str, clusters: _DigitClusters) -> Iterator[Span]:
    for m in _in_windows(_SSN, text, clusters):
        yield m.span()


def _iban_spans(text: str, clusters: _DigitClusters) -> Iterator[Span]:
    stop = 0
    for start in clusters.iban_starts:
        if start < stop:
            continue  # inside the IBAN just found (a spaced IBAN has several digit clusters)
        m = _IBAN.match(text, start)
        if m is None:
            continue
        raw = m.group()
        length = IBAN_LENGTHS[raw[:2]]
        # Walk the match to the character that completes the country's length, so a trailing
        # upper-case word after a spaced IBAN is not taken as part of it.
        taken, end = 0, 0
        for end, char in enumerate(raw, start=1):  # noqa: B007 - `end` is read after the loop
            if char != " ":
                taken += 1
                if taken == length:
                    break
        if taken < length:
            continue
        if start + end < len(text) and text[start + end].isalnum():
            continue  # the token runs on: longer than any IBAN of that country
        if iban_valid(raw[:end].replace(" ", "")):
            stop = start + end
            yield start, stop


def _looks_like_token(value: str) -> bool:
    """Long hex, or base64 mixing letters and digits; long identifiers and paths are not tokens."""
    if _HEX_VALUE.fullmatch(value):
        return True
    return not value.startswith("/") and any(c.isdigit() for c in value) and any(c.isalpha() for c in value)


_TOKEN_PREFIXES = ("sk-", "AKIA", "ASIA", "ghp_", "gho_", "ghs_", "ghu_", "ghr_", "github_pat_", "xox")


def _may_hold_token(text: str) -> bool:
    # Substring tests run at memchr speed; most texts skip the token pattern entirely.
    return any(map(text.__contains__, _TOKEN_PREFIXES))


def _secret_spans(text: str, clusters: _DigitClusters) -> Iterator[Span]:
    if _may_hold_token(text):
        for m in _SECRET_TOKEN.finditer(text):
            token = m.group()
            if token.startswith("sk-"):
                body = token[3:]
                # Hyphenated words ("sk-learn-compatible-...") use one character class; keys mix them.
                classes = (
                    any(c.islower() for c in body),
                    any(c.isupper() for c in body),
                    any(c.isdigit() for c in body),
                )
                if sum(classes) < 2:
                    continue
            yield m.span()
    if "=" in text or ":" in text:
        for m in _ASSIGNED_VALUE.finditer(text):
            if _SECRET_KEY_NAME.search(text, max(0, m.start() - 40), m.start()) and _looks_like_token(
                m.group("value")
            ):
                yield m.span("value")
    if "earer" in text or "EARER" in text:
        for m in _BEARER.finditer(text):
            yield m.span("value")


_FINDERS: dict[str, Callable[[str, _DigitClusters], Iterator[Span]]] = {
    "email": _email_spans,
    "phone": _phone_spans,
    "credit_card": _credit_card_spans,
    "ipv4": _ipv4_spans,
    "ipv6": _ipv6_spans,
    "ssn": _ssn_spans,
    "iban": _iban_spans,
    "secret": _secret_spans,
}
_NUMERIC_TYPES = frozenset({"phone", "credit_card", "ipv4", "ssn", "iban"})
_NO_CLUSTERS = _DigitClusters([], [])
_MAX_SCRUB_PASSES = 4  # in practice one pass, two when matches were glued together


class PiiScrubber:
    """Finds and replaces the configured PII types; build once, reuse for every record."""

    def __init__(self, types: Iterable[str]) -> None:
        wanted = list(dict.fromkeys(types))
        unknown = [t for t in wanted if t not in _FINDERS]
        if unknown:
            raise ValueError(f"unknown PII type(s) {unknown}; expected some of {list(PII_TYPES)}")
        self.types: tuple[str, ...] = tuple(t for t in _PRECEDENCE if t in wanted)
        self._numeric = not _NUMERIC_TYPES.isdisjoint(self.types)

    def find(self, text: str) -> list[PiiMatch]:
        """Non-overlapping matches in text order; on overlap the more specific type wins."""
        clusters = _DigitClusters.scan(text) if self._numeric else _NO_CLUSTERS
        # Accepted spans, kept sorted by start: an overlap test is two neighbours found by bisection,
        # so a log dump with thousands of addresses stays linearithmic.
        starts: list[int] = []
        ends: list[int] = []
        kinds: list[str] = []
        for kind in self.types:
            for start, end in _FINDERS[kind](text, clusters):
                i = bisect_right(starts, start)
                if (i and ends[i - 1] > start) or (i < len(starts) and starts[i] < end):
                    continue
                starts.insert(i, start)
                ends.insert(i, end)
                kinds.insert(i, kind)
        return [PiiMatch(kind, start, end) for kind, start, end in zip(kinds, starts, ends, strict=False)]

    def scrub(self, text: str) -> tuple[str, Counter[str]]:
        """The text with each match replaced by its placeholder, and how many of each type.

        The result holds nothing find() would report: replacing one match can expose another (a
        phone number glued to an address, "2001:db8::1(555) 123-4567", is bounded only once the
        address became "[IPV6]"), so the text is re-scanned until clean. Placeholders never match,
        so every pass consumes original text and the loop ends.
        """
        counts: Counter[str] = Counter()
        for _ in range(_MAX_SCRUB_PASSES):
            matches = self.find(text)
            if not matches:
                break
            pieces: list[str] = []
            cursor = 0
            for m in matches:
                pieces.append(text[cursor : m.start])
                pieces.append(PLACEHOLDERS[m.kind])
                counts[m.kind] += 1
                cursor = m.end
            pieces.append(text[cursor:])
            text = "".join(pieces)
        return text, counts


def scrub_pii(text: str, types: Iterable[str] = PII_TYPES) -> tuple[str, Counter[str]]:
    """One-off convenience; pipelines should build a PiiScrubber once and reuse it."""
    return PiiScrubber(types).scrub(text)
