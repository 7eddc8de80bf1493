"""The report's runs table, pure: which training runs count, and what the tables need of each.

``select_runs`` takes MLflow's runs DataFrame of one experiment (``tags.*``, ``params.*``,
``metrics.*`` columns) and keeps the FINISHED ``train`` runs of one dataset (the newest run's).
**One rule for repeats:** where a model ran more than once for one draw (a sweep re-run with
``--fresh``, or two grids in one experiment: net5 at 6 and at 50 epochs is the same model),
the newest run counts, in the tables and in the tests alike, and the header says how many were
left out. A *model* is a net at an epoch budget (``net2 50 ep``), an early-stopping net
(``net5``) or a classical baseline (``svm``); a *draw* is a (seed, fold) pair.
"""

from __future__ import annotations

import math

import pandas as pd

from genre_models.config import SPLIT_SPECS
from genre_models.errors import GenreBenchError
from genre_models.models.registry import NETS
from genre_models.reporting.stats import Cell, summarize

#: The unit a model's ``test_accuracy`` counts, by its input kind.
UNITS = {"image": "images", "mfcc": "segments", "raw": "segments", "stats": "segments"}


class ReportError(GenreBenchError):
    """Nothing trustworthy to report (no experiment, no finished runs)."""


def col(df: pd.DataFrame, name: str, default=None) -> pd.Series:
    return df[name] if name in df else pd.Series(default, index=df.index)


def metric(runs: pd.DataFrame, name: str) -> pd.Series:
    return pd.to_numeric(col(runs, f"metrics.{name}"), errors="coerce")


def count(runs: pd.DataFrame, name: str, older: str | None = None) -> pd.Series:
    """A count logged as a parameter (``params.<name>``), or as the metric ``older`` by earlier versions."""
    found = pd.to_numeric(col(runs, f"params.{name}"), errors="coerce")
    return found.fillna(metric(runs, older)) if older else found


def whole_numbers(values: pd.Series, low: int, high: int) -> pd.Series:
    """``values`` as whole numbers within [``low``, ``high``]; anything else (text, -790, 1.5,
    inf, 1e308) is NaN. A count read back from a store is a stranger's text until checked."""
    found = pd.to_numeric(values, errors="coerce")
    return found.where((found >= low) & (found <= high) & (found == found.round()))


#: A run's counts as logged (params, or metrics by older versions), and the range each must lie in.
COUNTS = {"n_test": "n_test", "n_train": "n_train", "n_test_tracks": "test_n_tracks", "n_train_tracks": None,
          "n_train_real": None, "n_train_effective": None}
MAX_COUNT = 10**8


def _bad_figures(train: pd.DataFrame) -> pd.Series:
    """Why each run's figures cannot be used ("" where they can): an accuracy, F1 or share
    outside [0, 1] (or not finite), a count that is not a whole number from 1 up. A run with a
    test accuracy of -5 or 1e308, or 0 test tracks (which would narrow every interval), costs
    its own row, never the report's arithmetic."""
    why = pd.Series("", index=train.index, dtype=object)
    for name in sorted(c for c in train.columns if c.startswith("metrics.") and ("accuracy" in c or "f1" in c)):
        value = pd.to_numeric(train[name], errors="coerce")
        given = train[name].notna()
        why[(why == "") & given & ~((value >= 0) & (value <= 1))] = f"{name[len('metrics.'):]} outside [0, 1]"
    for name, older in COUNTS.items():
        raw = col(train, f"params.{name}")
        if older:
            raw = raw.fillna(col(train, f"metrics.{older}"))
        bad = raw.notna() & whole_numbers(raw, 1, MAX_COUNT).isna()
        why[(why == "") & bad] = f"{name} not a count from 1 up"
    return why


def choose_dataset(train: pd.DataFrame, wanted: str | None = None) -> tuple[str, str]:
    """The dataset the report is of, and why, in words: ``wanted`` when given (it must have
    finished training runs here), else the one most finished training runs were trained on
    (ties: the newest run's). Never simply the newest run's: one planted run of another
    dataset would then hide every real run of the experiment."""
    datasets = col(train, "tags.dataset").dropna().astype(str)
    counts = datasets.value_counts()
    if wanted is not None:  # the whole tag (gtzan@bad7f0b1), or its digest alone
        found = [d for d in counts.index if wanted in (d, d.rsplit("@", 1)[-1])]
        if len(found) != 1:
            there = ", ".join(f"{d} ({n} runs)" for d, n in counts.items()) or "none"
            raise ReportError(f"no finished training run of dataset {wanted!r} in this experiment; its datasets: {there}")
        return found[0], "was chosen with --dataset"
    if counts.empty:
        raise ReportError("no finished training run here says which dataset it was trained on (no dataset tag)")
    top = counts[counts == counts.max()].index
    newest = train[datasets.reindex(train.index).isin(top)].sort_values("start_time").iloc[-1]["tags.dataset"]
    return newest, f"is the one {int(counts.max())} of the {int(counts.sum())} finished training runs were trained on"


