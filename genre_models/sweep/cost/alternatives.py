"""What would make a long sweep feasible, each with its own projected wall time: a GPU (at the
rates measured on an H200 here), a smaller grid (probed now), the nets without the WaveGAN,
fewer seeds or folds, and an epoch cap; each offered only where it would shorten the sweep."""

from __future__ import annotations

from dataclasses import replace

from genre_models.config import SPLIT_SPECS
from genre_models.training.reference_rates import H200
from genre_models.sweep.cost.model import NetCost, Sizes, net_costs, project
from genre_models.sweep.cost.probe import probe
from genre_models.sweep.grid import SweepConfig, build_grid, get_grid

#: Above this a sweep names what would make it feasible.
FEASIBLE_HOURS = 24.0



def gpu_rates(cfg: SweepConfig, rates: dict, costs: dict[str, NetCost]) -> dict:
    """``rates`` with the torch nets and the WaveGAN at the H200's measured rates (classical
    baselines and preprocessing stay on this CPU, as they would). ``costs``: the sweep's nets."""
    grid = get_grid(cfg.grid)
    nets = {}
    for net, r in rates["nets"].items():
        kind = costs[net].spec.input_kind
        per_s = H200[kind] * ((180 / grid.image_size) ** 2 if kind == "image" else 1)
        nets[net] = {**r, "train_samples_per_s": per_s, "eval_samples_per_s": 3 * per_s}
    learned = {n: v if n in costs and costs[n].spec.family == "classical" else
               {k: v[k] for k in ("stop_runs", "stop_epoch") if k in v} for n, v in rates.get("learned", {}).items()}
    out = {**rates, "nets": nets, "learned": learned}  # the store's stops stay; its nets' seconds were this CPU's
    if "gan" in rates:
        steps = H200["gan_steps_per_s"][64 if grid.gan.d > 16 else 16]
        out["gan"] = {**rates["gan"], "steps_per_s": steps, "clips_per_s_generated": H200["clips_per_s_generated"],
                      "scaled_from_probe": False, "probe_batch": grid.gan.batch_size}
    return out


def _smaller_grid(small: str, than: str) -> bool:
    """Whether grid ``small`` asks less than grid ``than`` on every count (images, epochs, GAN steps)."""
    a, b = get_grid(small), get_grid(than)
    return (a.image_size <= b.image_size and a.max_epochs <= b.max_epochs and max(a.fixed_epochs) <= max(b.fixed_epochs)
            and a.gan.steps <= b.gan.steps and small != than)


def alternatives(cfg: SweepConfig, rates: dict, sizes: Sizes, dev, precision: str, cores: int,
                 points_of=build_grid, base: float | None = None,
                 nets: dict[str, NetCost] | None = None) -> list[tuple[str, float]]:
    """What would make a long sweep feasible, each with its own projected wall time: a GPU (at the
    H200's measured rates), ``--grid fast`` where it is the smaller grid (probed now), no WaveGAN,
    fewer seeds or folds, and ``--max-epochs``. ``points_of(cfg)``: the points a config would run;
    ``base``: the sweep's own projected wall time, and ``nets`` its ``net_costs``, where the caller
    has them (every alternative on the same grid shares the sweep's nets and batches)."""
    shared = dev.type != "cuda"
    built: dict[SweepConfig, list] = {}  # each config's points, built once (28,000 of them take a moment)
    if nets is None:
        built[cfg] = points_of(cfg)
        nets = net_costs(cfg, built[cfg])

    def wall(c: SweepConfig, r: dict = rates, on_shared: bool = shared) -> float:
        if c not in built:
            built[c] = points_of(c)
        same = nets if c.grid == cfg.grid else None  # another grid: its own batches
        return project(c, r, sizes, c.jobs, on_shared, cores, built[c], same).makespan_s

    out = []
    if dev.type != "cuda":
        out.append((f"a GPU (one H200 at the rates measured on {H200['measured']}, docs/performance.md)",
                    wall(cfg, gpu_rates(cfg, rates, nets), False)))
    if _smaller_grid("fast", cfg.grid):  # from the demo grid, "fast" is the longer protocol: not probed
        fast = replace(cfg, grid="fast")
        fast_points = points_of(fast)
        fast_rates = {**probe(fast, fast_points, net_costs(fast, fast_points), dev, precision),
                      "preprocess": rates["preprocess"]}
        out.append(("--grid fast", wall(fast, fast_rates)))
    gan_nets = [n for n, c in nets.items() if c.spec.uses_gan]
    others = tuple(n for n in cfg.nets if n not in gan_nets)
    if gan_nets and others:
        out.append((f"--nets {','.join(others)} (no {', '.join(gan_nets)}, so no WaveGAN)", wall(replace(cfg, nets=others))))
    if cfg.seeds > 1:
        out.append(("--seeds 1", wall(replace(cfg, seeds=1))))
    if any(SPLIT_SPECS[s].folded for s in cfg.splits) and cfg.folds > 5:
        out.append(("--folds 5", wall(replace(cfg, folds=5))))
    grid = get_grid(cfg.grid)
    if min(cfg.max_epochs or 10**9, max(grid.max_epochs, *grid.fixed_epochs)) > 20:  # a cap above every budget: no help
        out.append(("--max-epochs 20", wall(replace(cfg, max_epochs=20))))
    base = wall(cfg) if base is None else base
    return [(what, s) for what, s in out if s < 0.95 * base]  # only what would help (a cap above the stops would not)

