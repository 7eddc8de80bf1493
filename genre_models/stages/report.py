"""The report stage (``benchmark report``): the study's two tables, rebuilt from the tracking store.

Nets, their study figures and the pairs compared come from the net registry; the splits and
their order from the split registry (``config.SPLIT_SPECS``). Table 1 holds the fixed-epoch
nets, Table 2 the early-stopping ones.

Every number is a mean over seeds with a 95% confidence interval from Student's t
(``mean ± t(0.975, n-1) · sd / sqrt(n)``; a single seed gets no interval), beside the study's
published figure. Runs are FINISHED ``train`` runs of one dataset (the newest run's, by
default); where a grid point was run more than once (e.g. a sweep re-run with ``--fresh``), the
newest run of each (net, epochs, split, seed) counts once.

Caveats the report states in words: the study's figures come from one run of the leaky
``random`` protocol, so they compare with the ``random`` block, not with ``track``; and the
"best run" (for the confusion matrix) is chosen on validation accuracy, never on test.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from genre_models.config import SPLIT_SPECS
from genre_models.errors import GenreBenchError
from genre_models.genres import GENRES
from genre_models.models.registry import NETS, comparisons
from genre_models.tracking.models import download
from genre_models.tracking.queries import experiment_runs, metric_steps
from genre_models.tracking.setup import current_tracking_uri, open_existing_store


class ReportError(GenreBenchError):
    """Nothing trustworthy to report (no experiment, no finished runs)."""


# --------------------------------------------------------------------------- arithmetic (pure)


@dataclass(frozen=True)
class Cell:
    mean: float
    half_width: float  # 95% CI half-width; nan when n < 2
    n: int

    def __str__(self) -> str:
        return self.fmt(3)

    def fmt(self, digits: int) -> str:
        if self.n == 0:
            return "–"
        if self.n == 1 or not math.isfinite(self.half_width):
            return f"{self.mean:.{digits}f} (n={self.n})"
        return f"{self.mean:.{digits}f} ± {self.half_width:.{digits}f} (n={self.n})"


def summarize(values) -> Cell:
    """Mean and the 95% t-interval half-width of a sample (seeds)."""
    from scipy import stats

    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if x.size == 0:
        return Cell(float("nan"), float("nan"), 0)
    if x.size == 1:
        return Cell(float(x[0]), float("nan"), 1)
    half = stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    return Cell(float(x.mean()), float(half), int(x.size))


@dataclass(frozen=True)
class Paired:
    diff: Cell  # net - its baseline, over seeds run for both
    seeds: tuple[int, ...]

    @property
    def verdict(self) -> str:
        d = self.diff
        if d.n < 2:
            return f"cannot be judged from {d.n} paired seed(s)"
        lo, hi = d.mean - d.half_width, d.mean + d.half_width
        if lo > 0:
            return "a gain distinguishable from seed noise (the 95% interval excludes 0)"
        if hi < 0:
            return "a loss distinguishable from seed noise (the 95% interval excludes 0)"
        return "not distinguishable from seed noise (the 95% interval includes 0)"


def paired_difference(a: dict[int, float], b: dict[int, float]) -> Paired:
    """``b - a`` over the seeds present in both (a paired comparison)."""
    seeds = tuple(sorted(set(a) & set(b)))
    return Paired(summarize([b[s] - a[s] for s in seeds]), seeds)


# --------------------------------------------------------------------------- collecting runs


def _runs(experiment: str) -> pd.DataFrame:
    df = experiment_runs(experiment)
    if df is None:
        raise ReportError(f"experiment {experiment!r} does not exist in {current_tracking_uri()}; nothing to report")
    return df


def _col(df: pd.DataFrame, name: str, default=None) -> pd.Series:
    return df[name] if name in df else pd.Series(default, index=df.index)


def select_runs(df: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """FINISHED train runs of one dataset, deduplicated; plus what was left out and why."""
    notes: dict = {}
    every = df[_col(df, "tags.stage") == "train"].copy()
    train = every[every.status == "FINISHED"]
    if train.empty:
        total = ", ".join(f"{n} {s}" for s, n in every.status.value_counts().items()) or "none at all"
        raise ReportError(f"no FINISHED training runs in this experiment (training runs: {total}); nothing to report")
    newest = train.sort_values("start_time").iloc[-1]
    dataset = newest["tags.dataset"]
    # Unfinished runs of the reported dataset only: runs on other data are counted apart.
    unfinished = every[(every.status != "FINISHED") & (_col(every, "tags.dataset") == dataset)]
    notes["unfinished"] = unfinished.status.value_counts().to_dict()
    other = train[train["tags.dataset"] != dataset]
    notes["other_datasets"] = other["tags.dataset"].value_counts().to_dict()
    train = train[train["tags.dataset"] == dataset].copy()
    epochs = _col(train, "params.resolved.epochs").fillna(_col(train, "params.epochs"))
    train["epochs"] = pd.to_numeric(epochs, errors="coerce").astype("Int64")
    train["seed"] = pd.to_numeric(train["tags.seed"]).astype(int)
    train["net"], train["split"] = train["tags.net"], train["tags.split"]
    before = len(train)
    train = train.sort_values("start_time").groupby(["net", "epochs", "split", "seed"], as_index=False, dropna=False).last()
    notes["duplicates"] = before - len(train)
    notes["dataset"] = dataset
    notes["synthetic"] = newest.get("tags.dataset_synthetic", "") == "true"
    return train, notes


# --------------------------------------------------------------------------- the markdown


def _metric(runs: pd.DataFrame, name: str) -> pd.Series:
    return pd.to_numeric(_col(runs, f"metrics.{name}"), errors="coerce")


def _table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


_KIND_WORDS = {"image": "spectrogram", "mfcc": "audio"}


def fixed_epoch_nets() -> list[str]:
    return [n for n in NETS if not NETS[n].early_stopping]


def early_stopping_nets() -> list[str]:
    return [n for n in NETS if NETS[n].early_stopping]


def table_title(number: int, nets: list[str]) -> str:
    """e.g. "Table 1: spectrogram models (net1-net4)", from the nets' input kinds."""
    kinds = {NETS[n].input_kind for n in nets}
    words = f"{_KIND_WORDS[kinds.pop()]} models" if len(kinds) == 1 else "models"
    span = nets[0] if len(nets) == 1 else f"{nets[0]}-{nets[-1]}"
    return f"Table {number}: {words} ({span})"


