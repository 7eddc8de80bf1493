"""The calibration stage (``benchmark calibrate``): do the report's tests keep their level on a
protocol of this shape? It simulates null sweeps through the report's own verdicts
(``reporting.calibration``), prints each test's rejection rate with its exact binomial
interval, writes them as JSON, and logs an MLflow run (``stage=calibrate``) that keeps both.

With an experiment, the shape (split, tracks, folds, seeds, segments per track), the models'
accuracy and the training-noise scale come from its finished sweep: the scale is set so that a
simulated model's seed-to-seed spread of track accuracy matches the sweep's (pooled over models,
less the test set's binomial share), by a first-order solve; the other scales keep their defaults.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from genre_models.config import SPLIT_SPECS
from genre_models.errors import ConfigError
from genre_models.reporting.calibration import CalibrationConfig, Rate, calibrate
from genre_models.reporting.sequential_calibration import calibrate_sequential
from genre_models.reporting.simulation import Noise, Shape, train_share
from genre_models.reporting.worlds import expected_accuracy
from genre_models.reporting.runs import ReportError, metric, select_runs
from genre_models.training.logger import NULL_LOGGER, RunLogger
from genre_models.tracking.queries import experiment_runs
from genre_models.tracking.setup import current_tracking_uri, open_existing_store
from genre_models.util import atomic_write, safe_name

#: Where a calibration's run goes when no sweep's experiment is named.
EXPERIMENT = "genre-bench-calibration"


@dataclass
class CalibrationResult:
    config: CalibrationConfig
    rates: list[Rate]
    seconds: float
    source: str  # where the shape came from, in words
    run_id: str | None = None
    json_path: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def failing(self) -> list[Rate]:
        """Tests that decide a verdict and rejected above their level, beyond Monte-Carlo error."""
        return [r for r in self.rates if r.decides and not r.holds]

    def as_json(self) -> list[dict]:
        return [r.as_dict() for r in self.rates]

    def table(self) -> str:
        """The rates as a markdown table, one row per scenario and test: the level under the null,
        and beside it the power where the alternative holds."""
        power = {(r.scenario, r.test): r for r in self.rates if r.hypothesis == "alternative"}
        lines = ["| scenario | test | rejection rate under the null | 95% interval | sims | level kept | "
                 f"power ({self.alternative_words}) |", "|---|---|---|---|---|---|---|"]
        nulls = {(r.scenario, r.test) for r in self.rates if r.hypothesis == "null"}
        for r in self.rates:
            if r.hypothesis != "null":
                if (r.scenario, r.test) not in nulls:  # power with no null of its own (a sequential sweep's)
                    lines.append(f"| {r.scenario} | {r.test} | – | – | {r.tested} | – | {_power_cell(r)} |")
                continue
            lo, hi = r.interval
            kept = ("yes" if r.holds else "**no**") if r.decides else "(describes only)"
            rate = "–" if not r.tested else f"{r.rejection_rate:.3f}"
            lines.append(f"| {r.scenario} | {r.test} | {rate} | [{lo:.3f}, {hi:.3f}] | {r.tested} | {kept} | "
                         f"{_power_cell(power.get((r.scenario, r.test)))} |")
        return "\n".join(lines)

    @property
    def alternative_words(self) -> str:
        c = self.config
        return {"study": "at the study's effects", "effect": f"at an effect of {c.effect:g}",
                "none": "not simulated"}[c.alternative]

    @property
    def sequential_words(self) -> str:
        c = self.config
        return (f", then a seed at a time until decided, up to {c.until_decided} seeds (the procedure of "
                "`sweep --until-decided`)") if c.until_decided else ""

    def summary(self) -> str:
        s = self.config.shape
        head = (f"calibration of {len(self.config.scenarios)} scenario(s) x {self.config.sims} simulated sweeps "
                f"({s.split}, {s.tracks} tracks, {s.folds if SPLIT_SPECS[s.split].folded else 1} fold(s) x {s.seeds} "
                f"seed(s){self.sequential_words}; {self.source}) in {self.seconds:.0f} s at alpha {self.config.alpha:g}")
        bad = self.failing
        verdict = (f"{len(bad)} test(s) rejected above their level (rate + 2 Monte-Carlo sd over alpha): " + "; ".join(
                   f"{r.test} in {r.scenario} ({r.rejection_rate:.3f})" for r in bad)) if bad else \
            "every test that decides a verdict kept its level (rate + 2 Monte-Carlo sd at most alpha)"
        return f"{head}: {verdict}"


def _power_cell(p: Rate | None) -> str:
    if p is None or not p.tested:
        return "–"
    seeds = f" (stops at {p.mean_seeds:.1f} seeds on average)" if math.isfinite(p.mean_seeds) else ""
    return f"{p.rejection_rate:.3f}{seeds}"


# --------------------------------------------------------------------------- a sweep's shape


def shape_of_sweep(runs: pd.DataFrame, split: str | None) -> tuple[Shape, dict, str]:
    """The shape and the noise overrides of a finished sweep's runs on ``split`` (its busiest
    split if None), and where they came from in words."""
    split = split or runs.split.value_counts().index[0]
    sub = runs[runs.split == split]
    if sub.empty:
        raise ConfigError(f"the sweep has no finished training runs on split {split!r} (it has "
                          f"{', '.join(sorted(set(runs.split)))})")
    folds = int(sub.fold.max()) + 1 if SPLIT_SPECS[split].folded else 3
    train_tracks = pd.to_numeric(sub.get("params.n_train_tracks"), errors="coerce").dropna()
    tracks = int(round(train_tracks.mean() / train_share(split, max(folds, 3)))) if len(train_tracks) else 150
    seg = sub[sub.unit == "segments"]
    per_track = (seg.n_test / seg.n_test_tracks).replace([np.inf], np.nan).dropna()
    shape = Shape(split=split, tracks=max(tracks, 20), folds=max(folds, 3), seeds=int(sub.seed.nunique()),
                  segments=int(round(per_track.mean())) if len(per_track) else 10)
    noise, words = observed_noise(sub)
    return shape, noise, f"the shape of {len(sub)} runs on `{split}` ({words})"


def observed_noise(sub: pd.DataFrame) -> tuple[dict, str]:
    """The sweep's accuracy (``base``) and training-noise scale (``run_sd``): the seed-to-seed
    variance of a model's track accuracy per fold, pooled, less its binomial share, over the slope
    of accuracy in the offset; and what was taken, in words. A spread within the binomial share
    cannot be told from the test set's noise: the scenarios keep their own scale then."""
    acc = metric(sub, "test_track_accuracy")
    base = float(np.clip(metric(sub, "test_accuracy").mean(), 0.15, 0.95)) if acc.notna().any() else 0.6
    frame = pd.DataFrame({"model": sub.model, "fold": sub.fold, "acc": acc, "n": sub.n_test_tracks}).dropna()
    var = frame.groupby(["model", "fold"]).acc.var(ddof=1).dropna()
    if var.empty:
        return {"base": base}, f"accuracy {base:.3f}; one seed, so no training-noise scale (the scenarios' own)"
    p = float(frame.acc.mean())
    binomial = p * (1 - p) / float(pd.to_numeric(frame.n, errors="coerce").mean())
    excess = float(var.mean()) - binomial
    if excess <= 0:
        return {"base": base}, (f"accuracy {base:.3f}; the seed-to-seed spread (sd {math.sqrt(var.mean()):.3f}) is "
                                f"within its test sets' binomial noise (sd {math.sqrt(binomial):.3f}), so the "
                                "training-noise scale stays the scenarios' own")
    noise = Noise(name="observed", base=base)
    slope = (expected_accuracy(0.05, noise, 1) - expected_accuracy(-0.05, noise, 1)) / 0.1
    run_sd = round(min(math.sqrt(excess) / max(slope, 1e-6), 3.0), 4)
    return {"base": base, "run_sd": run_sd}, f"accuracy {base:.3f}, training-noise scale {run_sd} (logit)"


