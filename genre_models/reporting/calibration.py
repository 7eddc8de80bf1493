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

import math
import os
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from genre_models.config import check_at_least
from genre_models.errors import ConfigError
from genre_models.reporting.claims import MARGIN
from genre_models.reporting.runs import select_runs
from genre_models.reporting.simulation import SCENARIOS, Layout, Noise, Shape, layout, simulate
from genre_models.reporting.stats import ALPHA, binomial_interval
from genre_models.reporting.verdicts import SplitVerdicts, split_verdicts
from genre_models.util import die_with_parent
from genre_models.workers import worker_pool



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
