"""Who owns a RUNNING run, and when another process may end it.

Every run genre-bench starts carries its owner (``owner_host``, ``owner_pid``, ``owner_started``)
and a ``heartbeat`` tag (Unix seconds) that a background thread of the owner refreshes every
``heartbeat_s()`` seconds while the run is held. Another process may end such a run KILLED only
when its owner is *provably* gone:

* on this host: the pid has exited, or now belongs to another process (start time differs), or
  it is this very process and it no longer holds the run;
* on another host: no heartbeat for ``stale_after_s()`` seconds (10 minutes unless
  ``GENRE_BENCH_STALE_AFTER_S`` says otherwise), since its pid cannot be checked from here.

A run without an owner tag was made by an older genre-bench, which had no claims: its owner
cannot be known, so it is treated as gone, as before.
"""

from __future__ import annotations

import threading
import time

from genre_models.tracking.records import end_killed
from genre_models.tracking.retry import store_client
from genre_models.settings import setting
from genre_models.util import log, process_gone, this_process

OWNER_TAGS = ("owner_host", "owner_pid", "owner_started")
_held: dict[str, list] = {}  # run id -> [tracking uri, how many holders]
_lock = threading.Lock()
_beat: threading.Thread | None = None


def heartbeat_s() -> float:
    return setting("GENRE_BENCH_HEARTBEAT_S")


def stale_after_s() -> float:
    return setting("GENRE_BENCH_STALE_AFTER_S")


def owner_tags() -> dict[str, str]:
    """The tags that say this process owns a run (set when the run is created)."""
    return {**dict(zip(OWNER_TAGS, this_process())), "heartbeat": str(int(time.time()))}


def owner_gone(run, now: float | None = None) -> str | None:
    """Why the owner of RUNNING ``run`` is provably gone (a phrase), or None if it may be alive."""
    tags = run.data.tags
    if "owner_pid" not in tags:
        return "it has no owner record (made by an older genre-bench)"
    host, pid, started = (tags.get(k, "") for k in OWNER_TAGS)
    me = this_process()
    if host == me[0]:
        if (pid, started) == me[1:]:
            with _lock:
                held = run.info.run_id in _held
            return None if held else "this process no longer runs it"
        why = process_gone(int(pid), started)
        return f"its owner on {host}: {why}" if why else None
    age = (now or time.time()) - float(tags.get("heartbeat") or run.info.start_time / 1000)
    return f"no heartbeat from its owner on {host} for {age:.0f} s" if age > stale_after_s() else None


def end_if_owner_gone(client, run, why: str) -> bool:
    """End RUNNING ``run`` KILLED, saying ``why`` and how its owner was found gone, when it is
    provably gone; whether it was ended (a run whose owner may be alive is left alone)."""
    gone = owner_gone(run)
    if gone is not None:
        end_killed(client, run.info.run_id, f"{why} ({gone})")
    return gone is not None


def end_orphaned_runs(experiment_id: str) -> list[str]:
    """End KILLED every RUNNING run of the experiment that genre-bench started (it has owner
    tags) whose owner is provably gone: a command stopped by a store that never answered, or
    killed outright, left it. Runs other tools made are left alone. Returns the runs ended."""
    client = store_client()
    flt = "attributes.status = 'RUNNING' and tags.`owner_pid` != ''"
    ended = [run.info.run_id for run in client.search_runs([experiment_id], flt, max_results=1000)
             if end_if_owner_gone(client, run, "its command stopped without ending it")]
    if ended:
        log.warning("ended %d run(s) KILLED whose command had stopped without ending them: %s", len(ended), ", ".join(ended))
    return ended


def hold(run_id: str, uri: str) -> None:
    """This process owns ``run_id`` (on store ``uri``): beat for it until ``release``."""
    global _beat
    with _lock:
        _held.setdefault(run_id, [uri, 0])[1] += 1
        if _beat is None or not _beat.is_alive():
            _beat = threading.Thread(target=_beat_loop, name="genre-bench-heartbeat", daemon=True)
            _beat.start()


def release(run_id: str) -> None:
    with _lock:
        entry = _held.get(run_id)
        if entry is not None:
            entry[1] -= 1
            if entry[1] <= 0:
                del _held[run_id]


def _beat_loop() -> None:
    """Refresh the ``heartbeat`` tag of every held run every ``heartbeat_s()``; a store that does
    not answer is retried on the next beat (a missed beat only matters after ``stale_after_s``)."""
    import mlflow

    last = time.monotonic()
    while True:
        time.sleep(min(1.0, heartbeat_s()))
        if time.monotonic() - last < heartbeat_s():
            continue
        last = time.monotonic()
        with _lock:
            held = [(run_id, uri) for run_id, (uri, _) in _held.items()]
        now = str(int(time.time()))
        for run_id, uri in held:
            try:
                mlflow.MlflowClient(uri).set_tag(run_id, "heartbeat", now)
            except Exception as exc:
                log.debug("heartbeat for run %s failed: %s", run_id, exc)
