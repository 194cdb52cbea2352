"""Bearer API keys: constant-time comparison against every key, never echoing the key."""

from __future__ import annotations

import pytest

from aistudio.errors import UserError
from aistudio.serving.auth import ANONYMOUS, ApiKeyAuth, key_id
from aistudio.serving.errors import APIError
from aistudio.serving.settings import check_bind, is_loopback

KEYS = ["first-key-0123456789", "second-key-0123456789"]


def test_a_valid_bearer_key_is_identified_by_a_digest_prefix_not_the_key() -> None:
    auth = ApiKeyAuth(KEYS)
    identity = auth.identify(f"Bearer {KEYS[1]}")
    assert identity == key_id(KEYS[1])
    assert identity.startswith("key-") and KEYS[1] not in identity
    assert auth.identify(f"bearer   {KEYS[0]}") == key_id(KEYS[0])


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic Zmlyc3Q=",
        "Token first-key-0123456789",
        "Bearer first-key-012345678",
    ],
)
def test_missing_malformed_or_wrong_keys_are_401(header: str | None) -> None:
    with pytest.raises(APIError) as refused:
        ApiKeyAuth(KEYS).identify(header)
    assert refused.value.status == 401
    assert refused.value.body()["error"]["code"] == "invalid_api_key"
    assert refused.value.headers["WWW-Authenticate"] == "Bearer"
    assert "first-key" not in refused.value.message


def test_without_keys_auth_is_off() -> None:
    auth = ApiKeyAuth([])
    assert not auth.enabled
    assert auth.identify(None) == ANONYMOUS


def test_keys_are_held_only_as_digests() -> None:
    auth = ApiKeyAuth(KEYS)
    assert all(k not in repr(vars(auth)) for k in KEYS)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_may_serve_without_keys(host: str) -> None:
    assert is_loopback(host)
    check_bind(host, [], insecure_no_auth=False)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "example.com"])
def test_a_public_bind_without_keys_is_refused_unless_insecure_is_explicit(host: str) -> None:
    with pytest.raises(UserError) as refused:
        check_bind(host, [], insecure_no_auth=False)
    assert len(refused.value.problems) == 1 and "AISTUDIO_API_KEYS" in refused.value.problems[0]
    check_bind(host, [], insecure_no_auth=True)
    check_bind(host, KEYS, insecure_no_auth=False)
