"""``benchmark perf startup``: how long the CLI takes to start, beside Python's own start."""

from __future__ import annotations

import time


def bench_startup(repeats: int = 5) -> dict:
    """Seconds for ``benchmark --help`` and for an argument error, in fresh processes, beside a
    bare ``python -c pass`` (the interpreter's own start) and ``import torch``; each the median
    of ``repeats``, taking turns."""
    import statistics
    import subprocess
    import sys

    cases = {"python_bare": [sys.executable, "-c", "pass"],
             "benchmark_help": [sys.executable, "-m", "benchmark", "--help"],
             "benchmark_bad_option": [sys.executable, "-m", "benchmark", "train", "--net", "no-such-net"],
             "import_torch": [sys.executable, "-c", "import torch"]}
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(repeats):
        for name, cmd in cases.items():
            t0 = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=False)
            times[name].append(time.perf_counter() - t0)
    med = {k: round(statistics.median(v), 3) for k, v in times.items()}
    return {"median_s": med, "help_over_import_torch": round(med["benchmark_help"] / med["import_torch"], 3)}