def _study(net: str, key: str, fmt: str = "{:.4f}") -> str:
    value = NETS[net].study.get(key)
    return "–" if value is None else fmt.format(value)


def image_table(runs: pd.DataFrame, split: str) -> str | None:
    """Table 1: Model | Accuracy (E1 epochs) | study | Accuracy (E2 epochs) | study, for the
    fixed-epoch nets. The study's budgets pair with the run's settings in order."""
    nets = fixed_epoch_nets()
    sub = runs[(runs.split == split) & runs.net.isin(nets)]
    if sub.empty:
        return None
    settings = sorted(int(e) for e in sub.epochs.dropna().unique())
    study_epochs = sorted({e for n in nets for e in NETS[n].study_epochs})
    header = ["Model"]
    for i, e in enumerate(settings):
        header.append(f"Accuracy ({e} epochs)")
        if i < len(study_epochs):
            header.append(f"study ({study_epochs[i]} ep)")
    rows = []
    for net in nets:
        r = [net]
        for i, e in enumerate(settings):
            vals = _metric(sub[(sub.net == net) & (sub.epochs == e)], "test_accuracy")
            r.append(str(summarize(vals)))
            if i < len(study_epochs):
                r.append(_study(net, f"acc_{study_epochs[i]}"))
        rows.append(r)
    return _table(header, rows)


def audio_table(runs: pd.DataFrame, split: str) -> str | None:
    """Table 2: Model | Accuracy | Early Stopping Epoch (+ track-level accuracy), for the early-stopping nets."""
    nets = early_stopping_nets()
    sub = runs[(runs.split == split) & runs.net.isin(nets)]
    if sub.empty:
        return None
    header = ["Model", "Accuracy (segments)", "study", "Early Stopping Epoch", "study", "Track accuracy (vote)"]
    rows = []
    for net in nets:
        r = sub[sub.net == net]
        rows.append([net, str(summarize(_metric(r, "test_accuracy"))), _study(net, "acc"),
                     summarize(_metric(r, "stopped_epoch")).fmt(1),
                     _study(net, "stopped_epoch", "{}"), str(summarize(_metric(r, "test_track_accuracy")))])
    return _table(header, rows)


def _longest_budget(r: pd.DataFrame, net: str) -> pd.DataFrame:
    """A fixed-epoch net's runs at its longest epoch setting; an early-stopping net's, all."""
    return r if NETS[net].early_stopping else r[r.epochs == r.epochs.max()]


