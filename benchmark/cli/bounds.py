"""Every numeric option has bounds: one table, applied to every command when the CLI is built.

An option's own range (``IntRange(min=3)``, say) is kept and closed by the table's other end, so
``--folds`` stays at least 3 and now also at most 1000. Floats also refuse ``nan`` and ``inf``,
which click's own ``FloatRange`` lets through (every comparison with nan is false). Without
bounds, ``synth --seconds 1e9`` asked for 80 TiB and ``train --image-size 100000`` for a
30 GB image batch before anything said no. ``tests/test_hostile.py`` checks that no numeric
option is left without both ends.
"""

from __future__ import annotations

import math

import click

from genre_models.config import MAX_SEED

#: Option name -> (lowest, highest). The table's end applies where the option's own range has none
#: on that side, or a looser one. ``OPEN_BELOW``: floats whose lowest value is itself refused.
BOUNDS: dict[str, tuple[float, float]] = {
    # data
    "tracks_per_genre": (1, 1000), "seconds": (0.01, 600.0), "repeats": (0, 1000), "repeat_clips": (2, 100_000),
    "image_size": (8, 1024), "jobs": (0, 256), "preprocess_jobs": (0, 256), "num_workers": (0, 64),
    "limit": (0, 1_000_000), "clips": (2, 100_000), "segments": (1, 200),
    # splits and seeds
    "seed": (0, MAX_SEED), "seeds": (1, 1000), "fold": (0, 999), "folds": (3, 1000), "tracks": (20, 100_000),
    # training
    "min_delta": (0.0, 1.0), "epochs": (1, 100_000), "patience": (1, 10_000), "max_epochs": (1, 100_000), "batches": (1, 100_000), "batch_size": (1, 4096),
    # the GAN
    "steps": (1, 10_000_000), "study_steps": (1, 10_000_000), "gan_steps": (1, 10_000_000),
    "gan_batch_size": (1, 4096), "probe_batch": (1, 4096), "d": (1, 1024), "gan_d": (1, 1024),
    "per_genre": (1, 100_000), "gan_per_genre": (1, 100_000), "latent_dim": (1, 4096), "gan_latent_dim": (1, 4096),
    "n_critic": (1, 100), "gan_n_critic": (1, 100), "gp_weight": (0.0, 1000.0), "gan_gp_weight": (0.0, 1000.0),
    # lr: absurd above 10, but a diverging run is said in one line, so the bound is far off
    "lr": (0.0, 1e15), "gan_lr": (0.0, 1e15), "beta1": (0.0, 0.9999), "gan_beta1": (0.0, 0.9999),
    "beta2": (0.0, 0.9999), "gan_beta2": (0.0, 0.9999), "phase_shuffle": (0, 64), "gan_phase_shuffle": (0, 64),
    "log_every": (1, 1_000_000_000), "preview_every": (1, 1_000_000_000), "checkpoint_every": (1, 1_000_000_000),
    "quality_epochs": (1, 10_000),
    # sweeps, servers, statistics
    "port": (1, 65535), "workers": (1, 256), "cpus_per_run": (0.01, 1024.0), "gpus_per_run": (0.0, 64.0),
    "ray_cpus": (0, 1024), "retries": (0, 100), "max_hours": (0.0, 10_000.0), "wait_for_quiet": (0.0, 86_400.0),
    "sims": (10, 100_000), "alpha": (0.001, 0.5), "margin": (0.001, 0.5), "top": (1, 10), "runs": (10, 1_000_000),
}


OPEN_BELOW = {"lr", "gan_lr", "max_hours", "cpus_per_run"}


class BoundedFloat(click.FloatRange):
    """A ``FloatRange`` with both ends that also refuses nan and inf."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


def _bounded(kind: click.ParamType, name: str) -> click.ParamType | None:
    """``kind`` closed at both ends by ``BOUNDS[name]``, or None when the table has no entry."""
    if name not in BOUNDS:
        return None
    low, high = BOUNDS[name]
    own_low, own_high = getattr(kind, "min", None), getattr(kind, "max", None)
    low = low if own_low is None else max(low, own_low)
    high = high if own_high is None else min(high, own_high)
    if isinstance(kind, (click.types.FloatParamType, click.FloatRange)):
        return BoundedFloat(low, high, min_open=name in OPEN_BELOW or (getattr(kind, "min_open", False) and low == own_low))
    return click.IntRange(int(math.ceil(low)), int(high))


def is_numeric(kind: click.ParamType) -> bool:
    return isinstance(kind, (click.types.IntParamType, click.types.FloatParamType))  # ranges are subclasses


def numeric_type(param: click.Parameter) -> click.ParamType | None:
    """The number type ``param`` parses: its own, or the one inside a wrapper (``auto|N``)."""
    for kind in (param.type, getattr(param.type, "inner", None)):
        if kind is not None and is_numeric(kind):
            return kind
    return None


def bound_options(command: click.Command) -> None:
    """Give every numeric option of ``command`` (a group: of each of its commands) its bounds."""
    for sub in getattr(command, "commands", {}).values():
        bound_options(sub)
    for param in command.params:
        kind = numeric_type(param)
        bounded = _bounded(kind, param.name) if kind is not None else None
        if bounded is None:
            continue
        if kind is param.type:
            param.type = bounded
        else:
            param.type.inner = bounded
