"""One training loop for every net: ``fit`` takes a model, an optimizer and batches.

It knows nothing of MLflow or of which net it trains: per-epoch metrics go to a ``RunLogger``
(``step=epoch``) and to an optional ``on_epoch`` callback.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from genre_models.config import SplitConfig
from genre_models.data.audio import PCM16_MAX
from genre_models.data.splits import PARTS
from genre_models.data.store import FeatureStore
from genre_models.errors import DataError, TrainingDiverged
from genre_models.genres import N_CLASSES
from genre_models.training.logger import NULL_LOGGER, RunLogger
from genre_models.training.runtime import autocast, cpu_share, refresh_threads
from genre_models.util import progress


@dataclass
class Part:
    """One split part held in memory: x as stored (uint8 images or float32 MFCC), labels, track rows."""

    x: torch.Tensor  # (N, 3, S, S) uint8, (N, frames, n_mfcc) float32 or (N, samples) int16
    y: torch.Tensor  # (N,) int64
    track: np.ndarray  # (N,) row in the store's usable tracks

    def __len__(self) -> int:
        return int(self.y.shape[0])


#: What ``fit`` logs every epoch (step = epoch); every other metric of a train run is a final figure.
EPOCH_METRICS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")


def split_parts(store: FeatureStore, input_kind: str, split: SplitConfig, audio: np.ndarray | None = None) -> dict[str, Part]:
    """Gather train/val/test for one input kind. Copies only the selected samples out of the memmap.
    ``audio``: the store's segment audio (n_segments, samples) int16, which the ``raw`` kind needs."""
    tracks = store.tracks
    labels = tracks.label.to_numpy().astype(np.int64)
    if input_kind == "raw" and (audio is None or audio.shape[0] != store.mfcc.shape[0]):
        raise DataError(f"{store.path}: the raw input kind needs the store's segment audio, one row per segment")
    data = {"image": store.images, "raw": audio, "stats": store.stats}.get(input_kind, store.mfcc)
    sample_track = store.sample_tracks(input_kind)
    parts = store.parts(input_kind, split)  # raw: the MFCCs' segments
    out = {}
    for p, name in enumerate(PARTS):
        idx = np.flatnonzero(parts == p)
        out[name] = Part(torch.from_numpy(np.ascontiguousarray(data[idx])),
                         torch.from_numpy(labels[sample_track[idx]]), sample_track[idx])
    return out


def to_input(x: torch.Tensor) -> torch.Tensor:
    """Stored sample -> model input: uint8 images become float in [0, 1] (the study's Rescaling(1/255)),
    int16 audio float in [-1, 1]."""
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    if x.dtype == torch.int16:  # as ``data.audio.from_pcm16``
        return x.float().div_(PCM16_MAX)
    return x


