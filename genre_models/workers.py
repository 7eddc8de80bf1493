"""Worker processes that stop with their command: the one way the suite opens a process pool.

Leaving a plain ``with ProcessPoolExecutor`` block on an exception waits for every queued task,
so a SIGTERM sent to the command's main process alone (what ``timeout``, systemd, Slurm and
Kubernetes send) used to leave a calibration running for minutes. Here an interruption cancels
what is queued and ends the workers (SIGTERM, then SIGKILL after a grace period), so the command
exits within seconds and no worker outlives it.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager

#: Seconds a worker gets to end on SIGTERM before it is killed.
STOP_GRACE_S = 3.0


def stop_workers(grace: float = STOP_GRACE_S) -> int:
    """End every multiprocessing child of this process: SIGTERM, then SIGKILL for any still alive
    after ``grace`` seconds. Returns how many there were. Children started with ``subprocess``
    (a tracking server, a Ray head) are not multiprocessing's and are left to their owners."""
    workers = mp.active_children()
    for w in workers:
        w.terminate()
    deadline = time.monotonic() + grace
    for w in workers:
        w.join(max(0.0, deadline - time.monotonic()))
    for w in workers:
        if w.is_alive():
            w.kill()
            w.join(2.0)
    return len(workers)


def end_pool(pool: ProcessPoolExecutor, interrupted: bool) -> None:
    """Shut ``pool`` down: at once, its queue dropped and its workers ended, when the command was
    interrupted or failed; else after its tasks (all done by then)."""
    if interrupted:
        pool.shutdown(wait=False, cancel_futures=True)
        stop_workers()
    pool.shutdown(wait=True, cancel_futures=True)


@contextmanager
def worker_pool(jobs: int, start: str = "fork", initializer=None, initargs: tuple = ()):
    """A ``ProcessPoolExecutor`` of ``jobs`` workers (``start``: the start method) that, left on
    an exception (Ctrl-C and SIGTERM included), stops its workers instead of waiting for them.
    ``initializer`` should call ``util.die_with_parent``: a forked worker otherwise inherits the
    command's SIGTERM handler and would turn the signal into a task's error and take the next."""
    pool = ProcessPoolExecutor(jobs, mp_context=mp.get_context(start), initializer=initializer, initargs=initargs)
    try:
        yield pool
    except BaseException:
        end_pool(pool, interrupted=True)
        raise
    end_pool(pool, interrupted=False)
