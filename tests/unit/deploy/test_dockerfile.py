"""The model-server image recipe: pinned bases, both variants, non-root, health-checked, and a
build context that leaves local state behind. Read statically; no Docker daemon needed."""

from __future__ import annotations

import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
DOCKERFILE = (REPO / "Dockerfile").read_text()


def instructions(keyword: str) -> list[str]:
    """Arguments of every `keyword` instruction, with line continuations joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [line.split(None, 1)[1] for line in joined.splitlines() if line.split(None, 1)[:1] == [keyword]]


def global_args() -> dict[str, str]:
    args = {}
    for line in DOCKERFILE.split("\nFROM ", 1)[0].splitlines():
        if line.startswith("ARG ") and "=" in line:
            name, _, value = line[4:].partition("=")
            args[name] = value
    return args


def test_the_gpu_base_is_a_pinned_cuda_runtime_image() -> None:
    base = global_args()["BASE_IMAGE"]
    assert re.fullmatch(r"nvidia/cuda:\d+\.\d+\.\d+-(cudnn-)?runtime-ubuntu\d+\.\d+", base), base


def test_the_cpu_variant_is_python_3_11_slim() -> None:
    args = global_args()
    assert args["VARIANT"] == "gpu"
    cpu = args["CPU_BASE_IMAGE"].replace("${PYTHON_VERSION}", args["PYTHON_VERSION"])
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", cpu), cpu
    assert "python-${VARIANT} AS runtime" in instructions("FROM")


def test_no_base_image_floats() -> None:
    for value in global_args().values():
        assert not value.endswith(":latest")
    for source in instructions("FROM"):
        assert ":latest" not in source


def test_the_pinned_stack_is_installed_under_its_constraints() -> None:
    assert "pip install -r requirements-mlops.txt -c constraints.txt" in instructions("RUN")


def test_the_server_runs_as_uid_10001() -> None:
    assert instructions("USER")[-1] == "10001:10001"


def test_the_healthcheck_probes_healthz() -> None:
    (healthcheck,) = instructions("HEALTHCHECK")
    assert "http://127.0.0.1:8000/healthz" in healthcheck


def test_the_entrypoint_serves_the_mounted_bundle_on_port_8000() -> None:
    assert json.loads(instructions("ENTRYPOINT")[-1]) == [
        "python",
        "scripts/serve.py",
        "--bundle",
        "/models/bundle",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
    ]
    assert instructions("EXPOSE") == ["8000"]


def test_local_state_stays_out_of_the_build_context() -> None:
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {
        ".venv",
        ".git",
        "mlflow.db",
        "mlruns",
        "models",
        "data",
        ".hf",
        "logs",
        "metrics/bench",
    } <= ignored
    for needed in ("src", "scripts", "requirements-mlops.txt", "constraints.txt", "pyproject.toml"):
        assert needed not in ignored
