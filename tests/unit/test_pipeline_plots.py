"""validate_pipeline's plots check: every chart's files and columns are ones the stages write."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from aistudio.layout import PLOTS_PAGE, VENDORED_VEGA_DIR
from aistudio.pipeline_plots import check_plots, expected_plot_files
from aistudio.plots.data import LOSS_CURVE_COLUMNS, write_csv
from aistudio.plots.page import write_page


@pytest.fixture
def root(repo_root: Path, tmp_path: Path) -> Path:
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(repo_root / name, tmp_path / name)
    (tmp_path / ".dvc").mkdir()
    shutil.copy(repo_root / ".dvc" / "config", tmp_path / ".dvc" / "config")
    shutil.copytree(
        repo_root / ".dvc" / "plots", tmp_path / ".dvc" / "plots", ignore=shutil.ignore_patterns("page.html")
    )
    shutil.copytree(repo_root / VENDORED_VEGA_DIR, tmp_path / VENDORED_VEGA_DIR)
    write_page(tmp_path)
    return tmp_path


def _check(root: Path) -> list[str]:
    dvc = yaml.safe_load((root / "dvc.yaml").read_text())
    return check_plots(root, dvc, yaml.safe_load((root / "params.yaml").read_text()))


def _edit(root: Path, edit) -> None:
    dvc = yaml.safe_load((root / "dvc.yaml").read_text())
    edit({next(iter(p)): next(iter(p.values())) for p in dvc["plots"]})
    (root / "dvc.yaml").write_text(yaml.safe_dump(dvc, sort_keys=False))


def _plot_files(root: Path, plot_id: str) -> list[str]:
    dvc = yaml.safe_load((root / "dvc.yaml").read_text())
    return next(list(p[plot_id]["y"]) for p in dvc["plots"] if plot_id in p)


def test_the_repository_plots_are_consistent(root: Path) -> None:
    assert _check(root) == []


def test_a_column_the_written_csv_lacks_names_the_file_and_the_column(root: Path) -> None:
    curve = "metrics/plots/finetune/smollm2-code.csv"
    write_csv(root / curve, [{"step": 1, "train_loss": 2.0}], LOSS_CURVE_COLUMNS, "")
    _edit(root, lambda plots: plots["finetune_loss"]["y"].update({curve: ["train_loss", "loss"]}))
    assert _check(root) == [
        f"dvc.yaml: plots.finetune_loss: {curve} has no column 'loss' "
        "(it has columns step, train_loss, eval_loss, learning_rate, note)"
    ]


def test_on_a_fresh_clone_columns_are_checked_against_what_the_writer_writes(root: Path) -> None:
    chart = "metrics/plots/evaluation/rouge_l.json"
    _edit(root, lambda plots: plots["evaluation_rouge_l"]["y"].update({chart: "rougeL"}))
    (problem,) = _check(root)
    assert problem.startswith(
        f"dvc.yaml: plots.evaluation_rouge_l: {chart} has no column 'rougeL' (it is written"
    )
    assert "rouge_l" in problem


def test_an_x_column_is_checked_like_a_y_column(root: Path) -> None:
    _edit(root, lambda plots: plots["lora_loss"].update({"x": "global_step"}))
    problems = _check(root)
    assert len(problems) == len(_plot_files(root, "lora_loss"))
    assert all("has no column 'global_step'" in p for p in problems)


def test_a_file_no_stage_writes_and_a_curve_no_chart_draws_are_both_reported(root: Path) -> None:
    def edit(plots: dict) -> None:
        ys = plots["train_base_loss"]["y"]
        ys.pop("metrics/plots/train_base/t5_small.csv")
        ys["metrics/plots/train_base/gpt2.csv"] = ["train_loss"]

    _edit(root, edit)
    assert _check(root) == [
        "dvc.yaml: plots.train_base_loss: metrics/plots/train_base/gpt2.csv "
        "is not a plot file any stage writes",
        "dvc.yaml: plots: no chart draws metrics/plots/train_base/t5_small.csv; "
        "add it to the chart of its stage",
    ]


def test_a_missing_template_and_a_stale_page_are_reported(root: Path) -> None:
    _edit(root, lambda plots: plots["quantization_size_vs_perplexity"].update({"template": "scatterplot"}))
    (root / PLOTS_PAGE).write_text("<html>{plot_divs}</html>")
    problems = _check(root)
    assert any(
        "plots.quantization_size_vs_perplexity.template: 'scatterplot' is neither" in p for p in problems
    )
    assert any(p.startswith(f"{PLOTS_PAGE}: out of date") and "make setup" in p for p in problems)


def test_every_model_and_domain_has_its_loss_curves_expected() -> None:
    files = expected_plot_files({"models": {"a": {}, "b": {}}, "data": {"domains": ["x", "y"]}})
    curves = [f for f in files if f.endswith(".csv")]
    assert len(curves) == 2 * (1 + 2 + 2)
    assert "metrics/plots/lora/b/y.csv" in curves and "metrics/plots/finetune/a-x.csv" in curves
