"""The report stage (``benchmark report``): the study's tables, figures and comparisons, rebuilt
from the tracking store, as markdown (primary, readable on GitHub), a self-contained HTML page,
and every table as CSV and LaTeX beside them.

Nets, their study figures and the pairs compared come from the net registry; splits and their
order from ``config.SPLIT_SPECS``. Table 1 holds the fixed-epoch nets, Table 2 the
early-stopping ones. Intervals: ``genre_models.reporting.stats`` (t over seeds, clipped to the
scale and marked; values, not an interval, under 3 seeds).

Runs are FINISHED ``train`` runs of one dataset (the newest run's, by default); where a grid
point was run more than once (a sweep re-run with ``--fresh``), the newest run of each (net,
epochs, split, seed, fold) counts once. Confusion matrices and per-genre F1 use each net's runs
at its longest epoch budget, summed (or averaged) over draws (seeds, and folds under ``kfold``).
The study's figures come from one run of the leaky ``random`` protocol: they compare with the
``random`` block, not with ``track``. Significance (``reporting.significance``) reads each run's
per-track test predictions.
"""

from __future__ import annotations

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
from genre_models.reporting import context
from genre_models.reporting import figures as fig
from genre_models.reporting.html import to_html
from genre_models.reporting.significance import Comparison, all_pairs, compare, p_matrix, ratio_of
from genre_models.reporting.stats import ALPHA, CLIP_MARK, MIN_SEEDS_FOR_INTERVAL, Cell, summarize
from genre_models.reporting.tables import Entry, Table, interval, md, number, spread, text
from genre_models.training.evaluate import PREDICTIONS_FILE
from genre_models.tracking.models import download
from genre_models.tracking.queries import experiment_runs, metric_steps
from genre_models.tracking.setup import current_tracking_uri, open_existing_store
from genre_models.util import safe_name, write_csv

__all__ = ["Cell", "ReportError", "Report", "summarize", "write_report"]

CAP_MARK = "†"


class ReportError(GenreBenchError):
    """Nothing trustworthy to report (no experiment, no finished runs)."""


# --------------------------------------------------------------------------- collecting runs


def _col(df: pd.DataFrame, name: str, default=None) -> pd.Series:
    return df[name] if name in df else pd.Series(default, index=df.index)


def _metric(runs: pd.DataFrame, name: str) -> pd.Series:
    return pd.to_numeric(_col(runs, f"metrics.{name}"), errors="coerce")


def _count(runs: pd.DataFrame, name: str, older: str) -> pd.Series:
    """A count logged as a parameter (``params.<name>``), or as the metric ``older`` by earlier versions."""
    return pd.to_numeric(_col(runs, f"params.{name}"), errors="coerce").fillna(_metric(runs, older))


def model_name(net: str, epochs, early_stopping: bool) -> str:
    """What the report calls a net at a budget: an early-stopping net by its name, a fixed-epoch
    one with its epochs (``net2 50 ep``)."""
    return net if early_stopping else f"{net} {int(epochs)} ep"


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
    unfinished = every[(every.status != "FINISHED") & (_col(every, "tags.dataset") == dataset)]
    notes["unfinished"] = unfinished.status.value_counts().to_dict()
    notes["other_datasets"] = train[train["tags.dataset"] != dataset]["tags.dataset"].value_counts().to_dict()
    train = train[train["tags.dataset"] == dataset].copy()
    epochs = _col(train, "params.resolved.epochs").fillna(_col(train, "params.epochs"))
    train["epochs"] = pd.to_numeric(epochs, errors="coerce").astype("Int64")
    train["seed"] = pd.to_numeric(train["tags.seed"]).astype(int)
    train["fold"] = pd.to_numeric(_col(train, "tags.fold"), errors="coerce").fillna(-1).astype(int)  # -1: no folds
    train["net"], train["split"] = train["tags.net"], train["tags.split"]
    _net_columns(train)
    train["model"] = [model_name(n, e, es) for n, es, e in zip(train.net, train.early_stopping, train.epochs)]
    train["n_test"] = _count(train, "n_test", "n_test")
    train["n_train"] = _count(train, "n_train", "n_train")
    train["n_test_tracks"] = _count(train, "n_test_tracks", "test_n_tracks")
    before = len(train)
    train = train.sort_values("start_time").groupby(["net", "epochs", "split", "seed", "fold"], as_index=False,
                                                    dropna=False).last()
    notes["duplicates"] = before - len(train)
    notes["dataset"] = dataset
    notes["synthetic"] = newest.get("tags.dataset_synthetic", "") == "true"
    return train, notes


