"""A calibration that can fail: each mutation of the report's code in ``tests/mutations.py`` (no
correction, a correction too small, the fixed split without its test set's error, Welch's
degrees of freedom, TOST on the smaller p, no censoring, no Holm, chi-square for the exact tests)
must make ``benchmark calibrate``'s simulation flag a deciding test that the shipped code keeps at
its level, so a calibration that cannot see a fault cannot pass.
"""

from __future__ import annotations

import pytest

from genre_models.reporting.calibration import CalibrationConfig, calibrate
from genre_models.reporting.simulation import Shape

from mutations import MUTATIONS


#: Where each mutation is tried, 100 sims of the realistic world: the resampled split's tests on
#: `kfold` (150 tracks, 5 folds x 3 seeds); the rest on `filtered` (300 tracks, 8 seeds: where the
#: sign test's exact size is 0.8%, against chi-square's 7%), with caps that bind in most runs
#: (net5's median best epoch at 60, over the cap of 50), which is where censoring matters.
_MUTATION_SHAPES = {"kfold": (Shape(split="kfold", tracks=150, folds=5, seeds=3), {}),
                    "filtered": (Shape(split="filtered", tracks=300, seeds=8), {"stop_epochs": 60.0})}
_ON_KFOLD = {"no correction", "a correction 4x too small", "no Holm"}


def _failing(split: str) -> set[str]:
    shape, noise = _MUTATION_SHAPES[split]
    cfg = CalibrationConfig(shape=shape, sims=100, scenarios=("realistic",), alternative="none", seed=3, noise=noise)
    return {r.test for r in calibrate(cfg, jobs=2) if r.decides and not r.holds}


@pytest.fixture(scope="module")
def unmutated() -> dict:
    """What the report's own code fails at the mutations' shapes, filled on first use (at 100 sims
    the strict rule can flag a discrete test at its level, as the sign test on `kfold` is): a
    mutation must make the calibration fail a test the shipped code passes."""
    return {}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MUTATIONS))
def test_the_calibration_fails_every_mutation_of_the_tests(name, unmutated, monkeypatch):
    """Each mutation in tests/mutations.py breaks a test's level in a way real sweeps would meet;
    the calibration, in the realistic world, must flag a deciding test that the code as shipped
    keeps at its level."""
    split = "kfold" if name in _ON_KFOLD else "filtered"
    if split not in unmutated:
        unmutated[split] = _failing(split)
    for module, attr, value in MUTATIONS[name]:
        monkeypatch.setattr(module, attr, value)
    caught = _failing(split) - unmutated[split]
    assert caught, f"the calibration passed the mutation '{name}'"


