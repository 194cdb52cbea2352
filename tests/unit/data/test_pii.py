"""PII scrubbing: each type is found in its common written forms, and the usual look-alikes
(versions, dates, decimals, hashes, code) are left alone."""

from __future__ import annotations

import time

import pytest

from aistudio.config import PII_TYPES
from aistudio.data.pii import PiiMatch, PiiScrubber, iban_valid, luhn_valid, scrub_pii

SCRUBBER = PiiScrubber(PII_TYPES)


def assert_untouched(text: str) -> None:
    scrubbed, counts = SCRUBBER.scrub(text)
    assert scrubbed == text, f"unexpected scrub: {scrubbed!r}"
    assert not counts


# --- positives ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address", ["john.doe@example.com", "a+tag@sub.example.co.uk", "first_last-99@mail-server.org"]
)
def test_email_addresses_are_replaced(address: str) -> None:
    assert scrub_pii(f"write to {address}, please") == ("write to [EMAIL], please", {"email": 1})


@pytest.mark.parametrize(
    "number",
    [
        "+44 20 7946 0958",
        "(555) 123-4567",
        "555-123-4567",
        "555.123.4567",
        "+1-202-555-0173",
        "+49 30 901820",
        "+4930901820",
        "+44 (0)20 7946 0958",
        "1-800-555-0199",
    ],
)
def test_phone_numbers_in_international_and_us_forms_are_replaced(number: str) -> None:
    assert scrub_pii(f"Call {number} today.") == ("Call [PHONE] today.", {"phone": 1})


@pytest.mark.parametrize(
    "card",
    [
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111111111111111",
        "5500 0000 0000 0004",
        "3782 822463 10005",
        "6011111111111117",
        "2223000048400011",
    ],
)
def test_luhn_valid_card_numbers_are_replaced(card: str) -> None:
    assert scrub_pii(f"card: {card}.") == ("card: [CREDIT_CARD].", {"credit_card": 1})


@pytest.mark.parametrize("address", ["10.0.0.1", "192.168.1.254", "8.8.8.8", "255.255.255.0"])
def test_ipv4_addresses_are_replaced(address: str) -> None:
    assert scrub_pii(f"host {address} is down.") == ("host [IPV4] is down.", {"ipv4": 1})


def test_ipv4_followed_by_port_or_prefix_length_is_replaced() -> None:
    assert scrub_pii("http://10.1.2.3:8080/x and 172.16.0.0/12")[0] == "http://[IPV4]:8080/x and [IPV4]/12"


@pytest.mark.parametrize(
    "address",
    [
        "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        "2001:db8::1",
        "fe80::1ff:fe23:4567:890a",
        "fe80::1",
        "::ffff:192.0.2.128",
        "2001:db8:0:0:1::",
    ],
)
def test_ipv6_addresses_full_and_compressed_are_replaced(address: str) -> None:
    assert scrub_pii(f"peer {address} joined") == ("peer [IPV6] joined", {"ipv6": 1})


def test_valid_us_social_security_number_is_replaced() -> None:
    assert scrub_pii("SSN 123-45-6789 on file") == ("SSN [SSN] on file", {"ssn": 1})


@pytest.mark.parametrize(
    "invalid", ["000-12-3456", "666-12-3456", "912-12-3456", "123-00-4567", "123-45-0000"]
)
def test_ssns_with_never_issued_area_group_or_serial_are_kept(invalid: str) -> None:
    assert_untouched(f"ref {invalid}")


@pytest.mark.parametrize(
    "iban",
    [
        "GB82 WEST 1234 5698 7654 32",
        "GB82WEST12345698765432",
        "DE89 3704 0044 0532 0130 00",
        "NO9386011117947",
    ],
)
def test_mod97_valid_ibans_are_replaced(iban: str) -> None:
    assert scrub_pii(f"IBAN: {iban}.") == ("IBAN: [IBAN].", {"iban": 1})


def test_spaced_iban_stops_at_its_country_length_before_a_following_capitalised_word() -> None:
    text = "pay GB82 WEST 1234 5698 7654 32 AND DE89370400440532013000"
    assert scrub_pii(text)[0] == "pay [IBAN] AND [IBAN]"


