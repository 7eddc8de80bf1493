"""``benchmark perf sweep``: one tiny sweep local, with worker processes, and on Ray."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from genre_models.config import DataConfig, FeatureConfig
from genre_models.data.store import build_features


def bench_executors(data_dir: str, nets: tuple[str, ...] = ("net1", "net5"), seeds: int = 3, max_epochs: int | None = 2,
                    jobs: int = 2, ray_address: str = "", ray_cpus: int = 0, repeats: int = 2, grid: str = "demo",
                    splits: tuple[str, ...] = ("track",), ray: bool = True) -> dict:
    """One sweep (by default a tiny demo-grid one) run three ways, one after another in this process: local
    in-process, local with ``jobs`` worker processes, and a Ray task per point. All three log to
    one local ``mlflow server`` (so the store is not what differs), each into a fresh experiment,
    from a feature cache filled beforehand. Ray runs with shipped data (its default): a features
    run is published and every point downloads it into the Ray node's own cache, so that
    overhead is in its time. Without ``ray_address`` a head is started on 127.0.0.1 first; its
    start-up is reported apart, not in the sweep's time. The three ways take turns ``repeats``
    times; each reports its fastest sweep. ``ray=False`` leaves Ray out (local 1 and ``jobs``).
    """
    import uuid

    from genre_models.sweep.driver import run_sweep
    from genre_models.sweep.executors import LocalRayHead
    from genre_models.sweep.grid import SweepConfig, get_grid
    from genre_models.tracking.server import LocalServer

    cpus = ray_cpus or os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="gb-perf-") as tmp, \
            LocalServer(f"sqlite:///{tmp}/perf.db", Path(tmp) / "server") as server:
        cache = str(Path(tmp) / "driver-cache")
        build_features(DataConfig(data_dir=data_dir, features=FeatureConfig(image_size=get_grid(grid).image_size),
                                  cache_dir=cache))
        head = (LocalRayHead(cpus, {"GENRE_BENCH_CACHE": str(Path(tmp) / "node-cache")}).__enter__()
                if ray and not ray_address else None)
        try:
            base = dict(grid=grid, nets=tuple(nets), seeds=seeds, splits=tuple(splits), max_epochs=max_epochs,
                        cache_dir=cache, register=False)  # the executors' speed, not the registry's
            ways = {"local_jobs1": SweepConfig(data_dir=data_dir, jobs=1, **base),
                    f"local_jobs{jobs}": SweepConfig(data_dir=data_dir, jobs=jobs, **base)}
            if ray:
                ways["ray"] = SweepConfig(data_dir=data_dir, executor="ray", ray_address=ray_address or head.address,
                                          **base)
            seconds, points = {name: [] for name in ways}, 0
            for _ in range(repeats):
                for name, cfg in ways.items():
                    t0 = time.perf_counter()
                    res = run_sweep(cfg, server.uri, f"perf-{name}-{uuid.uuid4().hex[:8]}")
                    seconds[name].append(round(time.perf_counter() - t0, 2))
                    if res.failed or res.finished != res.points:
                        raise RuntimeError(f"{name}: {res.failed} of {res.points} points failed")
                    points = res.points
        finally:
            if head is not None:
                head.__exit__(None, None, None)
    best = {name: min(ts) for name, ts in seconds.items()}
    out = {"points": points, "grid": grid, "nets": list(nets), "seeds": seeds, "cpus": os.cpu_count(),
           "seconds": seconds, f"local_jobs{jobs}_speedup": round(best["local_jobs1"] / best[f"local_jobs{jobs}"], 3)}
    if ray:
        out.update({f"ray_over_local_jobs{jobs}": round(best["ray"] / best[f"local_jobs{jobs}"], 3),
                    "ray_over_local_jobs1": round(best["ray"] / best["local_jobs1"], 3),
                    "ray_head_start_s": round(head.seconds, 2) if head is not None else None})
    return out