def f1_table(runs: pd.DataFrame, split: str) -> str | None:
    """Per-genre test F1, mean over seeds; fixed-epoch nets at their longest epoch setting."""
    sub = runs[runs.split == split]
    if sub.empty:
        return None
    rows = []
    for net in NETS:
        r = sub[sub.net == net]
        if r.empty:
            continue
        r = _longest_budget(r, net)
        label = net if NETS[net].early_stopping else f"{net} ({int(r.epochs.max())} ep)"
        rows.append([label] + [f"{_metric(r, f'test_f1_{g}').mean():.2f}" for g in GENRES])
    return _table(["Model"] + list(GENRES), rows)


def _seed_values(sub: pd.DataFrame, net: str) -> dict[int, float]:
    r = sub[sub.net == net]
    return {int(s): float(v) for s, v in zip(r.seed, _metric(r, "test_accuracy"))}


def pair_comparisons(runs: pd.DataFrame, split: str) -> list[str]:
    """One sentence per (baseline, net) pair of the registry that has runs on ``split``."""
    sub = runs[runs.split == split]
    out = []
    for base, net in comparisons():
        a, b = _seed_values(sub, base), _seed_values(sub, net)
        if not a or not b:
            continue
        p = paired_difference(a, b)
        out.append(f"On `{split}`, {net} − {base} test accuracy = {p.diff.mean:+.3f}"
                   + (f" ± {p.diff.half_width:.3f}" if p.diff.n > 1 else "")
                   + f" (paired over seeds {', '.join(map(str, p.seeds)) or 'none'}): {p.verdict}.")
    return out


# --------------------------------------------------------------------------- figures


def _confusions(runs: pd.DataFrame, files: Path) -> list[dict]:
    """The confusion matrix of each net's best run, chosen on validation accuracy."""
    made = []
    for net in NETS:
        r = runs[runs.net == net]
        if r.empty:
            continue
        best = r.loc[_metric(r, "val_accuracy").fillna(-1).idxmax()]
        try:
            src = download(best.run_id, "confusion_matrix.png", str(files))
        except Exception:  # an artifact store that lost the file: the table still stands
            continue
        dst = files / f"confusion_{net}.png"
        os.replace(src, dst)
        made.append({"net": net, "file": dst.name, "desc": f"run `{best.run_id[:12]}`, {best.split} "
                     f"s{best.seed}, val accuracy {_metric(r, 'val_accuracy').max():.3f}"})
    return made


def _curves(runs: pd.DataFrame, files: Path, split: str, plt) -> str | None:
    """Validation accuracy per epoch, mean over seeds, one line per net; the PNG's name."""
    sub = runs[runs.split == split]
    if sub.empty:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for net in NETS:
        r = sub[sub.net == net]
        if not r.empty:
            r = _longest_budget(r, net)
        curves = [[v for _, v in metric_steps(rid, "val_accuracy")] for rid in r.run_id]
        curves = [c for c in curves if c]
        if not curves:
            continue
        length = max(len(c) for c in curves)
        # Mean over seeds at each epoch, over the seeds still training (early stopping ends some sooner).
        mean = [np.mean([c[i] for c in curves if len(c) > i]) for i in range(length)]
        ax.plot(range(1, length + 1), mean, label=net)
    ax.set_xlabel("epoch"), ax.set_ylabel("val_accuracy (mean over seeds)"), ax.legend(fontsize=8)
    ax.set_title(f"validation accuracy per epoch, split {split}")
    fig.tight_layout()
    name = f"val_curves_{split}.png"
    fig.savefig(files / name, dpi=100)
    plt.close(fig)
    return name


def _gan_losses(all_runs: pd.DataFrame, files: Path, plt) -> str | None:
    gans = all_runs[(_col(all_runs, "tags.stage") == "gan") & (all_runs.status == "FINISHED")]
    if gans.empty:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for _, g in gans.sort_values("start_time").tail(6).iterrows():
        for key, ls in (("d_loss", "-"), ("g_loss", "--")):
            h = metric_steps(g.run_id, key)
            if h:
                ax.plot([step for step, _ in h], [v for _, v in h], ls,
                        label=f"{key} {g.get('tags.split', '')} s{g.get('tags.seed', '')}")
    ax.set_xlabel("step"), ax.legend(fontsize=7), ax.set_title("WaveGAN losses (newest runs)")
    fig.tight_layout()
    fig.savefig(files / "gan_losses.png", dpi=100)
    plt.close(fig)
    return "gan_losses.png"


def _figures(runs: pd.DataFrame, all_runs: pd.DataFrame, files: Path, splits: list[str]) -> dict[str, list]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files.mkdir(parents=True, exist_ok=True)
    curves = [_curves(runs, files, split, plt) for split in splits]
    gan = _gan_losses(all_runs, files, plt)
    return {"confusion": _confusions(runs, files), "curves": [c for c in curves if c],
            "gan": [gan] if gan else []}


