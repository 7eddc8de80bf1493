"""Typed, frozen configuration. Each run logs its resolved config whole (``flat_params``).

Unknown keys are an error (``from_dict``), in the spirit of nanoGPT's configurator: a typo in a
parameter must not silently fall back to a default.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
from dataclasses import dataclass, field, fields
from typing import Any

from genre_models.errors import ConfigError

DEFAULT_EXPERIMENT = "gtzan-genre-benchmark"
IMAGE_SOURCES = ("auto", "png", "audio")
DEVICES = ("auto", "cpu", "cuda", "mps")
#: ``auto``: bf16 where the hardware computes it natively (a CUDA GPU; a CPU with AMX or
#: ``avx512_bf16``), fp32 elsewhere; decided when a run starts, and recorded in it.
PRECISIONS = ("fp32", "bf16", "auto")
HEADS = ("flatten", "gap")
GAN_MODES = ("conditional", "per-genre")

#: Bumped whenever feature extraction changes its output; part of every cache key.
#: v2: clips below the absolute silence floor are skipped (v1 kept digital silence as sound).
#: v3: repeated recordings are grouped by fingerprint (``data.repeats``), not by a hash of the samples.
#: v4: each segment's summary statistics (``stats.npy``), the classical baselines' input.
FEATURE_CODE_VERSION = "features-v4"


@dataclass(frozen=True, kw_only=True)
class SplitSpec:
    """One split method. The report, the CLI choices and the sweep read this table; adding a
    split is one entry here plus its assignment rule in ``genre_models.data.splits``."""

    name: str
    description: str  # for the README-style table and the report's header
    leaks: str  # whether one song can sit on two sides, in words
    honest: bool  # no track on two sides
    #: Cross-validation: a run tests one of ``folds`` folds (``fold``), so every track is tested once.
    folded: bool = False
    #: Seeds draw new splits (random, track, kfold), whose training sets overlap: intervals and
    #: paired tests correct for it (Nadeau & Bengio 2003). A fixed split (filtered) does not.
    resampled: bool = True


SPLIT_SPECS: dict[str, SplitSpec] = {
    s.name: s
    for s in (
        SplitSpec(name="random", description="the study's protocol: 70/20/10 at random over *samples*",
                  leaks="yes, for MFCC segments: one song lands in train and test", honest=False),
        SplitSpec(name="track", description="70/20/10 per genre over *tracks*; segments follow their track",
                  leaks="no", honest=True),
        SplitSpec(name="filtered", description="the artist-filtered lists (443/197/290 tracks; 70 faulty tracks left out)",
                  leaks="no, and no artist on two sides", honest=True, resampled=False),
        SplitSpec(name="kfold", description="k-fold cross-validation over *tracks* (10 folds by default), stratified "
                  "by genre: a run tests one fold, validates on the next and trains on the rest, so over the folds "
                  "every track is tested once", leaks="no", honest=True, folded=True),
    )
}
SPLITS: tuple[str, ...] = tuple(SPLIT_SPECS)


#: Seeds go to numpy's generator (at most 2**32 - 1) and torch's: a larger one is refused.
MAX_SEED = 2**32 - 1


def check_seed(seed: int) -> None:
    if not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"seed must be from 0 to {MAX_SEED}, got {seed}")


def check_fold(split: str, fold: int, folds: int) -> None:
    """``fold`` of ``folds``: a fold of a cross-validation split only, at least 3 folds (test,
    validation and at least one to train on)."""
    check_at_least("folds", folds, 3)
    if SPLIT_SPECS[split].folded:
        if not 0 <= fold < folds:
            raise ConfigError(f"fold must be from 0 to {folds - 1} (folds {folds}), got {fold}")
    elif fold != 0:
        raise ConfigError(f"fold {fold} was given, but split {split!r} has no folds (only "
                          f"{', '.join(n for n, s in SPLIT_SPECS.items() if s.folded)} has)")


def check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def check_at_least(name: str, value, low) -> None:
    """``value >= low``; NaN fails too (every comparison with NaN is false)."""
    if not value >= low:
        raise ConfigError(f"{name} must be at least {low}, got {value}")


def check_positive(name: str, value) -> None:
    """A finite number above 0 (a learning rate, a weight)."""
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{name} must be a finite number above 0, got {value}")


@dataclass(frozen=True, kw_only=True)
class FeatureConfig:
    """How audio becomes the study's two input kinds.

    Defaults follow the study: 22050 Hz, 1 s segments after silence removal, 13 MFCCs with
    n_fft 2048 and hop 512 (1 + 22050 // 512 = 44 frames per segment), and 3x180x180 images.
    """

    sample_rate: int = 22050
    segment_seconds: float = 1.0
    n_mfcc: int = 13
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    #: librosa.effects.split threshold: frames quieter than this many dB below the clip's
    #: peak count as silence and are cut out before segmenting.
    silence_top_db: float = 60.0
    image_size: int = 180
    #: ``auto``: the Kaggle PNG when the track has one, else a log-mel image rendered from
    #: the audio; ``png``: PNG only (tracks without one have no image); ``audio``: always render.
    image_source: str = "auto"

    def __post_init__(self) -> None:
        if self.image_source not in IMAGE_SOURCES:
            raise ConfigError(f"image_source must be one of {IMAGE_SOURCES}, got {self.image_source!r}")
        if self.segment_seconds <= 0 or self.sample_rate <= 0:
            raise ConfigError("segment_seconds and sample_rate must be positive")
        if self.image_size < 8:
            raise ConfigError(f"image_size must be at least 8, got {self.image_size}")

    @property
    def segment_samples(self) -> int:
        return int(round(self.segment_seconds * self.sample_rate))

    @property
    def frames_per_segment(self) -> int:
        # librosa's centred STFT: one frame per hop plus the first.
        return 1 + self.segment_samples // self.hop_length


@dataclass(frozen=True, kw_only=True)
class SplitConfig:
    """A split method from ``SPLIT_SPECS`` and its seed. ``random`` is the study's protocol
    (70/20/10 over samples; for MFCC segments it puts one song on both sides). ``track``
    (default) is 70/20/10 stratified by genre and grouped by track. ``filtered`` is the
    artist-filtered split of Kereliuk, Sturm & Larsen (2015)."""

    split: str = "track"
    seed: int = 0
    train_fraction: float = 0.7
    val_fraction: float = 0.2
    folds: int = 10  # kfold: the number of folds
    fold: int = 0  # kfold: the fold this run tests (0 .. folds-1); it validates on the next one

    def __post_init__(self) -> None:
        check_choice("split", self.split, SPLITS)
        check_seed(self.seed)
        if not (0 < self.train_fraction < 1 and 0 < self.val_fraction < 1
                and self.train_fraction + self.val_fraction < 1):
            raise ConfigError("train_fraction and val_fraction must be in (0, 1) and sum below 1")
        check_fold(self.split, self.fold, self.folds)

    @property
    def folded(self) -> bool:
        return SPLIT_SPECS[self.split].folded

    @property
    def label(self) -> str:
        """The split as run names say it: ``track``, or ``kfold-3of10`` for fold 3 of 10."""
        return f"{self.split}-{self.fold}of{self.folds}" if self.folded else self.split

    @property
    def words(self) -> str:
        """The split as descriptions say it: "the `track` split (seed 0)", or with its fold."""
        fold = f", fold {self.fold} of {self.folds}" if self.folded else ""
        return f"the `{self.split}` split (seed {self.seed}{fold})"

    @property
    def tags(self) -> dict[str, str]:
        """The tags that say which split a run used: split and seed, and fold and folds for a folded one."""
        fold = {"fold": str(self.fold), "folds": str(self.folds)} if self.folded else {}
        return {"split": self.split, "seed": str(self.seed), **fold}


def training_seed(split: str, seed: int, fold: int) -> int:
    """See ``RunSection.training_seed``: a folded split's (seed, fold) hashed to a 32-bit seed."""
    if not SPLIT_SPECS[split].folded:
        return seed
    return int.from_bytes(hashlib.blake2b(f"genre-bench/{seed}/{fold}".encode(), digest_size=4).digest(), "big")


def default_cache_dir() -> str:
    return os.environ.get("GENRE_BENCH_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "genre-bench"))


# --------------------------------------------------------------------------- shared sections
# Stage configs inherit these instead of restating the fields, so the field names (and the
# logged parameter names) stay flat: ``cfg.data_dir``, ``cfg.split``, ``cfg.device``.


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """Where the data is and how it becomes features: everything the feature cache depends on
    (plus where the cache lives and how many processes fill it). This is all ``preprocess`` needs."""

    data_dir: str
    features: FeatureConfig = field(default_factory=FeatureConfig)
    cache_dir: str = field(default_factory=default_cache_dir)
    jobs: int = 0  # feature-extraction processes; 0: one per CPU core

    def __post_init__(self) -> None:
        check_at_least("jobs", self.jobs, 0)


#: ``benchmark preprocess`` takes the data section alone (the split is applied on load).
PreprocessConfig = DataConfig


@dataclass(frozen=True, kw_only=True)
class RunSection:
    """Which split and seed a run uses, and where it computes."""

    split: str = "track"
    seed: int = 0
    fold: int = 0  # kfold only: the fold this run tests
    folds: int = 10  # kfold only
    device: str = "auto"

    def __post_init__(self) -> None:
        check_choice("split", self.split, SPLITS)
        check_choice("device", self.device, DEVICES)
        check_seed(self.seed)
        check_fold(self.split, self.fold, self.folds)

    @property
    def split_config(self) -> SplitConfig:
        return SplitConfig(split=self.split, seed=self.seed, fold=self.fold, folds=self.folds)

    @property
    def training_seed(self) -> int:
        """The seed of the run's weights and batches: its seed on an unfolded split, its seed *and*
        fold under ``kfold`` (the folds of one seed sharing a torch seed would share most of their
        training noise, and the tests over draws take draws to be independent given the split)."""
        return training_seed(self.split, self.seed, self.fold)


def section(cfg: Any, cls: type) -> dict[str, Any]:
    """The fields of ``cfg`` that belong to section ``cls`` (e.g. a TrainConfig's DataConfig part)."""
    return {f.name: getattr(cfg, f.name) for f in fields(cls)}


@dataclass(frozen=True, kw_only=True)
class WaveGanConfig:
    """WaveGAN hyperparameters: what a generated set depends on (with the data, split and seed).

    Defaults are the paper's (Donahue et al. 2018, Table 3): d 64, z 100, batch 64, Adam 1e-4
    with betas (0.5, 0.9), 5 critic updates per generator update, gradient-penalty weight 10,
    phase shuffle 2. ``per_genre`` is the study's 2,798 clips per genre. The paper trained far
    longer than ``steps``' default; on CPU use a small ``d`` (see ``benchmark perf gan``).
    """

    steps: int = 20000
    batch_size: int = 64
    d: int = 64
    mode: str = "conditional"
    per_genre: int = 2798
    latent_dim: int = 100
    n_critic: int = 5
    gp_weight: float = 10.0
    lr: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.9
    phase_shuffle: int = 2
    precision: str = "fp32"

    def __post_init__(self) -> None:
        check_choice("mode", self.mode, GAN_MODES)
        check_choice("precision", self.precision, PRECISIONS)
        for name in ("steps", "batch_size", "d", "per_genre", "latent_dim", "n_critic"):
            if getattr(self, name) < 1:
                raise ConfigError(f"gan {name} must be at least 1, got {getattr(self, name)}")
        if self.phase_shuffle < 0:
            raise ConfigError(f"phase_shuffle must be 0 or more, got {self.phase_shuffle}")
        for name in ("lr", "gp_weight"):
            check_positive(f"gan {name}", getattr(self, name))


@dataclass(frozen=True, kw_only=True)
class GanConfig(DataConfig, RunSection):
    """One ``gan`` run: the WaveGAN, the data it learns from, and how the run reports."""

    gan: WaveGanConfig = field(default_factory=WaveGanConfig)
    log_every: int = 50  # losses and gradient penalty, every N steps
    preview_every: int = 500  # one fixed-z WAV per genre, every K steps (and at the end)
    checkpoint_every: int = 250
    #: Epoch cap for the real-data scorer net that scores the generated clips (early stopping
    #: on), when no finished run of it with the same data, split and seed can be reused.
    quality_epochs: int = 200
    log_model: bool = True

    def __post_init__(self) -> None:
        DataConfig.__post_init__(self)
        RunSection.__post_init__(self)
        for name in ("log_every", "preview_every", "checkpoint_every", "quality_epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.features.segment_seconds != 1.0:
            raise ConfigError("WaveGAN clips (16384 samples) are padded to 1 s segments; it needs segment_seconds 1, "
                              f"got {self.features.segment_seconds:g}")


@dataclass(frozen=True, kw_only=True)
class TrainConfig(DataConfig, RunSection):
    """One training run. ``None`` fields are resolved from the net's registry spec."""

    net: str
    epochs: int | None = None
    early_stopping: bool | None = None
    patience: int | None = None
    min_delta: float = 0.0
    batch_size: int | None = None
    lr: float | None = None
    precision: str = "fp32"
    num_workers: int = 0
    head: str = "flatten"
    log_model: bool = True
    #: Nets with ``uses_gan`` (net6) only: the GAN whose generated set joins the training part,
    #: given by run id, or else found (or trained) by matching ``gan`` settings.
    gan_run_id: str = ""
    gan: WaveGanConfig = field(default_factory=WaveGanConfig)

    def __post_init__(self) -> None:
        DataConfig.__post_init__(self)
        RunSection.__post_init__(self)
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("head", self.head, HEADS)
        for name in ("epochs", "patience", "batch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be at least 1, got {value}")
        if self.lr is not None:
            check_positive("lr", self.lr)
        check_at_least("min_delta", self.min_delta, 0.0)
        check_at_least("num_workers", self.num_workers, 0)


def default_of(cls: type, name: str) -> Any:
    """A config field's default, so the CLI and MLproject never restate it."""
    f = next(f for f in fields(cls) if f.name == name)
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    raise KeyError(f"{cls.__name__}.{name} has no default")


def flat_params(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """A dataclass (nested ones too) as flat ``{"features.n_mfcc": 13, ...}`` for mlflow.log_params.
    ``fold`` and ``folds`` only where the split has folds (elsewhere they mean nothing)."""
    out: dict[str, Any] = {}
    unfolded = "split" in {f.name for f in fields(cfg)} and not SPLIT_SPECS[cfg.split].folded
    for f in fields(cfg):
        if unfolded and f.name in ("fold", "folds"):
            continue
        value = getattr(cfg, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            out.update(flat_params(value, prefix=f"{key}."))
        else:
            out[key] = value
    return out


def from_dict(cls: type, values: dict[str, Any]) -> Any:
    """Build a config dataclass, rejecting unknown keys by name."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} key(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return cls(**values)
