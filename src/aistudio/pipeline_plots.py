"""The plots part of `validate_pipeline`: dvc.yaml's `plots:` against what the stages write.

DVC only finds out at `dvc plots show` time that a chart names a column its file lacks (and then
draws nothing). Here every chart's files must be ones a stage writes, every loss curve a training
stage writes must be in a chart, and every column named must be one the file has: read from the
file when it exists, else the columns its writer declares, so a fresh clone is checked too.
"""

from __future__ import annotations

import configparser
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aistudio import layout
from aistudio.evaluation.plots import CHARTS
from aistudio.plots import data as plot_data
from aistudio.plots.page import PAGE_IN_DVC_DIR, page_problem

# Templates dvc-render ships; any other name must be a file in layout.PLOT_TEMPLATES_DIR.
BUILTIN_TEMPLATES = frozenset(
    {"simple", "linear", "smooth", "confusion", "confusion_normalized", "scatter", "scatter_jitter"}
    | {"bar_horizontal", "bar_horizontal_sorted"}
)


def expected_plot_files(raw_params: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """Every plot data file the stages write for these params → the columns its writer puts in it."""
    models = dict(raw_params.get("models") or {})
    domains = list((raw_params.get("data") or {}).get("domains") or [])
    loss = plot_data.LOSS_CURVE_COLUMNS
    files: dict[str, tuple[str, ...]] = {}
    for model, model_cfg in models.items():
        # An imported (init: pretrained) base is measured, not trained: it has no loss curve.
        if (model_cfg or {}).get("init", "tiny") != "pretrained":
            files[str(layout.loss_plot("train_base", model))] = loss
        for domain in domains:
            files[str(layout.loss_plot("finetune", f"{model}-{domain}"))] = loss
            files[str(layout.loss_plot(f"lora/{model}", domain))] = loss
    for chart in CHARTS:
        files[str(layout.evaluation_plot(chart.column))] = chart.columns
    files[str(layout.QUANTIZATION_PLOT)] = plot_data.QUANTIZATION_COLUMNS
    return files


def _fields(axis: Any) -> dict[str, list[str]]:
    """A plot's x or y as file → columns (a bare column name has no file: DVC applies it to each y file)."""
    if not isinstance(axis, Mapping):
        return {}
    return {str(f): [c] if isinstance(c, str) else [str(x) for x in c or []] for f, c in axis.items()}


def _template_problem(root: Path, where: str, template: Any) -> str | None:
    if template is None or template in BUILTIN_TEMPLATES:
        return None
    path = root / layout.PLOT_TEMPLATES_DIR / f"{template}.json"
    if not path.is_file():
        return f"{where}.template: '{template}' is neither {path.relative_to(root)} nor a DVC template"
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        return f"{path.relative_to(root)}: not valid JSON ({err.msg} at line {err.lineno})"
    return None


def _column_problems(
    root: Path, where: str, file: str, columns: list[str], declared: tuple[str, ...]
) -> list[str]:
    written = root / file
    have = plot_data.read_columns(written) if written.is_file() else list(declared)
    source = "has" if written.is_file() else "is written with"
    return [
        f"{where}: {file} has no column '{column}' (it {source} columns {', '.join(have)})"
        for column in columns
        if column not in have
    ]


def _definitions(dvc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for entry in dvc.get("plots") or []:
        if isinstance(entry, Mapping):
            for plot_id, props in entry.items():
                found[str(plot_id)] = dict(props or {})
        else:
            found[str(entry)] = {}
    return found


def _page_config_problem(root: Path) -> str | None:
    config = configparser.ConfigParser()
    config.read(root / layout.DVC_DIR / "config", encoding="utf-8")
    configured = config.get("plots", "html_template", fallback=None)
    if configured != str(PAGE_IN_DVC_DIR):
        return (
            f".dvc/config: plots.html_template is {configured!r}, expected '{PAGE_IN_DVC_DIR}' "
            "(the offline page; without it `dvc plots show` loads Vega from a CDN)"
        )
    return None


def check_plots(root: Path, dvc: Mapping[str, Any], raw_params: Mapping[str, Any]) -> list[str]:
    """Every problem with dvc.yaml's `plots:` and the page that draws them (empty when none)."""
    root = Path(root)
    expected = expected_plot_files(raw_params)
    definitions = _definitions(dvc)
    if not definitions:
        return ["dvc.yaml: no top-level plots; declare the loss, evaluation and quantization charts"]
    problems: list[str] = []
    charted: set[str] = set()
    # Templates and the page live in .dvc/: checked in a DVC repository, not in a bare copy of dvc.yaml.
    in_dvc_repo = (root / layout.DVC_DIR).is_dir()
    for plot_id, props in definitions.items():
        where = f"dvc.yaml: plots.{plot_id}"
        ys = _fields(props.get("y"))
        if not ys:
            problems.append(f"{where}: y must map each data file to its columns ({{file: [column, ...]}})")
            continue
        if in_dvc_repo and (template := _template_problem(root, where, props.get("template"))) is not None:
            problems.append(template)
        x = props.get("x")
        for file, columns in ys.items():
            charted.add(file)
            if file not in expected:
                problems.append(f"{where}: {file} is not a plot file any stage writes")
                continue
            named = [*columns, *([x] if isinstance(x, str) else _fields(x).get(file, []))]
            problems += _column_problems(root, where, file, named, expected[file])
    for file in sorted(set(expected) - charted):
        problems.append(f"dvc.yaml: plots: no chart draws {file}; add it to the chart of its stage")
    if in_dvc_repo:
        problems += [p for p in (_page_config_problem(root), page_problem(root)) if p is not None]
    return problems