# --------------------------------------------------------------------------- the report


@dataclass
class Report:
    path: str
    text: str
    n_runs: int
    notes: dict = field(default_factory=dict)


def render(experiment: str, runs: pd.DataFrame, all_runs: pd.DataFrame, notes: dict, files_rel: str,
           figures: dict[str, list], tracking_uri: str) -> str:
    splits = [s for s in SPLIT_SPECS if s in set(runs.split)]
    code = sorted(set(_col(runs, "tags.code_version").dropna()))
    devices = sorted(set(_col(runs, "params.resolved_device").dropna()))
    lines = [f"# genre-bench report: {experiment}", ""]
    lines += [f"- **Dataset:** `{notes['dataset']}`" + (" — **synthetic demo data, not GTZAN**" if notes["synthetic"] else ""),
              f"- **Code version:** {', '.join(f'`{c}`' for c in code) or 'unknown'}",
              f"- **Device:** {', '.join(devices) or 'unknown'}",
              f"- **Date:** {time.strftime('%Y-%m-%d %H:%M %Z')}",
              f"- **Tracking store:** `{tracking_uri}`, experiment `{experiment}`; {len(runs)} finished training runs."]
    excluded = []
    if notes["unfinished"]:
        excluded.append("unfinished training runs left out: " + ", ".join(f"{n} {s}" for s, n in notes["unfinished"].items()))
    if notes["other_datasets"]:
        excluded.append("runs on other datasets left out: " + ", ".join(f"{n} on `{d}`" for d, n in notes["other_datasets"].items()))
    if notes["duplicates"]:
        excluded.append(f"{notes['duplicates']} repeated runs of the same grid point (the newest counts)")
    for e in excluded:
        lines.append(f"- **Note:** {e}.")
    lines += ["", "Cells: mean ± 95% confidence half-width over seeds (Student's t), with n. "
              "`study` is the published single-run figure, from the leaky `random` protocol. "
              + " ".join(f"`{sp.name}`: {sp.description} (leaks tracks: {sp.leaks})." for sp in SPLIT_SPECS.values()), ""]
    for split in splits:
        lines += [f"## Split `{split}`", ""]
        t1, t2 = image_table(runs, split), audio_table(runs, split)
        if t1:
            lines += [f"### {table_title(1, fixed_epoch_nets())}", "", t1, ""]
        if t2:
            lines += [f"### {table_title(2, early_stopping_nets())}", "", t2, ""]
        for sentence in pair_comparisons(runs, split):
            lines += [sentence, ""]
        f1 = f1_table(runs, split)
        if f1:
            lines += ["### Per-genre F1 (test, mean over seeds)", "", f1, ""]
    gans = all_runs[(_col(all_runs, "tags.stage") == "gan") & (all_runs.status == "FINISHED")]
    if not gans.empty:
        q = summarize(pd.to_numeric(_col(gans, "metrics.gen_quality_accuracy"), errors="coerce"))
        lines += ["## WaveGAN", "", f"{len(gans)} finished GAN runs. Generated-clip quality (a real-data net5 "
                  f"recognising the intended genre; chance 0.100): {q}.", ""]
    if any(figures.values()):
        lines += ["## Figures", ""]
        for item in figures["confusion"]:
            lines.append(f"- Confusion matrix of {item['net']}'s best run by validation accuracy ({item['desc']}): "
                         f"![]({files_rel}/{item['file']})")
        for name in figures["curves"]:
            lines.append(f"- Validation accuracy per epoch: ![]({files_rel}/{name})")
        for name in figures["gan"]:
            lines.append(f"- WaveGAN loss curves: ![]({files_rel}/{name})")
        lines.append("")
    return "\n".join(lines)


def write_report(experiment: str, out: str | None = None, tracking_uri: str | None = None, figures: bool = True) -> Report:
    """Build the report from the store and write it (default ``reports/<experiment>.md``)."""
    open_existing_store(tracking_uri)
    df = _runs(experiment)
    if df.empty:
        raise ReportError(f"experiment {experiment!r} has no runs; nothing to report (run `benchmark sweep` first)")
    runs, notes = select_runs(df)
    path = Path(out or os.path.join("reports", f"{experiment}.md"))
    path.parent.mkdir(parents=True, exist_ok=True)
    files = path.parent / f"{path.stem}_files"
    made = _figures(runs, df, files, sorted(set(runs.split))) if figures else {"confusion": [], "curves": [], "gan": []}
    text = render(experiment, runs, df, notes, files.name, made, current_tracking_uri())
    path.write_text(text + "\n")
    return Report(str(path), text, len(runs), notes)
