"""Consistency of dvc.yaml with params.yaml, the layout and the repository: what `validate_pipeline`
checks."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

from aistudio import layout
from aistudio.config import load_params, read_yaml
from aistudio.errors import UserError
from aistudio.pipeline_plots import check_plots

_TEMPLATE = re.compile(r"\$\{[^}]+\}")


def _has_key(tree: Any, dotted: str) -> bool:
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


# What a matrix stage's paths say for its item, so layout paths compare equal to dvc.yaml's text.
_ITEM = {"model": "${item.model}", "domain": "${item.domain}"}
# The cmd flags that name a stage's main input and output (aistudio.cli.stage_args).
_DATA_FLAG, _OUT_FLAG = "--data", "--out"


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


def _flag_value(tokens: list[str], flag: str) -> str | None:
    for i, token in enumerate(tokens):
        if token == flag and i + 1 < len(tokens):
            return tokens[i + 1]
        if token.startswith(flag + "="):
            return token.split("=", 1)[1]
    return None


def _layout_problems(where: str, name: str, stage: dict[str, Any]) -> list[str]:
    """Outputs the layout does not know for this stage, and --data / --out that the stage does not
    declare: either would let a script write (or read) a path that DVC does not track."""
    known = layout.stage_outputs(**_ITEM).get(name)
    outs = _outs(stage)
    problems = []
    if known is not None:
        expected = {str(path) for path in known}
        problems += [
            f"{where}: output '{out}' is not a path aistudio.layout knows for {name} "
            f"(expected some of {sorted(expected)}); fix the path or add it to layout.stage_outputs"
            for out in outs
            if out.rstrip("/") not in expected
        ]
    tokens = shlex.split(str(stage.get("cmd", "")))
    out_flag, data_flag = _flag_value(tokens, _OUT_FLAG), _flag_value(tokens, _DATA_FLAG)
    if out_flag is not None and not _covers(out_flag, outs):
        problems.append(f"{where}.cmd: {_OUT_FLAG} {out_flag} is not an output of the stage (nor holds one)")
    if data_flag is not None and not _covers(data_flag, [str(d) for d in stage.get("deps") or []]):
        problems.append(f"{where}.cmd: {_DATA_FLAG} {data_flag} is not a dep of the stage (nor holds one)")
    return problems


def _covers(path: str, declared: list[str]) -> bool:
    """`path` is one of the declared paths, or a directory holding one."""
    path = path.rstrip("/")
    return any(d.rstrip("/") == path or d.startswith(path + "/") for d in declared)


def check_pipeline(root: Path) -> list[str]:
    """Every problem in dvc.yaml's stages: missing scripts, unknown params keys, deps nobody makes."""
    problems: list[str] = []
    try:
        params = load_params(root / layout.PARAMS_FILE)
    except UserError as err:
        problems += err.problems
        params = None
    raw_params = read_yaml(root / layout.PARAMS_FILE)
    dvc = read_yaml(root / layout.DVC_FILE)
    stages: dict[str, Any] = dvc.get("stages") or {}
    if not stages:
        return [*problems, "dvc.yaml: no stages"]
    produced = {out for stage in stages.values() for out in _outs(stage)}
    names = list(stages)
    known_order = [s for s in layout.PIPELINE_STAGES if s in stages]
    if [n for n in names if n in layout.PIPELINE_STAGES] != known_order:
        problems.append(f"dvc.yaml: stages out of pipeline order; expected {known_order}")
    for name, stage in stages.items():
        where = f"dvc.yaml: stages.{name}"
        problems += _matrix_problems(where, stage.get("matrix") or {}, raw_params)
        problems += _layout_problems(where, name, stage)
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
    problems += check_plots(root, dvc, raw_params)
    if params is None:
        problems.append("params.yaml: invalid, see above")
    return problems
