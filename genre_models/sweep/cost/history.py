"""What the tracking store already knows of a sweep's cost: the finished runs of each net on the
same data (``tracking.queries.run_timings``), turned into the figures ``cost.model`` takes in
place of the probe's and the prior's (``rates["learned"]``).

* **Seconds** come only from runs on this host and device type (another machine's seconds say
  nothing of this one's), at the same batch, divided by the points their sweep ran at once on a
  shared device (each had 1/k of the cores). A torch net's are seconds per *sample-epoch*, an
  evaluated sample weighted by the probe's train/eval rate ratio, so runs of any split scale to
  this point's parts; its fixed seconds (loading, final scoring, the model) are the run's
  beyond its loop. A baseline's are its fit's seconds over its samples' power
  (``CLASSICAL_SCALING``). The median of the runs: one odd run (planted, or slowed by another
  job) moves it little.
* **Stopping epochs** come from runs on any machine (when a net stops does not depend on the
  machine): the mean stop of the early-stopping runs that stopped before their cap, or whose
  cap reaches the sweep's (a run held at a smaller cap says only that it would go on).
"""

from __future__ import annotations

import socket
import statistics

from genre_models.sweep.cost.model import CLASSICAL_SCALING, NetCost


def learn(nets: dict[str, NetCost], caps: dict[str, int], digest: str, device: str, rates: dict,
          tracking_uri: str | None) -> dict:
    """Per net (``nets``: ``model.net_costs``; ``caps``: net -> the sweep's largest epoch budget),
    what the store's finished runs on ``digest`` teach, as ``rates["learned"]`` holds it; nets
    with no usable run are left out. Each entry also says how many runs were refused."""
    from genre_models.models.classical import MAX_SAMPLES
    from genre_models.tracking.queries import run_timings

    out = {}
    for net, cost in nets.items():
        runs, refused = run_timings(net, digest, tracking_uri)
        spec, batch, entry = cost.spec, cost.batch, {}
        here = [r for r in runs if r.host == socket.gethostname() and r.device == device
                and (spec.family == "classical" or r.batch == batch)]
        if here and spec.family == "classical":
            cap = MAX_SAMPLES[net]["train"] or float("inf")
            entry = {"timed_runs": len(here), "fixed_s": _median(r.run_seconds - r.train_seconds for r in here),
                     "fit_seconds_per_sample_power": _median(
                         r.train_seconds / r.concurrent / min(r.n_train, cap) ** CLASSICAL_SCALING[net] for r in here)}
        elif here and net in rates["nets"]:
            weight = rates["nets"][net]["train_samples_per_s"] / rates["nets"][net]["eval_samples_per_s"]
            entry = {"timed_runs": len(here),
                     "fixed_s": _median((r.run_seconds - r.train_seconds) / r.concurrent for r in here),
                     "seconds_per_sample_epoch": _median(r.train_seconds / r.concurrent / r.stopped
                                                         / (r.n_train + weight * r.n_val) for r in here)}
        stops = [r.stopped for r in runs if r.early and (r.stopped < r.cap or r.cap >= caps[net])]
        if spec.early_stopping and stops:
            entry.update(stop_runs=len(stops), stop_epoch=round(statistics.fmean(stops), 2))
        if entry or refused:
            out[net] = {**entry, "refused_runs": refused}
    return out


def _median(values) -> float:
    return float(statistics.median(list(values)))
