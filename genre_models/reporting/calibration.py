"""Whether the report's tests keep their level on a protocol of a given shape: null sweeps are
simulated and pushed through the report's own path (MLflow-shaped runs -> ``select_runs`` ->
``split_verdicts``: the comparisons, the claims, the p-value matrix), and each test's rejection
rate is counted where its null hypothesis holds. Pure: no store is read or written.

**The simulated sweep.** Every model of the study's grid (net1-net4 at two epoch budgets,
net5, net6, net5-raw, svm, logreg) over the split's draws. Each run's segments are right with
probability ``sigmoid(difficulty[track] + lean[model, track] + offset[run] + noise[run, track])``
(``Noise`` gives the scales; a repeated recording's copies share all four); a track's vote is
right when more than half its segments are (ties by a coin), an image net has one "segment" a
track. Stopping: samples seen to the stop are drawn from one distribution for net5 and net6
(net6's epochs hold 2.3x the samples), capped at 50 epochs.

**Two worlds a simulation.** In the *equal* world every model has the same expected accuracy:
every difference test's null holds, and the claims that say "beats", "raises" or "sooner" are
wrong whenever they come out supported or contradicted. In the *boundary* world the claims with
a margin or a bound sit exactly on it (net3's later budget and net4 ``margin`` above net3,
net5-raw at 0.15), where their nulls are hardest to keep.

**Caveats.** ``random`` is simulated as a fresh split of tracks per seed (its segments' leak
is not simulated: the leak biases the estimate, which no test can see). Expected accuracies are
matched on the metric each claim is tested on by a Monte-Carlo solve (to about 0.001).
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd

from genre_models.config import SPLIT_SPECS, SplitConfig, check_at_least, check_choice, default_of
from genre_models.errors import ConfigError
from genre_models.data.splits import track_split
from genre_models.genres import GENRES
from genre_models.reporting.claims import MARGIN, RAW_BOUND
from genre_models.reporting.runs import select_runs
from genre_models.reporting.significance import Votes
from genre_models.util import die_with_parent
from genre_models.workers import worker_pool
from genre_models.reporting.stats import ALPHA, binomial_interval
from genre_models.reporting.verdicts import SplitVerdicts, split_verdicts

#: The simulated grid: (net, epoch budget or cap, segments scored per track: 1 for an image net).
GRID: tuple[tuple[str, int, bool], ...] = (
    *((n, e, True) for n in ("net1", "net2", "net3", "net4") for e in (50, 100)),
    ("net5", 50, False), ("net6", 50, False), ("net5-raw", 50, False), ("svm", 1, False), ("logreg", 1, False),
)
GAN_SHARE = 2.3  # net6's training samples per real one
#: The artist-filtered lists' parts: training, validation and test tracks.
FILTERED_PARTS = (443, 197, 290)


def part_fractions(split: str) -> dict:
    """The training and validation shares a split gives tracks: the filtered lists' own on a
    fixed split, the split's defaults otherwise."""
    if SPLIT_SPECS[split].resampled:
        return {}
    total = sum(FILTERED_PARTS)
    return {"train_fraction": FILTERED_PARTS[0] / total, "val_fraction": FILTERED_PARTS[1] / total}


def train_share(split: str, folds: int) -> float:
    """The share of a data set's tracks a run trains on under ``split``."""
    if SPLIT_SPECS[split].folded:
        return (folds - 2) / folds
    return part_fractions(split).get("train_fraction", default_of(SplitConfig, "train_fraction"))


@dataclass(frozen=True, kw_only=True)
class Shape:
    """The protocol: its split, tracks, folds (``kfold``), seeds, and segments per track."""

    split: str = "kfold"
    tracks: int = 150
    folds: int = 5
    seeds: int = 3
    segments: int = 10

    def __post_init__(self):
        check_choice("split", self.split, list(SPLIT_SPECS))
        check_at_least("tracks", self.tracks, 2 * len(GENRES))
        check_at_least("folds", self.folds, 3)
        check_at_least("seeds", self.seeds, 1)
        check_at_least("segments", self.segments, 1)

    @property
    def draws(self) -> int:
        return self.seeds * (self.folds if SPLIT_SPECS[self.split].folded else 1)


