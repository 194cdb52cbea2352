"""prepare_data end to end on real files: worker counts, crashes, copies across sources, clusters,
decontamination, and the bad-input errors of the data section."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml

import aistudio.data.prepare as prepare_module
from aistudio.config import DataConfig, load_params
from aistudio.data.check import check_processed
from aistudio.data.engines import LocalEngine, RayEngine
from aistudio.data.prepare import collect_source_files, plan_shards, prepare_records, write_outputs
from aistudio.data.sample_corpus import write_sample_corpus
from aistudio.errors import UserError

REPO = Path(__file__).resolve().parents[3]
_WORDS = (
    "harbour committee proposal fishing crews decade budget ferry quay tide lantern council market bridge "
    "school river meadow orchard granary beacon station canal weaver foundry chapel mill kiln malt cooper "
    "saddler glebe castle abbey tanner ropewalk summit valley forest cottage pier boathouse workshop garden"
).split()


def _sentence(seed: int, words: int = 24) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(_WORDS) for _ in range(words)).capitalize() + "."


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _config(sources: list[dict], **data: object) -> DataConfig:
    return DataConfig.model_validate(
        {"sources": sources, "quality": {"min_chars": 10, "min_words": 3}} | data
    )


def _rows(seeds: range, domain: str = "analysis") -> list[dict]:
    return [
        {"domain": domain, "instruction": _sentence(s), "output": _sentence(10_000 + s, 12)} for s in seeds
    ]


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sample")
    write_sample_corpus(root / "data" / "raw")
    return root


def _outputs(result, where: Path) -> dict[str, bytes]:
    write_outputs(result, where, where / "quality.json")
    return {p.name: p.read_bytes() for p in sorted(where.iterdir())}


def test_outputs_are_byte_identical_for_one_and_several_workers(
    sample_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = load_params(REPO / "params.yaml").data
    # Small tasks, so the JSONL source is cut in pieces and the pool really interleaves them.
    monkeypatch.setattr(prepare_module, "LINES_PER_SHARD", 40)
    monkeypatch.setattr(prepare_module, "BYTES_PER_TASK", 50_000)
    assert len(plan_shards(collect_source_files(cfg, sample_root), 40, 50_000)) > 20
    one = prepare_records(cfg, sample_root, 42, progress=False, engine=LocalEngine(1))
    three = prepare_records(cfg, sample_root, 42, progress=False, engine=LocalEngine(3))
    assert _outputs(one, tmp_path / "one") == _outputs(three, tmp_path / "three")


def test_sharded_jsonl_keeps_line_numbers(tmp_path: Path) -> None:
    _write_jsonl(tmp_path / "raw" / "a.jsonl", _rows(range(50)))
    cfg = _config([{"path": "raw/a.jsonl", "format": "jsonl", "fields": {"domain": "domain"}}])
    files = collect_source_files(cfg, tmp_path)
    lines = [
        item.source_line
        for task in plan_shards(files, lines_per_shard=7, bytes_per_task=1)
        for shard in task
        for item in prepare_module.read_source_file(shard.file, shard.start, shard.end, shard.first_line)
    ]
    assert lines == list(range(1, 51))


def test_sample_corpus_loses_exactly_the_planted_copies_and_passes_the_check(
    sample_root: Path, tmp_path: Path
) -> None:
    cfg = load_params(REPO / "params.yaml").data
    result = prepare_records(cfg, sample_root, 42, progress=False, engine=LocalEngine(1))
    report = write_outputs(result, tmp_path, tmp_path / "quality.json")
    assert report["reconciled"]
    assert report["rejected_by_reason"]["near_duplicate"] == 24  # 6 planted per domain
    assert report["rejected_by_reason"]["duplicate"] == 24
    assert report["kept_records"] == 4 * 360
    assert check_processed(tmp_path, cfg) == []


def test_a_record_that_crashes_a_filter_is_rejected_and_the_stage_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    rows = _rows(range(20))
    rows[4]["instruction"] = "CRASH " + rows[4]["instruction"]
    _write_jsonl(tmp_path / "raw" / "a.jsonl", rows)
    real = prepare_module.quality_issue

    def flaky(text, cfg):
        if text.startswith("CRASH"):
            raise RuntimeError("simulated worker crash")
        return real(text, cfg)

    monkeypatch.setattr(prepare_module, "quality_issue", flaky)
    cfg = _config([{"path": "raw/a.jsonl", "format": "jsonl", "fields": {"domain": "domain"}}])
    result = prepare_records(cfg, tmp_path, 1, progress=False, engine=LocalEngine(1))
    report = result.quality_report()
    assert report["reconciled"] and report["input_records"] == 20
    crashed = [r for r in result.rejected if r.reason == "internal_error"]
    assert [(r.source_line, "simulated worker crash" in r.detail) for r in crashed] == [(5, True)]
    assert "Traceback" in caplog.text and "simulated worker crash" in caplog.text


def test_a_source_of_near_copies_is_rejected_naming_the_records_it_copies(tmp_path: Path) -> None:
    originals = _rows(range(30))
    copies = [
        dict(r, instruction=r["instruction"].replace(" ", "  ").upper().replace("HARBOUR", "PORT"))
        for r in originals
    ]
    _write_jsonl(tmp_path / "raw" / "a.jsonl", originals)
    _write_jsonl(tmp_path / "raw" / "b.jsonl", originals[:1] + copies)
    cfg = _config([{"path": "raw/*.jsonl", "format": "jsonl", "fields": {"domain": "domain"}}])
    result = prepare_records(cfg, tmp_path, 1, progress=False, engine=LocalEngine(1))
    from_b = [r for r in result.rejected if r.source.endswith("b.jsonl")]
    assert len(from_b) == 31
    ids_in_a = {r.id for r in result.kept() if r.source.endswith("a.jsonl")}
    named = {r.detail.split()[1] for r in from_b if r.reason == "near_duplicate"}
    assert named and named <= ids_in_a
    assert {r.reason for r in from_b} <= {"near_duplicate", "duplicate"}


def test_records_similar_through_a_rejected_copy_land_in_one_split(tmp_path: Path) -> None:
    # b edits a's end, c edits b's start: a~b and b~c are near copies (about 0.85), a~c is not
    # (about 0.7). b goes; a and c stay, joined through b into one cluster, so one split holds both.
    words = _sentence(1, 30).split()
    b = words[:-5] + ["meadow", "kiln", "pier", "tide", "mill."]
    c = ["Quay", "ferry", "lantern", "beacon", "forge"] + b[5:]
    texts = [" ".join(t) for t in (words, b, c)]
    rows = [{"domain": "analysis", "instruction": t, "output": "Noted in the harbour log."} for t in texts]
    rows += _rows(range(100, 160))
    _write_jsonl(tmp_path / "raw" / "a.jsonl", rows)
    cfg = _config(
        [{"path": "raw/a.jsonl", "format": "jsonl", "fields": {"domain": "domain"}}],
        split={"validation": 0.3, "test": 0.3},
    )
    for seed in range(8):
        result = prepare_records(cfg, tmp_path, seed, progress=False, engine=LocalEngine(1))
        assert [r.source_line for r in result.rejected] == [2]
        assert result.near_duplicate_clusters == 1
        home = {name for name, records in result.splits.items() for r in records if r.source_line in (1, 3)}
        assert len(home) == 1, (seed, home)


def test_validation_records_that_overlap_train_are_rejected_as_contaminated(tmp_path: Path) -> None:
    rows = _rows(range(80))
    # Half of a 40-word passage reappears inside another record: not a near copy, but contaminated.
    shared = _sentence(777, 40)
    rows[0]["instruction"] = shared
    rows[1]["instruction"] = _sentence(888, 20) + " " + shared
    _write_jsonl(tmp_path / "raw" / "a.jsonl", rows)
    cfg = _config(
        [{"path": "raw/a.jsonl", "format": "jsonl", "fields": {"domain": "domain"}}],
        split={"validation": 0.3, "test": 0.3},
        decontamination={"threshold": 0.3},
    )
    for seed in range(10):
        result = prepare_records(cfg, tmp_path, seed, progress=False, engine=LocalEngine(1))
        report = result.quality_report()
        assert report["reconciled"]
        if report["rejected_by_reason"].get("contaminated"):
            rejected = [r for r in result.rejected if r.reason == "contaminated"]
            assert {r.source_line for r in rejected} <= {1, 2}
            assert report["contamination"]["worst"][0]["share"] >= 0.3
            return
    pytest.fail("in ten seeds the overlapping pair never straddled train and a held-out split")


def test_training_records_that_overlap_a_reference_file_are_rejected(tmp_path: Path) -> None:
    rows = _rows(range(40))
    _write_jsonl(tmp_path / "raw" / "a.jsonl", rows)
    _write_jsonl(tmp_path / "bench" / "eval.jsonl", [{"question": rows[7]["instruction"]}])
    cfg = _config(
        [{"path": "raw/a.jsonl", "format": "jsonl", "fields": {"domain": "domain"}}],
        decontamination={
            "references": [{"path": "bench/eval.jsonl", "format": "jsonl", "fields": {"text": "question"}}]
        },
    )
    result = prepare_records(cfg, tmp_path, 1, progress=False, engine=LocalEngine(1))
    contaminated = [r for r in result.rejected if r.reason == "contaminated"]
    assert [r.source_line for r in contaminated] == [8]
    assert "bench/eval.jsonl" in contaminated[0].detail
    assert result.quality_report()["contamination"]["rejected"] == {"bench/eval.jsonl": 1}


def test_a_reference_that_matches_no_file_is_a_user_error(tmp_path: Path) -> None:
    _write_jsonl(tmp_path / "raw" / "a.jsonl", _rows(range(10)))
    cfg = _config(
        [{"path": "raw/a.jsonl", "format": "jsonl", "fields": {"domain": "domain"}}],
        decontamination={"references": [{"path": "bench/missing.jsonl", "format": "jsonl"}]},
    )
    with pytest.raises(UserError, match=r"data.decontamination.references.0.path 'bench/missing.jsonl'"):
        prepare_records(cfg, tmp_path, 1, progress=False, engine=LocalEngine(1))


@pytest.mark.parametrize("workers", [0, 10_000])
def test_workers_out_of_range_is_a_one_line_params_error(tmp_path: Path, workers: int) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["workers"] = workers
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(UserError, match=r"data.workers") as caught:
        load_params(path)
    assert "\n" not in str(caught.value)


def test_an_unreachable_ray_address_is_a_user_error_with_the_fix() -> None:
    pytest.importorskip("ray")
    with pytest.raises(UserError, match=r"data.ray.address 'ray://127.0.0.1:1' is not reachable.*ray start"):
        RayEngine("ray://127.0.0.1:1", None)
