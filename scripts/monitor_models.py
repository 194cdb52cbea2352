"""Compare production with the retrain thresholds; on a breach, optionally retrain.

    python scripts/monitor_models.py                          # Prometheus of monitoring_config.yaml
    python scripts/monitor_models.py --prometheus http://prometheus:9090 --namespace aistudio-production
    python scripts/monitor_models.py --server http://127.0.0.1:8000      # one server, since its start
    python scripts/monitor_models.py --retrain [--exp]       # dvc repro (or dvc exp run) on a breach

Writes metrics/monitoring.json ({values, thresholds, breaches, retrain_recommended, retrain}).
Exit 2 when the source is unreachable or an argument is wrong; 1 when a retrain ran and failed.
--server sends $AISTUDIO_API_KEY as a bearer token when it is set.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from aistudio.cli import run_cli
from aistudio.deploy import monitor
from aistudio.errors import UserError
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
    if not report["retrain_recommended"]:
        print(f"no threshold crossed; wrote {args.output}")
        return 0
    if not args.retrain:
        print(f"retrain recommended; wrote {args.output} (add --retrain to run it)")
        return 0
    command = monitor.retrain_command(args.exp)
    print(f"retraining: {shlex.join(command)}", flush=True)
    try:
        code = subprocess.run(command, check=False).returncode
    except FileNotFoundError:
        raise UserError(
            f"{command[0]} is not on PATH; run `make setup` (it installs dvc into .venv)"
        ) from None
    report["retrain"] = {"command": command, "returncode": code, "started_at": now}
    write_json(args.output, report)
    return 0 if code == 0 else 1


if __name__ == "__main__":
    run_cli(main)
