"""Is a DVC remote usable? One S3 request answers it before `dvc push` / `dvc pull` start.

DVC reports a wrong key, a dead endpoint or a missing bucket as "unexpected error" with botocore's
text and exit code 255. `check_remote` asks the same endpoint with the same credentials DVC would
use (the remote's own keys or profile from .dvc/config(.local), else the usual AWS variables) and
turns each failure into one line naming the remote and the fix. It reads and (for a push) writes
one probe object; it never touches the workspace or the cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aistudio.errors import UserError

_CREDENTIAL_ERRORS = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "AccessDenied",
    "403",
    "Forbidden",
}
WRITE_PROBE = ".aistudio-write-check"


@dataclass(frozen=True)
class RemoteInfo:
    name: str
    url: str
    settings: Mapping[str, Any]

    @property
    def is_s3(self) -> bool:
        return urlsplit(self.url).scheme == "s3"

    @property
    def bucket(self) -> str:
        return urlsplit(self.url).netloc

    @property
    def prefix(self) -> str:
        return urlsplit(self.url).path.strip("/")

    @property
    def endpoint(self) -> str | None:
        return self.settings.get("endpointurl")

    def describe(self) -> str:
        where = f" at {self.endpoint}" if self.endpoint else ""
        return f"DVC remote '{self.name}' ({self.url}{where})"


def remote_info(repo_root: Path, name: str | None = None) -> RemoteInfo:
    """The remote `name` (default: core.remote) as DVC resolves it, .dvc/config.local included."""
    from dvc.config import Config, ConfigError

    try:
        config = Config(dvc_dir=str(Path(repo_root) / ".dvc"))
    except ConfigError as exc:
        raise UserError(f".dvc/config: {exc}") from None
    remotes = config.get("remote", {})
    chosen = name or config.get("core", {}).get("remote")
    if not chosen:
        raise UserError(".dvc/config: no default remote (core.remote); pass --remote <name>")
    if chosen not in remotes:
        defined = ", ".join(sorted(remotes)) or "none"
        raise UserError(
            f".dvc/config: remote '{chosen}' is not defined (defined: {defined}); "
            f"add it with dvc remote add {chosen} <url>"
        )
    settings = dict(remotes[chosen])
    return RemoteInfo(chosen, str(settings["url"]), settings)


def _client(remote: RemoteInfo) -> Any:
    import boto3
    from botocore.config import Config as BotoConfig
    from botocore.exceptions import ProfileNotFound

    settings = remote.settings
    try:
        session = boto3.session.Session(profile_name=settings.get("profile"))
    except ProfileNotFound as exc:
        raise UserError(
            f"{remote.describe()}: {exc}; fix it with dvc remote modify --local {remote.name} profile <name>"
        ) from None
    # Fail in seconds, not after botocore's retries against a dead endpoint.
    quick = BotoConfig(connect_timeout=3, read_timeout=10, retries={"max_attempts": 1})
    return session.client(
        "s3",
        endpoint_url=remote.endpoint,
        region_name=settings.get("region"),
        aws_access_key_id=settings.get("access_key_id"),
        aws_secret_access_key=settings.get("secret_access_key"),
        aws_session_token=settings.get("session_token"),
        config=quick,
    )


def _fix_credentials(name: str) -> str:
    return (
        "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (for the local team stack: source .team/env), "
        f"or dvc remote modify --local {name} access_key_id / secret_access_key"
    )


def check_remote(repo_root: Path, name: str | None = None, write: bool = False) -> RemoteInfo:
    """List (and with `write`, put and delete a probe object) under the remote's prefix."""
    remote = remote_info(repo_root, name)
    if not remote.is_s3:
        return remote  # local and other remotes: DVC's own messages name the path
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    what = remote.describe()
    client = _client(remote)
    try:
        client.list_objects_v2(Bucket=remote.bucket, Prefix=remote.prefix, MaxKeys=1)
        if write:
            key = f"{remote.prefix}/{WRITE_PROBE}".lstrip("/")
            client.put_object(Bucket=remote.bucket, Key=key, Body=b"")
            client.delete_object(Bucket=remote.bucket, Key=key)
    except EndpointConnectionError as exc:
        raise UserError(
            f"{what} is unreachable: {exc}; start it (make team-up for the team remote) or fix the "
            f"endpoint: dvc remote modify --local {remote.name} endpointurl <url>"
        ) from None
    except NoCredentialsError:
        raise UserError(f"{what}: no AWS credentials found; {_fix_credentials(remote.name)}") from None
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code == "NoSuchBucket":
            raise UserError(
                f"{what}: bucket '{remote.bucket}' does not exist; create it (make team-up creates the "
                f"team buckets) or point the remote at one: dvc remote modify {remote.name} url s3://<bucket>/<path>"
            ) from None
        if code in _CREDENTIAL_ERRORS:
            refused = "a write" if write and code == "AccessDenied" else "the credentials"
            raise UserError(f"{what} refused {refused} ({code}); {_fix_credentials(remote.name)}") from None
        raise UserError(f"{what}: {code or 'error'}: {exc}") from None
    return remote
