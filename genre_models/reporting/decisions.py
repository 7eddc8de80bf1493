"""Draws turned into time: what one more draw of a claim's models costs, on the machine the runs
ran on and on one H200 (``training.reference_rates``), read from the runs themselves, so that
"53 draws needed" also says "about 8 h here, about 40 min on one H200". Pure: it takes the runs
table (``reporting.runs.select_runs``) and the experiment's GAN runs.

A draw's cost is the sum over the claim's models of each model's median run (start to end);
net6's draw also trains a WaveGAN (the median GAN run). On a GPU, a torch net's training part
(``train_time_s``) runs at the H200's measured samples a second instead of its own
(``samples_per_sec``), the rest of its run as here; a classical baseline stays on the CPU.
Caveat: medians of the runs in the store, on whatever machine made them; a draw that adds a
seed under ``kfold`` adds every fold (the line counts whole seeds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from genre_models.reporting.runs import col, metric
from genre_models.training.reference_rates import H200


@dataclass(frozen=True)
class DrawCost:
    """Seconds one draw of some models costs: here (as the runs ran) and on one H200."""

    here_s: float
    gpu_s: float
    models: tuple[str, ...]

    @property
    def known(self) -> bool:
        return math.isfinite(self.here_s) and self.here_s > 0


def _seconds(runs: pd.DataFrame) -> pd.Series:
    if runs.empty or "end_time" not in runs or "start_time" not in runs:
        return pd.Series(dtype=float)
    s = pd.to_numeric((pd.to_datetime(runs.end_time) - pd.to_datetime(runs.start_time)).dt.total_seconds(),
                      errors="coerce")
    return s.where((s > 0) & np.isfinite(s))


def _gpu_seconds(runs: pd.DataFrame, wall: pd.Series) -> pd.Series:
    """Each run's seconds with its training part at the H200's rate (a classical fit unchanged)."""
    train_s, rate = metric(runs, "train_time_s"), metric(runs, "samples_per_sec")
    h200 = runs.input_kind.map(lambda k: H200.get(k, math.nan)) if "input_kind" in runs else pd.Series(math.nan, runs.index)
    torch_ = (runs.family == "torch") if "family" in runs else pd.Series(False, runs.index)
    ok = torch_ & (train_s > 0) & (train_s <= wall) & (rate > 0) & h200.notna()
    return wall.where(~ok, wall - train_s + train_s * rate / h200)


def _gan_seconds(gans: pd.DataFrame) -> tuple[float, float]:
    """The median WaveGAN run here and on one H200 (its steps at the H200's rate for its size)."""
    wall = _seconds(gans)
    if wall.dropna().empty:
        return math.nan, math.nan
    steps, train_s = metric(gans, "gan_steps_done"), metric(gans, "gan_train_time_s")
    d = pd.to_numeric(col(gans, "params.gan.d"), errors="coerce").fillna(64)
    per_s = d.map(lambda x: H200["gan_steps_per_s"][64 if x > 16 else 16])
    ok = (steps > 0) & (train_s > 0) & (train_s <= wall)
    gpu = wall.where(~ok, wall - train_s + steps / per_s)
    return float(wall.median()), float(gpu.median())


def draw_cost(runs: pd.DataFrame, split: str, models, gans: pd.DataFrame | None = None) -> DrawCost:
    """One more draw of ``models`` on ``split``: the medians of their runs there (nan where a
    model has no timed run)."""
    sub = runs[runs.split == split]
    here = gpu = 0.0
    for m in dict.fromkeys(models):
        r = sub[sub.model == m]
        wall = _seconds(r)
        if wall.dropna().empty:
            return DrawCost(math.nan, math.nan, tuple(models))
        here += float(wall.median())
        gpu += float(_gpu_seconds(r, wall).median())
        if gans is not None and not r.empty and r.net.iloc[0] == "net6":
            g_here, g_gpu = _gan_seconds(gans[col(gans, "tags.split") == split])
            here += g_here if math.isfinite(g_here) else 0.0
            gpu += g_gpu if math.isfinite(g_gpu) else 0.0
    return DrawCost(here, gpu, tuple(models))


def duration(seconds: float) -> str:
    """``40 s``, ``12 min``, ``8.1 h``, ``3.2 days``."""
    if not math.isfinite(seconds):
        return "unknown"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h" if seconds < 3 * 86400 else f"{seconds / 86400:.1f} days"


def more_draws(need: int, have: int, folds: int) -> tuple[int, int]:
    """(draws to add, seeds to add): whole seeds, ``folds`` draws each under ``kfold`` (else 1)."""
    per_seed = max(folds, 1)
    seeds = max(0, math.ceil((need - have) / per_seed))
    return seeds * per_seed, seeds


def time_words(need: int | None, have: int, folds: int, cost: DrawCost) -> str:
    """"53 draws (38 more: 8 seeds), about 8.1 h here, about 40 min on one H200"; where no number
    of draws can decide, says so."""
    if need is None:
        return ("no number of draws decides it at this spread (the variance's floor, or no effect to find); "
                "`benchmark calibrate --experiment` simulates the power of more seeds")
    add, seeds = more_draws(need, have, folds)
    seeds_text = f": {seeds} more seed{'s' if seeds != 1 else ''}" if folds > 1 else ""
    head = f"{need} draws ({add} more{seeds_text})"
    if not add:
        return (f"{need} draws, no more than the sweep has: at 80% power one sweep in five at the study's effect "
                "still leaves the claim undecided, or the effect is smaller than the study's")
    if not cost.known:
        return f"{head}; their time is unknown (no timed run of {', '.join(cost.models)} on this split)"
    return (f"{head}, about {duration(add * cost.here_s)} here and about {duration(add * cost.gpu_s)} on one H200 "
            f"(rates measured {H200['measured']})")
