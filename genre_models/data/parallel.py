"""``parallel_map``: the suite's one way to spread per-file work over processes."""

from __future__ import annotations

import os

from genre_models.util import die_with_parent, log, progress, usable_cores
from genre_models.workers import worker_pool


def _worker_init(parent: int) -> None:
    # One BLAS/FFT thread per worker: the parallelism is across files. A worker dies with the
    # command (kill -9 of it included) and stops on SIGTERM.
    from threadpoolctl import threadpool_limits

    die_with_parent(parent)
    threadpool_limits(1)


def worker_count(jobs: int, what: str = "feature-extraction processes") -> int:
    """``jobs`` (0: one per usable core), at most one per usable core: more only thrash (32
    workers on 2 cores ran 13x slower). A cap is said in one line."""
    cores = usable_cores()
    if jobs > cores:
        log.warning("--jobs %d is more than the %d usable cores: using %d %s", jobs, cores, cores, what)
    return min(jobs, cores) if jobs else cores


def parallel_map(fn, tasks: list, jobs: int, desc: str, unit: str = "clip") -> list:
    """``[fn(t) for t in tasks]`` in ``jobs`` processes (0 = one per core), in order, with a progress bar.

    ``fn`` must be a module-level function of one argument. Forked workers inherit the imported
    modules, so start-up costs milliseconds; they should use only numpy/scipy/soundfile (torch's
    thread pools do not survive a fork).
    """
    jobs = worker_count(jobs)
    bar = progress(total=len(tasks), desc=desc, unit=unit)
    results: list = []
    try:
        if jobs == 1 or len(tasks) < 4:
            for task in tasks:
                results.append(fn(task))
                bar.update()
        else:
            with worker_pool(jobs, "fork", initializer=_worker_init, initargs=(os.getpid(),)) as pool:
                for r in pool.map(fn, tasks, chunksize=max(1, min(16, len(tasks) // (4 * jobs)))):
                    results.append(r)
                    bar.update()
    finally:
        bar.close()
    return results
