"""``benchmark perf study``: the wall time of a whole grid, projected from rates measured now,
on the device given, before anyone pays for the sweep; with each rate's GFLOP/s.

The model is the sweep's own (``genre_models.sweep.cost``, which ``benchmark sweep`` and
``--dry-run`` use with a short probe): here each rate is timed for ``seconds`` at the grid's
full batch (the WaveGAN, on a CPU, at a probe batch of 4 scaled linearly), and each is set
against a matrix product timed in the same process. It prints a table a person reads; the whole
measurement goes to ``--json`` and, with ``--track``, to a run (``stage=perf``).
"""

from __future__ import annotations

import json
from dataclasses import replace

import torch

from benchmark.perf.loops import device_name, flops_per_step, matmul_peak, train_data
from genre_models.config import DataConfig, WaveGanConfig
from genre_models.models.registry import InputShape, get_net
from genre_models.sweep.grid import SweepConfig, build_grid, get_grid
from genre_models.sweep.cost.model import Sizes, net_costs, project
from genre_models.sweep.cost.probe import measure_classical, measure_gan, measure_net, measure_preprocess
from genre_models.sweep.cost.words import table
from genre_models.training.loop import to_input
from genre_models.training.runtime import autocast, cpu_share, prepare_device, resolve_device, resolve_precision
from genre_models.util import usable_cores


def significant(x: float) -> float:
    """``x`` to 3 significant figures: a small share stays visible (0.000041, not 0.0)."""
    return float(f"{x:.3g}")


def _net_flops(net: str, batch: int, image_size: int, dev: torch.device, precision: str) -> float:
    spec, shape = get_net(net), InputShape(image_size=image_size)
    x, y = train_data(spec, None, batch, image_size, shape)
    model = spec.build(shape, "flatten").to(dev)
    with autocast(dev, precision):
        return flops_per_step(model, to_input(x).to(dev), y.to(dev))


def _gan_step_flops(gan: WaveGanConfig, dev: torch.device) -> float:
    """FLOPs of one WaveGAN step at batch 4, estimated from counted passes (PyTorch's counter
    cannot follow the gradient penalty's double backward): per critic update a generator forward
    and four critic forward-backward passes (real, fake, and the penalty counted as two), then one
    forward-backward of both for the generator update."""
    from torch.utils.flop_counter import FlopCounterMode

    from genre_models.training.gan_loop import build_units

    (unit,) = build_units(gan, dev)
    audio, labels = torch.rand(4, 16384, device=dev) * 2 - 1, torch.arange(4, device=dev) % 10
    z = torch.randn(4, gan.latent_dim, device=dev)
    with FlopCounterMode(display=False) as g:
        unit.G(z, labels).sum().backward()
    with FlopCounterMode(display=False) as d:
        unit.D(audio, labels).sum().backward()
    g_fb, d_fb = g.get_total_flops(), d.get_total_flops()
    return (gan.n_critic * (g_fb / 3 + 4 * d_fb) + g_fb + d_fb) / 4  # per sample of the batch


def measure_all(cfg: SweepConfig, dev: torch.device, precision: str, seconds: float, data_dir: str | None) -> dict:
    """Every rate the grid's projection needs, at full size, with GFLOP/s against the device's peak."""
    grid, peak = get_grid(cfg.grid), matmul_peak(dev, precision)
    rates: dict = {"peak_gflop_s": round(peak, 1), "nets": {}, "classical": {}, "preprocess": measure_preprocess(data_dir)}
    for net, cost in net_costs(cfg, build_grid(replace(cfg, seeds=1))).items():
        if cost.spec.family == "classical":
            rates["classical"][net] = measure_classical(net)
            continue
        batch = cost.batch
        r = measure_net(cost.spec, batch, grid.image_size, dev, precision, seconds)
        achieved = _net_flops(net, batch, grid.image_size, dev, precision) * r["train_samples_per_s"] / batch / 1e9
        rates["nets"][net] = {**r, "gflop_s": significant(achieved), "share_of_peak": significant(achieved / peak) if peak else None}
    if any(get_net(n).uses_gan for n in cfg.nets):
        g = measure_gan(grid.gan, dev, seconds)
        achieved = _gan_step_flops(grid.gan, dev) * g["batch"] * g["steps_per_s"] / 1e9
        rates["gan"] = {**g, "gflop_s": significant(achieved), "share_of_peak": significant(achieved / peak) if peak else None}
    return rates


def data_sizes(data_dir: str | None) -> Sizes:
    if data_dir is None:
        return Sizes()
    from genre_models.data.store import build_features

    store = build_features(DataConfig(data_dir=data_dir)).store
    return Sizes(len(store.tracks), float(store.mfcc.shape[0]), f"{data_dir} ({len(store.tracks)} usable tracks)")


def bench_study(grid: str = "study", nets: tuple[str, ...] | None = None, seeds: int = 3,
                splits: tuple[str, ...] = ("random", "track"), folds: int = 10, jobs: int = 1, device: str = "auto",
                precision: str = "fp32", seconds: float = 3.0, data_dir: str | None = None, logger=None) -> dict:
    """Measure, project, and (with ``logger``, a run logger) record the projection as a run."""
    dev = resolve_device(device)
    prepare_device(dev)
    precision, why = resolve_precision(precision, dev)
    cfg = SweepConfig(data_dir=data_dir or "-", grid=grid, **({"nets": nets} if nets else {}), seeds=seeds, splits=splits,
                      folds=folds, device=device, precision=precision)
    sizes = data_sizes(data_dir)
    with cpu_share():  # beside other genre-bench work, this process takes only its share of the cores
        rates = measure_all(cfg, dev, precision, seconds, data_dir)
    shared = dev.type != "cuda"
    projections = {j: project(cfg, rates, sizes, j, shared, usable_cores(), build_grid(cfg)) for j in sorted({1, jobs})}
    out = {"device": device_name(dev), "precision": precision, "precision_choice": why, "threads": torch.get_num_threads(),
           "grid": grid, "nets": list(cfg.nets), "seeds": seeds, "splits": list(cfg.splits), "data": sizes.source,
           "rates": rates, "packing": "shared device (1/k each)" if shared else "each point at its own rate",
           "projection": {f"jobs{j}": p.as_dict() for j, p in projections.items()},
           "table": table(projections[jobs])}
    if logger is not None:
        _record(out, logger)
    return out


def _record(out: dict, logger) -> None:
    """The projection as a run (``stage=perf``): settings as parameters, minutes as metrics."""
    with logger.start(f"perf-study-{out['grid']}-{out['device'].split(' ')[0]}"):
        logger.set_tags({"stage": "perf", "perf": "study", "device": out["device"]})
        logger.log_params({k: (",".join(v) if isinstance(v, list) else v) for k, v in out.items()
                           if k in ("grid", "nets", "seeds", "splits", "precision", "precision_choice", "threads", "data")})
        for name, proj in out["projection"].items():
            logger.log_metrics({f"{name}_projected_minutes": proj["projected_minutes"],
                                f"{name}_sequential_minutes": round(proj["sequential_s"] / 60, 1)})
        logger.log_artifacts(lambda folder: (folder / "projection.json").write_text(json.dumps(out, indent=2)))
    out["run_id"] = logger.run_id