class _BatchView(Dataset):
    """Indexed by a whole batch of indices at once: one gather per batch, not one per sample."""

    def __init__(self, part: Part) -> None:
        self.part = part

    def __len__(self) -> int:
        return len(self.part)

    def __getitem__(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        i = torch.as_tensor(idx)
        return to_input(self.part.x[i]), self.part.y[i]


def _sampler(n: int, batch_size: int, shuffle: bool, seed: int) -> BatchSampler:
    gen = torch.Generator().manual_seed(seed)
    order = RandomSampler(range(n), generator=gen) if shuffle else SequentialSampler(range(n))
    return BatchSampler(order, batch_size, drop_last=False)


def make_loader(part: Part, batch_size: int, shuffle: bool, seed: int, num_workers: int, pin: bool) -> DataLoader:
    return DataLoader(_BatchView(part), sampler=_sampler(len(part), batch_size, shuffle, seed), batch_size=None,
                      num_workers=num_workers, pin_memory=pin, persistent_workers=num_workers > 0)


class ResidentBatches:
    """A part copied to the device once and served from there: one gather per batch on the
    device, no host copy, no worker, no sync. The batches are those ``make_loader`` gives for
    the same seed (same sampler). Caveat: a ``DataLoader`` also draws from torch's global
    generator each pass and this does not, so a net that draws random numbers while training
    (dropout) sees another stream than under a loader; the registry's nets draw none."""

    def __init__(self, part: Part, batch_size: int, shuffle: bool, seed: int, device: torch.device) -> None:
        self.dataset = _BatchView(part)  # ``.dataset.part`` as on a DataLoader: the host copy
        self.batches = _sampler(len(part), batch_size, shuffle, seed)
        self.x, self.y, self.device = part.x.to(device), part.y.to(device), device

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for idx in self.batches:
            i = torch.as_tensor(idx).to(self.device, non_blocking=True)
            yield to_input(self.x[i]), self.y[i]  # (B, ...) on the device


#: What the loop iterates: (x, y) batches on or off the device.
Batches = DataLoader | ResidentBatches


def part_bytes(parts: dict[str, Part]) -> int:
    return sum(p.x.element_size() * p.x.nelement() + p.y.element_size() * p.y.nelement() for p in parts.values())


def make_batches(parts: dict[str, Part], batch_size: int, seed: int, num_workers: int, device: torch.device,
                 resident: bool) -> dict:
    """A batch source per part: ``ResidentBatches`` when ``resident`` (the split lives on the
    device), else a ``DataLoader`` (pinned memory on CUDA). Only the train part is shuffled."""
    if resident:
        return {name: ResidentBatches(part, batch_size, name == "train", seed, device) for name, part in parts.items()}
    return {name: make_loader(part, batch_size, name == "train", seed, num_workers if name == "train" else 0,
                              device.type == "cuda") for name, part in parts.items()}


@dataclass
class History:
    epochs: list[dict] = field(default_factory=list)  # one dict of train_/val_ metrics per epoch
    best_epoch: int = 0
    stopped_epoch: int = 0
    train_seconds: float = 0.0
    samples_seen: int = 0


@torch.no_grad()
def predict_proba(model: nn.Module, loader: Batches, device: torch.device, precision: str) -> tuple[np.ndarray, float]:
    """Softmax outputs (N, 10) and the mean cross-entropy over ``loader``."""
    model.eval()
    probs, total, n = [], torch.zeros((), device=device), 0
    for xb, yb in loader:
        xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        with autocast(device, precision):
            logits = model(xb)  # (B, 10)
        logits = logits.float()
        total += nn.functional.cross_entropy(logits, yb, reduction="sum")  # stays on device: no sync per batch
        n += yb.numel()
        probs.append(torch.softmax(logits, 1))
    if not probs:
        return np.zeros((0, N_CLASSES), np.float32), 0.0
    return torch.cat(probs).cpu().numpy(), float(total) / max(n, 1)


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, loader: Batches, device: torch.device,
                precision: str, epoch: int) -> tuple[float, float, int]:
    """One pass over ``loader``: (summed loss, correct predictions, samples). One host sync, at the end."""
    model.train()
    loss_sum, correct, seen = 0.0, 0, 0
    for xb, yb in progress(loader, desc=f"epoch {epoch}", unit="batch"):
        refresh_threads()  # this process's share of the cores (another may have started or ended)
        xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        with autocast(device, precision):
            logits = model(xb)  # (B, 10)
        loss = nn.functional.cross_entropy(logits.float(), yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach() * yb.numel()  # stays on device: no sync per batch
        correct += (logits.detach().argmax(1) == yb).sum()
        seen += yb.numel()
    if not math.isfinite(float(loss_sum)):
        raise diverged(loader, optimizer, float(loss_sum), epoch)
    return float(loss_sum), float(correct), seen


def diverged(loader: Batches, optimizer: torch.optim.Optimizer, loss: float, epoch: int) -> TrainingDiverged:
    """Why the loss became ``loss``: inputs that are not all finite (a damaged feature cache),
    else a learning rate too high for the net. The advice fits the cause."""
    x = loader.dataset.part.x
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        return TrainingDiverged(f"training loss became {loss} at epoch {epoch} because the training inputs hold NaN or "
                                "infinite values: the feature cache is damaged; rebuild it with `benchmark preprocess "
                                "--force` (same --data-dir and --cache-dir)")
    lr = optimizer.param_groups[0]["lr"]
    return TrainingDiverged(f"training loss became {loss} at epoch {epoch} with finite inputs: the learning rate "
                            f"{lr:g} is too high for this net; lower --lr")


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_loader: Batches,
    val_loader: Batches,
    *,
    epochs: int,
    device: torch.device,
    precision: str = "fp32",
    early_stopping: bool = False,
    patience: int = 5,
    min_delta: float = 0.0,
    logger: RunLogger = NULL_LOGGER,
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
    val_y = val_loader.dataset.part.y.numpy()
    with cpu_share():
        for epoch in range(1, epochs + 1):
            loss_sum, correct, seen = train_epoch(model, optimizer, train_loader, device, precision, epoch)
            probs, val_loss = predict_proba(model, val_loader, device, precision)
            metrics = {
                "train_loss": loss_sum / max(seen, 1),
                "train_accuracy": correct / max(seen, 1),
                "val_loss": val_loss,
                "val_accuracy": float((probs.argmax(1) == val_y).mean()) if len(val_y) else 0.0,
            }
            hist.epochs.append(metrics)
            hist.samples_seen += seen
            hist.stopped_epoch = epoch
            logger.log_metrics(metrics, step=epoch)
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
