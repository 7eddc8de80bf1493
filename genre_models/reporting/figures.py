"""The report's figures, from plain numbers (matplotlib, Agg): the headline accuracy per net and
split with the study's markers, confusion matrices summed over seeds, validation curves with a
band, and the WaveGAN's losses. Each function writes one PNG and returns nothing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genre_models.genres import GENRES
from genre_models.reporting.stats import Cell


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    # Labels are names from a shared store: text, never mathtext (``m$\\undefinedmacro$`` raised,
    # a deeply nested one recursed) nor TeX.
    matplotlib.rcParams.update({"text.parse_math": False, "text.usetex": False})
    import matplotlib.pyplot as plt

    return plt


@dataclass(frozen=True)
class Bar:
    """One bar of the headline figure: a net (at one epoch budget) on one split."""

    label: str
    cell: Cell
    study: float | None  # the study's published figure for this net and budget, if any


def headline(panels: dict[str, list[Bar]], titles: dict[str, str], path: Path) -> None:
    """One panel per split, side by side on one accuracy axis: bars at the mean over seeds, the
    95% interval (under 3 seeds: each seed's value as a dot), the study's figure as a red marker."""
    plt = _plt()
    width = max(4.0, 0.55 * max(len(b) for b in panels.values()))
    fig, axes = plt.subplots(1, len(panels), figsize=(width * len(panels), 4.6), sharey=True, squeeze=False)
    for k, (ax, (split, bars)) in enumerate(zip(axes[0], panels.items())):
        x = np.arange(len(bars))
        ax.bar(x, [b.cell.mean for b in bars], color="#7aa6c2", zorder=2, label="mean over seeds" if k == 0 else None)
        for i, b in enumerate(bars):
            if b.cell.has_interval:
                ax.errorbar(i, b.cell.mean, yerr=[[b.cell.mean - b.cell.lo], [b.cell.hi - b.cell.mean]],
                            color="black", capsize=3, zorder=3)
            ax.scatter([i] * b.cell.n, b.cell.values, s=9, color="#1d3f57", zorder=4)
        studied = [(i, b.study) for i, b in enumerate(bars) if b.study is not None]
        if studied:
            ax.scatter(*zip(*studied), marker="D", s=30, color="#c0392b", zorder=5,
                       label="study (one run, random protocol)" if k == 0 else None)
        ax.axhline(0.1, color="grey", ls=":", lw=1, zorder=1, label="chance" if k == 0 else None)
        ax.set_xticks(x, [b.label for b in bars], rotation=45, ha="right", fontsize=8)
        ax.set_title(titles.get(split, split), fontsize=9)
        ax.set_ylim(0, 1.05)
        ax.grid(axis="y", alpha=0.3, zorder=0)
    axes[0][0].set_ylabel("test accuracy (bar: mean; line: 95% interval; dots: seeds)", fontsize=8)
    axes[0][0].legend(loc="upper left", fontsize=7, framealpha=0.9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def confusions(mats: dict[str, tuple[np.ndarray, int]], title: str, path: Path) -> None:
    """One panel per net: counts summed over its runs, coloured by row share (recall), with
    the counts written in."""
    plt = _plt()
    cols = min(3, len(mats))
    rows = -(-len(mats) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.8 * rows), squeeze=False)
    for ax in axes.flat[len(mats):]:
        ax.axis("off")
    for ax, (net, (counts, n_runs)) in zip(axes.flat, mats.items()):
        share = counts / np.maximum(counts.sum(1, keepdims=True), 1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(GENRES)):
            for j in range(len(GENRES)):
                if counts[i, j]:
                    ax.text(j, i, int(counts[i, j]), ha="center", va="center", fontsize=6,
                            color="white" if share[i, j] > 0.5 else "black")
        ax.set_xticks(range(len(GENRES)), GENRES, rotation=60, ha="right", fontsize=6)
        ax.set_yticks(range(len(GENRES)), GENRES, fontsize=6)
        ax.set_title(f"{net}: {n_runs} runs, {int(counts.sum())} test samples", fontsize=8)
        ax.set_xlabel("predicted", fontsize=7), ax.set_ylabel("true", fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def curves(by_net: dict[str, list[list[float]]], title: str, path: Path) -> None:
    """Validation accuracy per epoch: the mean over the seeds still training at each epoch
    (early stopping ends some sooner), with a band of ± one standard deviation."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for net, runs in by_net.items():
        length = max(len(c) for c in runs)
        at = [np.array([c[i] for c in runs if len(c) > i]) for i in range(length)]
        mean = np.array([a.mean() for a in at])
        sd = np.array([a.std(ddof=1) if len(a) > 1 else 0.0 for a in at])
        ep = np.arange(1, length + 1)
        (line,) = ax.plot(ep, mean, label=f"{net} ({len(runs)} seeds)")
        ax.fill_between(ep, mean - sd, mean + sd, color=line.get_color(), alpha=0.15)
    ax.set_xlabel("epoch"), ax.set_ylabel("val_accuracy (mean ± sd over seeds)"), ax.legend(fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def gan_losses(series: list[tuple[str, list[int], list[float], str]], path: Path) -> None:
    """``series``: (label, steps, values, line style)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, steps, values, ls in series:
        ax.plot(steps, values, ls, label=label)
    ax.set_xlabel("step"), ax.legend(fontsize=7), ax.set_title("WaveGAN losses (newest runs)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
