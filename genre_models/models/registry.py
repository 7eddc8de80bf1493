"""The one registry of the nets (``NETS``), and the roles the rest of the suite asks it about.

Everything that differs between nets is data in a ``NetSpec``: builder, input kind, optimizer,
learning rate, epoch policy, the study's published accuracies, and roles:

* ``uses_gan``: trained on real + WaveGAN-generated segments (net6);
* ``baseline``: the net it is compared with, paired over seeds, in the report (net6 -> net5);
* ``scores_gan``: the real-data net that scores generated clips (the GAN's quality figure),
  which a sweep's GAN point waits for;
* ``family``: ``torch`` nets go through the one training loop; ``classical`` baselines (``svm``,
  ``logreg``) are scikit-learn models fitted in one call (``models.classical``), scored,
  logged, registered and served like any net.

The CLI, MLproject entry points, training loop, sweep and report all read this table; no code
branches on a net's name, so adding a net is one entry. A net from outside genre-bench is one
entry too, in the user's own package (``genre_models.models.plugins``): ``get_net`` finds it
by its entry-point name or its ``package.module:factory`` reference.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Callable

from genre_models.config import TrainConfig
from genre_models.errors import ConfigError
from genre_models.models import plugins
from genre_models.models.spec import INPUT_KINDS, N_STATS, OPTIMIZERS, InputShape, NetSpec

if TYPE_CHECKING:  # torch loads when a net is built, not when the table is read (a light CLI start)
    import torch
    from torch import nn

__all__ = ["INPUT_KINDS", "OPTIMIZERS", "InputShape", "NetSpec", "NETS", "get_net"]

_STUDY_LSTM_ES = "early stopping on val_loss, patience 5, at most 200 epochs"


def _mlp(s: InputShape, head: str) -> "nn.Module":
    from genre_models.models.nets import MLP

    return MLP(s.image_size)


def _cnn(batchnorm: bool) -> Callable[[InputShape, str], "nn.Module"]:
    def build(s: InputShape, head: str) -> "nn.Module":
        from genre_models.models.nets import CNN

        return CNN(s.image_size, batchnorm=batchnorm, head=head)

    return build


def _lstm(s: InputShape, head: str) -> "nn.Module":
    from genre_models.models.nets import LSTMNet

    return LSTMNet(s.n_mfcc)


def _classical(kind: str) -> Callable[[InputShape, str], object]:
    def build(s: InputShape, head: str):
        from genre_models.models.classical import GRIDS, build as build_pipeline

        return build_pipeline(kind, {k: v[0] for k, v in GRIDS[kind].items()}, N_STATS, 0)  # unfitted

    return build


_STATS = "each 1 s segment's summary statistics (MFCC, chroma, spectral shape and contrast, ZCR, RMS: mean and variance)"


def _raw_lstm(s: InputShape, head: str) -> "nn.Module":
    from genre_models.models.nets import RawLSTMNet

    return RawLSTMNet(s.segment_samples)


NETS: dict[str, NetSpec] = {
    s.name: s
    for s in (
        NetSpec("net1", "MLP 128-64 on flattened 3x180x180 spectrogram images", "image",
                _mlp, "adam", 1e-4, 50, False,
                study={"acc_50": 0.4257, "acc_100": 0.4950}),
        NetSpec("net2", "CNN conv 32-64-128-256, max-pool after conv 2 and 4, FC 256->10", "image",
                _cnn(batchnorm=False), "adam", 1e-4, 50, False,
                study={"acc_50": 0.6039, "acc_100": 0.5346}),
        NetSpec("net3", "net2 + BatchNorm after each conv", "image",
                _cnn(batchnorm=True), "adam", 1e-4, 50, False,
                study={"acc_50": 0.6138, "acc_100": 0.6138}),
        NetSpec("net4", "net3 trained with RMSProp", "image",
                _cnn(batchnorm=True), "rmsprop", 1e-4, 50, False,
                study={"acc_50": 0.5445, "acc_100": 0.5346}),
        NetSpec("net5", f"LSTM 512-256, FC 128-64-10 on MFCCs of 1 s segments; {_STUDY_LSTM_ES}", "mfcc",
                _lstm, "adam", 1e-4, 200, True, scores_gan=True, baseline="svm",
                study={"acc": 0.7954, "stopped_epoch": 27}),
        NetSpec("net6", f"net5 trained on real + WaveGAN-generated segments (2,798 per genre); {_STUDY_LSTM_ES}", "mfcc",
                _lstm, "adam", 1e-4, 200, True, uses_gan=True, baseline="net5",
                study={"acc": 0.8291, "stopped_epoch": 18}),
        NetSpec("net5-raw", "net5 on the raw 1 s segment instead of its MFCCs: 43 frames of 512 samples "
                f"(non-overlapping, the MFCCs' hop; the last 34 samples dropped) into the same LSTM; {_STUDY_LSTM_ES}",
                "raw", _raw_lstm, "adam", 1e-4, 200, True, baseline="net5",
                study={"acc_below": 0.15}),
        NetSpec("svm", f"RBF SVM on {_STATS}, standardised on the training part; C and gamma chosen on validation; "
                "tracks by vote", "stats", _classical("svm"), "libsvm", None, 1, False, family="classical"),
        NetSpec("logreg", f"linear probe (logistic regression) on {_STATS}, standardised on the training part; C chosen "
                "on validation; tracks by vote", "stats", _classical("logreg"), "lbfgs", None, 1, False,
                family="classical"),
    )
}


def get_net(name: str) -> NetSpec:
    """A built-in net, or a plugin's: by entry-point name, by ``package.module:factory``, or by
    the name of one this process (or its parent) loaded by reference. A plugin is imported,
    checked and its model tried on an input example the first time it is asked for."""
    if name in NETS:
        return NETS[name]
    return plugins.find(name, tuple(NETS))
def gan_scorer() -> NetSpec:
    """The net whose real-data runs score generated clips (``scores_gan``; exactly one)."""
    found = [s for s in NETS.values() if s.scores_gan]
    if len(found) != 1:
        raise ConfigError(f"the registry must mark exactly one net scores_gan, not {len(found)}")
    return found[0]


def comparisons() -> list[tuple[str, str]]:
    """(baseline, net) pairs the report compares, paired over seeds."""
    return [(s.baseline, s.name) for s in NETS.values() if s.baseline]


def make_optimizer(spec: NetSpec, params, lr: float) -> "torch.optim.Optimizer":
    import torch

    # Keras defaults, which the study used: Adam eps 1e-7, RMSprop rho 0.9 eps 1e-7.
    if spec.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, eps=1e-7)
    if spec.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1e-7)
    raise ConfigError(f"{spec.name}: unknown optimizer {spec.optimizer!r}")


def count_parameters(model: "nn.Module") -> int:
    return sum(p.numel() for p in model.parameters())


#: What only a torch net's training loop uses: a classical baseline refuses these when given.
LOOP_SETTINGS = ("lr", "batch_size", "patience")


def resolve_config(cfg: TrainConfig) -> TrainConfig:
    """Fill every ``None`` from the net's spec, so the logged config is exactly what ran. A
    classical baseline is fitted once: a learning rate, batch size, patience, more than one
    epoch or early stopping is refused rather than silently ignored."""
    spec = get_net(cfg.net)
    if spec.family == "classical":
        given = [n for n in LOOP_SETTINGS if getattr(cfg, n) is not None]
        given += ["epochs"] if cfg.epochs not in (None, 1) else []
        given += ["early_stopping"] if cfg.early_stopping else []
        if given:
            raise ConfigError(f"{spec.name} is a classical baseline, fitted once with its hyper-parameters chosen on "
                              f"validation: {', '.join(given)} do not apply to it")
    return replace(
        cfg,
        net=spec.name,  # a plugin named as package.module:factory is known by its name
        epochs=cfg.epochs if cfg.epochs is not None else spec.epochs,
        early_stopping=cfg.early_stopping if cfg.early_stopping is not None else spec.early_stopping,
        patience=cfg.patience if cfg.patience is not None else spec.patience,
        batch_size=cfg.batch_size if cfg.batch_size is not None else spec.batch_size,
        lr=cfg.lr if cfg.lr is not None else spec.lr,
    )
