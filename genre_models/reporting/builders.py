"""The report's tables, pure: each builder takes the runs table (``reporting.runs``) and returns
a ``Table`` (markdown, CSV and LaTeX at once), a frame, or the comparisons a split draws.

Table 1 holds the fixed-epoch nets, Table 2 the early-stopping ones, Table 3 the classical
baselines beside the two floors every split has (chance, and always answering the training
part's majority genre). The study's figures come from one run of the leaky ``random``
protocol: they compare with the ``random`` block, not with ``track``.
"""

from __future__ import annotations

import pandas as pd

from genre_models.config import SPLIT_SPECS
from genre_models.genres import GENRES, N_CLASSES
from genre_models.models.registry import NETS, comparisons
from genre_models.reporting import context
from genre_models.reporting.figures import Bar
from genre_models.reporting.runs import (
    budgets, longest_budget, metric, model_name, model_of, nets_on, ordered, summary,
)
from genre_models.reporting.stats import summarize
from genre_models.reporting.tables import Entry, Table, interval, number, spread, text

CAP_MARK = "†"
_KIND_WORDS = {"image": "spectrogram", "mfcc": "audio", "raw": "audio", "stats": "audio"}


def fixed_epoch_nets(runs: pd.DataFrame) -> list[str]:
    return ordered(runs[runs.fixed_epochs.astype(bool)].net)


def early_stopping_nets(runs: pd.DataFrame) -> list[str]:
    return ordered(runs[runs.early_stopping.astype(bool) & (runs.family == "torch")].net)


def baseline_nets(runs: pd.DataFrame) -> list[str]:
    return ordered(runs[runs.family == "classical"].net)


def table_title(number_: int, nets: list[str], runs: pd.DataFrame) -> str:
    """e.g. "Table 1: spectrogram models (net1-net4)", from the nets' input kinds."""
    kinds = {_KIND_WORDS.get(k, k) for k in runs[runs.net.isin(nets)].input_kind}
    words = f"{kinds.pop()} models" if len(kinds) == 1 else "models"
    numbered = len(nets) > 2 and all(n.startswith("net") and n[3:].isdigit() for n in nets)
    span = f"{nets[0]}-{nets[-1]}" if numbered else ", ".join(nets)  # net1-net4; net5, net6, net5-raw
    return f"Table {number_}: {words} ({span})"


def label(net: str, runs: pd.DataFrame, suffix: str = "") -> Entry:
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


def study_entry(net: str, key: str, fmt: str = "{:.4f}") -> Entry:
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
    settings = budgets(sub)
    study_epochs = sorted({e for n in nets if n in NETS for e in NETS[n].study_epochs})
    header = ["Model", "Test tracks / images"]
    for i, e in enumerate(settings):
        header += [f"Accuracy ({e} epochs)"] + ([f"study ({study_epochs[i]} ep)"] if i < len(study_epochs) else [])
    rows = []
    for net in (n for n in nets if not sub[sub.net == n].empty):
        r = sub[sub.net == net]
        row = [label(net, runs), sizes(r)]
        for i, e in enumerate(settings):
            row.append(interval(summary(r[r.epochs == e], "test_accuracy")))
            if i < len(study_epochs):
                row.append(study_entry(net, f"acc_{study_epochs[i]}"))
        rows.append(row)
    return Table(f"table1_{split}", f"{table_title(1, nets, runs)}, split {split}", header, rows, plugin_notes(sub, nets))


def _stopped(r: pd.DataFrame) -> tuple[Entry, str | None]:
    """The early-stopping epoch over draws, marked where a run stopped at its epoch cap."""
    stopped, cap = metric(r, "stopped_epoch"), pd.to_numeric(r.epochs, errors="coerce")
    at_cap = int(((stopped >= cap) & stopped.notna()).sum())
    cell = summary(r, "stopped_epoch", bounds=(1.0, float(cap.max()) if cap.notna().any() else float("inf")))
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
        rows.append([label(net, runs), sizes(r), interval(summary(r, "test_accuracy")), study_entry(net, "acc"),
                     interval(summary(r, "test_track_accuracy")), stopped, study_entry(net, "stopped_epoch", "{}")])
    return Table(f"table2_{split}", f"{table_title(2, nets, runs)}, split {split}", header, rows,
                 notes + plugin_notes(sub, nets))