def config_from_experiment(experiment: str, split: str | None, tracking_uri: str | None, **kw) -> tuple[CalibrationConfig, str]:
    open_existing_store(tracking_uri)
    df = experiment_runs(experiment)
    if df is None or df.empty:
        raise ReportError(f"experiment {experiment!r} has no runs in {current_tracking_uri()}; nothing to calibrate on")
    runs, _ = select_runs(df)
    shape, noise, words = shape_of_sweep(runs, split)
    return CalibrationConfig(shape=shape, noise=noise, **kw), f"{words} of experiment {experiment}"


# --------------------------------------------------------------------------- the run


def _metric_key(r: Rate) -> str:
    return f"rate.{safe_name(r.scenario)}.{safe_name(r.test)}"[:250]


def run_calibration(cfg: CalibrationConfig, *, jobs: int = 1, source: str = "the options given",
                    json_out: str | None = None, logger: RunLogger = NULL_LOGGER, progress=None) -> CalibrationResult:
    """Simulate, write ``json_out`` (a list of rates), and log the run; returns the rates. The
    run is open while the sweeps are simulated, so a stopped calibration ends it KILLED."""
    with logger.start(f"calibrate-{cfg.shape.split}-{cfg.sims}"):
        logger.set_tags({"stage": "calibrate"})
        logger.log_params({**{f"shape.{k}": v for k, v in asdict(cfg.shape).items()},
                           **{k: v for k, v in asdict(cfg).items() if k not in ("shape", "noise")},
                           **{f"noise.{k}": v for k, v in cfg.noise.items()}, "source": source[:500], "jobs": jobs})
        t0 = time.perf_counter()
        rates = (calibrate_sequential if cfg.until_decided else calibrate)(cfg, jobs=jobs, progress=progress)
        result = CalibrationResult(cfg, rates, time.perf_counter() - t0, source)
        if json_out:
            atomic_write(json_out, lambda tmp: tmp.write_text(json.dumps(result.as_json(), indent=2) + "\n"))
            result.json_path = json_out
        logger.set_tags({"mlflow.note.content": result.summary()})
        logger.log_metrics({**{_metric_key(r): r.rejection_rate for r in rates if r.tested},
                            "tests_above_level": len(result.failing), "seconds": result.seconds})
        logger.log_artifacts(lambda out: _write(out, result))
        result.run_id = logger.run_id
    return result


def _write(out: Path, result: CalibrationResult) -> None:
    (out / "calibration.json").write_text(json.dumps(result.as_json(), indent=2) + "\n")
    (out / "calibration.md").write_text(result.summary() + "\n\n" + result.table() + "\n")
