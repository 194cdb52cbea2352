"""Report an A/B experiment: per-variant counts, positive-feedback rates and a significance test.

Exactly one source: a running server (--server), Prometheus (--prometheus) or a saved summary
(--input, the JSON of GET /v1/ab/summary). Exit 0 with a report, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from aistudio.cli import run_cli
from aistudio.errors import UserError
from aistudio.serving import ab_report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--server", metavar="URL", help="model server base URL; reads GET /v1/ab/summary")
    source.add_argument("--prometheus", metavar="URL", help="Prometheus base URL; sums every replica")
    source.add_argument("--input", type=Path, metavar="FILE", help="a saved /v1/ab/summary JSON file")
    parser.add_argument(
        "--window", default="7d", help="with --prometheus: the range to count over (default 7d)"
    )
    parser.add_argument("--alpha", type=float, default=ab_report.DEFAULT_ALPHA, help="significance level")
    parser.add_argument(
        "--api-key-env",
        default="AISTUDIO_API_KEY",
        help="with --server: environment variable holding the API key (never pass a key on the command line)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = parser.parse_args()
    if not 0.0 < args.alpha < 1.0:
        raise UserError(f"--alpha must be in (0, 1) (got {args.alpha})")

    if args.server:
        summary = ab_report.summary_from_server(args.server, os.environ.get(args.api_key_env))
    elif args.prometheus:
        summary = ab_report.summary_from_prometheus(args.prometheus, args.window)
    else:
        summary = ab_report.summary_from_file(args.input)
    results = ab_report.analyse(summary, args.alpha)
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        print(ab_report.format_report(results), end="")
    return 0


if __name__ == "__main__":
    run_cli(main)
