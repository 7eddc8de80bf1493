"""The report's "draws needed" against simulated power, per claim (docs/protocol.md, "Draws needed
against simulated power").

For each number of seeds it simulates sweeps of one shape in the study world (the claims true at
the study's effects, ``reporting.worlds``) through the report's own code, and counts how often
each claim comes out supported: its power at that many draws. Beside it, the median over the
same sweeps of the report's own "draws needed" for the claim (``claim_power.claim_needs``: the
study's effect under the spread each sweep observed). The draws at which the simulated power
crosses 80% (linear between the shapes) should lie within 25% of the report's figure. The last
column: the share of sweeps whose range (``claim_power.needs_range``: the figure at the ends of the
spread's 80% interval) holds the crossing.

    python scripts/needs_vs_power.py --split kfold --tracks 150 --folds 5 --seeds 1,2,3,4,6 --sims 200 --jobs 2

Prints a markdown table; ``--json FILE`` keeps the numbers.
"""

from __future__ import annotations

import json
import math
import time

import click
import numpy as np

from genre_models.reporting.calibration import CalibrationConfig, simulate_chunks, simulated_verdicts
from genre_models.reporting.claim_power import TARGET_POWER, claim_needs, needs_range
from genre_models.reporting.simulation import Shape

#: The claims the study world makes true (the margin claims' study effects sit inside their margins).
CLAIMS = ("cnn_over_mlp", "mfcc_over_cnn", "gan_helps", "batchnorm_steady", "rmsprop_no_gain", "raw_below")


def claims_chunk(cfg: CalibrationConfig, name: str, seeds: list) -> list[dict]:
    """Per simulated sweep in the study world: each claim's (supported, the report's draws needed,
    and its range at the ends of the spread's interval)."""
    noise, lay = cfg.scenario(name), cfg.layout(name)
    out = []
    for s in seeds:
        v = simulated_verdicts(cfg.shape, noise, lay, np.random.default_rng(s), "study", cfg.margin, cfg.alpha)
        rows = {r.key: r for r in v.claims if r.tested}
        out.append({k: (rows[k].verdict == "supported", claim_needs(rows[k]), *needs_range(rows[k]))
                    for k in CLAIMS if k in rows})
    return out


def crossing(draws: list[int], power: list[float], target: float = TARGET_POWER) -> float:
    """The draws at which ``power`` first reaches ``target``, linear between shapes; nan if never."""
    for i, (n, p) in enumerate(zip(draws, power)):
        if p >= target:
            if i == 0:
                return float(n) if p == target else math.nan  # already past it: below the range
            n0, p0 = draws[i - 1], power[i - 1]
            return n0 + (target - p0) * (n - n0) / (p - p0)
    return math.nan


@click.command()
@click.option("--split", default="kfold")
@click.option("--tracks", default=150, type=int)
@click.option("--folds", default=5, type=int)
@click.option("--seeds", "seed_list", default="1,2,3,4,6", help="the shapes' seeds, comma-separated, rising")
@click.option("--sims", default=200, type=int)
@click.option("--scenario", default="realistic")
@click.option("--jobs", default=1, type=int)
@click.option("--json", "json_out", default=None)
def main(split, tracks, folds, seed_list, sims, scenario, jobs, json_out):
    seeds = [int(s) for s in seed_list.split(",")]
    started, found = time.time(), {}
    for s in seeds:
        cfg = CalibrationConfig(shape=Shape(split=split, tracks=tracks, folds=folds, seeds=s), scenarios=(scenario,),
                                sims=sims, alternative="study")
        found[s] = (cfg.shape.draws, simulate_chunks(cfg, claims_chunk, jobs)[scenario])
    result = {}
    for k in CLAIMS:
        draws, power, needs, ranges = [], [], [], []
        for s in seeds:
            n, outcomes = found[s]
            got = [[math.inf if x is None else x for x in o[k][1:]] for o in outcomes if k in o]
            if not got:
                continue
            draws.append(n)
            power.append(float(np.mean([o[k][0] for o in outcomes if k in o])))
            needs.append(float(np.median([g[0] for g in got])))
            ranges.append([g[1:] for g in got])
        cross = crossing(draws, power)
        held = [float(np.mean([lo <= cross <= hi for lo, hi in r])) if math.isfinite(cross) else math.nan for r in ranges]
        result[k] = {"draws": draws, "power": power, "median_needs": needs, "crossing": cross, "range_holds": held}
    head = " | ".join(f"{d} draws" for d in (found[s][0] for s in seeds))
    print(f"`{split}`, {tracks} tracks{f', {folds} folds' if split == 'kfold' else ''}, {scenario}, {sims} sims "
          f"a shape, {time.time() - started:.0f} s\n")
    print(f"| claim | power: {head} | simulated 80% at | report's draws needed (median, by shape) | range holds it |")
    print("|---|" + "---|" * (len(seeds) + 3))
    for k, r in result.items():
        cells = " | ".join(f"{100 * p:.0f}%" for p in r["power"])
        cross = "beyond the range" if math.isnan(r["crossing"]) else f"{r['crossing']:.1f}"
        needs = ", ".join("none" if math.isinf(n) else f"{n:.0f}" for n in r["median_needs"])
        held = ", ".join("–" if math.isnan(h) else f"{100 * h:.0f}%" for h in r["range_holds"])
        print(f"| {k} | {cells} | {cross} | {needs} | {held} |")
    if json_out:
        with open(json_out, "w") as fh:
            json.dump({"shape": {"split": split, "tracks": tracks, "folds": folds, "seeds": seeds},
                       "scenario": scenario, "sims": sims, "claims": result}, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