def _net_columns(train: pd.DataFrame) -> None:
    """What the tables need of each run's net, from the registry for built-in nets and from the
    run itself for a plugin's (whose package the report's process may not have):
    ``early_stopping``, ``input_kind`` and ``origin``."""
    es = _col(train, "params.resolved.early_stopping").fillna(_col(train, "params.early_stopping"))
    train["early_stopping"] = [NETS[n].early_stopping if n in NETS else str(v) == "True" for n, v in zip(train.net, es)]
    train["input_kind"] = [NETS[n].input_kind if n in NETS else k for n, k in zip(train.net, _col(train, "tags.input_kind", "mfcc"))]
    train["origin"] = [NETS[n].origin if n in NETS else o for n, o in zip(train.net, _col(train, "tags.net_origin", "plugin"))]
    train["baseline"] = [NETS[n].baseline if n in NETS else b for n, b in zip(train.net, _col(train, "tags.net_baseline"))]


def _ordered(nets) -> list[str]:
    """The registry's order, then other nets (plugins) by name."""
    nets = set(nets)
    return [n for n in NETS if n in nets] + sorted(nets - set(NETS))


def _longest_budget(r: pd.DataFrame, net: str) -> pd.DataFrame:
    """A fixed-epoch net's runs at its longest epoch setting; an early-stopping net's, all."""
    return r if r.empty or r.early_stopping.iloc[0] else r[r.epochs == r.epochs.max()]


def _nets_on(runs: pd.DataFrame, split: str) -> list[str]:
    return _ordered(runs[runs.split == split].net)


def _summary(r: pd.DataFrame, metric: str, bounds: tuple[float, float] = (0.0, 1.0)) -> Cell:
    """A metric of one split's runs over their draws, the interval corrected where the split
    resamples (``reporting.stats``)."""
    resampled = not r.empty and SPLIT_SPECS[r.split.iloc[0]].resampled
    return summarize(_metric(r, metric), bounds, ratio_of(r) if resampled else 0.0)


# --------------------------------------------------------------------------- tables (pure)


_KIND_WORDS = {"image": "spectrogram", "mfcc": "audio", "raw": "audio"}
_SAMPLE_WORDS = {"image": "images", "mfcc": "segments", "raw": "segments"}


def fixed_epoch_nets(runs: pd.DataFrame) -> list[str]:
    return _ordered(runs[~runs.early_stopping.astype(bool)].net)


def early_stopping_nets(runs: pd.DataFrame) -> list[str]:
    return _ordered(runs[runs.early_stopping.astype(bool)].net)


def table_title(number_: int, nets: list[str], runs: pd.DataFrame) -> str:
    """e.g. "Table 1: spectrogram models (net1-net4)", from the nets' input kinds."""
    kinds = {_KIND_WORDS.get(k, k) for k in runs[runs.net.isin(nets)].input_kind}
    words = f"{kinds.pop()} models" if len(kinds) == 1 else "models"
    numbered = len(nets) > 2 and all(n.startswith("net") and n[3:].isdigit() for n in nets)
    span = f"{nets[0]}-{nets[-1]}" if numbered else ", ".join(nets)  # net1-net4; net5, net6, net5-raw
    return f"Table {number_}: {words} ({span})"


def _label(net: str, runs: pd.DataFrame, suffix: str = "") -> Entry:
    """A row's model name; a plugin's net is marked as not part of the study."""
    plugin = (runs[runs.net == net].origin != "built-in").any()
    return text(f"{net}{suffix}" + (" (plugin)" if plugin else ""))


