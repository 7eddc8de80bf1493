"""The loops and yardsticks the measurements share: timing data, a bare training loop (the
floor any loop can reach), the suite's own loop with its logging, FLOPs per step, and the
device's matrix-product peak measured in the same process."""

from __future__ import annotations

import time

import numpy as np
import torch

from genre_models.config import DataConfig, FeatureConfig, SplitConfig
from genre_models.data.store import build_features
from genre_models.tracking.shipping import segment_audio_array
from genre_models.training.loop import Part, fit, make_batches, split_parts, to_input
from genre_models.training.runtime import autocast


def flops_per_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """FLOPs of one training step (forward and backward). PyTorch's FlopCounterMode does not
    count LSTM kernels, so each LSTM layer is added by hand: 2 * 4H(I + H) per sample and time
    step forward, and twice that backward (the gates' matrix products; the elementwise work is left out)."""
    from torch.utils.flop_counter import FlopCounterMode

    lstm = []

    def note(mod, inp, out):  # (B, T, I) batch-first input
        b, t = inp[0].shape[0], inp[0].shape[1]
        lstm.append(3 * 2 * 4 * mod.hidden_size * (mod.input_size + mod.hidden_size) * b * t * mod.num_layers)

    hooks = [m.register_forward_hook(note) for m in model.modules() if isinstance(m, torch.nn.LSTM)]
    try:
        with FlopCounterMode(display=False) as counter:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
    finally:
        for h in hooks:
            h.remove()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() + sum(lstm)


def train_data(spec, data_dir: str | None, n: int, image_size: int, shape) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` samples for a timing loop: the data's training part (repeated), or random tensors."""
    g = torch.Generator().manual_seed(0)
    if data_dir is not None:
        store = build_features(DataConfig(data_dir=data_dir, features=FeatureConfig(image_size=image_size))).store
        audio = segment_audio_array(store) if spec.input_kind == "raw" else None
        part = split_parts(store, spec.input_kind, SplitConfig(), audio)["train"]
        reps = -(-n // len(part))
        return part.x.repeat((reps,) + (1,) * (part.x.dim() - 1))[:n], part.y.repeat(reps)[:n]
    if spec.input_kind == "image":
        return (torch.randint(0, 256, (n, 3, image_size, image_size), dtype=torch.uint8, generator=g),
                torch.randint(0, 10, (n,), generator=g))
    if spec.input_kind == "raw":  # int16, as the store keeps segment audio
        return (torch.randint(-2**15, 2**15, (n, shape.segment_samples), dtype=torch.int16, generator=g),
                torch.randint(0, 10, (n,), generator=g))
    return torch.randn(n, shape.frames, shape.n_mfcc, generator=g), torch.randint(0, 10, (n,), generator=g)


def bare_loop(model, opt, x, y, batches: int, batch_size: int, dev, precision: str, on_batch=None) -> float:
    """Slice, forward, backward, step: the floor any training loop can reach. Seconds.
    ``on_batch()``, if given, runs before each batch (the contention workers' thread refresh)."""
    model.train()
    t0 = time.perf_counter()
    for i in range(batches):
        if on_batch is not None:
            on_batch()
        xb = to_input(x[i * batch_size:(i + 1) * batch_size]).to(dev)
        yb = y[i * batch_size:(i + 1) * batch_size].to(dev)
        with autocast(dev, precision):
            out = model(xb)
        loss = torch.nn.functional.cross_entropy(out.float(), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    float(loss.detach())  # wait for the last step
    return time.perf_counter() - t0


def suite_loop(model, opt, train_part, batch_size: int, dev, precision: str, tmp: str, resident: bool) -> float:
    """The suite's ``fit`` for one epoch, with its batch source (resident on the GPU when the
    part fits, as ``train`` does) and MLflow logging. Seconds."""
    from genre_models.tracking.logger import MlflowLogger
    from genre_models.tracking.setup import setup_tracking

    empty = Part(train_part.x[:0], train_part.y[:0], np.arange(0))
    src = make_batches({"train": train_part, "val": empty}, batch_size, 0, 0, dev, resident)
    setup_tracking(f"sqlite:///{tmp}/perf.db", "perf")
    logger = MlflowLogger()
    with logger.start("perf"):
        t0 = time.perf_counter()
        fit(model, opt, src["train"], src["val"], epochs=1, device=dev, precision=precision, logger=logger)
        return time.perf_counter() - t0


def matmul_peak(dev: torch.device, precision: str, size: int = 0, seconds: float = 1.0) -> float:
    """This device's matrix-product GFLOP/s at ``precision``, measured now (the best of a few
    seconds of square products): the ceiling a training step's GFLOP/s is read against."""
    size = size or (8192 if dev.type == "cuda" else 1024)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a = torch.randn(size, size, device=dev).to(dtype)
    b = torch.randn(size, size, device=dev).to(dtype)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    (a @ b).sum().item()  # warm-up
    best, t_end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        sync()
        t0 = time.perf_counter()
        for _ in range(3):
            c = a @ b
        sync()
        float(c[0, 0])
        best = max(best, 3 * 2 * size**3 / (time.perf_counter() - t0) / 1e9)
    return best


def device_name(dev: torch.device) -> str:
    return f"cuda ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else str(dev)
