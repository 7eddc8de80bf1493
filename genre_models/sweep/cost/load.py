"""How busy the machine's cores were with *other* work while the cost probe ran.

The probe times a few steps and the whole sweep is projected from them, so a probe taken while
another login session's jobs ran reads slow: a real-sample sweep projected at 0.88 of its real
time alone read 0.24 beside two ``nice 19`` jobs (under Linux's autogroup scheduling ``nice``
does not protect a job from another session's). Here the load is measured from outside this
process: ``/proc/stat``'s busy ticks over all cores, less this process's own CPU time (its
threads and the children it waited for), as a share of the cores. Where ``/proc/stat`` is
missing, ``os.getloadavg`` stands in, which cannot tell our own work from others' and is said so.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

#: Others holding more than this share of the cores make the cost line say so.
BUSY_SHARE = 0.25
#: How long one look at the load lasts (seconds) when the sweep waits for quiet cores.
LOOK_S = 1.0


def _proc_stat() -> tuple[float, int] | None:
    """(busy seconds over all cores since boot, how many cores /proc/stat counts), or None."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
        fields = [int(v) for v in lines[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    cores = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    busy = sum(fields[:8]) - fields[3] - fields[4]  # every state but idle and iowait (guest is inside user)
    return busy / os.sysconf("SC_CLK_TCK"), max(1, cores)


def _own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


@dataclass
class Load:
    """Others' share of the cores over a stretch of time, and how it was measured."""

    others: float  # 0..1: the share of all cores busy with work not this process's
    seconds: float
    source: str  # "/proc/stat" or "load average"

    @property
    def busy(self) -> bool:
        return self.others > BUSY_SHARE

    def words(self) -> str:
        """The cost line's clause, where others held more than ``BUSY_SHARE`` of the cores."""
        if not self.busy:
            return ""
        return (f"the cores were {100 * self.others:.0f}% busy with other work while probing ({self.source}): the "
                "projection assumes the same load throughout")

    def as_dict(self) -> dict:
        return {"others_busy_share": round(self.others, 3), "seconds": round(self.seconds, 2), "source": self.source}


class LoadMeter:
    """``with LoadMeter() as m: ...``; then ``m.load``: others' share of the cores over the block."""

    def __enter__(self) -> "LoadMeter":
        self.t0, self.stat0, self.own0 = time.monotonic(), _proc_stat(), _own_cpu_s()
        self.load: Load | None = None
        return self

    def __exit__(self, *exc) -> None:
        self.load = self.measure()

    def measure(self) -> Load:
        elapsed = max(1e-3, time.monotonic() - self.t0)
        stat = _proc_stat()
        if self.stat0 is not None and stat is not None:
            others_s = (stat[0] - self.stat0[0]) - (_own_cpu_s() - self.own0)
            return Load(min(1.0, max(0.0, others_s / (elapsed * stat[1]))), elapsed, "/proc/stat")
        try:
            load1 = os.getloadavg()[0]
        except OSError:
            return Load(0.0, elapsed, "not measurable here")
        cores = os.cpu_count() or 1
        return Load(min(1.0, max(0.0, (load1 - 1.0) / cores)), elapsed, "load average, ours included")


def look(seconds: float = LOOK_S) -> Load:
    """Others' load over the next ``seconds`` (this process idle meanwhile)."""
    with LoadMeter() as meter:
        time.sleep(seconds)
    return meter.load


def wait_for_quiet(limit_s: float) -> tuple[Load, float]:
    """Look at the load once a second until others hold at most ``BUSY_SHARE`` of the cores or
    ``limit_s`` seconds have passed; the last look and the seconds waited."""
    t0 = time.monotonic()
    seen = look()
    while seen.busy and time.monotonic() - t0 < limit_s:
        seen = look()
    return seen, time.monotonic() - t0
