"""Feedback tokens: what one replica signs another verifies; forged, expired and replayed ones fail."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from aistudio.errors import UserError
from aistudio.feedback.tokens import ReplayGuard, TokenError, TokenSigner, read_secret

SECRET = b"s" * 32


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_token_signed_by_one_replica_verifies_on_another_with_the_shared_secret() -> None:
    clock = Clock()
    token = TokenSigner(SECRET, 60, clock).sign("cmpl-1", "code-adapter", "lora")
    claims = TokenSigner(SECRET, 60, clock).verify(token)
    assert (claims.request_id, claims.experiment, claims.variant) == ("cmpl-1", "code-adapter", "lora")
    assert claims.expires_at == clock.now + 60


def test_a_token_without_experiment_carries_only_the_request() -> None:
    signer = TokenSigner(SECRET, 60)
    claims = signer.verify(signer.sign("chatcmpl-2"))
    assert (claims.request_id, claims.experiment, claims.variant) == ("chatcmpl-2", None, None)


def test_a_token_expires_after_its_ttl() -> None:
    clock = Clock()
    signer = TokenSigner(SECRET, 60, clock)
    token = signer.sign("cmpl-1")
    clock.now += 59
    signer.verify(token)
    clock.now += 1
    with pytest.raises(TokenError) as caught:
        signer.verify(token)
    assert caught.value.code == "feedback_token_expired" and "cmpl-1" in str(caught.value)


def _tamper_payload(token: str, **changes: object) -> str:
    version, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = base64.urlsafe_b64encode(json.dumps({**claims, **changes}).encode()).rstrip(b"=").decode()
    return f"{version}.{forged}.{signature}"


@pytest.mark.parametrize(
    "forge",
    [
        lambda t: _tamper_payload(t, rid="cmpl-someone-else"),
        lambda t: _tamper_payload(t, exp=9_999_999_999),
        lambda t: _tamper_payload(t, v="control"),
        lambda t: TokenSigner(b"another-secret-" + b"x" * 32, 60).sign("cmpl-1"),
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),
        lambda t: "v1.not-a-token",
        lambda t: "v2." + t.split(".", 1)[1],
        lambda t: t.split(".")[0] + ".!!!." + t.split(".")[2],
    ],
    ids=[
        "other-request",
        "longer-expiry",
        "other-variant",
        "other-secret",
        "bad-signature",
        "two-parts",
        "unknown-version",
        "garbage-payload",
    ],  # fmt: skip
)
def test_a_forged_or_malformed_token_is_refused(forge) -> None:  # type: ignore[no-untyped-def]
    signer = TokenSigner(SECRET, 60)
    with pytest.raises(TokenError) as caught:
        signer.verify(forge(signer.sign("cmpl-1", "code-adapter", "lora")))
    assert caught.value.code == "invalid_feedback_token"


def test_a_token_is_consumed_once_per_process() -> None:
    guard = ReplayGuard()
    assert guard.consume("tok-a", 2e9) is True
    assert guard.consume("tok-a", 2e9) is False
    assert guard.consume("tok-b", 2e9) is True


def test_a_token_replayed_against_another_replica_is_refused_through_the_shared_directory(
    tmp_path: Path,
) -> None:
    first, second = ReplayGuard(tmp_path / "claims"), ReplayGuard(tmp_path / "claims")
    assert first.consume("tok-a", 2e9) is True
    assert second.consume("tok-a", 2e9) is False
    # The claim files are named by hash: the shared volume holds no usable token.
    assert all("tok-a" not in p.name for p in (tmp_path / "claims").iterdir())


def test_claims_of_expired_tokens_are_swept_and_live_ones_kept(tmp_path: Path) -> None:
    clock = Clock()
    guard = ReplayGuard(tmp_path / "claims", ttl_s=60, clock=clock)
    guard.consume("a", clock.now + 60)
    guard.consume("b", clock.now + 60)
    old = next((tmp_path / "claims").iterdir())  # made to look claimed two TTLs ago
    for claim in (tmp_path / "claims").iterdir():
        os.utime(claim, (clock.now - 120, clock.now - 120) if claim == old else (clock.now, clock.now))
    assert guard.sweep() == 1
    assert len(list((tmp_path / "claims").iterdir())) == 1


def test_short_or_doubly_set_secrets_are_user_errors(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("x" * 40 + "\n")
    assert read_secret(tmp_path / "secret", None, "where") == b"x" * 40
    assert read_secret(None, None, "where") is None
    with pytest.raises(UserError, match="openssl rand"):
        read_secret(None, "short", "where")
    with pytest.raises(UserError, match="not both"):
        read_secret(tmp_path / "secret", "y" * 40, "where")
    with pytest.raises(UserError, match="cannot read"):
        read_secret(tmp_path / "missing", None, "where")
