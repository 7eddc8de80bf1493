"""A sweep's cost, before it starts: the probe (under the eye of ``load``), what the store
teaches (``history``), the time model and schedule (``model``), and over a day what would make
it feasible (``alternatives``), as one ``Cost`` with its line and record."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from genre_models.sweep.cost.alternatives import FEASIBLE_HOURS, alternatives
from genre_models.sweep.cost.history import learn
from genre_models.sweep.cost.load import Load, LoadMeter, look, wait_for_quiet
from genre_models.sweep.cost.model import NetCost, Projection, Sizes, net_costs, project
from genre_models.sweep.cost.probe import probe
from genre_models.sweep.cost.words import duration, sources
from genre_models.sweep.grid import GridPoint, SweepConfig
from genre_models.util import usable_cores


@dataclass
class Cost:
    """A projection and what would make it feasible (where it is over ``FEASIBLE_HOURS``)."""

    projection: Projection
    device: str
    probe_seconds: float
    alternatives: list[tuple[str, float]] = field(default_factory=list)
    load: Load | None = None  # others' load on the cores while the probe ran
    probes: int = 1  # 2 where the first probe met a busy machine and the load then dropped
    waited_s: float = 0.0  # --wait-for-quiet: how long the probe waited for quiet cores

    def line(self) -> str:
        p = self.projection
        busy = f"; {self.load.words()}" if self.load is not None and self.load.busy else ""
        return (f"cost: {len(p.points)} points projected to take {duration(p.makespan_s)} on this {self.device} "
                f"(--jobs {p.jobs}; probed here in {self.probe_seconds:.0f} s; figures from "
                f"{'; '.join(f'{k}: {v}' for k, v in sources(p).items())}{busy}; "
                "`--dry-run` shows the plan)")

    def advice(self) -> list[str]:
        if not self.alternatives:
            return []
        return [f"  over {FEASIBLE_HOURS:.0f} hours; each of these alone would take:"] + [
            f"    {what}: {duration(s)}" for what, s in self.alternatives]

    def as_dict(self) -> dict:
        return {"device": self.device, "probe_seconds": round(self.probe_seconds, 1), **self.projection.as_dict(),
                "probe_load": {**(self.load.as_dict() if self.load else {}), "probes": self.probes,
                               "waited_s": round(self.waited_s, 1)},
                "sources": sources(self.projection),
                "rates": self.projection.rates, "alternatives": {w: round(s, 1) for w, s in self.alternatives}}


def _probe_seen(cfg: SweepConfig, points: list[GridPoint], nets: dict[str, NetCost], dev, precision: str,
                data_dir: str | None, preprocess: bool, stats: tuple | None) -> tuple[dict, Load, int, float]:
    """The probe's rates, with the load other work put on the cores meanwhile (``cost.load``).
    ``--wait-for-quiet S`` first waits up to S seconds for quiet cores. A probe that met a busy
    machine is taken again if, a second later, the load has dropped; else it stands, and the
    cost line says how busy the cores were. Returns rates, load, probes taken, seconds waited."""
    waited = wait_for_quiet(cfg.wait_for_quiet)[1] if cfg.wait_for_quiet else 0.0
    with LoadMeter() as meter:
        rates = probe(cfg, points, nets, dev, precision, data_dir=data_dir, preprocess=preprocess, stats=stats)
    if not meter.load.busy or look().busy:
        return rates, meter.load, 1, waited
    with LoadMeter() as again:
        rates = probe(cfg, points, nets, dev, precision, data_dir=data_dir, preprocess=preprocess, stats=stats)
    return rates, again.load, 2, waited


def estimate(cfg: SweepConfig, points: list[GridPoint], sizes: Sizes, data_dir: str | None = None,
             digest: str | None = None, tracking_uri: str | None = None, stats: tuple | None = None) -> Cost:
    """Probe this machine, learn what the store's finished runs on the dataset ``digest`` say
    (``history.learn``), project ``points`` under ``cfg.jobs``, and over ``FEASIBLE_HOURS`` say
    what would make the sweep feasible."""
    from genre_models.training.runtime import resolve_device, resolve_precision

    dev = resolve_device(cfg.device)
    precision, _ = resolve_precision(cfg.precision, dev)
    t0 = time.perf_counter()
    nets = net_costs(cfg, points)  # each net's spec and batch, looked up once and passed down
    rates, load, probes, waited = _probe_seen(cfg, points, nets, dev, precision, data_dir, not sizes.extracted, stats)
    if digest:
        caps: dict[str, int] = {}  # each net's largest epoch budget, in one pass over the points
        for p in points:
            if p.kind == "train":
                caps[p.net] = max(caps.get(p.net, 0), p.epochs or 0)
        rates["learned"] = learn({n: nets[n] for n in caps}, caps, digest, dev.type, rates, tracking_uri)
    cores = usable_cores()
    proj = project(cfg, rates, sizes, cfg.jobs, dev.type != "cuda", cores, points, nets)
    cost = Cost(proj, "GPU" if dev.type == "cuda" else "CPU", time.perf_counter() - t0, load=load, probes=probes,
                waited_s=waited)
    if proj.hours > FEASIBLE_HOURS:
        cost.alternatives = alternatives(cfg, rates, sizes, dev, precision, cores, base=proj.makespan_s, nets=nets)
    return cost
