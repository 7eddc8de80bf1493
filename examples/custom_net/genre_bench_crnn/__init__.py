"""An example genre-bench plugin: a small CRNN on the MFCCs of 1 s segments.

genre-bench finds it through the entry point in this package's ``pyproject.toml``
(``benchmark train --net crnn`` once installed), or without installing as
``--net genre_bench_crnn:crnn`` with this folder on ``PYTHONPATH``.
"""

from __future__ import annotations

import torch
from torch import nn

from genre_models.models.registry import InputShape, NetSpec


class CRNN(nn.Module):
    """(B, frames, n_mfcc) -> two 1-D convolutions over time -> GRU 64 -> mean over time -> (B, 10)."""

    def __init__(self, n_mfcc: int, n_classes: int = 10) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(n_mfcc)  # the MFCCs' scales differ by orders of magnitude
        self.conv = nn.Sequential(
            nn.Conv1d(n_mfcc, 32, 3, padding=1), nn.BatchNorm1d(32), nn.ReLU(),
            nn.Conv1d(32, 64, 3, padding=1), nn.BatchNorm1d(64), nn.ReLU(), nn.MaxPool1d(2),
        )
        self.gru = nn.GRU(64, 64, batch_first=True)
        self.out = nn.Linear(64, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, n_mfcc) -> (B, 10)
        h = self.conv(self.norm(x.transpose(1, 2)))  # (B, 64, T // 2)
        h, _ = self.gru(h.transpose(1, 2))  # (B, T // 2, 64)
        return self.out(h.mean(1))


def crnn() -> NetSpec:
    """The factory genre-bench calls: what the net is, how to build it and how to train it."""
    return NetSpec(
        name="crnn",
        summary="example plugin: conv 32-64 over time, GRU 64, on MFCCs of 1 s segments",
        input_kind="mfcc",  # one of genre-bench's input kinds: image, mfcc, raw (`benchmark nets`)
        build=lambda shape, head: CRNN(shape.n_mfcc),
        optimizer="adam",
        lr=1e-3,
        epochs=30,
        early_stopping=True,
        patience=5,
        batch_size=32,
        baseline="net5",  # the report pairs it with net5 over seeds
    )


__all__ = ["CRNN", "crnn", "InputShape"]
