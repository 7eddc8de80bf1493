"""``parallel_map``: the suite's one way to spread per-file work over processes."""

from __future__ import annotations

import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor

from genre_models.util import progress


def _worker_init() -> None:
    # One BLAS/FFT thread per worker: the parallelism is across files.
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def parallel_map(fn, tasks: list, jobs: int, desc: str, unit: str = "clip") -> list:
    """``[fn(t) for t in tasks]`` in ``jobs`` processes (0 = one per core), in order, with a progress bar.

    ``fn`` must be a module-level function of one argument. Forked workers inherit the imported
    modules, so start-up costs milliseconds; they should use only numpy/scipy/soundfile (torch's
    thread pools do not survive a fork).
    """
    jobs = jobs or os.cpu_count() or 1
    bar = progress(total=len(tasks), desc=desc, unit=unit)
    results: list = []
    try:
        if jobs == 1 or len(tasks) < 4:
            for task in tasks:
                results.append(fn(task))
                bar.update()
        else:
            ctx = mp.get_context("fork")
            with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_worker_init) as pool:
                for r in pool.map(fn, tasks, chunksize=max(1, min(16, len(tasks) // (4 * jobs)))):
                    results.append(r)
                    bar.update()
    finally:
        bar.close()
    return results
