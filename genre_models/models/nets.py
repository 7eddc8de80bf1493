"""The study's classifier networks (modules only; ``registry.py`` names and configures them)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from genre_models.data.audio import PCM16_MAX
from genre_models.errors import ConfigError
from genre_models.genres import N_CLASSES


class MLP(nn.Module):
    """net1: flattened 3x180x180 image -> 128 -> 64 -> 10, ReLU. 12.4M parameters at 180x180."""

    def __init__(self, image_size: int, n_classes: int = N_CLASSES) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),  # (B, 3, S, S) -> (B, 3*S*S)
            nn.Linear(3 * image_size * image_size, 128), nn.ReLU(),
            nn.Linear(128, 64), nn.ReLU(),
            nn.Linear(64, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, S, S) -> (B, 10)
        return self.net(x)


class CNN(nn.Module):
    """net2/net3/net4: conv 32-64-128-256 (3x3, 'same' padding, ReLU), 2x2 max-pool after conv 2
    and conv 4, then FC 256 -> 10.

    ``head="flatten"`` (the study's text, the default) flattens the 256x45x45 map into a dense
    layer of 256: 132.7M of the model's 133.1M parameters at 180x180, about 530 MB in fp32 and
    1.6 GB with Adam's state. ``head="gap"`` global-average-pools to 256 first (0.6M parameters
    in all): a documented variant, not the study's net. ``batchnorm`` adds BatchNorm after each
    convolution (net3, net4).
    """

    def __init__(self, image_size: int, batchnorm: bool = False, head: str = "flatten", n_classes: int = N_CLASSES) -> None:
        super().__init__()

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1)]
            if batchnorm:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.ReLU())
            return layers

        self.features = nn.Sequential(
            *block(3, 32), *block(32, 64), nn.MaxPool2d(2),  # (B, 64, S/2, S/2)
            *block(64, 128), *block(128, 256), nn.MaxPool2d(2),  # (B, 256, S/4, S/4)
        )
        side = image_size // 4
        if head == "flatten":
            pool: list[nn.Module] = [nn.Flatten()]  # (B, 256*side*side)
            width = 256 * side * side
        elif head == "gap":
            pool = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]  # (B, 256)
            width = 256
        else:
            raise ConfigError(f"head must be 'flatten' or 'gap', got {head!r}")
        self.head = nn.Sequential(*pool, nn.Linear(width, 256), nn.ReLU(), nn.Linear(256, n_classes))
        # channels-last (NHWC) lets oneDNN pick faster CPU convolutions: measured 15-20% per
        # training step for net2 in fp32 and bf16 on a 2-core CPU. Numerics are unchanged.
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, S, S) -> (B, 10)
        x = x.contiguous(memory_format=torch.channels_last)
        return self.head(self.features(x))


class LSTMNet(nn.Module):
    """net5/net6: (B, frames, n_mfcc) -> LSTM 512 -> LSTM 256 (last step) -> FC 128 -> 64 -> 10.

    The input is standardised per MFCC coefficient with the *training* split's mean and std,
    held as buffers so a logged model carries its own preprocessing (``fit_input_stats``).
    The study does not say whether it normalised; raw MFCC c0 is in the hundreds, which
    stalls an LSTM at lr 1e-4, so this is a deliberate, documented choice.
    """

    def __init__(self, n_mfcc: int, n_classes: int = N_CLASSES) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_mfcc))
        self.register_buffer("std", torch.ones(n_mfcc))
        self.lstm1 = nn.LSTM(n_mfcc, 512, batch_first=True)
        self.lstm2 = nn.LSTM(512, 256, batch_first=True)
        self.head = nn.Sequential(nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, n_classes))

    def fit_input_stats(self, x: np.ndarray | torch.Tensor, chunk: int = 4096) -> None:
        """x: (N, frames, n_mfcc) training inputs. Sums in float64, chunk by chunk, so no
        whole-split float64 copy is made."""
        x = x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        n_feat = self.mean.numel()
        total, sq, count = np.zeros(n_feat), np.zeros(n_feat), 0
        for i in range(0, x.shape[0], chunk):
            c = x[i:i + chunk].reshape(-1, n_feat).astype(np.float64)  # (chunk*frames, n_mfcc)
            total += c.sum(0)
            sq += (c * c).sum(0)
            count += c.shape[0]
        mean = total / max(count, 1)
        var = np.maximum(sq / max(count, 1) - mean * mean, 0.0) * count / max(count - 1, 1)
        self.mean.copy_(torch.from_numpy(mean).float())
        self.std.copy_(torch.from_numpy(np.sqrt(var)).clamp_min(1e-6).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, n_mfcc) -> (B, 10)
        x = (x - self.mean) / self.std
        h, _ = self.lstm1(x)  # (B, T, 512)
        h, _ = self.lstm2(h)  # (B, T, 256)
        return self.head(h[:, -1])  # last step: (B, 256) -> (B, 10)


class RawLSTMNet(nn.Module):
    """net5-raw: the study's "raw audio input (without MFCC)" row. (B, samples) audio in [-1, 1]
    -> (B, T, 512): T = samples // 512 non-overlapping frames of 512 samples (the MFCCs' hop,
    so 43 steps against the MFCCs' 44; the last samples % 512 are dropped) -> net5's LSTM stack.
    Each frame position is standardised with training-split statistics, as net5's coefficients are.
    """

    FRAME = 512

    def __init__(self, segment_samples: int, n_classes: int = N_CLASSES) -> None:
        super().__init__()
        self.frames = segment_samples // self.FRAME
        self.lstm = LSTMNet(self.FRAME, n_classes)

    def framed(self, x: torch.Tensor) -> torch.Tensor:  # (B, samples) -> (B, T, 512)
        return x[:, : self.frames * self.FRAME].reshape(x.shape[0], self.frames, self.FRAME)

    def fit_input_stats(self, x: np.ndarray | torch.Tensor) -> None:
        """x: (N, samples) training audio, int16 as stored (scaled by 1/PCM16_MAX, as the loop feeds
        it) or float. Framed as views, so no float copy of the split is made."""
        x = x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        scale = PCM16_MAX if x.dtype == np.int16 else 1.0
        self.lstm.fit_input_stats(x[:, : self.frames * self.FRAME].reshape(x.shape[0], self.frames, self.FRAME))
        self.lstm.mean.div_(scale)
        self.lstm.std.div_(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, samples) -> (B, 10)
        return self.lstm(self.framed(x))

