"""Is the MLflow tracking store usable? Answered in seconds, before a stage does any work.

MLflow's own client retries a refused connection or a 5xx for minutes (MLFLOW_HTTP_REQUEST_MAX_RETRIES
with backoff), which is right in the middle of a run (a restarting server comes back) and wrong at
the start of one (a stage would train for an hour, then wait minutes, then print a traceback). Each
check here is one plain request with a short timeout and no retry, and a failure is a UserError
naming the tracking URI (credentials masked) and the fix.

Three layers can be down independently behind an `mlflow server`: the server itself, its backend
store (PostgreSQL: the server still answers /health, but every run query fails with 503) and its
proxied artifact store (S3: wrong keys or a missing bucket fail only artifact requests).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from aistudio.errors import UserError

log = logging.getLogger(__name__)
REACHABILITY_TIMEOUT_S = 3.0
# A query against the backend store on a loaded machine: slower than /health, still bounded.
STORE_TIMEOUT_S = 10.0
_MAX_DETAIL_CHARS = 300
_SQLALCHEMY_BACKGROUND = re.compile(r"\(Background on this error at: [^)]*\)")
_FIX_SERVER = (
    "start it (make team-up for the team profile), "
    "or point --tracking-uri, mlflow.yaml or AISTUDIO_MLFLOW_PROFILE at a running one"
)


def redact(uri: str) -> str:
    """The URI with any password replaced by ***, so it can be printed."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _auth_headers() -> dict[str, str]:
    # The same variables MLflow's REST client reads, so a server behind auth passes the checks too.
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if token:
        return {"Authorization": f"Bearer {token}"}
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
    return {}


def _error_body(error: urllib.error.HTTPError) -> tuple[str, str]:
    """(MLflow's error_code, its one-line message); ("", "HTTP <status> <reason>") for other bodies."""
    try:
        body = error.read().decode("utf-8", errors="replace")
        parsed = json.loads(body) if body.lstrip().startswith("{") else {}
    except (OSError, ValueError):
        parsed = {}
    code = str(parsed.get("error_code", "")) if isinstance(parsed, dict) else ""
    message = str(parsed.get("message", "")) if isinstance(parsed, dict) else ""
    message = _SQLALCHEMY_BACKGROUND.sub("", message)
    message = " ".join(message.split()) or f"HTTP {error.code} {error.reason}"
    return code, message[:_MAX_DETAIL_CHARS]


def _get(url: str, timeout_s: float) -> None:
    request = urllib.request.Request(url, headers=_auth_headers())
    urllib.request.urlopen(request, timeout=timeout_s).close()  # noqa: S310 - http(s) checked by callers


def check_reachable(tracking_uri: str, timeout_s: float = REACHABILITY_TIMEOUT_S) -> None:
    """The store answers at all: an http(s) server's /health, or a sqlite file's directory."""
    parsed = urlsplit(tracking_uri)
    shown = redact(tracking_uri)
    if parsed.scheme in ("http", "https"):
        try:
            _get(f"{tracking_uri.rstrip('/')}/health", timeout_s)
        except urllib.error.HTTPError:
            return  # it answered (a proxy without /health, or auth in front): the server is up
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise UserError(
                f"MLflow tracking server at {shown} is unreachable: {reason} ({_FIX_SERVER})"
            ) from None
    elif parsed.scheme == "sqlite":
        # sqlite:///relative.db and sqlite:////absolute.db: the path is what follows 'sqlite:///'.
        path = Path(tracking_uri.removeprefix("sqlite:///"))
        if path.name and not path.parent.is_dir():
            raise UserError(f"MLflow tracking store at {tracking_uri} is unreachable: no {path.parent}")


def _slow_is_not_down(shown: str, what: str, exc: OSError) -> None:
    """A server that answered /health but is slow to query is busy, not down: MLflow's client waits."""
    if isinstance(exc, TimeoutError) or isinstance(getattr(exc, "reason", None), TimeoutError):
        log.warning("MLflow tracking server at %s is slow to answer %s; going on", shown, what)
        return
    raise UserError(f"MLflow tracking server at {shown} did not answer {what}: {exc}") from None


def _check_server_stores(tracking_uri: str, timeout_s: float) -> None:
    base, shown = tracking_uri.rstrip("/"), redact(tracking_uri)
    try:
        _get(f"{base}/api/2.0/mlflow/experiments/search?max_results=1", timeout_s)
    except urllib.error.HTTPError as exc:
        _, detail = _error_body(exc)
        if exc.code in (401, 403):
            raise UserError(
                f"MLflow tracking server at {shown} refused the request ({detail}): set "
                "MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
            ) from None
        if exc.code >= 500:
            raise UserError(
                f"MLflow tracking server at {shown} cannot reach its backend store: {detail} "
                "(start the database — make team-up for the team profile — then rerun)"
            ) from None
    except (urllib.error.URLError, OSError) as exc:
        _slow_is_not_down(shown, "a store query", exc)
    try:
        _get(f"{base}/api/2.0/mlflow-artifacts/artifacts?path=", timeout_s)
    except urllib.error.HTTPError as exc:
        code, detail = _error_body(exc)
        if exc.code == 404 and not code:
            return  # no such route: the server does not proxy artifacts, clients write them directly
        # MLflow's own answers, e.g. RESOURCE_DOES_NOT_EXIST for a missing bucket, UNAUTHENTICATED
        # for keys the bucket refuses, INTERNAL_ERROR for an endpoint it cannot reach.
        raise UserError(
            f"MLflow tracking server at {shown} cannot reach its artifact store: {detail} "
            "(check the server's AWS credentials, MLFLOW_S3_ENDPOINT_URL and that the bucket exists)"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        _slow_is_not_down(shown, "an artifact query", exc)


def _check_database(tracking_uri: str, timeout_s: float) -> None:
    import sqlalchemy

    connect_args = {"connect_timeout": int(timeout_s)} if tracking_uri.startswith("postgresql") else {}
    try:
        engine = sqlalchemy.create_engine(tracking_uri, connect_args=connect_args)
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
        engine.dispose()
    except ModuleNotFoundError as exc:
        raise UserError(
            f"MLflow tracking store at {redact(tracking_uri)} needs the database driver {exc.name}: "
            "install the pinned stack (make setup)"
        ) from None
    except sqlalchemy.exc.SQLAlchemyError as exc:
        reason = _SQLALCHEMY_BACKGROUND.sub("", str(getattr(exc, "orig", None) or exc))
        reason = " ".join(reason.split())[:_MAX_DETAIL_CHARS]
        raise UserError(
            f"MLflow tracking store at {redact(tracking_uri)} is unreachable: {reason} "
            "(start the database, or fix tracking_uri in mlflow.yaml)"
        ) from None


def check_tracking_store(tracking_uri: str, timeout_s: float = STORE_TIMEOUT_S) -> None:
    """Every layer a stage will write to answers: server, backend store and artifact store."""
    check_reachable(tracking_uri)
    scheme = urlsplit(tracking_uri).scheme
    if scheme in ("http", "https"):
        _check_server_stores(tracking_uri, timeout_s)
    elif scheme.split("+")[0] in ("postgresql", "mysql", "mssql"):
        _check_database(tracking_uri, timeout_s)
