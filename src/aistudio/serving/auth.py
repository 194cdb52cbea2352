"""API keys with roles: who may call which route. The key file holds digests, never keys.

Key file (`AISTUDIO_API_KEY_FILE`, in Kubernetes a mounted Secret), one key per line, `#` comments:

    <id>:<roles>:<sha256 of the key, hex>
    ci-evaluator:inference:5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8
    ops-admin:inference,monitoring,admin:...

Roles: `inference` (completions, chat, models, tokenize), `feedback` (POST /v1/feedback),
`monitoring` (drift, A/B summary; /metrics and probes when they are protected), `admin`
(loading and unloading adapters at runtime); `*` grants all four. A line is made with
`printf %s "$KEY" | python -m aistudio.serving.auth --id NAME --roles inference,feedback`.
Raw keys in `AISTUDIO_API_KEYS` get every role but admin: admin needs the key file.

Presented keys are hashed and compared with `hmac.compare_digest` against every digest, so
neither timing nor an early exit tells a caller how close a guess was. Downstream (rate limits,
logs, the audit hook) a caller is its key id, never the key.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aistudio.errors import UserError
from aistudio.serving.errors import AUTHENTICATION, PERMISSION, APIError

ROLES: tuple[str, ...] = ("inference", "feedback", "monitoring", "admin")
ENV_KEY_ROLES = frozenset({"inference", "feedback", "monitoring"})
ANONYMOUS = "anonymous"
MIN_KEY_LENGTH = 16
_KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def key_id(key: str) -> str:
    """A loggable name for a raw key: 'key-' + 8 hex of its sha256 (the key itself is never logged)."""
    return "key-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:8]


@dataclass(frozen=True)
class ApiKey:
    id: str
    roles: frozenset[str]
    sha256: bytes

    @classmethod
    def from_secret(cls, key: str, id: str | None = None, roles: Iterable[str] = ENV_KEY_ROLES) -> ApiKey:
        return cls(id or key_id(key), frozenset(roles), digest(key))


@dataclass(frozen=True)
class Caller:
    id: str
    roles: frozenset[str]


def parse_roles(text: str, where: str) -> frozenset[str]:
    if text.strip() == "*":
        return frozenset(ROLES)
    roles = frozenset(r.strip() for r in text.split(",") if r.strip())
    unknown = sorted(roles - set(ROLES))
    if unknown or not roles:
        raise UserError(f"{where}: unknown role(s) {unknown or [text]}; use some of {', '.join(ROLES)} or *")
    return roles


def parse_key_file(path: Path) -> list[ApiKey]:
    """Every `id:roles:sha256` line of the key file; each bad line is one problem naming it."""
    if not path.is_file():
        raise UserError(f"api_key_file {path} not found (set AISTUDIO_API_KEY_FILE to a readable file)")
    keys, problems, seen = [], [], set()
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{path}:{number}"
        parts = line.split(":")
        if len(parts) != 3:
            problems.append(
                f"{where}: expected id:roles:sha256 (make one with "
                '`printf %s "$KEY" | python -m aistudio.serving.auth --id NAME --roles inference`)'
            )
            continue
        name, roles, hexdigest = (p.strip() for p in parts)
        if not _KEY_ID.match(name):
            problems.append(f"{where}: key id '{name}' must be letters, digits and _.@- (at most 64)")
        elif name in seen:
            problems.append(f"{where}: key id '{name}' appears twice")
        if not _SHA256.match(hexdigest.lower()):
            problems.append(f"{where}: the third field must be the key's sha256 in hex (64 characters)")
        try:
            parsed = parse_roles(roles, where)
        except UserError as err:
            problems.extend(err.problems)
            continue
        seen.add(name)
        if not problems:
            keys.append(ApiKey(name, parsed, bytes.fromhex(hexdigest.lower())))
    if problems:
        raise UserError(problems)
    return keys


def _unauthorized(message: str) -> APIError:
    return APIError(
        401, message, AUTHENTICATION, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"}
    )


def forbidden(caller: Caller, role: str, route: str) -> APIError:
    return APIError(
        403,
        f"The API key '{caller.id}' lacks the '{role}' role that {route} requires; "
        f"it has: {', '.join(sorted(caller.roles)) or 'no roles'}",
        PERMISSION,
        code="insufficient_role",
    )


class ApiKeyAuth:
    """Identifies callers by their bearer key; with no keys configured everyone is anonymous
    with every role (the server then refuses to bind beyond loopback, see settings.check_bind)."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._keys: list[ApiKey] = list(keys)

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def identify(self, authorization: str | None) -> Caller:
        if not self._keys:
            return Caller(ANONYMOUS, frozenset(ROLES))
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized(
                "You didn't provide an API key; send it as an 'Authorization: Bearer <key>' header"
            )
        given = digest(token.strip())
        match = None
        for key in self._keys:  # no early exit: every comparison runs
            if hmac.compare_digest(given, key.sha256):
                match = key
        if match is None:
            raise _unauthorized("Incorrect API key provided")
        return Caller(match.id, match.roles)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print a key-file line for the key read from stdin.")
    parser.add_argument("--id", required=True, help="a name for the key (logged; the key never is)")
    parser.add_argument("--roles", required=True, help=f"comma list of {', '.join(ROLES)}, or *")
    args = parser.parse_args(argv)
    key = sys.stdin.read().strip()
    if len(key) < MIN_KEY_LENGTH:
        raise UserError(
            f"the key on stdin is shorter than {MIN_KEY_LENGTH} characters; use openssl rand -hex 32"
        )
    if not _KEY_ID.match(args.id):
        raise UserError(f"--id '{args.id}' must be letters, digits and _.@- (at most 64)")
    roles = parse_roles(args.roles, "--roles")
    print(f"{args.id}:{','.join(r for r in ROLES if r in roles)}:{hashlib.sha256(key.encode()).hexdigest()}")
    return 0


if __name__ == "__main__":
    from aistudio.cli import run_cli

    run_cli(lambda: main())