@dataclass(frozen=True, kw_only=True)
class Noise:
    """A scenario's noise, on the logit scale of a segment being right."""

    name: str
    run_sd: float = 0.15  # a trained net's quality offset (seed-to-seed sd of accuracy about 0.03)
    lean_sd: float = 0.0  # a model's lasting lean on a track, the same in every draw
    vote_sd: float = 0.8  # a run's own noise on a track
    discordant: int = 0  # > 0: models agree on every track but this many, where each is right or wrong for good
    repeat_share: float = 0.0  # share of tracks that are copies of another (groups of 2-3)
    base: float = 0.6  # the expected accuracy over segments of every model in the equal world
    difficulty_sd: float = 1.5


SCENARIOS: dict[str, Noise] = {n.name: n for n in (
    Noise(name="training-noise", run_sd=0.15, lean_sd=0.0),
    Noise(name="track-lean", run_sd=0.05, lean_sd=1.0, vote_sd=0.3),
    Noise(name="few-discordant", run_sd=0.0, vote_sd=0.0, discordant=6),
)}
SCENARIOS.update({f"{n}+repeats": replace(s, name=f"{n}+repeats", repeat_share=0.2) for n, s in list(SCENARIOS.items())})


# --------------------------------------------------------------------------- the sweep's layout


@dataclass(frozen=True)
class Layout:
    """Tracks, their recording (cluster), and each draw's test / training tracks."""

    track_ids: list[str]
    cluster: np.ndarray  # (tracks,) index of the recording each track is a copy of
    draws: list[tuple[int, int, np.ndarray, int]]  # (seed, fold, test track indices, training tracks)


