"""``benchmark calibrate --until-decided``: the whole procedure of ``sweep --until-decided``
simulated, look by look, through the same ``reporting.sequential.look`` the sweep runs. Pure.

Each simulated sweep is drawn at the design's horizon (its most seeds) and looked at after each
seed from the first look's, stopping where the sweep would: every claim its nets can test decided,
or the horizon. Counted per scenario:

* **the family's level over every look**: in the *equal* world (every difference claim's null
  holds), a sweep in which any look gave a "beats" claim a verdict; in the *boundary* world (the
  margin and bound claims on their nulls), one in which any look decided a margin or bound claim;
* **power and the seeds it takes**: in the alternative world (the study's effects, or
  ``--effect``), the share of sweeps that decided every claim by the horizon, with none
  contradicted, and the mean seeds at the stop (the horizon where a claim stayed open).

Caveat: the sweep's budget (``--max-hours``) is not simulated; a sweep stopped by it spends less
alpha and has less power than these rates.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from genre_models.reporting.calibration import CalibrationConfig, Rate, boundary_applies, simulate_chunks
from genre_models.reporting.runs import select_runs
from genre_models.reporting.sequential import DECIDED, Design, look
from genre_models.reporting.simulation import Layout, Noise, Shape, simulate

#: The claims whose null each null world puts them on: any verdict on them is an error there.
NULL_CLAIMS = {"equal": ("cnn_over_mlp", "mfcc_over_cnn", "gan_helps"),
               "boundary": ("batchnorm_steady", "rmsprop_no_gain", "raw_below")}
LEVEL = {"equal": "sequential: any 'beats' claim decided at any look (equal world)",
         "boundary": "sequential: any margin or bound claim decided at any look (boundary world)"}
POWER = "sequential: every claim decided, none contradicted, by the horizon"
CLAIMS = "sequential: claims supported at the stop (share of the claims tested)"


def one_sequence(cfg: CalibrationConfig, design: Design, shape: Shape, noise: Noise, lay: Layout,
                 rng: np.random.Generator, world: str) -> tuple:
    """One simulated sequential sweep in ``world`` (``shape`` at the design's horizon): (error or,
    in the alternative, success; None where nothing it counts could be tested) and the seeds at its
    stop; in the alternative also the claims supported and the claims tested at the stop."""
    frame, votes = simulate(shape, noise, lay, rng, world, cfg.effect)
    runs, _ = select_runs(frame)
    wrong, tested = False, False
    for seeds in range(design.first, design.horizon + 1):
        lk = look(runs, [shape.split], votes, design, seeds, cfg.margin)
        if world in NULL_CLAIMS:
            counted = [v for (_, key), (v, _) in lk.claims.items() if key in NULL_CLAIMS[world]]
            tested |= bool(counted)
            wrong |= any(v in DECIDED for v in counted)
        if not lk.open:
            break
    if world in NULL_CLAIMS:
        return (wrong if tested else None), seeds
    verdicts = [v for v, _ in lk.claims.values()]
    ok = (not lk.open and "contradicted" not in verdicts) if verdicts else None
    return ok, seeds, sum(v == "supported" for v in verdicts), len(verdicts)


def _chunk(cfg: CalibrationConfig, name: str, seeds: list) -> list[dict]:
    """The chunk's sequences: the design, its horizon's shape and the layout drawn once for all."""
    design = Design(cfg.shape.seeds, cfg.until_decided, cfg.alpha)
    shape, noise = replace(cfg.shape, seeds=design.horizon), cfg.scenario(name)
    lay = cfg.layout(name, shape)
    worlds = ("equal", "boundary") if boundary_applies(noise) else ("equal",)
    alt = () if cfg.alternative == "none" else (cfg.alternative,)
    out = []
    for s in seeds:
        rng = np.random.default_rng(s)
        out.append({w: one_sequence(cfg, design, shape, noise, lay, rng, w) for w in worlds + alt})
    return out


def _rate(cfg: CalibrationConfig, name: str, got: list, test: str, world: str, hypothesis: str) -> Rate:
    ok = [g for g in got if g[0] is not None]
    return Rate(name, test, world, True, sum(bool(g[0]) for g in ok), len(ok), cfg.sims, cfg.alpha, hypothesis,
                float(np.mean([g[1] for g in got])) if got else float("nan"))


def calibrate_sequential(cfg: CalibrationConfig, jobs: int = 1, progress=None) -> list[Rate]:
    """Each scenario's sequential rates: the level in each null world (``hypothesis`` "null") and
    the power with the mean seeds at the stop ("alternative", under the equal world's test name)."""
    found = simulate_chunks(cfg, _chunk, jobs, progress)
    out = []
    for name in cfg.scenarios:
        for world in ("equal", "boundary"):
            got = [o[world] for o in found[name] if world in o]
            if got:
                out.append(_rate(cfg, name, got, LEVEL[world], world, "null"))
        if cfg.alternative != "none":
            got = [o[cfg.alternative] for o in found[name]]
            out.append(_rate(cfg, name, got, POWER, cfg.alternative, "alternative"))
            out.append(Rate(name, CLAIMS, cfg.alternative, False, sum(g[2] for g in got), sum(g[3] for g in got),
                            cfg.sims, cfg.alpha, "alternative", float(np.mean([g[1] for g in got]))))
    return out
