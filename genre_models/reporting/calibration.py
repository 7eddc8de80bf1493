"""Whether the report's tests keep their level on a protocol of a given shape, and what power
they have: sweeps are simulated (``reporting.simulation``) and pushed through the report's own
path (MLflow-shaped runs -> ``select_runs`` -> ``split_verdicts``: the comparisons, the claims,
the p-value matrix), and each test's rejection rate is counted where its null holds and, beside
it, where the alternative does. Pure: no store is read or written.

**Worlds** (``reporting.worlds``). In the *equal* world every model has the same expected
accuracy on the metric each test compares it on: every difference test's null holds, and the
claims that say "beats", "raises" or "sooner" are wrong whenever they come out supported or
contradicted. In the *boundary* world the margin and bound claims sit exactly on their nulls; their
tests are scored at their own level (before Holm) and as verdicts. In the *study* (or, with
``effect``, the *effect*) world the claims hold: the rate there is power.

**The pass rule.** A test that decides a verdict keeps its level when its rate under the null,
plus two Monte-Carlo standard deviations, is at most alpha (``Rate.holds``): a rate of 7% is
flagged nearly always at 500 sims, and one that merely touches 5% is flagged too.
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
    """One rate the calibration counts: the world its null holds in, whether the report draws a
    verdict from it, whether a simulated split's verdicts rejected the null (None: not there), and
    (``found``) whether, where the alternative holds, the verdict found it."""

    test: str
    world: str  # "equal" or "boundary"
    decides: bool
    rejected: object  # (SplitVerdicts, alpha) -> bool | None
    found: object = None  # (SplitVerdicts, alpha) -> bool | None, in the alternative world


def _comparison(v: SplitVerdicts, a, b):
    return next((c for c in v.comparisons if (a(c.a) if callable(a) else c.a == a) and c.b == b), None)


def _p_below(c, alpha: float) -> bool | None:
    return None if c is None or not math.isfinite(c.paired.p) else c.paired.p < alpha


def _found_diff(a, b, sign: int):
    """A drawn comparison found in the right direction at the level that decides (Holm's)."""
    def found(v: SplitVerdicts, alpha: float) -> bool | None:
        c = _comparison(v, a, b)
        if c is None or not math.isfinite(c.paired.p_adjusted):
            return None
        return c.paired.p_adjusted < alpha and np.sign(c.paired.diff.mean) == sign
    return found


def _claim(v: SplitVerdicts, key: str):
    return next(r for r in v.claims if r.key == key)


def _verdict_made(key: str):
    """A claim whose null holds in the world: any verdict but "not shown" is an error."""
    def rejected(v: SplitVerdicts, alpha: float) -> bool | None:
        r = _claim(v, key)
        return r.verdict != "not shown at this n" if r.tested else None
    return rejected


def _supported(key: str):
    def found(v: SplitVerdicts, alpha: float) -> bool | None:
        r = _claim(v, key)
        return r.verdict == "supported" if r.tested else None
    return found


def _own_level(key: str, kind: str):
    """A margin or bound test on its boundary, at its own level (unadjusted): its p *for* the
    claim under alpha is the error (every such test of the claim counted once)."""
    def rejected(v: SplitVerdicts, alpha: float) -> bool | None:
        ps = [t.p_for for t in _claim(v, key).tests if t.kind == kind and math.isfinite(t.p_for)]
        return None if not ps else ps[0] < alpha
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


def _sooner_found(v: SplitVerdicts, alpha: float) -> bool | None:
    t = next((t for t in _claim(v, "gan_helps").tests if t.kind == "sooner"), None)
    return None if t is None or not math.isfinite(t.p) else t.outcome == "for"


def _matrix_cell(a: str, b: str):
    def rejected(v: SplitVerdicts, alpha: float) -> bool | None:
        return _p_below(next((c for c in v.pairs if (c.a, c.b) == (a, b)), None), alpha)
    return rejected


def _mcnemar(v: SplitVerdicts, alpha: float):
    c = _comparison(v, "net5", "net6")
    return None if c is None or not c.mcnemar.draws else (c.mcnemar.differed, c.mcnemar.draws)


_BASELINE = ("svm", "logreg").__contains__

CHECKS: tuple[Check, ...] = (
    Check("comparison: net6 − net5 (segments)", "equal", True, lambda v, a: _p_below(_comparison(v, "net5", "net6"), a),
          _found_diff("net5", "net6", 1)),
    Check("comparison: net2 100 ep − net2 50 ep (images)", "equal", True,
          lambda v, a: _p_below(_comparison(v, "net2 50 ep", "net2 100 ep"), a), _found_diff("net2 50 ep", "net2 100 ep", -1)),
    Check("comparison: net5 − best baseline (track votes)", "equal", True,
          lambda v, a: _p_below(_comparison(v, _BASELINE, "net5"), a), _found_diff(_BASELINE, "net5", 1)),
    Check("p-value matrix: net4 100 ep − net1 100 ep", "equal", True, _matrix_cell("net1 100 ep", "net4 100 ep")),
    Check("claim: CNNs beat the MLP", "equal", True, _verdict_made("cnn_over_mlp"), _supported("cnn_over_mlp")),
    Check("claim: the MFCC LSTM beats the CNNs", "equal", True, _verdict_made("mfcc_over_cnn"), _supported("mfcc_over_cnn")),
    Check("claim: GAN raises accuracy and stops sooner", "equal", True, _verdict_made("gan_helps"), _supported("gan_helps")),
    Check("test: stops sooner (sign test, samples to the best epoch)", "equal", True, _sooner, _sooner_found),
    Check("family-wise: any wrong verdict in the Holm family", "equal", True, _family_error),
    Check("claim: batch norm steady (TOST at the margin)", "boundary", True, _verdict_made("batchnorm_steady"),
          _supported("batchnorm_steady")),
    Check("test: TOST at the margin, own level", "boundary", True, _own_level("batchnorm_steady", "within")),
    Check("claim: RMSProp no better (non-superiority at the margin)", "boundary", True, _verdict_made("rmsprop_no_gain"),
          _supported("rmsprop_no_gain")),
    Check("test: non-superiority at the margin, own level", "boundary", True, _own_level("rmsprop_no_gain", "below")),
    Check("claim: raw audio under 0.15 (at the bound)", "boundary", True, _verdict_made("raw_below"), _supported("raw_below")),
    Check("test: raw audio against the bound, own level", "boundary", True, _own_level("raw_below", "less")),
    Check("McNemar per draw (net6 − net5; describes only)", "equal", False, _mcnemar),
)


def boundary_applies(noise: Noise) -> bool:
    """The margin and bound claims are put on their boundary only where models differ by degree
    (not where they agree on all but a few tracks, which no shift of a margin describes)."""
    return not noise.discordant


def simulated_verdicts(shape: Shape, noise: Noise, lay: Layout, rng: np.random.Generator, world: str,
                       margin: float, alpha: float, effect: float = 0.0, pairs: bool = False) -> SplitVerdicts:
    """One sweep simulated in ``world``, read as the report reads a store's runs."""
    frame, votes = simulate(shape, noise, lay, rng, world, effect)
    runs, _ = select_runs(frame)
    return split_verdicts(runs, shape.split, votes, margin, alpha, pairs=pairs)


def one_sweep(shape: Shape, noise: Noise, lay: Layout, seed: np.random.SeedSequence, alpha: float,
              margin: float, alternative: str | None = None, effect: float = 0.0) -> dict:
    """The checks' outcomes for one simulated sweep through ``split_verdicts``: under the nulls
    (the equal and boundary worlds), and where ``alternative`` names a world, the power
    (``"power: <test>"``)."""
    rng = np.random.default_rng(seed)
    out = {}
    worlds = ("equal", "boundary") if boundary_applies(noise) else ("equal",)
    for world in worlds + ((alternative,) if alternative and boundary_applies(noise) else ()):
        v = simulated_verdicts(shape, noise, lay, rng, world, margin, alpha, effect, pairs=world == "equal")
        if world in ("equal", "boundary"):
            out.update({c.test: c.rejected(v, alpha) for c in CHECKS if c.world == world})
        else:
            out.update({f"power: {c.test}": c.found(v, alpha) for c in CHECKS if c.found is not None})
    return out


@dataclass(frozen=True)
class Rate:
    """A test's rejection rate in one scenario, with its exact binomial interval: under its null
    (``hypothesis`` "null": the level) or where the alternative holds ("alternative": power)."""

    scenario: str
    test: str
    world: str
    decides: bool
    rejected: int
    tested: int  # sims (or draws, for McNemar) in which the test ran
    sims: int
    alpha: float
    hypothesis: str = "null"
    mean_seeds: float = math.nan  # a sequential sweep's seeds at its stop, on average (``--until-decided``)

    @property
    def rejection_rate(self) -> float:
        return self.rejected / self.tested if self.tested else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        return binomial_interval(self.rejected, self.tested)

    @property
    def mc_sd(self) -> float:
        r = self.rejection_rate
        return math.sqrt(r * (1 - r) / self.tested) if self.tested else float("nan")

    @property
    def holds(self) -> bool:
        """Its level kept: the rate plus two Monte-Carlo sd at most ``alpha`` (power: always)."""
        return self.hypothesis != "null" or not self.tested or self.rejection_rate + 2 * self.mc_sd <= self.alpha + 1e-12

    def as_dict(self) -> dict:
        lo, hi = self.interval
        return {"scenario": self.scenario, "test": self.test, "hypothesis": self.hypothesis,
                "rejection_rate": self.rejection_rate, "mc_sd": self.mc_sd, "interval": [lo, hi], "sims": self.sims,
                "tested": self.tested, "rejected": self.rejected, "world": self.world, "decides": self.decides,
                "alpha": self.alpha, "holds": self.holds,
                **({"mean_seeds": self.mean_seeds} if math.isfinite(self.mean_seeds) else {})}


def _count(got: list) -> tuple[int, int]:
    if got and isinstance(got[0], tuple):  # per draw: (differed, draws)
        return sum(g[0] for g in got), sum(g[1] for g in got)
    return sum(bool(g) for g in got), len(got)


def rates(scenario: str, outcomes: list[dict], alpha: float, world: str = "study") -> list[Rate]:
    """Each check's rate over the sims' outcomes (McNemar's over draws), and its power where the
    sims ran the alternative (``world``)."""
    out = []
    for c in CHECKS:
        for key, hyp, w in ((c.test, "null", c.world), (f"power: {c.test}", "alternative", world)):
            if key in outcomes[0]:
                k, n = _count([o[key] for o in outcomes if o.get(key) is not None])
                out.append(Rate(scenario, c.test, w, c.decides, k, n, len(outcomes), alpha, hyp))
    return out


@dataclass(frozen=True, kw_only=True)
class CalibrationConfig:
    """What ``benchmark calibrate`` simulates; logged whole to its MLflow run. ``alternative``:
    the world power is measured in, ``study`` (the study's effects), ``effect`` (``effect`` in
    accuracy for every claim and drawn difference), or ``none``."""

    shape: Shape = field(default_factory=Shape)
    scenarios: tuple[str, ...] = ("realistic", "realistic+repeats")
    sims: int = 500
    alpha: float = ALPHA
    margin: float = MARGIN
    seed: int = 0
    noise: dict = field(default_factory=dict)  # overrides of every scenario's scales (from a sweep)
    alternative: str = "study"
    effect: float = 0.0
    until_decided: int = 0  # the horizon (most seeds) of a simulated ``sweep --until-decided``; 0: a fixed sweep

    def __post_init__(self):
        unknown = [n for n in self.scenarios if n not in SCENARIOS]
        if unknown or not self.scenarios:
            raise ConfigError(f"unknown scenario {(unknown or [''])[0]!r}; the scenarios are {', '.join(SCENARIOS)}")
        check_at_least("sims", self.sims, 1)
        if not (0 < self.alpha < 1 and 0 < self.margin < 1):
            raise ConfigError(f"alpha and margin must lie between 0 and 1, got {self.alpha} and {self.margin}")
        if self.alternative not in ("study", "effect", "none"):
            raise ConfigError(f"alternative must be study, effect or none, got {self.alternative!r}")
        if self.alternative == "effect" and not 0 < self.effect < 0.5:
            raise ConfigError(f"--effect must lie between 0 and 0.5 (accuracy), got {self.effect}")
        if self.until_decided and self.until_decided < self.shape.seeds:
            raise ConfigError(f"--max-seeds ({self.until_decided}) is under --seeds ({self.shape.seeds}), the first "
                              "look's seeds")

    def scenario(self, name: str) -> Noise:
        return replace(SCENARIOS[name], **{k: v for k, v in self.noise.items() if k in asdict(SCENARIOS[name])})

    def layout(self, name: str, shape: Shape | None = None) -> Layout:
        """Scenario ``name``'s tracks and draws for ``shape`` (default: the config's), drawn once per
        chunk from the config's seed: every sweep of a scenario shares them."""
        return layout(shape or self.shape, self.scenario(name), np.random.default_rng([self.seed, len(name)]))


def _chunk(cfg: CalibrationConfig, name: str, seeds: list) -> list[dict]:
    noise, lay = cfg.scenario(name), cfg.layout(name)
    alt = None if cfg.alternative == "none" else cfg.alternative
    return [one_sweep(cfg.shape, noise, lay, s, cfg.alpha, cfg.margin, alt, cfg.effect) for s in seeds]


def simulate_chunks(cfg: CalibrationConfig, chunk, jobs: int = 1, progress=None) -> dict[str, list]:
    """``chunk(cfg, scenario, seeds)``'s outcomes per scenario, ``cfg.sims`` each, in ``jobs``
    processes; the same seed gives the same outcomes whatever ``jobs``. ``progress(done, total)``
    after each chunk."""
    seeds = {n: np.random.SeedSequence([cfg.seed, i]).spawn(cfg.sims) for i, n in enumerate(cfg.scenarios)}
    size = max(1, min(25, cfg.sims // max(jobs, 1) // 4 or 1))
    tasks = [(n, seeds[n][i:i + size]) for n in cfg.scenarios for i in range(0, cfg.sims, size)]
    found: dict[str, list] = {n: [] for n in cfg.scenarios}
    total, done = cfg.sims * len(cfg.scenarios), 0
    if jobs <= 1:
        for n, s in tasks:
            found[n] += chunk(cfg, n, s)
            done += len(s)
            progress and progress(done, total)
    else:
        with worker_pool(jobs, "fork", initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
            futures = [(n, len(s), pool.submit(chunk, cfg, n, s)) for n, s in tasks]
            for n, k, fut in futures:
                found[n] += fut.result()
                done += k
                progress and progress(done, total)
    return found


def calibrate(cfg: CalibrationConfig, jobs: int = 1, progress=None) -> list[Rate]:
    """Every scenario's rates, ``cfg.sims`` simulated sweeps each (see ``simulate_chunks``)."""
    found = simulate_chunks(cfg, _chunk, jobs, progress)
    return [r for n in cfg.scenarios for r in rates(n, found[n], cfg.alpha, cfg.alternative)]
