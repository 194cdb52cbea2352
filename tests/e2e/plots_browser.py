"""Headless Chromium on a `dvc plots` page, with no network, and what each declared chart drew.

The page is loaded from file://; every host name resolves to nothing and every other request goes
to a proxy on a closed port, so a script the page fetched from a CDN never arrives and its charts
stay empty. Charts are read back from the DOM: the page draws SVG (see src/aistudio/plots/page.html).
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=http://127.0.0.1:9",
    # Virtual time runs the page's timers and promises to completion, then the DOM is dumped.
    "--virtual-time-budget=30000",
)


def dump_dom(page: Path, profile: Path) -> str:
    """The page's DOM after its scripts ran, from a fresh Chromium profile."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not on PATH; run `make setup` (Debian package chromium)")
    profile.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@dataclass
class DrawnChart:
    status: str | None = None  # data-plot: "drawn" or "failed", None when the page's wrapper never ran
    svg: bool = False
    lines: int = 0
    bars: int = 0
    points: int = 0
    titles: list[str] = field(default_factory=list)
    legend_labels: list[str] = field(default_factory=list)
    mark_texts: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


_MARKS = {"line mark": "lines", "bar": "bars", "point": "points"}
_TEXT_ROLES = {"role-title-text": "titles", "role-legend-label": "legend_labels", "role-mark": "mark_texts"}


class _ChartReader(HTMLParser):
    def __init__(self, chart_ids: set[str]) -> None:
        super().__init__()
        self.chart_ids = chart_ids
        self.charts: dict[str, DrawnChart] = {}
        self.current: DrawnChart | None = None
        self.div_depth = 0
        self.groups: list[str] = []  # class of each open <g> inside the chart
        self.text_into: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {k: v or "" for k, v in attrs}
        if self.current is None:
            if tag == "div" and attr.get("id") in self.chart_ids:
                self.current = self.charts.setdefault(attr["id"], DrawnChart(status=attr.get("data-plot")))
                self.div_depth = 1
            return
        chart = self.current
        if tag == "div":
            self.div_depth += 1
        elif tag == "svg":
            chart.svg = True
        elif tag == "g":
            self.groups.append(attr.get("class", ""))
        elif tag == "path" and attr.get("d"):
            kind = _MARKS.get(attr.get("aria-roledescription", ""))
            if kind:
                setattr(chart, kind, getattr(chart, kind) + 1)
        elif tag == "text":
            classes = self.groups[-1].split() if self.groups else []
            self.text_into = next((into for role, into in _TEXT_ROLES.items() if role in classes), None)
            if self.text_into == "mark_texts" and "mark-text" not in classes:
                self.text_into = None
        elif tag == "pre" and "plot-error" in attr.get("class", ""):
            self.text_into = "errors"

    def handle_endtag(self, tag: str) -> None:
        if self.current is None:
            return
        if tag == "div":
            self.div_depth -= 1
            if self.div_depth == 0:
                self.current, self.groups = None, []
        elif tag == "g" and self.groups:
            self.groups.pop()
        elif tag in ("text", "pre"):
            self.text_into = None

    def handle_data(self, data: str) -> None:
        if self.current is not None and self.text_into and data.strip():
            getattr(self.current, self.text_into).append(data.strip())


def drawn_charts(dom: str, chart_ids: set[str]) -> dict[str, DrawnChart]:
    reader = _ChartReader(chart_ids)
    reader.feed(dom)
    return reader.charts


# --- what each chart should show, from its plot data files --------------------------------------


def _rows(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as handle:
            return list(csv.DictReader(handle))
    return json.loads(path.read_text(encoding="utf-8"))


def _number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return value != ""


def _fields(y: Mapping[str, Any]) -> dict[str, list[str]]:
    return {file: [cols] if isinstance(cols, str) else list(cols) for file, cols in y.items()}


def chart_problems(
    repo: Path, plot_id: str, props: Mapping[str, Any], chart: DrawnChart | None, revisions: int = 1
) -> list[str]:
    """Why `chart` is not what the plot data in `repo` should draw (one panel per revision)."""
    if chart is None:
        return [f"{plot_id}: no such chart in the page"]
    if chart.status != "drawn" or not chart.svg:
        return [f"{plot_id}: not drawn (status {chart.status}, svg {chart.svg}, errors {chart.errors})"]
    problems = []
    if props["title"] not in chart.titles:
        problems.append(f"{plot_id}: title {props['title']!r} not among {chart.titles}")
    rows = {file: _rows(repo / file) for file in _fields(props["y"])}
    notes = {r["note"] for file_rows in rows.values() for r in file_rows if r.get("note")}
    missing_notes = notes - set(chart.mark_texts)
    if missing_notes:
        problems.append(f"{plot_id}: notes {sorted(missing_notes)} not shown")
    template, x = props["template"], props["x"]
    if template == "loss":
        series = sum(
            any(_number(r.get(column)) for r in rows[file])
            for file, columns in _fields(props["y"]).items()
            for column in columns
        )
        drawn = ("lines", chart.lines, series * revisions)
    else:
        ((file, column),) = ((f, c[0]) for f, c in _fields(props["y"]).items())
        values = [r for r in rows[file] if _number(r.get(column))]
        if template == "grouped_bars":
            drawn = ("bars", chart.bars, len(values) * revisions)
            forms = {r["form"] for r in values}
            if not forms <= set(chart.legend_labels):
                problems.append(f"{plot_id}: forms {sorted(forms)} not all in legend {chart.legend_labels}")
        else:
            drawn = ("points", chart.points, sum(_number(r.get(x)) for r in values) * revisions)
    kind, got, want = drawn
    if got != want:
        problems.append(f"{plot_id}: {got} {kind} drawn, the data has {want}")
    return problems
