"""Compare production with the retrain thresholds; on a breach, optionally retrain.

    python scripts/monitor_models.py                          # Prometheus of monitoring_config.yaml
    python scripts/monitor_models.py --prometheus http://prometheus:9090 --namespace aistudio-production
    python scripts/monitor_models.py --server http://127.0.0.1:8000      # one server, since its start
    python scripts/monitor_models.py --retrain [--exp]       # dvc repro (or dvc exp run) on a breach

--retrain also retrains when collected feedback (scripts/collect_feedback.py → data/raw/feedback)
is not yet a data version: the new files are committed alone (that commit is the data version),
the trigger is appended to the audit trail (who, why, data version) and `dvc repro` re-runs
prepare_data and everything after it.

Writes metrics/monitoring.json ({values, thresholds, breaches, retrain_recommended, retrain}).
Exit 2 when the source is unreachable or an argument is wrong; 1 when a retrain ran and failed.
--server sends $AISTUDIO_API_KEY as a bearer token when it is set.
"""

from __future__ import annotations

import argparse
import os
import shlex
from datetime import UTC, datetime
from pathlib import Path

from aistudio import layout
from aistudio.cli import run_cli
from aistudio.config import load_mlflow_config
from aistudio.deploy import monitor
from aistudio.errors import UserError
from aistudio.feedback.retrain import pending_feedback, run_retrain, snapshot_feedback
from aistudio.io import write_json
from aistudio.layout import MONITORING_CONFIG_FILE, MONITORING_METRICS
from aistudio.monitoring_config import load_monitoring_config


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config", type=Path, default=MONITORING_CONFIG_FILE, help="retrain thresholds, Prometheus URL"
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--prometheus", help="Prometheus base URL (default: prometheus.url of --config)")
    source.add_argument("--server", help="a model server's base URL, read directly instead of Prometheus")
    parser.add_argument("--window", default=monitor.DEFAULT_WINDOW, help="PromQL range (default: 1h)")
    parser.add_argument("--namespace", help="only series with this namespace label (Kubernetes)")
    parser.add_argument(
        "--timeout", type=float, default=monitor.DEFAULT_TIMEOUT_S, help="seconds per HTTP request"
    )
    parser.add_argument("--output", type=Path, default=MONITORING_METRICS)
    parser.add_argument(
        "--retrain", action="store_true", help="run the retrain command when a threshold is crossed"
    )
    parser.add_argument("--exp", action="store_true", help="retrain as `dvc exp run` instead of `dvc repro`")
    parser.add_argument(
        "--reason", help="why, for the audit trail (default: the breaches or the new feedback)"
    )
    parser.add_argument("--feedback", type=Path, default=layout.FEEDBACK_RAW_DIR, help="collected feedback")
    parser.add_argument("--mlflow-config", type=Path, default=layout.MLFLOW_FILE)
    parser.add_argument("--tracking-uri", help="where the audit trail is (default: mlflow.yaml's)")
    parser.add_argument("--audit-mirror", type=Path, default=layout.AUDIT_MIRROR, help="its local copy")
    return parser


def main() -> int:
    args = _parser().parse_args()
    if args.exp and not args.retrain:
        raise UserError("--exp chooses how to retrain; it needs --retrain")
    config = load_monitoring_config(args.config)
    if args.server:
        source = {"kind": "server", "url": args.server, "window": "since server start"}
        values = monitor.read_server(args.server, os.environ.get("AISTUDIO_API_KEY"), args.timeout)
    else:
        url = args.prometheus or config.prometheus.url
        source = {"kind": "prometheus", "url": url, "window": args.window, "namespace": args.namespace}
        values = monitor.read_prometheus(url, args.window, args.namespace, args.timeout)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    report = monitor.monitoring_report(source, values, config.retrain, now)
    write_json(args.output, report)

    shown = ", ".join(f"{k}={'n/a' if v is None else f'{v:.4g}'}" for k, v in values.items())
    print(f"{source['kind']} {source['url']}: {shown}")
    if all(values.get(signal) is None for signal in monitor.SIGNALS):
        print(
            f"no aistudio_* data at {source['url']}: is a model server running and scraped (job "
            "model-server)?"
        )
    for breach in report["breaches"]:
        print(f"breach: {breach['message']}")
    for signal, why in report["not_evaluated"].items():
        print(f"not evaluated: {signal} ({why})")
    root = Path.cwd()
    feedback = pending_feedback(root, args.feedback)
    if feedback:
        print(f"new feedback data, not yet a data version: {', '.join(feedback)}")
    if not report["retrain_recommended"] and not feedback:
        print(f"no threshold crossed; wrote {args.output}")
        return 0
    if not args.retrain:
        print(f"retrain recommended; wrote {args.output} (add --retrain to run it)")
        return 0
    reason = args.reason or "; ".join(
        [b["message"] for b in report["breaches"]]
        + ([f"{len(feedback)} new feedback file(s)"] if feedback else [])
    )
    data = snapshot_feedback(root, args.feedback, f"feedback data for retraining: {reason}")
    if data.is_new:
        print(f"data version {data.commit[:12]}: {', '.join(data.files)}")
    from aistudio.registry import ModelRegistry  # mlflow: seconds to import

    tracking_uri = args.tracking_uri or load_mlflow_config(args.mlflow_config).tracking_uri
    trail = ModelRegistry(tracking_uri, args.audit_mirror).audit
    command = monitor.retrain_command(args.exp)
    print(f"retraining: {shlex.join(command)}", flush=True)
    code = run_retrain(command, root, trail, reason, data)
    report["retrain"] = {
        "command": command,
        "returncode": code,
        "started_at": now,
        "reason": reason,
        "data_version": data.commit,
        "feedback_files": data.files,
    }
    write_json(args.output, report)
    return 0 if code == 0 else 1


if __name__ == "__main__":
    run_cli(main)
