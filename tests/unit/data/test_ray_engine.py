"""data.engine: ray on a local Ray instance (2 CPUs): the same outputs as the local engine."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from aistudio.config import load_params
from aistudio.data.engines import LocalEngine, RayEngine
from aistudio.data.prepare import prepare_records, write_outputs
from aistudio.data.sample_corpus import write_sample_corpus

ray = pytest.importorskip("ray", reason="ray[data] is pinned in requirements-mlops.txt")
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # One instance for the module: starting Ray costs seconds. No dashboard, no usage telemetry.
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    temp = tmp_path_factory.mktemp("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=str(temp))
    yield
    ray.shutdown()


def test_ray_engine_writes_the_same_files_as_the_local_engine(local_ray: None, tmp_path: Path) -> None:
    write_sample_corpus(tmp_path / "data" / "raw")
    cfg = load_params(REPO / "params.yaml").data
    local = prepare_records(cfg, tmp_path, 42, progress=False, engine=LocalEngine(1))
    distributed = prepare_records(cfg, tmp_path, 42, progress=False, engine=RayEngine(None, None))
    outputs = []
    for name, result in (("local", local), ("ray", distributed)):
        write_outputs(result, tmp_path / name, tmp_path / name / "quality.json")
        outputs.append({p.name: p.read_bytes() for p in sorted((tmp_path / name).iterdir())})
    assert outputs[0] == outputs[1]
    assert local.quality_report()["rejected_by_reason"]["near_duplicate"] == 24