def plugin_notes(runs: pd.DataFrame, nets: list[str]) -> list[str]:
    """One footnote naming the plugin nets in a table and where they come from."""
    own = {n: o for n, o in zip(runs.net, runs.origin) if n in nets and o != "built-in"}
    if not own:
        return []
    return ["(plugin): not part of the study; the user's own net, trained under the same splits, seeds and "
            "evaluation: " + "; ".join(f"{n} from {o}" for n, o in sorted(own.items())) + "."]


def _study(net: str, key: str, fmt: str = "{:.4f}") -> Entry:
    """The study's figure for a built-in net; ``acc`` falls back to a published bound (``< 0.15``)."""
    study = NETS[net].study if net in NETS else {}
    if key == "acc" and key not in study and "acc_below" in study:
        return Entry(f"< {study['acc_below']:g}", {"below": study["acc_below"]})
    return number(study.get(key), fmt)


def _range(values: pd.Series) -> tuple[str, float]:
    v = values.dropna()
    if v.empty:
        return "–", float("nan")
    lo, hi = int(v.min()), int(v.max())
    return (f"{lo}" if lo == hi else f"{lo}-{hi}"), float(v.mean())


def sizes(r: pd.DataFrame) -> Entry:
    """Test tracks / samples of a net's runs (a range where seeds differ)."""
    tracks, t_mean = _range(r.n_test_tracks)
    samples, s_mean = _range(r.n_test)
    return Entry(f"{tracks} / {samples}", {"tracks": t_mean, "samples": s_mean})


def image_table(runs: pd.DataFrame, split: str) -> Table | None:
    """Table 1: a net's test accuracy per epoch budget beside the study's; the study's budgets
    pair with the run's settings in order."""
    nets = fixed_epoch_nets(runs)
    sub = runs[(runs.split == split) & runs.net.isin(nets)]
    if sub.empty:
        return None
    settings = sorted(int(e) for e in sub.epochs.dropna().unique())
    study_epochs = sorted({e for n in nets if n in NETS for e in NETS[n].study_epochs})
    header = ["Model", "Test tracks / images"]
    for i, e in enumerate(settings):
        header += [f"Accuracy ({e} epochs)"] + ([f"study ({study_epochs[i]} ep)"] if i < len(study_epochs) else [])
    rows = []
    for net in (n for n in nets if not sub[sub.net == n].empty):
        r = sub[sub.net == net]
        row = [_label(net, runs), sizes(r)]
        for i, e in enumerate(settings):
            row.append(interval(_summary(r[r.epochs == e], "test_accuracy")))
            if i < len(study_epochs):
                row.append(_study(net, f"acc_{study_epochs[i]}"))
        rows.append(row)
    return Table(f"table1_{split}", f"{table_title(1, nets, runs)}, split {split}", header, rows, plugin_notes(sub, nets))


def _stopped(r: pd.DataFrame) -> tuple[Entry, str | None]:
    """The early-stopping epoch over seeds, marked where a run stopped at its epoch cap."""
    stopped, cap = _metric(r, "stopped_epoch"), pd.to_numeric(r.epochs, errors="coerce")
    at_cap = int(((stopped >= cap) & stopped.notna()).sum())
    cell = _summary(r, "stopped_epoch", bounds=(1.0, float(cap.max()) if cap.notna().any() else float("inf")))
    if not at_cap:
        return interval(cell, 1), None
    return interval(cell, 1, CAP_MARK), (f"{CAP_MARK} {r.net.iloc[0]}: {at_cap} of {len(r)} runs stopped at their "
                                         f"epoch cap ({int(cap.max())}): early stopping never triggered, so the "
                                         "budget, not convergence, ended them.")


