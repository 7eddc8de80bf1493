"""``benchmark perf train``: the suite's training loop against a bare PyTorch loop, and the
share of the device's peak."""

from __future__ import annotations

import tempfile

import numpy as np
import torch

from benchmark.perf.loops import bare_loop, device_name, flops_per_step, matmul_peak, suite_loop, train_data
from genre_models.models.registry import InputShape, get_net, make_optimizer
from genre_models.training.loop import Part, part_bytes, to_input
from genre_models.training.runtime import autocast, prepare_device, resident_fits, resolve_device


def bench_train(net: str, data_dir: str | None = None, batches: int = 20, batch_size: int = 32, precision: str = "fp32",
                head: str = "flatten", image_size: int = 180, device: str = "auto", repeats: int = 2) -> dict:
    """Samples/s of ``fit`` (batch source, metric accumulation, MLflow logging) against a bare
    loop (slice, forward, backward, step) on the same model, batch and data, and the bare loop's
    GFLOP/s as a share of this device's measured matrix-product peak. On CUDA both keep the data
    on the GPU when it fits, as ``train`` does. No validation samples: the figure compares
    training throughput. LSTM FLOPs are counted by hand (``flops_per_step``)."""
    spec = get_net(net)
    dev = resolve_device(device)
    prepare_device(dev)
    shape = InputShape(image_size=image_size)
    n = batches * batch_size
    x, y = train_data(spec, data_dir, n, image_size, shape)
    train_part = Part(x, y, np.arange(n))
    resident = resident_fits(part_bytes({"train": train_part}), dev)
    xd, yd = (x.to(dev), y.to(dev)) if resident else (x, y)

    def fresh():
        torch.manual_seed(0)
        model = spec.build(shape, head).to(dev)
        return model, make_optimizer(spec, model.parameters(), spec.lr)

    model, _ = fresh()
    with autocast(dev, precision):
        flops = flops_per_step(model, to_input(x[:batch_size]).to(dev), y[:batch_size].to(dev))
    del model
    with tempfile.TemporaryDirectory() as tmp:
        suite_loop(*fresh(), train_part, batch_size, dev, precision, tmp, resident)  # warm-up: store, kernels
        t_bare, t_suite = [], []
        for _ in range(repeats):  # interleaved, best of each
            t_bare.append(bare_loop(*fresh(), xd, yd, batches, batch_size, dev, precision))
            t_suite.append(suite_loop(*fresh(), train_part, batch_size, dev, precision, tmp, resident))
    tb, ts = min(t_bare), min(t_suite)
    peak = matmul_peak(dev, precision)
    achieved = flops * batches / tb / 1e9
    return {
        "net": net, "device": device_name(dev), "precision": precision, "head": head, "image_size": image_size,
        "batch_size": batch_size, "batches": batches, "threads": torch.get_num_threads(), "resident_data": resident,
        "bare_samples_per_s": round(n / tb, 2),
        "suite_samples_per_s": round(n / ts, 2),
        "suite_over_bare": round(tb / ts, 3),
        "suite_overhead_pct": round(100 * (ts - tb) / tb, 2),
        "gflop_per_step": round(flops / 1e9, 2),
        "achieved_gflop_s_bare": round(achieved, 1),
        "matmul_peak_gflop_s": round(peak, 1),
        "share_of_peak": round(achieved / peak, 4) if peak else None,
        "est_epoch_s_700": round(700 / (n / ts), 2),
    }
