"""aistudio.lineage's record: which runs made a stage's outputs, read back as written."""

from __future__ import annotations

from pathlib import Path

from aistudio import layout, lineage
from aistudio.tracking import StartedRun


def test_a_matrix_item_has_its_own_lineage_file_named_by_its_dvc_address() -> None:
    address = layout.stage_address("finetune_domain_models", "smollm2-code")
    assert address == "finetune_domain_models@smollm2-code"
    assert layout.lineage_file(address) == layout.LINEAGE_DIR / "finetune_domain_models" / "smollm2-code.json"
    assert layout.lineage_file("evaluate") == layout.LINEAGE_DIR / "evaluate.json"


def test_a_partial_run_replaces_only_the_runs_it_made(tmp_path: Path) -> None:
    path = tmp_path / "evaluate.json"
    lineage.write_lineage(
        "evaluate", [StartedRun("evaluate-a", "1", "p1"), StartedRun("evaluate-b", "2", "p1")], path
    )
    written = lineage.write_lineage("evaluate", [StartedRun("evaluate-b", "3", "p2")], path)
    assert lineage.read_lineage(path) == written
    assert {run.name: (run.run_id, run.pipeline_id) for run in written.runs} == {
        "evaluate-a": ("1", "p1"),
        "evaluate-b": ("3", "p2"),
    }


def test_a_file_that_is_not_a_lineage_record_links_nothing(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "other.json").write_text('{"loss": 1.0}')
    assert lineage.read_lineage(tmp_path / "broken.json") is None
    assert lineage.read_lineage(tmp_path / "other.json") is None
    assert lineage.read_lineage(tmp_path / "missing.json") is None


def test_nothing_is_linked_when_every_recorded_run_is_in_the_pipeline(tmp_path: Path) -> None:
    # No MLflow store is configured: linking must not even open one when there is nothing to link.
    records = [lineage.Lineage("prepare_data", (StartedRun("prepare_data", "1", "p1"),))]
    assert lineage.link_into_pipeline(None, records, "p1", lineage.RUN_CACHE, "dvc repro") == []
