"""What a net is to genre-bench: ``NetSpec`` (the registry's entries, and a plugin's) and the
input kinds and shapes the suite feeds it. Plugins import ``NetSpec`` from here or from
``genre_models.models.registry``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import torch
    from torch import nn

#: What a net can eat, per sample; a batch puts B in front. Every kind comes from the feature
#: store (``raw`` from its segment audio, decoded once on first use and cached beside it).
INPUT_KINDS = {
    "image": "(3, S, S) float in [0, 1]: the spectrogram image",
    "mfcc": "(frames, n_mfcc) float: the MFCCs of a 1 s segment",
    "raw": "(segment_samples,) float in [-1, 1]: the 1 s segment's audio itself",
    "stats": "(74,) float: the 1 s segment's summary statistics (MFCC, chroma, spectral shape and contrast, ZCR, "
             "RMS; mean and variance over its frames)",
}
OPTIMIZERS = ("adam", "rmsprop")
#: Summary statistics per segment (``data.features.STAT_NAMES``): 37 descriptors, mean and variance.
N_STATS = 74


@dataclass(frozen=True)
class InputShape:
    image_size: int = 180
    frames: int = 44
    n_mfcc: int = 13
    segment_samples: int = 22050


@dataclass(frozen=True)
class NetSpec:
    name: str
    summary: str
    input_kind: str  # "image" (B, 3, S, S) or "mfcc" (B, frames, n_mfcc)
    build: Callable[[InputShape, str], "nn.Module"]  # (input shape, head) -> module
    optimizer: str  # "adam" | "rmsprop" (a classical baseline: its solver, e.g. "libsvm")
    lr: float | None  # None for a classical baseline
    epochs: int  # default (maximum, when early stopping is on)
    early_stopping: bool
    patience: int = 5
    batch_size: int = 32
    uses_gan: bool = False  # net6: training set = real + WaveGAN segments
    baseline: str | None = None  # the net the report compares this one with (paired over seeds)
    scores_gan: bool = False  # the real-data net that scores a GAN's generated clips
    #: Published test accuracies, for reports (optional): ``acc_<epochs>`` for fixed-epoch nets,
    #: ``acc`` and ``stopped_epoch`` for early-stopping ones, ``acc_below`` for a bound ("< 0.15").
    study: dict = field(default_factory=dict)
    #: Where the spec comes from: "built-in", or the plugin that supplied it (set on loading).
    origin: str = "built-in"
    #: How another process finds a plugin net: its ``package.module:factory`` ("" if built in).
    ref: str = ""
    #: "torch": ``build`` returns a ``torch.nn.Module`` that the one training loop trains;
    #: "classical": a scikit-learn baseline fitted in one call (``models.classical``).
    family: str = "torch"

    @property
    def in_study(self) -> bool:
        """Built-in nets are the study's protocol; a plugin's net is the user's own."""
        return self.origin == "built-in"

    @property
    def study_epochs(self) -> list[int]:
        """The epoch budgets the study published a figure for, ascending."""
        return sorted(int(k[4:]) for k in self.study if k.startswith("acc_") and k[4:].isdigit())

    def input_example(self, shape: InputShape, batch: int = 2) -> "torch.Tensor":
        import torch

        if self.input_kind == "image":
            return torch.rand(batch, 3, shape.image_size, shape.image_size)
        if self.input_kind == "raw":
            return torch.rand(batch, shape.segment_samples) * 2 - 1
        if self.input_kind == "stats":
            return torch.rand(batch, N_STATS)
        return torch.randn(batch, shape.frames, shape.n_mfcc)