def test_iban_with_wrong_check_digits_is_kept() -> None:
    assert_untouched("IBAN GB81 WEST 1234 5698 7654 32")


@pytest.mark.parametrize(
    "token",
    [
        "sk-proj-Ab3dEf6hIj9kLmN0pQrStUvWx",
        "sk-aB1cD2eF3gH4iJ5kL6mN7oP8",
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
        "gho_16C7e42F292c6912E7710c838347Ae178B4a",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnop",
        "xoxb-123456789012-abcdefghijKL",
    ],
)
def test_token_shaped_secrets_are_replaced_whole(token: str) -> None:
    assert scrub_pii(f"use {token} here") == ("use [SECRET] here", {"secret": 1})


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("api_key=3f2a9c1e4b5d6f708192a3b4c5d6e7f8", "api_key=[SECRET]"),
        ('"token": "dGhpcyBpcyBhIHNlY3JldCB0b2tlbiAxMjM0NTY3OA=="', '"token": "[SECRET]"'),
        (
            "AWS_SECRET_ACCESS_KEY = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "AWS_SECRET_ACCESS_KEY = [SECRET]",
        ),
        ("password: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b", "password: [SECRET]"),
        (
            "Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0In0.sig12345abc",
            "Authorization: Bearer [SECRET]",
        ),
    ],
)
def test_long_values_in_key_assignments_are_replaced_keeping_the_key(line: str, expected: str) -> None:
    assert scrub_pii(line) == (expected, {"secret": 1})


def test_scrub_counts_each_type_and_keeps_surrounding_text() -> None:
    text = "Mail bob@example.org or call +1-202-555-0173; server 10.0.0.1, backup 10.0.0.2."
    scrubbed, counts = scrub_pii(text)
    assert scrubbed == "Mail [EMAIL] or call [PHONE]; server [IPV4], backup [IPV4]."
    assert counts == {"email": 1, "phone": 1, "ipv4": 2}


def test_find_returns_ordered_non_overlapping_matches_with_offsets() -> None:
    text = "x 10.0.0.1 y a@b.io"
    assert SCRUBBER.find(text) == [PiiMatch("ipv4", 2, 10), PiiMatch("email", 13, 19)]


def test_more_specific_type_wins_an_overlap() -> None:
    # The embedded dotted quad is a valid IPv4 on its own; the IPv6 address claims it first.
    assert SCRUBBER.find("via ::ffff:192.0.2.128 now") == [PiiMatch("ipv6", 4, 22)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x 2001:db8::1(555) 123-4567 y", "x [IPV6][PHONE] y"),
        ("call +44 20 7946 0958::ffff:192.0.2.128 now", "call [PHONE] [IPV6] now"),
    ],
)
def test_scrubbed_text_holds_no_pii_even_when_matches_were_glued_together(text: str, expected: str) -> None:
    scrubbed, _ = SCRUBBER.scrub(text)
    assert scrubbed == expected
    assert SCRUBBER.find(scrubbed) == []


def test_only_configured_types_are_scrubbed() -> None:
    assert scrub_pii("a@b.io 10.0.0.1", types=["ipv4"]) == ("a@b.io [IPV4]", {"ipv4": 1})


def test_unknown_type_is_an_error_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown PII type"):
        PiiScrubber(["email", "passport"])


def test_text_without_pii_comes_back_identical() -> None:
    assert_untouched("A plain paragraph, with punctuation; numbers like 42 and 7 — and unicode: café.")


# --- look-alikes that must survive ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "release 1.2.3",
        "Python 3.11.7",
        "tag v2.10.4.1",
        "version 1.2.3.4",
        "v1.2.3.4",
        "pip install x==1.2.3.4",
        "section 1.2.3.4.5",
        "1.2.3.4.5",
    ],
)
def test_version_numbers_are_not_ip_addresses(text: str) -> None:
    assert_untouched(text)


def test_octets_above_255_are_not_ip_addresses() -> None:
    assert_untouched("192.168.1.300 and 256.1.1.1")


