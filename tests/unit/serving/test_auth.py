"""API keys with roles: digests only, constant-time comparison, one problem per bad key-file line."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from aistudio.errors import UserError
from aistudio.serving.auth import (
    ANONYMOUS,
    ENV_KEY_ROLES,
    ROLES,
    ApiKey,
    ApiKeyAuth,
    forbidden,
    key_id,
    parse_key_file,
)
from aistudio.serving.errors import APIError
from aistudio.serving.settings import check_bind, is_loopback

KEYS = ["first-key-0123456789", "second-key-0123456789"]
REPO = Path(__file__).resolve().parents[3]


def _auth() -> ApiKeyAuth:
    ops = ApiKey("ops", frozenset({"admin"}), hashlib.sha256(KEYS[1].encode()).digest())
    return ApiKeyAuth([ApiKey.from_secret(KEYS[0]), ops])


def test_a_valid_bearer_key_is_identified_by_its_id_never_the_key() -> None:
    auth = _auth()
    caller = auth.identify(f"Bearer {KEYS[0]}")
    assert caller.id == key_id(KEYS[0]) and KEYS[0] not in caller.id
    assert caller.roles == ENV_KEY_ROLES
    assert auth.identify(f"bearer   {KEYS[1]}").id == "ops"
    assert auth.identify(f"Bearer {KEYS[1]}").roles == {"admin"}


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
        _auth().identify(header)
    assert refused.value.status == 401
    assert refused.value.body()["error"]["code"] == "invalid_api_key"
    assert refused.value.headers["WWW-Authenticate"] == "Bearer"
    assert "first-key" not in refused.value.message


def test_a_missing_role_is_a_403_naming_the_key_and_the_role() -> None:
    caller = _auth().identify(f"Bearer {KEYS[0]}")
    error = forbidden(caller, "admin", "POST /v1/load_lora_adapter")
    body = error.body()["error"]
    assert error.status == 403 and body["type"] == "permission_error" and body["code"] == "insufficient_role"
    assert "'admin'" in body["message"] and caller.id in body["message"]


def test_without_keys_everyone_is_anonymous_with_every_role() -> None:
    auth = ApiKeyAuth([])
    assert not auth.enabled
    caller = auth.identify(None)
    assert caller.id == ANONYMOUS and caller.roles == set(ROLES)


def test_keys_are_held_only_as_digests() -> None:
    auth = _auth()
    assert all(k not in repr(vars(auth)) for k in KEYS)


def test_the_key_file_gives_each_id_its_roles(tmp_path: Path) -> None:
    digest = hashlib.sha256(b"some-long-random-key-0001").hexdigest()
    path = tmp_path / "keys"
    path.write_text(f"# comment\nci:inference, feedback:{digest}\nops:*:{digest.upper()}\n\n")
    ci, ops = parse_key_file(path)
    assert (ci.id, ci.roles) == ("ci", {"inference", "feedback"})
    assert ops.roles == set(ROLES) and ops.sha256 == bytes.fromhex(digest)


def test_every_bad_key_file_line_is_one_problem_naming_file_and_line(tmp_path: Path) -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    path = tmp_path / "keys"
    path.write_text(
        f"a-raw-key-without-fields\nci:wizard:{digest}\nci2:inference:not-hex\nbad id:inference:{digest}\n"
        f"dup:inference:{digest}\ndup:admin:{digest}\n"
    )
    with pytest.raises(UserError) as refused:
        parse_key_file(path)
    problems = refused.value.problems
    assert len(problems) == 5
    assert problems[0].startswith(f"{path}:1: expected id:roles:sha256")
    assert f"{path}:2: unknown role(s) ['wizard']" in problems[1]
    assert problems[2].startswith(f"{path}:3: the third field")
    assert problems[3].startswith(f"{path}:4: key id 'bad id'")
    assert problems[4] == f"{path}:6: key id 'dup' appears twice"


def test_the_key_file_line_helper_prints_id_roles_and_digest_never_the_key() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "aistudio.serving.auth", "--id", "ops", "--roles", "admin,inference"],
        input="some-long-random-key-0001\n",
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    digest = hashlib.sha256(b"some-long-random-key-0001").hexdigest()
    assert done.stdout.strip() == f"ops:inference,admin:{digest}"
    short = subprocess.run(
        [sys.executable, "-m", "aistudio.serving.auth", "--id", "ops", "--roles", "admin"],
        input="short\n",
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert short.returncode == 2 and "shorter than 16" in short.stderr


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
    check_bind(host, [ApiKey.from_secret(KEYS[0])], insecure_no_auth=False)
