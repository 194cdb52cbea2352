"""Inspect and move the model registry: list, show, promote, rollback, download, audit.

`promote` re-runs the version's gates against the current champion and refuses a failing version
unless given `--force --reason`; `rollback` needs `--reason`. Every move is in the audit trail:
`audit` prints it, `audit verify` checks its hash chain and names the first broken entry.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from aistudio import layout
from aistudio.cli import run_cli
from aistudio.config import load_mlflow_config, load_params


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--tracking-uri", help="MLflow tracking URI (default: from --mlflow-config)")
    common.add_argument("--mlflow-config", type=Path, default=layout.MLFLOW_FILE)
    common.add_argument(
        "--audit-mirror", type=Path, default=layout.AUDIT_MIRROR, help="local copy of the audit trail"
    )
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", parents=[common], help="registered models with their versions and aliases")
    show = sub.add_parser("show", parents=[common], help="one version: source, run, aliases, lineage tags")
    show.add_argument("name")
    which = show.add_mutually_exclusive_group()
    which.add_argument("--version", type=int)
    which.add_argument("--alias", help="e.g. champion, challenger, previous-champion (default: champion)")
    promote = sub.add_parser(
        "promote", parents=[common], help="make a version champion if it passes its gates"
    )
    promote.add_argument("name")
    promote.add_argument("--version", type=int, required=True)
    promote.add_argument("--params", type=Path, default=layout.PARAMS_FILE, help="where the gates are")
    promote.add_argument("--force", action="store_true", help="promote despite failed gates (needs --reason)")
    promote.add_argument("--reason", default="", help="why; recorded in the audit trail")
    rollback = sub.add_parser("rollback", parents=[common], help="champion ← previous-champion")
    rollback.add_argument("name")
    rollback.add_argument(
        "--reason", required=True, help="why the champion goes; recorded in the audit trail"
    )
    download = sub.add_parser("download", parents=[common], help="download and verify a bundle")
    download.add_argument("model_uri", help="models:/<name>@<alias> or models:/<name>/<version>")
    download.add_argument("--dst", type=Path, required=True, help="a new or empty directory")
    audit = sub.add_parser("audit", parents=[common], help="print the audit trail, or `audit verify` it")
    audit.add_argument("check", nargs="?", choices=["verify"], help="check the hash chain instead")
    audit.add_argument("--model", help="only this registered model's entries")
    audit.add_argument("--json", action="store_true", help="one JSON entry per line")
    return parser


def main() -> int:
    args = _parser().parse_args()
    # Each audit read downloads the log: a progress bar per command would bury the one line that matters.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    tracking_uri = args.tracking_uri or load_mlflow_config(args.mlflow_config).tracking_uri
    gates = None
    if args.command == "promote":
        from aistudio.promotion import gates_by_set  # after argument errors: mlflow takes seconds to import

        gates = gates_by_set(load_params(args.params).evaluation)
    from aistudio.audit import format_log
    from aistudio.registry import ModelRegistry

    registry = ModelRegistry(tracking_uri, audit_mirror=args.audit_mirror)
    if args.command == "list":
        for model in registry.list_models():
            aliases = " ".join(f"{a}=v{v}" for a, v in model.aliases.items()) or "no aliases"
            print(f"{model.name}  versions: {', '.join(map(str, model.versions)) or 'none'}  {aliases}")
    elif args.command == "show":
        which = args.version if args.version is not None else args.alias or "champion"
        info = registry.show(args.name, which)
        print(json.dumps(info.to_dict(), indent=2, sort_keys=True))
    elif args.command == "promote":
        from aistudio.promotion import promote_gated

        outcome = promote_gated(registry, args.name, args.version, gates, args.force, args.reason)
        moved = " ".join(f"{a}=v{v}" for a, v in registry.aliases(args.name).items())
        print(
            f"{args.name}: {moved}" + ("  (forced past failed gates; audited)" if outcome == "forced" else "")
        )
    elif args.command == "rollback":
        champion = registry.rollback(args.name, args.reason)
        print(f"{args.name}: rolled back, champion=v{champion}")
    elif args.command == "download":
        print(registry.download(args.model_uri, args.dst))
    elif args.command == "audit" and args.check == "verify":
        result = registry.audit.verify()
        if not result.ok:
            from aistudio.errors import UserError

            raise UserError(f"audit log: {result.problems[0]}")
        print(
            f"audit log: {result.entries} {'entry' if result.entries == 1 else 'entries'}, hash chain intact"
        )
    elif args.command == "audit":
        entries = registry.audit.entries(args.model)
        print("\n".join(e.to_line() for e in entries) if args.json else format_log(entries) or "(no entries)")
    return 0


if __name__ == "__main__":
    run_cli(main)
