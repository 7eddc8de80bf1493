"""One training loop for every net, and the MLflow run around it.

``fit`` knows nothing of MLflow or of which net it trains: it takes a model, an optimizer and
batches, and reports each epoch to a callback. ``train`` resolves the config from the net's
registry spec, loads (or builds) the feature cache, splits it, runs ``fit``, touches the test
set once, and logs everything.
"""

from __future__ import annotations

import copy
import json
import math
import random
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from genre_models.config import PreprocessConfig, SplitConfig, TrainConfig, flat_params
from genre_models.genres import GENRES, N_CLASSES
from genre_models.models import InputShape, NetSpec, count_parameters, get_net, make_optimizer
from genre_models.splits import PARTS
from genre_models.util import log, progress


# --------------------------------------------------------------------------- config & data


def resolve_config(cfg: TrainConfig) -> TrainConfig:
    """Fill every ``None`` from the net's spec, so the logged config is exactly what ran."""
    spec = get_net(cfg.net)
    return replace(
        cfg,
        epochs=cfg.epochs if cfg.epochs is not None else spec.epochs,
        early_stopping=cfg.early_stopping if cfg.early_stopping is not None else spec.early_stopping,
        patience=cfg.patience if cfg.patience is not None else spec.patience,
        batch_size=cfg.batch_size if cfg.batch_size is not None else spec.batch_size,
        lr=cfg.lr if cfg.lr is not None else spec.lr,
    )


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from genre_models.errors import ConfigError

        raise ConfigError("device=cuda was asked for but torch.cuda.is_available() is False")
    return torch.device(name)


@dataclass
class Part:
    """One split part held in memory: x as stored (uint8 images or float32 MFCC), labels, track rows."""

    x: torch.Tensor  # (N, 3, S, S) uint8 or (N, frames, n_mfcc) float32
    y: torch.Tensor  # (N,) int64
    track: np.ndarray  # (N,) row in the store's usable tracks

    def __len__(self) -> int:
        return int(self.y.shape[0])


def split_parts(store, input_kind: str, split: SplitConfig) -> dict[str, Part]:
    """Gather train/val/test for one input kind. Copies only the selected samples out of the memmap."""
    tracks = store.tracks
    labels = tracks.label.to_numpy().astype(np.int64)
    if input_kind == "image":
        data, sample_track = store.images, store.img_track
    else:
        data, sample_track = store.mfcc, store.seg_track
    parts = store.parts(input_kind, split)
    out = {}
    for p, name in enumerate(PARTS):
        idx = np.flatnonzero(parts == p)
        out[name] = Part(torch.from_numpy(np.ascontiguousarray(data[idx])),
                         torch.from_numpy(labels[sample_track[idx]]), sample_track[idx])
    return out