def model_name(net: str, epochs, fixed_epochs: bool) -> str:
    """What the report calls a model: a fixed-epoch net with its budget (``net2 50 ep``), any
    other net (early stopping, or a classical baseline fitted once) by its name."""
    return f"{net} {int(epochs)} ep" if fixed_epochs else net


def _net_columns(train: pd.DataFrame) -> None:
    """What the tables need of each run's net, from the registry for built-in nets and from the
    run itself for a plugin's (whose package the report's process may not have)."""
    es = col(train, "params.resolved.early_stopping").fillna(col(train, "params.early_stopping"))
    train["early_stopping"] = [NETS[n].early_stopping if n in NETS else str(v) == "True" for n, v in zip(train.net, es)]
    train["input_kind"] = [NETS[n].input_kind if n in NETS else k for n, k in zip(train.net, col(train, "tags.input_kind", "mfcc"))]
    train["origin"] = [NETS[n].origin if n in NETS else o for n, o in zip(train.net, col(train, "tags.net_origin", "plugin"))]
    train["baseline"] = [NETS[n].baseline if n in NETS else b for n, b in zip(train.net, col(train, "tags.net_baseline"))]
    train["family"] = [NETS[n].family if n in NETS else (f if isinstance(f, str) else "torch")
                       for n, f in zip(train.net, col(train, "tags.net_family"))]
    train["fixed_epochs"] = ~train.early_stopping.astype(bool) & (train.family == "torch")
    train["unit"] = [UNITS.get(k, "segments") for k in train.input_kind]


def _ratios(train: pd.DataFrame) -> pd.Series:
    """Each run's n_test / n_train for Nadeau & Bengio's correction, from the *real* training
    part: by tracks where the split assigns tracks, else by samples (net6's generated ones out).
    The training tracks count by their effective number where the run logged it
    (``data.splits.effective_tracks``: a repeated recording teaches nothing new); a run from
    before that (or a planted value out of range) counts its tracks."""
    effective = train.n_train_effective.where((train.n_train_effective >= 1)
                                              & (train.n_train_effective <= train.n_train_tracks))
    by_tracks = train.n_test_tracks / effective.fillna(train.n_train_tracks)
    real = train.n_train_real.fillna(train.n_train)
    by_samples = train.n_test / real
    honest = train.split.map(lambda s: SPLIT_SPECS[s].honest if s in SPLIT_SPECS else False).astype(bool)
    return by_tracks.where(honest & by_tracks.notna(), by_samples)


def _malformed(train: pd.DataFrame) -> pd.Series:
    """Why each run cannot be placed in a table ("" where it can): a seed that is not a whole
    number, a fold that is there but not one, no net, or a fixed-epoch net (``_net_columns``'
    rule, plugins' too) with no epoch count.
    Tags are data from whoever logged the run: a bad one costs that run, never the report."""
    seed = pd.to_numeric(col(train, "tags.seed"), errors="coerce")
    fold_raw = col(train, "tags.fold")
    fold = pd.to_numeric(fold_raw, errors="coerce")
    why = pd.Series("", index=train.index, dtype=object)
    why[train.net.str.strip() == ""] = "no net tag"
    why[(why == "") & ~((seed >= 0) & (seed <= 2**32 - 1) & (seed == seed.round()))] = "seed not a whole number"
    why[(why == "") & fold_raw.notna() & ~((fold >= 0) & (fold == fold.round()))] = "fold not a whole number"
    epochs = pd.to_numeric(col(train, "params.resolved.epochs").fillna(col(train, "params.epochs")), errors="coerce")
    why[(why == "") & train.fixed_epochs.astype(bool) & ~(epochs >= 1)] = "epochs not a number"  # its model is "net E ep"
    return why