@pytest.mark.parametrize(
    "text",
    [
        "on 2024-01-15",
        "on 15/01/2024",
        "on 2024.01.15",
        "at 2024-01-15T12:30:45Z",
        "at 12:30:45",
        "at 2024-01-15 12:30:45.123456",
        "epoch 1705312245",
        "epoch ms 1705312245123",
    ],
)
def test_dates_times_and_timestamps_are_kept(text: str) -> None:
    assert_untouched(text)


@pytest.mark.parametrize("text", ["pi is 3.14159", "total 1,234,567.89", "ratio 0.000123456789012345"])
def test_decimal_numbers_are_kept(text: str) -> None:
    assert_untouched(text)


@pytest.mark.parametrize(
    "text",
    [
        "commit 3f2a9c1",
        "commit 3f2a9c1e4b5d6f708192a3b4c5d6e7f8091a2b3c",
        "id 123e4567-e89b-12d3-a456-426614174000",
        "mask 0xDEADBEEF",
        "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ],
)
def test_hex_ids_outside_key_assignments_are_kept(text: str) -> None:
    assert_untouched(text)


@pytest.mark.parametrize(
    "text",
    [
        "std::vector<int> v;",
        "a::b",
        "Foo::Bar::baz()",
        "dead::beef",
        "xs[1::2]",
        "arr[::3]",
        "u8::MAX",
        "mac 00:1A:2B:3C:4D:5E",
    ],
)
def test_code_with_double_colons_is_not_ipv6(text: str) -> None:
    assert_untouched(text)


@pytest.mark.parametrize("number", ["4111 1111 1111 1112", "4111111111111112", "5500-0000-0000-0005"])
def test_luhn_invalid_card_numbers_are_kept(number: str) -> None:
    assert_untouched(f"order {number}")


@pytest.mark.parametrize(
    "text",
    [
        "ISBN 978-3-16-148410-0",
        "ISBN 9780306406157",
        "ISBN 0-306-40615-2",
        "years 2019 2020 2021 2022",
        "digits 1 2 3 4 5 6 7 8 9 1 2 3 4",
    ],
)
def test_isbns_and_number_lists_are_not_cards_or_phones(text: str) -> None:
    assert_untouched(text)


@pytest.mark.parametrize(
    "text",
    [
        "sort(key=lambda r: r.id)",
        "sk-learn-compatible-estimator-interface",
        "task-abcdefghijklmnopqrstuvwxyz",
        "token: a_very_long_identifier_name_without_any_digits",
        "key: /usr/local/lib/python3.11/site-packages/x",
        "password: hunter2",
    ],
)
def test_short_values_identifiers_and_words_are_not_secrets(text: str) -> None:
    assert_untouched(text)


def test_email_like_code_is_kept() -> None:
    assert_untouched("@property\ndef f(self): return x @ y  # matrix product; pkg@1.2")


def test_checksum_helpers_agree_with_published_examples() -> None:
    assert luhn_valid("79927398713") and not luhn_valid("79927398710")
    assert iban_valid("GB82WEST12345698765432") and not iban_valid("GB82WEST12345698765433")


# --- cost -------------------------------------------------------------------------------------------


def test_long_adversarial_inputs_do_not_backtrack_catastrophically() -> None:
    texts = [
        "a" * 20_000 + "@",
        "1" * 20_000,
        "1-" * 10_000,
        "+1 " * 7_000,
        ":" * 20_000,
        "a:" * 10_000 + "::",
        "1." * 10_000,
        "key=" + "A" * 20_000 + "!",
        "GB82" + " A" * 10_000,
    ]
    started = time.perf_counter()
    for text in texts:
        SCRUBBER.scrub(text)
    assert time.perf_counter() - started < 5.0


def test_thousands_of_matches_are_scrubbed_quickly() -> None:
    text = "".join(f"host 10.0.{i // 250}.{i % 250} user{i}@example.com\n" for i in range(5_000))
    started = time.perf_counter()
    _, counts = SCRUBBER.scrub(text)
    assert counts == {"ipv4": 5_000, "email": 5_000}
    assert time.perf_counter() - started < 5.0
