"""``benchmark perf contention``: one training process alone, then two at once, with the
thread budget and without it."""

from __future__ import annotations

import os
import time

import torch

from benchmark.perf.loops import bare_loop, train_data
from genre_models.models.registry import InputShape, get_net, make_optimizer


WORKER = """
from benchmark.perf.contention import contention_worker
contention_worker({net!r}, {batches}, {batch_size}, {image_size})
"""


def contention_worker(net: str, batches: int, batch_size: int, image_size: int) -> None:
    """One training process of ``bench_contention``: build, warm up, print ``ready``, wait for a
    line on stdin, train ``batches`` bare-loop steps inside the thread budget, print its times,
    and stay listed among the processes sharing the cores until told to leave (a process that
    finished early must not let the others read a budget of their own)."""
    import json
    import sys

    from genre_models.training.runtime import cpu_share, refresh_threads

    spec, shape = get_net(net), InputShape(image_size=image_size)
    x, y = train_data(spec, None, batches * batch_size, image_size, shape)
    torch.manual_seed(0)
    model = spec.build(shape, "flatten")
    opt = make_optimizer(spec, model.parameters(), spec.lr)
    dev = torch.device("cpu")
    with cpu_share():
        bare_loop(model, opt, x, y, 2, batch_size, dev, "fp32")  # warm-up
        print("ready", flush=True)
        sys.stdin.readline()
        refresh_threads(force=True)  # every process of the round is listed by now
        threads = torch.get_num_threads()
        t0 = time.monotonic()  # system-wide: comparable across the round's processes
        bare_loop(model, opt, x, y, batches, batch_size, dev, "fp32", on_batch=refresh_threads)
        t1 = time.monotonic()
        print(json.dumps({"start": t0, "end": t1, "samples": batches * batch_size, "threads": threads}), flush=True)
        sys.stdin.readline()


def contention_round(n: int, managed: bool, net: str, batches: int, batch_size: int, image_size: int) -> dict:
    """``n`` training processes started together: the samples/s of the whole round."""
    import json
    import subprocess
    import sys

    from genre_models.training.runtime import usable_cores

    env = dict(os.environ)
    if managed:  # as genre-bench runs now: each process takes its share of the cores
        env.pop("GENRE_BENCH_THREADS", None)
    else:  # as before the budget: every process on every core
        env["GENRE_BENCH_THREADS"] = str(usable_cores())
    code = WORKER.format(net=net, batches=batches, batch_size=batch_size, image_size=image_size)
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True) for _ in range(n)]
    for p in procs:
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError(f"a contention worker failed to start (exit {p.wait()})")
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    rows = [json.loads(p.stdout.readline()) for p in procs]
    for p in procs:  # every process has finished: now they may leave
        p.communicate("exit\n")
    seconds = max(r["end"] for r in rows) - min(r["start"] for r in rows)
    return {"samples_per_s": round(sum(r["samples"] for r in rows) / seconds, 1),
            "threads": [r["threads"] for r in rows]}


def bench_contention(net: str = "net5", batches: int = 40, batch_size: int = 32, image_size: int = 180,
                     repeats: int = 2) -> dict:
    """The same training work in one process alone, then in two processes at once (each doing
    the same work), with the thread budget and, side by side, without it (every process on every
    core: genre-bench before the budget). ``OMP_WAIT_POLICY`` and the like pass through to both. ``pair_over_alone``: the
    pair's samples/s over the lone process's; 1.0 means sharing costs nothing. Rounds take
    turns ``repeats`` times; each reports its best."""
    from genre_models.training.runtime import usable_cores

    out: dict = {"net": net, "batches": batches, "batch_size": batch_size, "cores": usable_cores()}
    best: dict = {}
    for _ in range(repeats):
        for managed in (True, False):
            for n in (1, 2):
                res = contention_round(n, managed, net, batches, batch_size, image_size)
                key = ("managed" if managed else "unmanaged", n)
                if key not in best or res["samples_per_s"] > best[key]["samples_per_s"]:
                    best[key] = res
    for mode in ("managed", "unmanaged"):
        alone, pair = best[(mode, 1)], best[(mode, 2)]
        out[mode] = {"alone_samples_per_s": alone["samples_per_s"], "pair_samples_per_s": pair["samples_per_s"],
                     "pair_over_alone": round(pair["samples_per_s"] / alone["samples_per_s"], 3),
                     "threads_alone": alone["threads"], "threads_pair": pair["threads"]}
    return out
