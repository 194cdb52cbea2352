"""Serve one base model and its LoRA adapters over an OpenAI-compatible API.

    python scripts/serve.py --bundle models/bundles/smollm2           # a local serving bundle
    python scripts/serve.py --model-uri models:/aistudio-smollm2@champion
    python scripts/serve.py --bundle /models/bundle --host 0.0.0.0 --port 8000   # the container

Settings: --config (default $AISTUDIO_SERVING_CONFIG, else configs/serving.yaml), overridden by
AISTUDIO_* variables. Exit 2 with one line per problem when the bundle fails its sha256 check,
a config or key file is invalid, or a non-loopback bind has no API keys (AISTUDIO_API_KEY_FILE
with id:roles:sha256 lines, or AISTUDIO_API_KEYS).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

from aistudio import layout
from aistudio.bundle import load_bundle, verify_bundle
from aistudio.cli import run_cli
from aistudio.config import load_mlflow_config
from aistudio.serving.request_log import JsonFormatter
from aistudio.serving.settings import check_bind, load_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--bundle", type=Path, help="a serving bundle directory (aistudio.bundle)")
    source.add_argument(
        "--model-uri", help="models:/<name>@<alias> or models:/<name>/<version>, from the registry"
    )
    parser.add_argument("--tracking-uri", help="MLflow tracking URI for --model-uri (default: mlflow.yaml's)")
    parser.add_argument("--mlflow-config", type=Path, default=layout.MLFLOW_FILE)
    parser.add_argument(
        "--config",
        type=Path,
        help="serving settings YAML (default: $AISTUDIO_SERVING_CONFIG or configs/serving.yaml)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (non-loopback needs API keys)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--model-version",
        default=os.environ.get("MODEL_VERSION", "local"),
        help="reported in aistudio_model_info (default: $MODEL_VERSION, set by the Rollout)",
    )
    parser.add_argument(
        "--audit-mirror", type=Path, default=layout.AUDIT_MIRROR, help="local copy of the audit trail"
    )
    parser.add_argument(
        "--insecure-no-auth", action="store_true", help="serve without API keys on any address"
    )
    return parser


def _configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def _download(args: argparse.Namespace, scratch: Path) -> tuple[Path, str, str]:
    """The registry's bundle for --model-uri → (directory, version, registered name)."""
    from aistudio.registry import ModelRegistry, parse_model_uri  # mlflow: seconds to import

    registry = ModelRegistry(args.tracking_uri or load_mlflow_config(args.mlflow_config).tracking_uri)
    name, pinned, alias = parse_model_uri(args.model_uri)
    # Resolve the alias once and download that version: the alias may move in between.
    version = registry.show(name, pinned if pinned is not None else alias).version
    return registry.download(f"models:/{name}/{version}", scratch / "bundle"), str(version), name


def _tracking_uri(args: argparse.Namespace) -> str | None:
    """MLflow for runtime adapters from models:/ or artifact URIs: the flag, else mlflow.yaml's."""
    if args.tracking_uri:
        return args.tracking_uri
    return load_mlflow_config(args.mlflow_config).tracking_uri if args.mlflow_config.is_file() else None


def _audit_hook(args: argparse.Namespace, model: str, version: str):  # type: ignore[no-untyped-def]
    """Adapter changes go to the registry's audit trail when the server knows a registry."""
    from aistudio.serving.state import log_audit

    tracking_uri = _tracking_uri(args)
    if tracking_uri is None:
        return log_audit
    from aistudio.registry import ModelRegistry  # mlflow: seconds to import
    from aistudio.serving.audit_trail import trail_audit_hook

    if args.mlflow_config.is_file():  # a local bundle: its registered name, as the registry audits it
        model = load_mlflow_config(args.mlflow_config).registry.get(model, model)
    trail = ModelRegistry(tracking_uri, args.audit_mirror).audit
    return trail_audit_hook(trail, model, version, also=log_audit)


def main() -> int:
    args = _parser().parse_args()
    settings = load_settings(args.config)
    keys = settings.all_api_keys()
    check_bind(args.host, keys, args.insecure_no_auth)
    _configure_logging(settings.logging.level)
    with tempfile.TemporaryDirectory(prefix="aistudio-bundle-") as scratch:
        bundle_dir, version, name = args.bundle, args.model_version, None
        if args.model_uri:
            bundle_dir, version, name = _download(args, Path(scratch))
            if settings.served_model_name is None:
                settings = settings.model_copy(update={"served_model_name": name})
        # Every file's sha256 is checked before torch is even imported: a tampered bundle is
        # refused in a second.
        verify_bundle(bundle_dir)
        from aistudio.serving.app import create_app, resolve_monitoring, resolve_reference_profile

        if settings.engine.torch_threads is not None:
            import torch

            torch.set_num_threads(settings.engine.torch_threads)
        monitoring = resolve_monitoring(settings)
        bundle = load_bundle(bundle_dir, verify=False)  # verified just above
        profile = resolve_reference_profile(settings, bundle_dir)
        audit = _audit_hook(args, name or bundle.manifest.model, version)
        app = create_app(
            settings,
            bundle,
            monitoring,
            profile,
            version,
            keys,
            audit=audit,
            tracking_uri=_tracking_uri(args),
        )
        import uvicorn

        # In-flight generations may take request_timeout_s; SIGTERM waits that long for them.
        grace = int(settings.generation.request_timeout_s) + 5
        uvicorn.run(
            app,
            host=args.host,
            port=args.port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=grace,
        )
    return 0


if __name__ == "__main__":
    run_cli(main)