def to_input(x: torch.Tensor) -> torch.Tensor:
    """Stored sample -> model input: uint8 images become float in [0, 1] (the study's Rescaling(1/255))."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x


class _BatchView(Dataset):
    """Indexed by a whole batch of indices at once: one gather per batch, not one per sample."""

    def __init__(self, part: Part) -> None:
        self.part = part

    def __len__(self) -> int:
        return len(self.part)

    def __getitem__(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        i = torch.as_tensor(idx)
        return to_input(self.part.x[i]), self.part.y[i]


def make_loader(part: Part, batch_size: int, shuffle: bool, seed: int, num_workers: int, pin: bool) -> DataLoader:
    gen = torch.Generator().manual_seed(seed)
    sampler = RandomSampler(range(len(part)), generator=gen) if shuffle else SequentialSampler(range(len(part)))
    return DataLoader(_BatchView(part), sampler=BatchSampler(sampler, batch_size, drop_last=False), batch_size=None,
                      num_workers=num_workers, pin_memory=pin, persistent_workers=num_workers > 0)


# --------------------------------------------------------------------------- the loop


@dataclass
class History:
    epochs: list[dict] = field(default_factory=list)  # one dict of train_/val_ metrics per epoch
    best_epoch: int = 0
    stopped_epoch: int = 0
    train_seconds: float = 0.0
    samples_seen: int = 0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def _autocast(device: torch.device, precision: str):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


@torch.no_grad()
def predict_proba(model: nn.Module, loader: DataLoader, device: torch.device, precision: str) -> tuple[np.ndarray, float]:
    """Softmax outputs (N, 10) and the mean cross-entropy over ``loader``."""
    model.eval()
    probs, total, n = [], 0.0, 0
    for xb, yb in loader:
        xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        with _autocast(device, precision):
            logits = model(xb)
        logits = logits.float()
        total += nn.functional.cross_entropy(logits, yb, reduction="sum").item()
        n += yb.numel()
        probs.append(torch.softmax(logits, 1).cpu())
    return (torch.cat(probs).numpy() if probs else np.zeros((0, N_CLASSES), np.float32)), total / max(n, 1)


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_loader: DataLoader,
    val_loader: DataLoader,
    *,
    epochs: int,
    device: torch.device,
    precision: str = "fp32",
    early_stopping: bool = False,
    patience: int = 5,
    min_delta: float = 0.0,
    on_epoch: Callable[[int, dict], None] | None = None,
) -> History:
    """Train for up to ``epochs``. With early stopping, stop after ``patience`` epochs without a
    val_loss improvement of more than ``min_delta`` and restore the best weights. Without it,
    the final weights are kept (the study's fixed-epoch protocol); best_epoch is still reported.
    """
    hist = History()
    best_loss, best_state, wait = math.inf, None, 0
    bar = progress(total=epochs, desc="epochs", unit="ep")
    t0 = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        for xb, yb in progress(train_loader, desc=f"epoch {epoch}", unit="batch"):
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            with _autocast(device, precision):
                logits = model(xb)  # (B, 10)
            loss = nn.functional.cross_entropy(logits.float(), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * yb.numel()  # stays on device: no sync per batch
            correct += (logits.detach().argmax(1) == yb).sum()
            seen += yb.numel()
        if not math.isfinite(float(loss_sum)):
            raise FloatingPointError(f"training loss became {float(loss_sum)} at epoch {epoch}; lower the learning rate")
        probs, val_loss = predict_proba(model, val_loader, device, precision)
        val_y = val_loader.dataset.part.y.numpy()
        metrics = {
            "train_loss": float(loss_sum) / max(seen, 1),
            "train_accuracy": float(correct) / max(seen, 1),
            "val_loss": val_loss,
            "val_accuracy": float((probs.argmax(1) == val_y).mean()) if len(val_y) else 0.0,
        }
        hist.epochs.append(metrics)
        hist.samples_seen += seen
        hist.stopped_epoch = epoch
        if on_epoch is not None:
            on_epoch(epoch, metrics)
        bar.update()
        bar.set_postfix(val_acc=f"{metrics['val_accuracy']:.3f}", val_loss=f"{val_loss:.3f}")
        if val_loss < best_loss - min_delta:
            best_loss, wait, hist.best_epoch = val_loss, 0, epoch
            if early_stopping:
                best_state = copy.deepcopy(model.state_dict())
        else:
            wait += 1
            if early_stopping and wait >= patience:
                break
    bar.close()
    hist.train_seconds = time.perf_counter() - t0
    if early_stopping and best_state is not None:
        model.load_state_dict(best_state)
    return hist


# --------------------------------------------------------------------------- evaluation


def track_vote(probs: np.ndarray, tracks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Majority vote of segment predictions per track; ties go to the higher mean probability.

    Returns (unique track rows, predicted label per track).
    """
    uniq, inv = np.unique(tracks, return_inverse=True)
    votes = np.zeros((len(uniq), probs.shape[1]))
    np.add.at(votes, (inv, probs.argmax(1)), 1.0)
    mean_p = np.zeros_like(votes)
    np.add.at(mean_p, inv, probs)
    mean_p /= np.bincount(inv, minlength=len(uniq))[:, None]
    # Votes decide; half the mean probability (< 1) only breaks ties between equal vote counts.
    return uniq, (votes + 0.5 * mean_p).argmax(1)


def evaluate(probs: np.ndarray, y: np.ndarray, tracks: np.ndarray, track_labels: np.ndarray, loss: float) -> dict:
    """Sample- and track-level metrics for one part."""
    from sklearn.metrics import f1_score

    pred = probs.argmax(1)
    uniq, track_pred = track_vote(probs, tracks)
    track_true = track_labels[uniq]
    labels = list(range(N_CLASSES))
    out = {
        "accuracy": float((pred == y).mean()) if len(y) else 0.0,
        "loss": loss,
        "macro_f1": float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "track_accuracy": float((track_pred == track_true).mean()) if len(uniq) else 0.0,
        "track_macro_f1": float(f1_score(track_true, track_pred, labels=labels, average="macro", zero_division=0)),
        "n_samples": int(len(y)),
        "n_tracks": int(len(uniq)),
    }
    per_genre = f1_score(y, pred, labels=labels, average=None, zero_division=0)
    out.update({f"f1_{g}": float(v) for g, v in zip(GENRES, per_genre)})
    return out


# --------------------------------------------------------------------------- the run


@dataclass
class TrainResult:
    run_id: str | None
    config: TrainConfig
    metrics: dict
    history: History
    model: nn.Module
    confusion: np.ndarray
    tags: dict = field(default_factory=dict)


def _write_artifacts(out, hist: History, confusion: np.ndarray, y_true, y_pred, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    from sklearn.metrics import classification_report

    pd.DataFrame(confusion, index=GENRES, columns=GENRES).rename_axis("true\\pred").to_csv(out / "confusion_matrix.csv")
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(N_CLASSES), GENRES, rotation=45, ha="right")
    ax.set_yticks(range(N_CLASSES), GENRES)
    for i in range(N_CLASSES):
        for j in range(N_CLASSES):
            if confusion[i, j]:
                ax.text(j, i, int(confusion[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if confusion[i, j] > confusion.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}: test confusion")
    fig.tight_layout()
    fig.savefig(out / "confusion_matrix.png", dpi=110)
    plt.close(fig)

    labels = list(range(N_CLASSES))
    rep = classification_report(y_true, y_pred, labels=labels, target_names=list(GENRES), zero_division=0, digits=4)
    (out / "classification_report.txt").write_text(rep)
    rep_d = classification_report(y_true, y_pred, labels=labels, target_names=list(GENRES), zero_division=0, output_dict=True)
    (out / "classification_report.json").write_text(json.dumps(rep_d, indent=2))

    ep = np.arange(1, len(hist.epochs) + 1)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for key, ax in (("loss", a1), ("accuracy", a2)):
        ax.plot(ep, [m[f"train_{key}"] for m in hist.epochs], label=f"train_{key}")
        ax.plot(ep, [m[f"val_{key}"] for m in hist.epochs], label=f"val_{key}")
        if hist.best_epoch:
            ax.axvline(hist.best_epoch, color="grey", ls=":", label="best epoch")
        ax.set_xlabel("epoch")
        ax.legend()
    fig.suptitle(f"{title}: learning curves (validation, never test)")
    fig.tight_layout()
    fig.savefig(out / "learning_curves.png", dpi=110)
    plt.close(fig)
    pd.DataFrame(hist.epochs, index=pd.Index(ep, name="epoch")).to_csv(out / "history.csv")


def run_name(cfg: TrainConfig) -> str:
    return f"{cfg.net}-e{cfg.epochs}-{cfg.split}-s{cfg.seed}"


def train(cfg: TrainConfig, track: bool = True, extra_train: Part | None = None, extra_tags: dict | None = None,
          placement=None) -> TrainResult:
    """Train one net end to end. ``extra_train`` appends samples to the training part only
    (net6's generated segments); validation and test stay real. ``placement`` nests the run
    under a sweep's parent run, with its tags."""
    import mlflow

    from genre_models.preprocess import preprocess
    from genre_models.tracking import base_tags, log_dataset_input, log_params_safely

    cfg = resolve_config(cfg)
    spec: NetSpec = get_net(cfg.net)
    split = SplitConfig(cfg.split, cfg.seed)
    pre = preprocess(PreprocessConfig(cfg.data_dir, cfg.features, split, cfg.cache_dir, cfg.jobs))
    store = pre.store
    parts = split_parts(store, spec.input_kind, split)
    n_train_real = len(parts["train"])
    extra_metrics: dict = {}
    if spec.uses_gan and extra_train is None:
        from genre_models.gan import augmentation_for

        aug = augmentation_for(cfg, store, track=track)
        cfg = replace(cfg, gan=aug.gan)  # the settings of the GAN actually used, for the logged config
        gen = aug.generated
        extra_train = Part(torch.from_numpy(np.array(gen.mfcc)), torch.from_numpy(gen.labels),
                           np.full(len(gen), -1))  # track -1: generated, belongs to no track
        extra_tags = {**(extra_tags or {}), "gan_run_id": aug.run_id or "", "gan_key": gen.meta.get("gan_key", ""),
                      "gan_reused": str(aug.reused).lower()}
        extra_metrics = {"n_generated": len(gen), **{f"n_generated_{g}": n for g, n in gen.counts().items()}}
    if extra_train is not None:
        tr = parts["train"]
        parts["train"] = Part(torch.cat([tr.x, extra_train.x]), torch.cat([tr.y, extra_train.y]),
                              np.concatenate([tr.track, extra_train.track]))
    for name in ("train", "val"):
        if len(parts[name]) == 0:
            from genre_models.errors import DataError

            raise DataError(f"{cfg.data_dir}: the {name} part of split {cfg.split!r} (seed {cfg.seed}) is empty; "
                            f"{len(store.tracks)} usable tracks")

    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    shape = InputShape(cfg.features.image_size, cfg.features.frames_per_segment, cfg.features.n_mfcc)
    model = spec.build(shape, cfg.head)
    if hasattr(model, "fit_input_stats"):
        model.fit_input_stats(parts["train"].x)
    model.to(device)
    optimizer = make_optimizer(spec, model.parameters(), cfg.lr)
    pin = device.type == "cuda"
    loaders = {name: make_loader(parts[name], cfg.batch_size, name == "train", cfg.seed, cfg.num_workers if name == "train" else 0, pin)
               for name in PARTS}

    track_labels = store.tracks.label.to_numpy()
    counts = {**{f"n_{name}": len(parts[name]) for name in PARTS}, "n_train_real": n_train_real, **extra_metrics}
    logged_cfg = flat_params(cfg)
    if not spec.uses_gan:  # the GAN settings mean nothing to nets 1-5
        logged_cfg = {k: v for k, v in logged_cfg.items() if not (k.startswith("gan.") or k == "gan_run_id")}
    params = {**logged_cfg, "resolved_device": str(device), "input_kind": spec.input_kind,
              "optimizer": spec.optimizer, "n_parameters": count_parameters(model), "cache_key": pre.key}
    tags = {**base_tags(store), "net": cfg.net, "split": cfg.split, "seed": str(cfg.seed), "stage": "train",
            "input_kind": spec.input_kind, "image_sources": ",".join(sorted(set(store.tracks.image_source) - {""})),
            **(extra_tags or {})}
    from genre_models.tracking import start_run

    ctx = start_run(run_name(cfg), placement) if track else _null_run()
    with ctx as run:
        on_epoch = None
        if track:
            mlflow.set_tags(tags)
            log_params_safely(params)
            mlflow.log_metrics(counts, step=0)
            log_dataset_input(store, split, context="train")
            on_epoch = lambda epoch, m: mlflow.log_metrics(m, step=epoch)  # noqa: E731
        log.info("training %s (%s parameters) on %d %s samples, device %s", cfg.net, f"{count_parameters(model):,}",
                 len(parts["train"]), spec.input_kind, device)
        hist = fit(model, optimizer, loaders["train"], loaders["val"], epochs=cfg.epochs, device=device,
                   precision=cfg.precision, early_stopping=cfg.early_stopping, patience=cfg.patience,
                   min_delta=cfg.min_delta, on_epoch=on_epoch)
        # The test set is touched here, once, after training.
        test = parts["test"]
        probs, test_loss = predict_proba(model, loaders["test"], device, cfg.precision)
        ev = evaluate(probs, test.y.numpy(), test.track, track_labels, test_loss) if len(test) else {}
        val_probs, val_loss = predict_proba(model, loaders["val"], device, cfg.precision)
        val_ev = evaluate(val_probs, parts["val"].y.numpy(), parts["val"].track, track_labels, val_loss)
        from sklearn.metrics import confusion_matrix

        y_pred = probs.argmax(1) if len(test) else np.zeros(0, int)
        confusion = confusion_matrix(test.y.numpy(), y_pred, labels=list(range(N_CLASSES)))
        metrics = {**counts, **{f"test_{k}": v for k, v in ev.items()}}
        metrics.update({"val_track_accuracy": val_ev["track_accuracy"], "best_epoch": hist.best_epoch,
                        "stopped_epoch": hist.stopped_epoch, "train_time_s": hist.train_seconds,
                        "samples_per_sec": hist.samples_seen / max(hist.train_seconds, 1e-9)})
        run_id = None
        if track:
            from genre_models.tracking import artifact_dir, verify_record

            mlflow.log_metrics({k: v for k, v in metrics.items() if k not in counts})
            with artifact_dir() as out:
                _write_artifacts(out, hist, confusion, test.y.numpy(), y_pred, run_name(cfg))
                (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
                written = [f.name for f in out.iterdir()]
            if cfg.log_model:
                log_trained_model(model, spec, shape, cfg)
            run_id = run.info.run_id
            verify_record(run_id, metrics, {k: len(hist.epochs) for k in hist.epochs[0]} if hist.epochs else {}, written)
    log.info("%s: test_accuracy %.4f, test_track_accuracy %.4f (best epoch %d, stopped %d)", cfg.net,
             metrics.get("test_accuracy", float("nan")), metrics.get("test_track_accuracy", float("nan")),
             hist.best_epoch, hist.stopped_epoch)
    return TrainResult(run_id, cfg, metrics, hist, model, confusion, tags)


class _null_run:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def log_trained_model(model: nn.Module, spec: NetSpec, shape: InputShape, cfg: TrainConfig) -> None:
    """Log in MLflow's default pt2 (torch.export) format, with signature and input example.

    Checked for net1-net5: the exported program loads with ``mlflow.pytorch.load_model`` and
    accepts any batch size. The feature config rides along as model metadata, so ``predict``
    rebuilds the exact inputs the net was trained on.
    """
    import mlflow
    from mlflow.models import infer_signature

    model = model.to("cpu").eval()
    example = spec.input_example(shape, batch=2)
    with torch.no_grad():
        out = model(example)
    signature = infer_signature(example.numpy(), out.numpy())
    torch_req = f"torch=={torch.__version__.split('+')[0]}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.pytorch.log_model(
            model, name="model", signature=signature, input_example=example.numpy(),
            pip_requirements=[torch_req],
            metadata={"net": spec.name, "input_kind": spec.input_kind, "genres": list(GENRES),
                      "features": asdict(cfg.features)},
        )