def _chosen(r: pd.DataFrame) -> Entry:
    """A baseline's hyper-parameters as chosen on validation, the most frequent over draws."""
    cols = sorted(c for c in r.columns if c.startswith("params.chosen.") and r[c].notna().any())
    if not cols:
        return text("–")
    combos = r[cols].astype(str).agg(", ".join, axis=1)
    best, n = combos.value_counts().index[0], int(combos.value_counts().iloc[0])
    names = [c.removeprefix("params.chosen.") for c in cols]
    return text(", ".join(f"{k} {v}" for k, v in zip(names, best.split(", "))) + f" ({n} of {len(r)})")


def _floor_rows(sub: pd.DataFrame) -> list[list[Entry]]:
    """Chance and the majority-genre floor, from the draws' runs (segment-scored ones where any)."""
    scored = sub[sub.unit == "segments"] if (sub.unit == "segments").any() else sub
    draws = scored.sort_values("run_id").groupby(["seed", "fold"], as_index=False).first()
    if "metrics.test_majority_accuracy" not in draws or draws["metrics.test_majority_accuracy"].isna().all():
        return []
    chance = number(1 / N_CLASSES, "{:.3f}")
    return [[text("majority genre of the training part (floor)"), sizes(draws),
             interval(summary(draws, "test_majority_accuracy")), interval(summary(draws, "test_majority_track_accuracy")),
             text("–")],
            [text("chance (floor)"), text("–"), chance, chance, text("–")]]


def baseline_table(runs: pd.DataFrame, split: str) -> Table | None:
    """Table 3: the classical baselines beside the split's two floors."""
    nets, sub = baseline_nets(runs), runs[runs.split == split]
    rows = [[label(n, runs), sizes(r), interval(summary(r, "test_accuracy")), interval(summary(r, "test_track_accuracy")),
             _chosen(r)] for n in nets for r in [sub[sub.net == n]] if not r.empty] + _floor_rows(sub)
    if not rows:
        return None
    notes = ["Floors: chance is 1/10 whatever the split; the majority floor answers every test sample with the "
             "training part's most common genre, per draw."]
    return Table(f"table3_{split}", f"Table 3: classical baselines and floors, split {split}",
                 ["Model", "Test tracks / segments", "Accuracy (segments)", "Track accuracy (vote)",
                  "Chosen on validation (most often)"], rows, notes)


def f1_table(runs: pd.DataFrame, split: str) -> Table | None:
    """Macro and per-genre test F1, mean ± sd over draws; fixed-epoch nets at their longest budget."""
    sub = runs[runs.split == split]
    if sub.empty:
        return None
    rows = []
    for net in nets_on(runs, split):
        r = longest_budget(sub[sub.net == net])
        name = label(net, runs, f" ({int(r.epochs.max())} ep)" if r.fixed_epochs.iloc[0] else "")
        rows.append([name, spread(summarize(metric(r, "test_macro_f1")))]
                    + [spread(summarize(metric(r, f"test_f1_{g}"))) for g in GENRES])
    over = "folds and seeds" if SPLIT_SPECS[split].folded else "seeds"
    return Table(f"f1_{split}", f"Test F1 per genre (mean ± sd over {over}), split {split}",
                 ["Model", "macro F1"] + list(GENRES), rows)


def split_tables(runs: pd.DataFrame, split: str) -> list[Table]:
    return [t for t in (image_table(runs, split), audio_table(runs, split), baseline_table(runs, split),
                        f1_table(runs, split)) if t is not None]


