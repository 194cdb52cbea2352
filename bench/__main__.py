"""`make bench`: run every benchmark module in bench/ (each in its own process) and list the ratios."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from aistudio.environment import apply_offline_defaults
from aistudio.layout import BENCH_DIR


def main() -> int:
    apply_offline_defaults()
    names = sorted(p.stem for p in Path(__file__).parent.glob("*.py") if not p.stem.startswith("_"))
    if len(sys.argv) > 1:
        names = [n for n in names if n in sys.argv[1:]]
    failed = []
    for name in names:
        print(f"== bench.{name}", flush=True)
        if subprocess.run([sys.executable, "-m", f"bench.{name}"], check=False).returncode != 0:
            failed.append(name)
    for path in sorted(BENCH_DIR.glob("*.json")):
        print(f"{path}: {json.dumps(json.loads(path.read_text()).get('summary', {}), sort_keys=True)}")
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
