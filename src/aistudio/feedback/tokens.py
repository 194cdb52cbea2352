"""Feedback tokens: the server signs each answer's identity, so feedback can reach any replica.

A token is `v1.<payload>.<signature>`, both base64url without padding: the payload is the JSON
`{"rid": request id, "exp": expiry (unix s), "x": experiment, "v": variant}` and the signature is
HMAC-SHA256 over `v1.<payload>` with the deployment's shared secret. Replicas share the secret
(a mounted Secret), not memory: the replica that receives the feedback verifies the token itself.

A token can be used once. `ReplayGuard` remembers the tokens it consumed until they expire, and,
given a directory on storage the replicas share (the feedback store's PVC), claims each token
there with an exclusive create, so a token replayed against another replica is refused too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aistudio.errors import UserError

TOKEN_VERSION = "v1"
MIN_SECRET_LENGTH = 32
# Where the server sends the token: a response header (works for streamed answers too, whose
# body is already flowing when the token would have to be written into it).
TOKEN_HEADER = "x-aistudio-feedback-token"


class TokenError(Exception):
    """A token that cannot be honoured; `code` is the OpenAI-style error code the app answers."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class FeedbackClaims:
    """What a token vouches for: the answer it was issued with, and until when."""

    request_id: str
    expires_at: float
    experiment: str | None = None
    variant: str | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """Signs and verifies feedback tokens with one secret; `clock` is wall time (tokens cross machines)."""

    def __init__(self, secret: bytes, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(f"the feedback token secret must be >= {MIN_SECRET_LENGTH} bytes")
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be > 0 (got {ttl_s})")
        self._secret = secret
        self.ttl_s = ttl_s
        self._clock = clock

    def _signature(self, signed: str) -> bytes:
        return hmac.new(self._secret, signed.encode("ascii"), hashlib.sha256).digest()

    def sign(self, request_id: str, experiment: str | None = None, variant: str | None = None) -> str:
        claims = {"rid": request_id, "exp": int(self._clock() + self.ttl_s), "x": experiment, "v": variant}
        payload = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        signed = f"{TOKEN_VERSION}.{payload}"
        return f"{signed}.{_b64(self._signature(signed))}"

    def verify(self, token: str) -> FeedbackClaims:
        """The claims of a genuine, unexpired token; TokenError otherwise (nothing else is checked)."""
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != TOKEN_VERSION:
            raise TokenError("invalid_feedback_token", "The feedback token is malformed")
        signed = f"{parts[0]}.{parts[1]}"
        try:
            signature = _unb64(parts[2])
        except (binascii.Error, ValueError):
            raise TokenError("invalid_feedback_token", "The feedback token is malformed") from None
        # Constant time: a byte-by-byte early exit would let a forger find the signature byte by byte.
        if not hmac.compare_digest(signature, self._signature(signed)):
            raise TokenError("invalid_feedback_token", "The feedback token's signature is not valid")
        try:
            claims = json.loads(_unb64(parts[1]))
            parsed = FeedbackClaims(
                str(claims["rid"]), float(claims["exp"]), claims.get("x"), claims.get("v")
            )
        except (binascii.Error, ValueError, KeyError, TypeError):
            raise TokenError("invalid_feedback_token", "The feedback token is malformed") from None
        if self._clock() >= parsed.expires_at:
            raise TokenError(
                "feedback_token_expired",
                f"The feedback token for request '{parsed.request_id}' has expired "
                f"(tokens are valid for {self.ttl_s:g} s)",
            )
        return parsed


def token_id(token: str) -> str:
    """A token's name in the replay guard: its hash, so the guard's files hold no usable token."""
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()[:40]


class ReplayGuard:
    """Each token is consumed once: in this process, and across replicas through `shared_dir`.

    A claim older than `ttl_s` names a token that has expired (a token is claimed after it was
    issued and lives `ttl_s`), so such claims are swept now and then: the directory stays bounded."""

    SWEEP_EVERY = 1000

    def __init__(
        self, shared_dir: Path | None = None, ttl_s: float = 24 * 3600, clock: Callable[[], float] = time.time
    ) -> None:
        self.shared_dir = shared_dir
        self.ttl_s = ttl_s
        self._claims = 0
        self._clock = clock
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def consume(self, token: str, expires_at: float) -> bool:
        """True the first time a token is presented, False on every replay."""
        name = token_id(token)
        now = self._clock()
        with self._lock:
            # Expired tokens are refused before they get here, so forgetting them is safe.
            if len(self._seen) > 1024:
                self._seen = {k: v for k, v in self._seen.items() if v > now}
            if name in self._seen:
                return False
            if self.shared_dir is not None and not self._claim(name):
                return False
            self._seen[name] = expires_at
            return True

    def _claim(self, name: str) -> bool:
        assert self.shared_dir is not None
        self.shared_dir.mkdir(parents=True, exist_ok=True)
        try:
            # O_EXCL is atomic on local and NFS v3+ storage: of two replicas, exactly one creates it.
            fd = os.open(self.shared_dir / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            return False
        os.close(fd)
        self._claims += 1
        if self._claims % self.SWEEP_EVERY == 0:
            self.sweep()
        return True

    def sweep(self) -> int:
        """Delete the claims of expired tokens; how many went."""
        if self.shared_dir is None or not self.shared_dir.is_dir():
            return 0
        cutoff = self._clock() - self.ttl_s
        removed = 0
        for claim in self.shared_dir.iterdir():
            try:
                if claim.stat().st_mtime < cutoff:
                    claim.unlink()
                    removed += 1
            except FileNotFoundError:  # another replica swept it first
                continue
        return removed


def read_secret(path: Path | None, value: str | None, where: str) -> bytes | None:
    """The token secret from a file (a mounted Secret) or a raw value; None when neither is set."""
    if path is not None and value is not None:
        raise UserError(f"{where}: set the feedback token secret once, as a file or as a value, not both")
    if path is not None:
        try:
            secret = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UserError(
                f"{where}: cannot read the feedback token secret file {path}: {exc.strerror}"
            ) from None
    elif value is not None:
        secret = value.strip()
    else:
        return None
    if len(secret) < MIN_SECRET_LENGTH:
        raise UserError(
            f"{where}: the feedback token secret is {len(secret)} characters; use >= {MIN_SECRET_LENGTH} "
            "random ones (openssl rand -hex 32)"
        )
    return secret.encode()
