"""Consistency of dvc.yaml with params.yaml and the repository: what `validate_pipeline` checks."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

from aistudio import paths
from aistudio.config import load_params, read_yaml
from aistudio.errors import UserError

_TEMPLATE = re.compile(r"\$\{[^}]+\}")


def _has_key(tree: Any, dotted: str) -> bool:
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _outs(stage: dict[str, Any]) -> list[str]:
    found = []
    for key in ("outs", "metrics", "plots"):
        for entry in stage.get(key) or []:
            found.append(next(iter(entry)) if isinstance(entry, dict) else str(entry))
    return found


# A matrix axis must list exactly the entries params.yaml defines, or a model/domain is silently skipped.
_MATRIX_SOURCES = {
    "model": ("models", "params.yaml models"),
    "domain": ("data.domains", "params.yaml data.domains"),
}


def _matrix_problems(where: str, matrix: dict[str, Any], raw_params: dict[str, Any]) -> list[str]:
    problems = []
    for axis, values in matrix.items():
        if axis not in _MATRIX_SOURCES or not isinstance(values, list):
            continue
        key, label = _MATRIX_SOURCES[axis]
        node: Any = raw_params
        for part in key.split("."):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        expected = list(node) if isinstance(node, dict | list) else []
        if sorted(map(str, values)) != sorted(map(str, expected)):
            problems.append(f"{where}.matrix.{axis} {values} does not match {label} {expected}")
    return problems


def check_pipeline(root: Path) -> list[str]:
    """Every problem in dvc.yaml's stages: missing scripts, unknown params keys, deps nobody makes."""
    problems: list[str] = []
    try:
        params = load_params(root / paths.PARAMS_FILE)
    except UserError as err:
        problems += err.problems
        params = None
    raw_params = read_yaml(root / paths.PARAMS_FILE)
    dvc = read_yaml(root / paths.DVC_FILE)
    stages: dict[str, Any] = dvc.get("stages") or {}
    if not stages:
        return [*problems, "dvc.yaml: no stages"]
    produced = {out for stage in stages.values() for out in _outs(stage)}
    names = list(stages)
    known_order = [s for s in paths.PIPELINE_STAGES if s in stages]
    if [n for n in names if n in paths.PIPELINE_STAGES] != known_order:
        problems.append(f"dvc.yaml: stages out of pipeline order; expected {known_order}")
    for name, stage in stages.items():
        where = f"dvc.yaml: stages.{name}"
        problems += _matrix_problems(where, stage.get("matrix") or {}, raw_params)
        cmd = str(stage.get("cmd", ""))
        scripts = [tok for tok in shlex.split(_TEMPLATE.sub("X", cmd)) if tok.endswith(".py")]
        if not scripts:
            problems.append(f"{where}.cmd runs no python script")
        for script in scripts:
            if not (root / script).exists():
                problems.append(f"{where}.cmd: script {script} does not exist")
        for entry in stage.get("params") or []:
            keys = [entry] if isinstance(entry, str) else [k for v in entry.values() for k in v or []]
            for key in keys:
                if not _TEMPLATE.search(key) and not _has_key(raw_params, key):
                    problems.append(f"{where}.params: '{key}' is not a key of params.yaml")
        for dep in stage.get("deps") or []:
            if _TEMPLATE.search(dep) or dep in produced or (root / dep).exists():
                continue
            inside_an_output = any(dep.startswith(out.rstrip("/") + "/") for out in produced)
            # A directory dep that gathers matrix outputs (models/lora ← models/lora/${item.model}).
            gathers_outputs = any(out.startswith(dep.rstrip("/") + "/") for out in produced)
            if not (inside_an_output or gathers_outputs):
                problems.append(f"{where}.deps: '{dep}' neither exists nor is an output of a stage")
    if params is None:
        problems.append("params.yaml: invalid, see above")
    return problems
