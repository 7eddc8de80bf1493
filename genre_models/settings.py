"""The environment variables genre-bench reads, each with its bounds, and the one parser for them.

A value out of bounds or not a number is a one-line ``ConfigError`` naming the variable, never
a traceback (a bare ``float("abc")`` in the heartbeat thread once stopped the heartbeats with
one). Every command checks them all when it starts (``check_all``), so a bad value is said
before any run is opened, and the threads that read them later never meet one.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

from genre_models.errors import ConfigError


@dataclass(frozen=True)
class Setting:
    name: str
    default: float
    low: float
    high: float
    unit: str
    integer: bool = False

    def read(self) -> float | int:
        raw = os.environ.get(self.name, "").strip()
        if not raw:
            return int(self.default) if self.integer else self.default
        return parse_number(raw, f"${self.name}", self.low, self.high, self.integer, self.unit)


def parse_number(raw: str, what: str, low: float, high: float, integer: bool = False, unit: str = "") -> float | int:
    """``raw`` as a finite number (a whole one in ASCII digits when ``integer``) within
    [``low``, ``high``], or a one-line error naming ``what``. ``float`` alone would take
    ``nan`` and ``inf``, ``int`` would take ``'٣'``, and ``str.isdigit`` takes ``'²'``."""
    kind = "a whole number" if integer else "a number"
    shown = (lambda x: str(int(x))) if integer else (lambda x: f"{x:g}")
    bounds = f"from {shown(low)} to {shown(high)}{' ' + unit if unit else ''}"
    text = raw.strip()
    try:
        if integer and not re.fullmatch(r"[+-]?[0-9]{1,19}", text):
            raise ValueError
        value = int(text) if integer else float(text)
    except ValueError:
        raise ConfigError(f"{what} must be {kind} {bounds}, got {raw[:40]!r}") from None
    if not (math.isfinite(value) and low <= value <= high):
        raise ConfigError(f"{what} must be {kind} {bounds}, got {raw[:40]!r}")
    return value


#: Every numeric variable the suite reads. ``GENRE_BENCH_THREADS`` above the usable cores is
#: capped to them (``training.runtime.fair_threads``).
SETTINGS = {s.name: s for s in (
    Setting("GENRE_BENCH_HEARTBEAT_S", 30.0, 0.1, 3600.0, "seconds"),
    Setting("GENRE_BENCH_STALE_AFTER_S", 600.0, 1.0, 7 * 86400.0, "seconds"),
    Setting("GENRE_BENCH_STORE_WAIT_S", 300.0, 0.0, 86400.0, "seconds"),
    Setting("GENRE_BENCH_STORE_TIMEOUT_S", 10.0, 1.0, 600.0, "seconds"),
    Setting("GENRE_BENCH_THREADS", 0, 1, 1024, "threads", integer=True),
)}


def setting(name: str) -> float | int:
    """The value of the registered variable ``name`` (its default when unset or empty)."""
    return SETTINGS[name].read()


def check_all() -> None:
    """Read every registered variable once: the first bad one raises its one-line error."""
    for s in SETTINGS.values():
        s.read()
