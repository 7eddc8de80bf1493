"""``benchmark perf precision``: bf16 against fp32 on this device, side by side in one process,
and what ``--precision auto`` picks here and why."""

from __future__ import annotations

import torch

from benchmark.perf.loops import bare_loop, device_name, train_data
from genre_models.models.registry import InputShape, get_net, make_optimizer
from genre_models.training.runtime import cpu_flags, prepare_device, resolve_device, resolve_precision


def bench_precision(net: str = "net2", batches: int = 4, batch_size: int = 32, image_size: int = 180,
                    device: str = "auto", repeats: int = 3) -> dict:
    """Samples/s of a bare training loop in fp32 and in bf16 autocast, taking turns ``repeats``
    times on the same model, batch and data (best of each), and the ratio."""
    spec, dev = get_net(net), resolve_device(device)
    prepare_device(dev)
    shape = InputShape(image_size=image_size)
    n = batches * batch_size
    x, y = train_data(spec, None, n, image_size, shape)
    x, y = x.to(dev), y.to(dev)

    def fresh():
        torch.manual_seed(0)
        model = spec.build(shape, "flatten").to(dev)
        return model, make_optimizer(spec, model.parameters(), spec.lr)

    bare_loop(*fresh(), x, y, 1, batch_size, dev, "bf16")  # warm-up: kernels, allocator
    seconds: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(repeats):
        for precision in seconds:
            seconds[precision].append(bare_loop(*fresh(), x, y, batches, batch_size, dev, precision))
    rate = {p: n / min(s) for p, s in seconds.items()}
    auto, why = resolve_precision("auto", dev)
    flags = sorted(cpu_flags() & {"amx_bf16", "amx_tile", "avx512_bf16", "avx512f"}) if dev.type == "cpu" else []
    return {"net": net, "device": device_name(dev), "threads": torch.get_num_threads(), "image_size": image_size,
            "batch_size": batch_size, "batches": batches, "cpu_bf16_flags": flags,
            "fp32_samples_per_s": round(rate["fp32"], 2), "bf16_samples_per_s": round(rate["bf16"], 2),
            "bf16_over_fp32": round(rate["bf16"] / rate["fp32"], 3), "auto_picks": auto, "auto_because": why}
