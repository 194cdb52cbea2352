"""Where prepare_data's per-record work runs: local processes, or a Ray Data pipeline.

Both engines run the same functions (prepare.process_shard for phase 1, dedup.pairs_within for the
LSH buckets) and return results in input order, so their outputs are identical.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from typing import Protocol

import numpy as np
from tqdm import tqdm

from aistudio.config import DataConfig
from aistudio.data import dedup
from aistudio.data.prepare import Shard, ShardOutput, process_shard, shard_size
from aistudio.errors import UserError


class Engine(Protocol):
    def map_shards(
        self, shards: list[tuple[Shard, ...]], cfg: DataConfig, progress: bool
    ) -> list[ShardOutput]: ...

    def band_candidates(self, band_keys: np.ndarray, members: np.ndarray) -> np.ndarray: ...


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class LocalEngine:
    """A process pool of `workers` (1 runs in this process); largest shards are started first."""

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def map_shards(
        self, shards: list[tuple[Shard, ...]], cfg: DataConfig, progress: bool
    ) -> list[ShardOutput]:
        bar = tqdm(total=len(shards), desc="prepare_data", unit="task", disable=not progress)
        if self.workers == 1 or len(shards) == 1:
            outputs = []
            for shard in shards:
                outputs.append(process_shard(shard, cfg))
                bar.update()
            bar.close()
            return outputs
        results: list[ShardOutput | None] = [None] * len(shards)
        order = sorted(range(len(shards)), key=lambda i: -sum(map(shard_size, shards[i])))
        with ProcessPoolExecutor(max_workers=min(self.workers, len(shards))) as pool:
            futures = {pool.submit(process_shard, shards[i], cfg): i for i in order}
            for future, index in futures.items():
                results[index] = future.result()
                bar.update()
        bar.close()
        return [r for r in results if r is not None]

    def band_candidates(self, band_keys: np.ndarray, members: np.ndarray) -> np.ndarray:
        return dedup.band_candidates(band_keys, members)


def _bucket_pairs(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Ray map_groups: one bucket (records sharing a band key) → its candidate pairs."""
    pairs = dedup.pairs_within(np.sort(batch["record"]))
    return {"first": pairs[:, 0], "second": pairs[:, 1]}


class RayEngine:
    """Ray Data: phase 1 as a map over shards, the LSH buckets as a shuffle (groupby) by band key."""

    def __init__(self, address: str | None, num_cpus: int | None) -> None:
        try:
            import ray
        except ImportError:
            raise UserError(
                "params.yaml: data.engine 'ray' needs Ray: pip install -c constraints.txt 'ray[data]' "
                "(pinned in requirements-mlops.txt), or set data.engine: local"
            ) from None
        self.ray = ray
        if not ray.is_initialized():
            try:
                ray.init(address=address, num_cpus=num_cpus if address is None else None,
                         include_dashboard=False, log_to_driver=False)  # fmt: skip
            except Exception as exc:
                raise UserError(
                    f"params.yaml: data.ray.address {address!r} is not reachable ({type(exc).__name__}: "
                    f"{str(exc)[:160]}); start the cluster (ray start --head) or set data.ray.address: null"
                ) from None

    def map_shards(
        self, shards: list[tuple[Shard, ...]], cfg: DataConfig, progress: bool
    ) -> list[ShardOutput]:
        import pickle

        data = self.ray.data
        items = [{"index": i, "shard": pickle.dumps(s)} for i, s in enumerate(shards)]

        def run(row: dict) -> dict:
            output = process_shard(pickle.loads(row["shard"]), cfg)
            return {"index": row["index"], "output": pickle.dumps(output)}

        rows = data.from_items(items, override_num_blocks=len(items)).map(run).take_all()
        return [pickle.loads(r["output"]) for r in sorted(rows, key=lambda r: r["index"])]

    def band_candidates(self, band_keys: np.ndarray, members: np.ndarray) -> np.ndarray:
        if members.size == 0:
            return np.zeros((0, 2), dtype=np.int64)
        bands = band_keys.shape[1]
        # One row per (record, band); uint64 keys travel as int64 views (Arrow has no unsigned groupby).
        keys = band_keys[members].view(np.int64)
        table = {
            "band": np.repeat(np.arange(bands)[None, :], members.size, axis=0).ravel(),
            "key": keys.ravel(),
            "record": np.repeat(members, bands),
        }
        import pyarrow as pa

        ds = self.ray.data.from_arrow(pa.table(table))
        pairs = ds.groupby(["band", "key"]).map_groups(_bucket_pairs, batch_format="numpy").take_all()
        if not pairs:
            return np.zeros((0, 2), dtype=np.int64)
        found = np.array([[p["first"], p["second"]] for p in pairs], dtype=np.int64)
        return np.unique(found, axis=0)


def engine_for(cfg: DataConfig) -> Engine:
    if cfg.engine == "ray":
        return RayEngine(cfg.ray.address, cfg.ray.num_cpus)
    return LocalEngine(cfg.workers or default_workers())