def audio_table(runs: pd.DataFrame, split: str) -> Table | None:
    """Table 2: accuracy, track-level (vote) accuracy and early-stopping epoch, beside the study's."""
    nets = early_stopping_nets(runs)
    sub = runs[(runs.split == split) & runs.net.isin(nets)]
    if sub.empty:
        return None
    header = ["Model", "Test tracks / segments", "Accuracy (segments)", "study", "Track accuracy (vote)",
              "Early stopping epoch", "study"]
    rows, notes = [], []
    for net in (n for n in nets if not sub[sub.net == n].empty):
        r = sub[sub.net == net]
        stopped, note = _stopped(r)
        notes += [note] if note else []
        rows.append([_label(net, runs), sizes(r), interval(_summary(r, "test_accuracy")), _study(net, "acc"),
                     interval(_summary(r, "test_track_accuracy")), stopped, _study(net, "stopped_epoch", "{}")])
    return Table(f"table2_{split}", f"{table_title(2, nets, runs)}, split {split}", header, rows,
                 notes + plugin_notes(sub, nets))


def f1_table(runs: pd.DataFrame, split: str) -> Table | None:
    """Macro and per-genre test F1, mean ± sd over seeds; fixed-epoch nets at their longest budget."""
    sub = runs[runs.split == split]
    if sub.empty:
        return None
    rows = []
    for net in _nets_on(runs, split):
        r = _longest_budget(sub[sub.net == net], net)
        label = _label(net, runs, "" if r.early_stopping.iloc[0] else f" ({int(r.epochs.max())} ep)")
        rows.append([label, spread(summarize(_metric(r, "test_macro_f1")))]
                    + [spread(summarize(_metric(r, f"test_f1_{g}"))) for g in GENRES])
    return Table(f"f1_{split}", f"Test F1 per genre (mean ± sd over {'folds and ' if SPLIT_SPECS[split].folded else ''}seeds), split {split}",
                 ["Model", "macro F1"] + list(GENRES), rows)


def _budgets(r: pd.DataFrame) -> list[int]:
    return sorted(int(e) for e in r.epochs.dropna().unique())


def _models_of(runs: pd.DataFrame, split: str) -> list[str]:
    """The split's models in table order: each net, a fixed-epoch net once per budget."""
    sub = runs[runs.split == split]
    out = []
    for net in _nets_on(runs, split):
        r = sub[sub.net == net]
        out += [net] if r.early_stopping.iloc[0] else [model_name(net, e, False) for e in _budgets(r)]
    return out


def _model_of(sub: pd.DataFrame, net: str) -> str | None:
    """A net's model in a comparison: an early-stopping net itself, a fixed-epoch net at its
    longest budget; None where the net has no runs."""
    r = sub[sub.net == net]
    if r.empty:
        return None
    return net if r.early_stopping.iloc[0] else model_name(net, _budgets(r)[-1], False)


def drawn_comparisons(runs: pd.DataFrame, split: str) -> list[tuple[str, str]]:
    """The (a, b) model pairs the report compares on ``split``: each registry net against its
    baseline, a plugin against its ``baseline``, and each fixed-epoch net's shorter budget
    against its longest."""
    sub = runs[runs.split == split]
    plugin_pairs = {(b, n) for n, b in zip(sub.net, sub.baseline) if n not in NETS and isinstance(b, str) and b}
    pairs = []
    for base, net in comparisons() + sorted(plugin_pairs, key=lambda p: p[1]):
        a, b = _model_of(sub, base), _model_of(sub, net)
        if a and b:
            pairs.append((a, b))
    for net in fixed_epoch_nets(sub):
        budgets = _budgets(sub[sub.net == net])
        pairs += [(model_name(net, e, False), model_name(net, budgets[-1], False)) for e in budgets[:-1]]
    return pairs


def pair_comparisons(runs: pd.DataFrame, split: str, predictions: dict) -> list[Comparison]:
    """The comparisons the report draws on ``split``, each with both tests."""
    sub = runs[runs.split == split]
    return [compare(sub, split, a, b, predictions, SPLIT_SPECS[split].resampled) for a, b in drawn_comparisons(runs, split)]