def drawn_comparisons(runs: pd.DataFrame, split: str) -> list[tuple[str, str]]:
    """The (a, b) model pairs the report compares on ``split``: each registry net against its
    baseline, a plugin against its ``baseline``, each net against the best classical baseline,
    and each fixed-epoch net's shorter budget against its longest."""
    sub = runs[runs.split == split]
    plugin_pairs = {(b, n) for n, b in zip(sub.net, sub.baseline) if n not in NETS and isinstance(b, str) and b}
    pairs = []
    for base, net in comparisons() + sorted(plugin_pairs, key=lambda p: p[1]):
        a, b = model_of(sub, base), model_of(sub, net)
        if a and b:
            pairs.append((a, b))
    best = best_baseline(sub)
    if best:
        pairs += [(best, model_of(sub, net)) for net in nets_on(runs, split) if net not in baseline_nets(sub)]
    for net in fixed_epoch_nets(sub):
        b_ = budgets(sub[sub.net == net])
        pairs += [(model_name(net, e, True), model_name(net, b_[-1], True)) for e in b_[:-1]]
    return list(dict.fromkeys(pairs))


def best_baseline(sub: pd.DataFrame) -> str | None:
    """The classical baseline with the highest mean *validation* track accuracy on a split (None
    without one): chosen on test accuracy, then tested on it, the pick would favour the baseline."""
    nets = baseline_nets(sub)
    if not nets:
        return None

    def score(n: str) -> float:
        r = sub[sub.net == n]
        v = metric(r, "val_track_accuracy")
        return float(v.mean()) if v.notna().any() else float(metric(r, "val_accuracy").mean())
    return max(nets, key=lambda n: (score(n), n))


def fold_accuracies(runs: pd.DataFrame, split: str) -> pd.DataFrame:
    """Under a folded split: each run's test accuracy and its draw's majority floor, by model, seed and fold."""
    sub = runs[runs.split == split].sort_values(["model", "seed", "fold"])
    return pd.DataFrame({"model": sub.model, "seed": sub.seed, "fold": sub.fold,
                         "test_accuracy": metric(sub, "test_accuracy"),
                         "test_track_accuracy": metric(sub, "test_track_accuracy"),
                         "majority_floor_track_accuracy": metric(sub, "test_majority_track_accuracy"),
                         "chance": 1 / N_CLASSES, "test_tracks": sub.n_test_tracks, "run_id": sub.run_id})


def context_table() -> Table:
    """Published GTZAN figures with their protocols (``reporting.context``)."""
    rows = [[number(p.accuracy, "{:.3f}"), text(p.what), text(p.protocol), text(f"`{p.split}`"), text(p.source)]
            for p in context.PUBLISHED]
    return Table("context", "Context: published GTZAN figures and their protocols",
                 ["Accuracy", "System", "Protocol", "Compare with", "Source"], rows, [context.NOTE])


def split_title(split: str) -> str:
    spec = SPLIT_SPECS[split]
    return f"split {split}: " + ("honest, no track on two sides" if spec.honest else f"leaky ({spec.leaks})")


def headline_bars(runs: pd.DataFrame, split: str) -> list[Bar]:
    """Each model with its test accuracy over draws and the study's figure for the same budget
    (budgets paired in order, as in Table 1)."""
    sub, bars = runs[runs.split == split], []
    for net in nets_on(runs, split):
        r = sub[sub.net == net]
        published, study_budgets = (NETS[net].study, NETS[net].study_epochs) if net in NETS else ({}, [])
        if not r.fixed_epochs.iloc[0]:
            bars.append(Bar(net, summary(r, "test_accuracy"), published.get("acc")))
            continue
        for i, e in enumerate(budgets(r)):
            study = published.get(f"acc_{study_budgets[i]}") if i < len(study_budgets) else None
            bars.append(Bar(model_name(net, e, True), summary(r[r.epochs == e], "test_accuracy"), study))
    return bars