def layout(shape: Shape, noise: Noise, rng: np.random.Generator) -> Layout:
    """The tracks and the split's draws, made by the package's own split code (a fixed split: one
    seeded assignment of 290/930 of the tracks to test, as the filtered lists hold)."""
    per = max(1, shape.tracks // len(GENRES))
    ids = [f"{g}.{i:05d}" for g in GENRES for i in range(per)]
    cluster = np.arange(len(ids))
    for start in range(0, len(ids), per):  # copies stay within a genre, as GTZAN's repeats do
        n_copies = int(round(noise.repeat_share * per))
        heads = rng.choice(np.arange(start, start + per), size=max(1, n_copies // 2), replace=False) if n_copies else []
        free = [i for i in range(start, start + per) if i not in set(heads)]
        copies = rng.choice(free, size=min(n_copies, len(free)), replace=False) if n_copies else []
        for j, c in enumerate(copies):
            cluster[c] = heads[j % len(heads)]
    groups = [ids[c] for c in cluster]
    genres = [t.split(".")[0] for t in ids]
    return Layout(ids, cluster, _draws(shape, ids, genres, groups))


def _draws(shape: Shape, ids: list[str], genres: list[str], groups: list[str]) -> list:
    spec, out = SPLIT_SPECS[shape.split], []
    index = {t: i for i, t in enumerate(ids)}
    for seed in range(shape.seeds):
        for fold in range(shape.folds if spec.folded else 1):
            kind = "kfold" if spec.folded else "track"
            cfg = SplitConfig(split=kind, seed=seed if spec.resampled else 0, fold=fold, folds=max(shape.folds, 3),
                              **part_fractions(shape.split))
            part = track_split(ids, genres, cfg, groups)
            test = np.array(sorted(index[t] for t, p in part.items() if p == "test"))
            out.append((seed, fold if spec.folded else -1, test, sum(p == "train" for p in part.values())))
    return out


# --------------------------------------------------------------------------- one simulated sweep


@functools.lru_cache(maxsize=64)
def _offsets(noise: Noise, shape: Shape, boundary: bool) -> dict[str, float]:
    """Each model's logit offset: 0 in the equal world; on the boundary, the shifts that put
    the margin and bound claims exactly on their nulls."""
    if not boundary:
        return {}
    metric_seg = SPLIT_SPECS[shape.split].resampled
    base = expected_accuracy(0.0, noise, 1)
    up1, up2 = (solve_offset(base + k * MARGIN, noise, 1) for k in (1, 2))
    raw = solve_offset(RAW_BOUND, noise, shape.segments if metric_seg else -shape.segments)
    return {"net3@100": up1, "net4@50": up1, "net4@100": up2, "net5-raw@50": raw}


def simulate(shape: Shape, noise: Noise, lay: Layout, rng: np.random.Generator, boundary: bool = False
             ) -> tuple[pd.DataFrame, Votes]:
    """One null sweep as MLflow's runs frame (``tags.*``, ``params.*``, ``metrics.*``) and the votes."""
    n = len(lay.track_ids)
    c = lay.cluster
    difficulty = (rng.normal(0, noise.difficulty_sd, n) + solve_offset_base(noise))[c]
    fixed = rng.random(n)[c] if noise.discordant else None
    lasting = rng.choice(np.unique(c), size=min(noise.discordant, len(np.unique(c))), replace=False) if noise.discordant else []
    shifts = dict(_offsets(noise, shape, boundary))
    rows, right, groups = [], {}, {t: lay.track_ids[g] for t, g in zip(lay.track_ids, c)}
    for m, (net, epochs, image) in enumerate(GRID):
        lean = rng.normal(0, noise.lean_sd, n)[c] if noise.lean_sd else 0.0
        own = (rng.random(n) < 0.5)[c] if noise.discordant else None
        for seed, fold, test, n_train_tracks in lay.draws:
            segs = 1 if image else shape.segments
            eta = difficulty + lean + rng.normal(0, noise.run_sd) + shifts.get(f"{net}@{epochs}", 0.0)
            eta = eta + (rng.normal(0, noise.vote_sd, n)[c] if noise.vote_sd else 0.0)
            seg_right = _segments(eta[test], segs, rng, c[test])
            if noise.discordant:
                seg_right = _few(seg_right, test, fixed, own, np.isin(c[test], lasting), segs)
            vote = (seg_right * 2 > segs) | ((seg_right * 2 == segs) & (rng.random(test.size) < 0.5))
            rid = f"{net}-{epochs}-{seed}-{fold}-{len(rows)}"
            right[rid] = dict(zip((lay.track_ids[i] for i in test), vote.tolist()))
            rows.append(_run_row(rid, net, epochs, seed, fold, shape, test.size, n_train_tracks, segs, seg_right, vote,
                                 rng, len(rows)))
    return pd.DataFrame(rows), Votes.of(right, groups)


def _segments(eta: np.ndarray, segs: int, rng: np.random.Generator, clusters: np.ndarray) -> np.ndarray:
    """Right segments per test track; copies of one recording get the same count."""
    counts = rng.binomial(segs, 1 / (1 + np.exp(-eta)))
    _, first, inverse = np.unique(clusters, return_index=True, return_inverse=True)
    return counts[first][inverse]


def _few(seg_right, test, fixed, own, lasting, segs) -> np.ndarray:
    """Few-discordant: every model right on a track by its ease alone, except on the lasting few,
    where each model is right or wrong for good."""
    agreed = np.where(fixed[test] < 0.6, segs, 0)
    return np.where(lasting, np.where(own[test], segs, 0), agreed)


def _run_row(rid, net, epochs, seed, fold, shape, n_test_tracks, n_train_tracks, segs, seg_right, vote, rng, order):
    real = n_train_tracks * segs
    n_train = int(real * GAN_SHARE) if net == "net6" else real
    seen = math.exp(rng.normal(math.log(20 * n_train_tracks * shape.segments), 0.5))
    stop = min(epochs, max(1, math.ceil(seen / n_train)))
    row = {"run_id": rid, "status": "FINISHED", "start_time": order, "artifact_uri": "",
           "tags.stage": "train", "tags.net": net, "tags.split": shape.split, "tags.seed": str(seed),
           "tags.fold": str(fold) if fold >= 0 else None, "tags.dataset": "simulated", "tags.dataset_synthetic": "true",
           "params.epochs": str(epochs), "params.n_test": str(n_test_tracks * segs), "params.n_train": str(n_train),
           "params.n_test_tracks": str(n_test_tracks), "params.n_train_tracks": str(n_train_tracks),
           "metrics.test_accuracy": float(seg_right.sum() / (n_test_tracks * segs)),
           "metrics.test_track_accuracy": float(vote.mean()), "metrics.val_track_accuracy": float(rng.random())}
    if net in ("net5", "net6", "net5-raw"):
        row["metrics.stopped_epoch"] = float(stop)
    if net == "net6":
        row["params.n_train_real"] = str(real)
    return row


# --------------------------------------------------------------------------- expected accuracy


_MC = np.random.default_rng(20261206).standard_normal((3, 200_000))


def expected_accuracy(offset: float, noise: Noise, segments: int) -> float:
    """A model's expected accuracy at ``offset``: over segments (``segments`` > 0) or of the
    vote over ``-segments`` segments (< 0). Monte Carlo on a fixed sample, so solving is smooth."""
    eta = (_MC[0] * noise.difficulty_sd + _MC[1] * math.hypot(noise.run_sd, noise.lean_sd, noise.vote_sd)
           + offset + solve_offset_base(noise))
    p = 1 / (1 + np.exp(-eta))
    if segments > 0:
        return float(p.mean())
    from scipy import stats

    k = -segments
    return float((stats.binom.sf(k // 2, k, p) + (0.5 * stats.binom.pmf(k // 2, k, p) if k % 2 == 0 else 0)).mean())


def solve_offset(target: float, noise: Noise, segments: int) -> float:
    """The offset whose expected accuracy (see ``expected_accuracy``) is ``target``."""
    from scipy.optimize import brentq

    return float(brentq(lambda o: expected_accuracy(o, noise, segments) - target, -15, 15, xtol=1e-6))


_BASES: dict = {}


def solve_offset_base(noise: Noise) -> float:
    """The common offset that gives every model ``noise.base`` over segments in the equal world."""
    key = (noise.difficulty_sd, noise.run_sd, noise.lean_sd, noise.vote_sd, noise.base)
    if key not in _BASES:
        _BASES[key] = 0.0
        _BASES[key] = solve_offset(noise.base, noise, 1)
    return _BASES[key]


# --------------------------------------------------------------------------- what is counted


@dataclass(frozen=True)
class Check:
    """One rate the calibration counts: in which world its null holds, whether the report draws
    a verdict from it, and whether a simulated split's verdicts rejected it (None: not there)."""

    test: str
    world: str  # "equal" or "boundary"
    decides: bool
    rejected: object  # (SplitVerdicts, alpha) -> bool | None


def _comparison(v: SplitVerdicts, a, b):
    return next((c for c in v.comparisons if (a(c.a) if callable(a) else c.a == a) and c.b == b), None)


def _p_below(c, alpha: float) -> bool | None:
    return None if c is None or not math.isfinite(c.paired.p) else c.paired.p < alpha


def _claim(v: SplitVerdicts, key: str):
    return next(r for r in v.claims if r.key == key)


def _verdict_made(key: str):
    """A claim whose null holds in the world: any verdict but "not shown" is an error."""
    def rejected(v: SplitVerdicts, alpha: float) -> bool | None:
        r = _claim(v, key)
        return None if r.missing or not any(math.isfinite(t.p) for t in r.tests) else r.verdict != "not shown at this n"
    return rejected


#: Per test in the equal world, the outcome that is right (the rest are errors).
_RIGHT_WHEN_EQUAL = {"within": "for", "below": "for", "less": "against"}


def _family_error(v: SplitVerdicts, alpha: float) -> bool | None:
    """Any wrong verdict in the split's Holm family, in the equal world."""
    comps = [c.paired.p_adjusted < alpha for c in v.comparisons if math.isfinite(c.paired.p_adjusted)]
    claims = [t.outcome not in ("none", _RIGHT_WHEN_EQUAL.get(t.kind, "none")) for r in v.claims for t in r.tests
              if not (t.kind == "less" and r.key == "raw_below")] + [
        t.outcome == "for" for r in v.claims if r.key == "raw_below" for t in r.tests]
    return None if not comps and not claims else any(comps) or any(claims)


def _sooner(v: SplitVerdicts, alpha: float) -> bool | None:
    t = next((t for t in _claim(v, "gan_helps").tests if t.kind == "sooner"), None)
    return None if t is None or not math.isfinite(t.p) else t.p < alpha


def _matrix_cell(a: str, b: str):
    def rejected(v: SplitVerdicts, alpha: float) -> bool | None:
        return _p_below(next((c for c in v.pairs if (c.a, c.b) == (a, b)), None), alpha)
    return rejected


def _mcnemar(v: SplitVerdicts, alpha: float):
    c = _comparison(v, "net5", "net6")
    return None if c is None or not c.mcnemar.draws else (c.mcnemar.differed, c.mcnemar.draws)


_BASELINE = ("svm", "logreg").__contains__

CHECKS: tuple[Check, ...] = (
    Check("comparison: net6 − net5 (segments)", "equal", True, lambda v, a: _p_below(_comparison(v, "net5", "net6"), a)),
    Check("comparison: net2 100 ep − net2 50 ep (images)", "equal", True,
          lambda v, a: _p_below(_comparison(v, "net2 50 ep", "net2 100 ep"), a)),
    Check("comparison: net5 − best baseline (track votes)", "equal", True,
          lambda v, a: _p_below(_comparison(v, _BASELINE, "net5"), a)),
    Check("p-value matrix: net4 100 ep − net1 100 ep", "equal", True, _matrix_cell("net1 100 ep", "net4 100 ep")),
    Check("claim: CNNs beat the MLP", "equal", True, _verdict_made("cnn_over_mlp")),
    Check("claim: the MFCC LSTM beats the CNNs", "equal", True, _verdict_made("mfcc_over_cnn")),
    Check("claim: GAN raises accuracy and stops sooner", "equal", True, _verdict_made("gan_helps")),
    Check("test: stops sooner (sign test, samples seen)", "equal", True, _sooner),
    Check("family-wise: any wrong verdict in the Holm family", "equal", True, _family_error),
    Check("claim: batch norm steady (TOST at the margin)", "boundary", True, _verdict_made("batchnorm_steady")),
    Check("claim: RMSProp no better (non-superiority at the margin)", "boundary", True, _verdict_made("rmsprop_no_gain")),
    Check("claim: raw audio under 0.15 (at the bound)", "boundary", True, _verdict_made("raw_below")),
    Check("McNemar per draw (net6 − net5; describes only)", "equal", False, _mcnemar),
)


def boundary_applies(noise: Noise) -> bool:
    """The margin and bound claims are put on their boundary only where models differ by degree
    (not where they agree on all but a few tracks, which no shift of a margin describes)."""
    return not noise.discordant


def one_sweep(shape: Shape, noise: Noise, lay: Layout, seed: np.random.SeedSequence, alpha: float,
              margin: float) -> dict:
    """The checks' outcomes for one simulated sweep, in both worlds, through ``split_verdicts``."""
    rng = np.random.default_rng(seed)
    out = {}
    worlds = ("equal", "boundary") if boundary_applies(noise) else ("equal",)
    for world in worlds:
        frame, votes = simulate(shape, noise, lay, rng, boundary=world == "boundary")
        runs, _ = select_runs(frame)
        v = split_verdicts(runs, shape.split, votes, margin, alpha, pairs=world == "equal")
        out.update({c.test: c.rejected(v, alpha) for c in CHECKS if c.world == world})
    return out


@dataclass(frozen=True)
class Rate:
    """A test's rejection rate under its null in one scenario, with its exact binomial interval."""

    scenario: str
    test: str
    world: str
    decides: bool
    rejected: int
    tested: int  # sims (or draws, for McNemar) in which the test ran
    sims: int
    alpha: float

    @property
    def rejection_rate(self) -> float:
        return self.rejected / self.tested if self.tested else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        return binomial_interval(self.rejected, self.tested)

    @property
    def holds(self) -> bool:
        """Its level kept: the interval does not lie wholly above ``alpha``."""
        return not self.tested or self.interval[0] <= self.alpha

    def as_dict(self) -> dict:
        lo, hi = self.interval
        return {"scenario": self.scenario, "test": self.test, "rejection_rate": self.rejection_rate,
                "interval": [lo, hi], "sims": self.sims, "tested": self.tested, "rejected": self.rejected,
                "world": self.world, "decides": self.decides, "alpha": self.alpha, "holds": self.holds}


def rates(scenario: str, outcomes: list[dict], alpha: float) -> list[Rate]:
    """Each check's rate over the sims' outcomes (McNemar's over draws)."""
    out = []
    for c in CHECKS:
        got = [o[c.test] for o in outcomes if c.test in o and o[c.test] is not None]
        if c.test not in outcomes[0]:
            continue
        if got and isinstance(got[0], tuple):  # per draw: (differed, draws)
            k, n = sum(g[0] for g in got), sum(g[1] for g in got)
        else:
            k, n = sum(bool(g) for g in got), len(got)
        out.append(Rate(scenario, c.test, c.world, c.decides, k, n, len(outcomes), alpha))
    return out


@dataclass(frozen=True, kw_only=True)
class CalibrationConfig:
    """What ``benchmark calibrate`` simulates; logged whole to its MLflow run."""

    shape: Shape = field(default_factory=Shape)
    scenarios: tuple[str, ...] = tuple(SCENARIOS)
    sims: int = 500
    alpha: float = ALPHA
    margin: float = MARGIN
    seed: int = 0
    noise: dict = field(default_factory=dict)  # overrides of every scenario's scales (from a sweep)

    def __post_init__(self):
        unknown = [n for n in self.scenarios if n not in SCENARIOS]
        if unknown or not self.scenarios:
            raise ConfigError(f"unknown scenario {(unknown or [''])[0]!r}; the scenarios are {', '.join(SCENARIOS)}")
        check_at_least("sims", self.sims, 1)
        if not (0 < self.alpha < 1 and 0 < self.margin < 1):
            raise ConfigError(f"alpha and margin must lie between 0 and 1, got {self.alpha} and {self.margin}")

    def scenario(self, name: str) -> Noise:
        return replace(SCENARIOS[name], **{k: v for k, v in self.noise.items() if k in asdict(SCENARIOS[name])})


def _chunk(cfg: CalibrationConfig, name: str, seeds: list) -> list[dict]:
    noise = cfg.scenario(name)
    lay = layout(cfg.shape, noise, np.random.default_rng([cfg.seed, len(name)]))
    return [one_sweep(cfg.shape, noise, lay, s, cfg.alpha, cfg.margin) for s in seeds]


def calibrate(cfg: CalibrationConfig, jobs: int = 1, progress=None) -> list[Rate]:
    """Every scenario's rates, ``cfg.sims`` simulated sweeps each, in ``jobs`` processes; the
    same seed gives the same rates whatever ``jobs``. ``progress(done, total)`` after each chunk."""
    seeds = {n: np.random.SeedSequence([cfg.seed, i]).spawn(cfg.sims) for i, n in enumerate(cfg.scenarios)}
    size = max(1, min(25, cfg.sims // max(jobs, 1) // 4 or 1))
    tasks = [(n, seeds[n][i:i + size]) for n in cfg.scenarios for i in range(0, cfg.sims, size)]
    found: dict[str, list] = {n: [] for n in cfg.scenarios}
    done = 0
    if jobs <= 1:
        results = ((n, _chunk(cfg, n, s)) for n, s in tasks)
        for n, outcome in results:
            found[n] += outcome
            done += len(outcome)
            progress and progress(done, cfg.sims * len(cfg.scenarios))
    else:
        with worker_pool(jobs, "fork", initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
            futures = [(n, pool.submit(_chunk, cfg, n, s)) for n, s in tasks]
            for n, fut in futures:
                found[n] += fut.result()
                done += len(found[n]) and size
                progress and progress(min(done, cfg.sims * len(cfg.scenarios)), cfg.sims * len(cfg.scenarios))
    return [r for n in cfg.scenarios for r in rates(n, found[n], cfg.alpha)]
