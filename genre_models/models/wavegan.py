"""WaveGAN (Donahue, McAuley & Puckette 2018, "Adversarial Audio Synthesis", arXiv 1802.04208).

Networks and WGAN-GP losses only; the training loop is ``training/gan_loop.py``, the run ``stages/gan.py``.

As in the paper (its Table 2, with model size ``d``, 64 by default):

* Generator: z (100) -> dense -> (16d, 16) -> 5 x [ReLU, ConvTranspose1d(kernel 25, stride 4)]
  -> tanh: 16 -> 64 -> 256 -> 1024 -> 4096 -> 16384 samples.
* Discriminator: 5 x [Conv1d(kernel 25, stride 4), LeakyReLU(0.2), phase shuffle(n=2)] (no phase
  shuffle after the last conv) -> flatten (16d x 16) -> dense -> one critic score.

Genre conditioning (our addition; the paper's WaveGAN is unconditional): the generator
concatenates a learned 100-d genre embedding to z before the dense projection, and the
discriminator is a projection discriminator (Miyato & Koyama 2018): score = dense(h) + <embed(y), h>.
With ``n_classes=0`` both are the paper's unconditional networks (used by ``mode=per-genre``).

Caveat: the paper's output rate is 16 kHz (16384 samples = 1.024 s). genre-bench runs it at
the features' 22050 Hz, where 16384 samples are 0.743 s; ``training.generation`` explains how a
clip becomes a 1 s segment, and why not 16 kHz.
"""

from __future__ import annotations

import torch
from torch import nn

SLICE_LEN = 16384
KERNEL = 25
STRIDE = 4
PAD = 11  # (KERNEL - 1) // 2 - 1: makes every layer scale the length by exactly 4


class PhaseShuffle(nn.Module):
    """Shift each example's feature maps in time by a random k in [-n, n], reflect-padded.

    (B, C, L) -> (B, C, L). One shift per example, shared by its channels, as in the paper.
    Active in training mode only; ``shifts`` may be passed to make it deterministic (tests).
    """

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def forward(self, x: torch.Tensor, shifts: torch.Tensor | None = None) -> torch.Tensor:
        if self.n == 0 or (not self.training and shifts is None):
            return x
        b, c, length = x.shape
        if shifts is None:
            shifts = torch.randint(-self.n, self.n + 1, (b,), device=x.device)
        padded = nn.functional.pad(x, (self.n, self.n), mode="reflect")  # (B, C, L + 2n)
        # out[t] = x[t - k]: read the padded signal from offset n - k.
        idx = (self.n - shifts)[:, None] + torch.arange(length, device=x.device)[None]  # (B, L)
        return padded.gather(2, idx[:, None, :].expand(b, c, length))


class Generator(nn.Module):
    """(B, latent) [+ labels (B,)] -> (B, 16384) in [-1, 1]."""

    def __init__(self, d: int = 64, latent_dim: int = 100, n_classes: int = 0) -> None:
        super().__init__()
        self.d, self.latent_dim, self.n_classes = d, latent_dim, n_classes
        self.embed = nn.Embedding(n_classes, latent_dim) if n_classes else None
        in_dim = latent_dim * (2 if n_classes else 1)
        self.project = nn.Linear(in_dim, 16 * d * 16)
        chans = [16 * d, 8 * d, 4 * d, 2 * d, d, 1]
        self.deconvs = nn.ModuleList(
            nn.ConvTranspose1d(chans[i], chans[i + 1], KERNEL, STRIDE, padding=PAD, output_padding=1) for i in range(5)
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            if labels is None:
                raise ValueError("a class-conditional generator needs labels")
            z = torch.cat([z, self.embed(labels)], dim=1)  # (B, 2 * latent)
        h = self.project(z).view(-1, 16 * self.d, 16)  # (B, 16d, 16)
        for conv in self.deconvs:
            h = conv(torch.relu(h))  # length x4: 16 -> 64 -> 256 -> 1024 -> 4096 -> 16384
        return torch.tanh(h).squeeze(1)  # (B, 16384)


class Discriminator(nn.Module):
    """(B, 16384) [+ labels (B,)] -> (B,) critic scores (unbounded: WGAN)."""

    def __init__(self, d: int = 64, n_classes: int = 0, phase_shuffle: int = 2) -> None:
        super().__init__()
        self.d, self.n_classes = d, n_classes
        chans = [1, d, 2 * d, 4 * d, 8 * d, 16 * d]
        self.convs = nn.ModuleList(nn.Conv1d(chans[i], chans[i + 1], KERNEL, STRIDE, padding=PAD) for i in range(5))
        self.shuffle = PhaseShuffle(phase_shuffle)
        self.out = nn.Linear(16 * d * 16, 1)
        self.embed = nn.Embedding(n_classes, 16 * d * 16) if n_classes else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = x.unsqueeze(1)  # (B, 1, 16384)
        for i, conv in enumerate(self.convs):
            h = nn.functional.leaky_relu(conv(h), 0.2)  # length /4: 4096, 1024, 256, 64, 16
            if i < 4:
                h = self.shuffle(h)
        h = h.flatten(1)  # (B, 16d * 16)
        score = self.out(h).squeeze(1)  # (B,)
        if self.embed is not None:
            if labels is None:
                raise ValueError("a class-conditional discriminator needs labels")
            score = score + (self.embed(labels) * h).sum(1)  # projection term
        return score


class GenreGenerator(nn.Module):
    """The logged generator, one contract for both modes: (B, latent + 10) -> (B, 16384).

    Input columns: z, then a one-hot genre (in ``GENRES`` order). ``conditional`` wraps one
    class-conditional ``Generator``; ``per-genre`` wraps ten unconditional ones and mixes their
    outputs by the one-hot (all ten run: simple to export, ten times the cost of one).
    """

    def __init__(self, generators: list[Generator], latent_dim: int, n_classes: int) -> None:
        super().__init__()
        self.gens = nn.ModuleList(generators)
        self.latent_dim, self.n_classes = latent_dim, n_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z, onehot = x[:, : self.latent_dim], x[:, self.latent_dim :]  # (B, latent), (B, 10)
        if len(self.gens) == 1:
            return self.gens[0](z, onehot.argmax(1))
        outs = torch.stack([g(z) for g in self.gens], dim=1)  # (B, 10, 16384)
        return (outs * onehot[:, :, None]).sum(1)


# --------------------------------------------------------------------------- WGAN-GP losses


def d_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """Critic loss without the penalty: E[D(fake)] - E[D(real)] (minimised)."""
    return fake_scores.mean() - real_scores.mean()


def g_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """Generator loss: -E[D(G(z))]."""
    return -fake_scores.mean()


def gradient_penalty(disc: Discriminator, real: torch.Tensor, fake: torch.Tensor,
                     labels: torch.Tensor | None = None) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): E[(||grad_x D(x_hat)||_2 - 1)^2] at random interpolates
    x_hat between real and fake. Computed in fp32; the caller multiplies by lambda (10)."""
    alpha = torch.rand(real.shape[0], 1, device=real.device)  # (B, 1)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)  # (B, 16384)
    scores = disc(x_hat, labels)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)  # (B, 16384)
    return ((grad.norm(2, dim=1) - 1) ** 2).mean()