def significance_tables(runs: pd.DataFrame, split: str, predictions: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every pair of the split's models: the long table (one row per pair) and the p-value matrix."""
    sub, models = runs[runs.split == split], _models_of(runs, split)
    found = all_pairs(sub, split, models, predictions, SPLIT_SPECS[split].resampled)
    return pd.DataFrame([c.row() for c in found]), p_matrix(found, models)


def fold_accuracies(runs: pd.DataFrame, split: str) -> pd.DataFrame:
    """Under a folded split: each run's test accuracy, by model, seed and fold."""
    sub = runs[runs.split == split].sort_values(["model", "seed", "fold"])
    return pd.DataFrame({"model": sub.model, "seed": sub.seed, "fold": sub.fold,
                         "test_accuracy": _metric(sub, "test_accuracy"),
                         "test_track_accuracy": _metric(sub, "test_track_accuracy"),
                         "test_tracks": sub.n_test_tracks, "run_id": sub.run_id})


def split_tables(runs: pd.DataFrame, split: str) -> list[Table]:
    return [t for t in (image_table(runs, split), audio_table(runs, split), f1_table(runs, split)) if t is not None]


# --------------------------------------------------------------------------- figures (read the store)


def _split_title(split: str) -> str:
    spec = SPLIT_SPECS[split]
    return f"split {split}: " + ("honest, no track on two sides" if spec.honest else f"leaky ({spec.leaks})")


def headline_bars(runs: pd.DataFrame, split: str) -> list[fig.Bar]:
    """Each net (fixed-epoch nets once per epoch budget) with its test accuracy over seeds and
    the study's figure for the same budget (budgets paired in order, as in Table 1)."""
    sub, bars = runs[runs.split == split], []
    for net in _nets_on(runs, split):
        r = sub[sub.net == net]
        published, budgets = (NETS[net].study, NETS[net].study_epochs) if net in NETS else ({}, [])
        if r.early_stopping.iloc[0]:
            bars.append(fig.Bar(net, _summary(r, "test_accuracy"), published.get("acc")))
            continue
        for i, e in enumerate(sorted(int(x) for x in r.epochs.dropna().unique())):
            study = published.get(f"acc_{budgets[i]}") if i < len(budgets) else None
            bars.append(fig.Bar(model_name(net, e, False), _summary(r[r.epochs == e], "test_accuracy"), study))
    return bars


def summed_confusion(run_ids, files: Path) -> tuple[np.ndarray, int]:
    """Test confusion counts summed over runs (rows true, columns predicted); runs whose
    ``confusion_matrix.csv`` is gone from the artifact store are left out of the count."""
    total, used = np.zeros((len(GENRES), len(GENRES)), dtype=np.int64), 0
    for rid in run_ids:
        try:
            total += pd.read_csv(download(rid, "confusion_matrix.csv", str(files)), index_col=0).to_numpy(np.int64)
            used += 1
        except Exception:  # an artifact store that lost the file: the other runs still count
            continue
    (files / "confusion_matrix.csv").unlink(missing_ok=True)
    return total, used


def _confusions(runs: pd.DataFrame, split: str, files: Path) -> dict | None:
    mats, csvs = {}, []
    for net in _nets_on(runs, split):
        r = _longest_budget(runs[(runs.split == split) & (runs.net == net)], net)
        counts, used = summed_confusion(r.run_id, files)
        if used:
            mats[net] = (counts, used)
            name = f"confusion_{split}_{safe_name(net)}.csv"  # a net's name comes from run tags: never a path
            write_csv(pd.DataFrame(counts, index=GENRES, columns=GENRES).rename_axis("true\\pred"), files / name, index=True)
            csvs.append(name)
    if not mats:
        return None
    png = f"confusion_{split}.png"
    fig.confusions(mats, f"Test confusion summed over seeds, split {split} (colour: share of the true genre's row)",
                   files / png)
    return {"png": png, "csv": csvs}


def _curves(runs: pd.DataFrame, split: str, files: Path) -> str | None:
    by_net = {}
    for net in _nets_on(runs, split):
        r = _longest_budget(runs[(runs.split == split) & (runs.net == net)], net)
        found = [c for c in ([v for _, v in metric_steps(rid, "val_accuracy")] for rid in r.run_id) if c]
        if found:
            by_net[net] = found
    if not by_net:
        return None
    name = f"val_curves_{split}.png"
    fig.curves(by_net, f"validation accuracy per epoch, split {split}", files / name)
    return name


def _gan_losses(all_runs: pd.DataFrame, files: Path) -> str | None:
    gans = all_runs[(_col(all_runs, "tags.stage") == "gan") & (all_runs.status == "FINISHED")]
    series = []
    for _, g in gans.sort_values("start_time").tail(6).iterrows():
        for key, ls in (("d_loss", "-"), ("g_loss", "--")):
            h = metric_steps(g.run_id, key)
            if h:
                series.append((f"{key} {g.get('tags.split', '')} s{g.get('tags.seed', '')}", [s for s, _ in h],
                               [v for _, v in h], ls))
    if not series:
        return None
    fig.gan_losses(series, files / "gan_losses.png")
    return "gan_losses.png"


@dataclass
class Figures:
    headline: str | None = None
    confusion: dict = field(default_factory=dict)  # split -> {"png", "csv": [...]}
    curves: dict = field(default_factory=dict)  # split -> png
    gan: str | None = None


def make_figures(runs: pd.DataFrame, all_runs: pd.DataFrame, splits: list[str], files: Path) -> Figures:
    made = Figures()
    panels = {s: headline_bars(runs, s) for s in splits}
    panels = {s: b for s, b in panels.items() if b}
    if panels:
        fig.headline(panels, {s: _split_title(s) for s in panels}, files / "headline.png")
        made.headline = "headline.png"
    for split in splits:
        conf, curve = _confusions(runs, split, files), _curves(runs, split, files)
        if conf:
            made.confusion[split] = conf
        if curve:
            made.curves[split] = curve
    made.gan = _gan_losses(all_runs, files)
    return made


# --------------------------------------------------------------------------- the report


@dataclass
class Report:
    path: str
    text: str
    n_runs: int
    notes: dict = field(default_factory=dict)
    html: str | None = None
    tables: list[str] = field(default_factory=list)  # CSV and LaTeX files written


@dataclass
class SplitSection:
    """What the report says about one split: its tables, the comparisons it draws, and the
    files beside it (all-pairs significance; per-fold accuracies under a folded split)."""

    tables: list[Table]
    comparisons: list[Comparison]
    files: dict[str, str] = field(default_factory=dict)  # what -> file name


METHOD = (f"Cells: mean over draws (a draw is a seed's split and training run, and under `kfold` one fold of "
          f"it), then the 95% interval in brackets: Student's t over draws, where seeds draw new splits "
          f"(`random`, `track`, `kfold`) with Nadeau & Bengio's correction for overlapping training sets "
          f"(variance term 1/n + n_test/n_train instead of 1/n), on the fixed `filtered` split the plain "
          f"t-interval (training noise on one test set); clipped to the scale, [0, 1] for accuracies, and marked "
          f"{CLIP_MARK} where it reached past it. Under {MIN_SEEDS_FOR_INTERVAL} draws no interval is claimed and "
          f"the values are listed instead. F1: mean ± standard deviation over draws. {CAP_MARK}: some runs stopped "
          f"at their epoch cap. `study`: the published figure, a single run of the leaky `random` protocol. "
          f"Comparisons: the corrected resampled t-test over the draws both nets ran (a plain paired t-test on "
          f"`filtered`) and McNemar's exact test on the test tracks both scored, pooled over those draws; "
          f"significant means p < {ALPHA:g}, per comparison, not corrected for multiple comparisons.")


def _repeats_line(runs: pd.DataFrame) -> list[str]:
    """How many groups of repeated recordings the dataset has, from the newest run that says."""
    groups = pd.to_numeric(_col(runs, "params.repeat_groups"), errors="coerce").dropna()
    if groups.empty:
        return []
    newest = runs.loc[groups.index].sort_values("start_time").iloc[-1]
    n, members = int(float(newest["params.repeat_groups"])), newest.get("params.repeat_tracks", "?")
    return [f"- **Repeated recordings:** {n} group(s) ({members} tracks) found by fingerprint, each kept on one "
            "side of every split that assigns tracks (`track`, `filtered`, `kfold`) and in one fold; `random` "
            "scatters segments anyway (the manifest's `repeat_group` column names them)."]


def _header(experiment: str, runs: pd.DataFrame, notes: dict, tracking_uri: str) -> list[str]:
    code = sorted(set(_col(runs, "tags.code_version").dropna()))
    devices = sorted(set(_col(runs, "params.resolved_device").dropna()))
    lines = [f"# genre-bench report: {md(experiment)}", "",
             f"- **Dataset:** {md(notes['dataset'])}" + (" — **synthetic demo data, not GTZAN**" if notes["synthetic"] else ""),
             *_repeats_line(runs),
             f"- **Code version:** {', '.join(md(c) for c in code) or 'unknown'}",
             f"- **Device:** {', '.join(md(d) for d in devices) or 'unknown'}",
             f"- **Date:** {time.strftime('%Y-%m-%d %H:%M %Z')}",
             f"- **Tracking store:** {md(tracking_uri)}, experiment {md(experiment)}; {len(runs)} finished training runs."]
    if notes["unfinished"]:
        lines.append("- **Note:** unfinished training runs left out: "
                     + ", ".join(f"{n} {s}" for s, n in notes["unfinished"].items()) + ".")
    if notes["other_datasets"]:
        lines.append("- **Note:** runs on other datasets left out: "
                     + ", ".join(f"{n} on {md(d)}" for d, n in notes["other_datasets"].items()) + ".")
    if notes["duplicates"]:
        lines.append(f"- **Note:** {notes['duplicates']} repeated runs of the same grid point (the newest counts).")
    splits = " ".join(f"`{sp.name}`: {sp.description} (leaks tracks: {sp.leaks})." for sp in SPLIT_SPECS.values())
    return lines + ["", METHOD + " " + splits, ""]


def _table_block(t: Table, rel: str) -> list[str]:
    return [f"### {md(t.title)}", "", t.markdown(), "",
            f"Files: [{t.name}.csv]({rel}/{t.name}.csv) · [{t.name}.tex]({rel}/{t.name}.tex)", ""]


def context_table() -> Table:
    """Published GTZAN figures with their protocols (``reporting.context``)."""
    rows = [[number(p.accuracy, "{:.3f}"), text(p.what), text(p.protocol), text(f"`{p.split}`"), text(p.source)]
            for p in context.PUBLISHED]
    return Table("context", "Context: published GTZAN figures and their protocols",
                 ["Accuracy", "System", "Protocol", "Compare with", "Source"], rows, [context.NOTE])


def _split_block(split: str, section: SplitSection, made: Figures, rel: str) -> list[str]:
    lines = [f"## Split `{split}`", ""]
    for t in section.tables:
        lines += _table_block(t, rel)
    for c in section.comparisons:
        lines += [c.sentence(), ""]
    links = [f"[{what}]({rel}/{name})" for what, name in section.files.items()]
    if links:
        lines += ["More: " + " · ".join(links) + ".", ""]
    if split in made.confusion:
        c = made.confusion[split]
        over = "folds and seeds: every track once per seed" if SPLIT_SPECS[split].folded else "seeds"
        lines += [f"Confusion summed over {over} (counts: {', '.join(f'[{n}]({rel}/{n})' for n in c['csv'])}):", "",
                  f"![confusion matrices, split {split}]({rel}/{c['png']})", ""]
    if split in made.curves:
        lines += [f"![validation accuracy per epoch, split {split}]({rel}/{made.curves[split]})", ""]
    return lines


def render(experiment: str, runs: pd.DataFrame, all_runs: pd.DataFrame, notes: dict, rel: str, made: Figures,
           sections: dict[str, SplitSection], tracking_uri: str) -> str:
    lines = _header(experiment, runs, notes, tracking_uri)
    if made.headline:
        lines += ["## Headline: test accuracy per net and split", "",
                  f"![test accuracy per net, split by split, with the study's figures]({rel}/{made.headline})", ""]
    for split, section in sections.items():
        lines += _split_block(split, section, made, rel)
    gans = all_runs[(_col(all_runs, "tags.stage") == "gan") & (all_runs.status == "FINISHED")]
    if not gans.empty:
        q = summarize(pd.to_numeric(_col(gans, "metrics.gen_quality_accuracy"), errors="coerce"))
        lines += ["## WaveGAN", "", f"{len(gans)} finished GAN runs. Generated-clip quality (a real-data net5 "
                  f"recognising the intended genre; chance 0.100): {q}.", ""]
        if made.gan:
            lines += [f"![WaveGAN losses]({rel}/{made.gan})", ""]
    lines += ["## Context", "", *_table_block(context_table(), rel)]
    return "\n".join(lines)


def _predictions(runs: pd.DataFrame, files: Path) -> dict[str, pd.DataFrame]:
    """Each run's per-track test predictions; a run without them (older, or an artifact store
    that lost the file) is left out of the McNemar tests, not the report."""
    out = {}
    for rid in runs.run_id:
        try:
            out[rid] = pd.read_csv(download(rid, PREDICTIONS_FILE, str(files)), keep_default_na=False)
        except Exception:  # no such artifact: the tests use the runs that have one
            continue
    (files / PREDICTIONS_FILE).unlink(missing_ok=True)
    return out


def _write_sections(runs: pd.DataFrame, files: Path, predictions: dict) -> tuple[dict[str, SplitSection], list[str]]:
    """Each split's tables, comparisons and files (written into ``files``); the table files written."""
    sections, written = {}, []
    for split in (s for s in SPLIT_SPECS if s in set(runs.split)):
        section = SplitSection(split_tables(runs, split), pair_comparisons(runs, split, predictions))
        long, matrix = significance_tables(runs, split, predictions)
        write_csv(long, files / f"significance_{split}.csv")
        write_csv(matrix, files / f"pvalues_{split}.csv", index=True)
        section.files = {"all pairs: both tests": f"significance_{split}.csv",
                         "p-value matrix (t-test above, McNemar below)": f"pvalues_{split}.csv"}
        if SPLIT_SPECS[split].folded:
            write_csv(fold_accuracies(runs, split), files / f"folds_{split}.csv")
            section.files["accuracy per fold"] = f"folds_{split}.csv"
        sections[split] = section
    for t in [t for sec in sections.values() for t in sec.tables] + [context_table()]:
        (files / f"{t.name}.csv").write_text(t.csv())
        (files / f"{t.name}.tex").write_text(t.latex())
        written += [f"{t.name}.csv", f"{t.name}.tex"]
    return sections, written


def write_report(experiment: str, out: str | None = None, tracking_uri: str | None = None,
                 figures: bool = True) -> Report:
    """Build the report from the store and write it: ``reports/<experiment>/report.md`` by
    default, its ``.html`` twin, and the tables, CSVs and figures in ``<stem>_files/`` beside it."""
    open_existing_store(tracking_uri)
    df = experiment_runs(experiment)
    if df is None:
        raise ReportError(f"experiment {experiment!r} does not exist in {current_tracking_uri()}; nothing to report")
    if df.empty:
        raise ReportError(f"experiment {experiment!r} has no runs; nothing to report (run `benchmark sweep` first)")
    runs, notes = select_runs(df)
    path = Path(out or os.path.join("reports", safe_name(experiment), "report.md"))  # the title keeps the real name
    files = path.parent / f"{path.stem}_files"
    files.mkdir(parents=True, exist_ok=True)
    sections, written = _write_sections(runs, files, _predictions(runs, files))
    made = make_figures(runs, df, list(sections), files) if figures else Figures()
    text_ = render(experiment, runs, df, notes, files.name, made, sections, current_tracking_uri())
    path.write_text(text_ + "\n")
    page = path.with_suffix(".html")
    page.write_text(to_html(text_, path.parent, f"genre-bench report: {experiment}"))
    return Report(str(path), text_, len(runs), notes, str(page), written)