def select_runs(df: pd.DataFrame, dataset: str | None = None) -> tuple[pd.DataFrame, dict]:
    """FINISHED train runs of one dataset (``choose_dataset``), one per model and draw (the
    newest); plus what was left out and why."""
    notes: dict = {}
    every = df[col(df, "tags.stage") == "train"].copy()
    train = every[every.status == "FINISHED"]
    if train.empty:
        total = ", ".join(f"{n} {s}" for s, n in every.status.value_counts().items()) or "none at all"
        raise ReportError(f"no FINISHED training runs in this experiment (training runs: {total}); nothing to report")
    dataset, notes["dataset_choice"] = choose_dataset(train, dataset)
    newest = train[train["tags.dataset"] == dataset].sort_values("start_time").iloc[-1]
    unfinished = every[(every.status != "FINISHED") & (col(every, "tags.dataset") == dataset)]
    notes["unfinished"] = unfinished.status.value_counts().to_dict()
    notes["other_datasets"] = train[train["tags.dataset"] != dataset]["tags.dataset"].value_counts().to_dict()
    train = train[(train["tags.dataset"] == dataset) & col(train, "tags.split").isin(list(SPLIT_SPECS))].copy()
    train["net"], train["split"] = col(train, "tags.net").fillna("").astype(str), train["tags.split"]
    _net_columns(train)
    why = _malformed(train)
    why = why.where(why != "", _bad_figures(train))
    notes["malformed"] = why[why != ""].value_counts().to_dict()
    train = train[why == ""]
    if train.empty:
        raise ReportError(f"no training run of {dataset} could be placed in a table (left out: "
                          + ", ".join(f"{n} with {w}" for w, n in notes["malformed"].items()) + ")")
    epochs = col(train, "params.resolved.epochs").fillna(col(train, "params.epochs"))
    train["epochs"] = pd.to_numeric(epochs, errors="coerce").astype("Int64")
    train["seed"] = pd.to_numeric(train["tags.seed"]).astype("int64")
    train["fold"] = pd.to_numeric(col(train, "tags.fold"), errors="coerce").fillna(-1).astype(int)  # -1: no folds
    train["model"] = [model_name(n, e, f) for n, e, f in zip(train.net, train.epochs, train.fixed_epochs)]
    for name, older in COUNTS.items():  # checked above: a whole number from 1 up where given
        train[name] = whole_numbers(count(train, name, older), 1, MAX_COUNT)
    train["ratio"] = _ratios(train)
    before = len(train)
    train = train.sort_values("start_time").groupby(["model", "split", "seed", "fold"], as_index=False, dropna=False).last()
    notes["duplicates"] = before - len(train)
    notes["dataset"] = dataset
    notes["synthetic"] = newest.get("tags.dataset_synthetic", "") == "true"
    return train, notes


def ordered(nets) -> list[str]:
    """The registry's order, then other nets (plugins) by name."""
    nets = set(nets)
    return [n for n in NETS if n in nets] + sorted(nets - set(NETS))


def nets_on(runs: pd.DataFrame, split: str) -> list[str]:
    return ordered(runs[runs.split == split].net)


def budgets(r: pd.DataFrame) -> list[int]:
    return sorted(int(e) for e in r.epochs.dropna().unique())


def longest_budget(r: pd.DataFrame) -> pd.DataFrame:
    """A fixed-epoch net's runs at its longest epoch setting; any other net's, all."""
    return r if r.empty or not r.fixed_epochs.iloc[0] else r[r.epochs == r.epochs.max()]


def models_of(runs: pd.DataFrame, split: str) -> list[str]:
    """The split's models in table order: each net, a fixed-epoch net once per budget."""
    sub = runs[runs.split == split]
    out = []
    for net in nets_on(runs, split):
        r = sub[sub.net == net]
        out += [model_name(net, e, True) for e in budgets(r)] if r.fixed_epochs.iloc[0] else [net]
    return out


def model_of(sub: pd.DataFrame, net: str) -> str | None:
    """A net's model in a comparison: a fixed-epoch net at its longest budget, any other net
    itself; None where the net has no runs."""
    mask = (sub.net == net).to_numpy(dtype=bool)  # two columns read, not a filtered frame: it runs often
    if not mask.any():
        return None
    if not bool(sub.fixed_epochs.to_numpy()[mask][0]):
        return net
    epochs = pd.to_numeric(sub.epochs[mask], errors="coerce").dropna()
    return model_name(net, int(epochs.max()), True)


def summary(r: pd.DataFrame, name: str, bounds: tuple[float, float] = (0.0, 1.0)) -> Cell:
    """A metric of one split's runs over their draws, the interval corrected where the split
    resamples (``reporting.stats``) by the runs' own n_test / n_train (no interval where a run
    lacks its counts); on a fixed split a test accuracy's interval carries the test set's error."""
    if r.empty:
        return summarize([], bounds)
    ratios = pd.to_numeric(r.ratio, errors="coerce")
    if SPLIT_SPECS[r.split.iloc[0]].resampled:
        return summarize(metric(r, name), bounds, float(ratios.mean()) if ratios.notna().all() else math.nan)
    tracks = pd.to_numeric(r.n_test_tracks, errors="coerce") if "n_test_tracks" in r else pd.Series(dtype=float)
    sampled = name.startswith("test_") and name.endswith("accuracy") and tracks.notna().any()
    return summarize(metric(r, name), bounds, 0.0, int(tracks.min()) if sampled else 0)
