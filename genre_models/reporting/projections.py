"""The cost projection's own record: per sweep in the experiment, the seconds it was projected to
take and the seconds it took, and per net, the same over its points. Every figure is read back
from the store (metrics and tags any colleague can write), so each is checked to be a finite,
positive number before it counts; a figure that is not is shown as missing, never as zero."""

from __future__ import annotations

import math

import pandas as pd

from genre_models.reporting.runs import col, metric
from genre_models.reporting.tables import Table, number, text

#: Sweeps shown, newest first (the CSV holds the same rows).
MAX_SWEEPS = 20

NOTE = ("Real: from the projection's line to the sweep's end (feature extraction and the probe come "
        "before it and are not projected there). Real / projected above 1: the sweep took longer than "
        "projected. Figures from: where each stage's seconds and an early-stopping net's epochs came from "
        "(probe, store, prior).")


LOAD_NOTE = ("Others' load while probing: the share of the cores other work held while the cost probe ran "
             "(`/proc/stat`, this process's own time taken out). Over 25%, the probe read slow and the sweep ran "
             "faster than projected unless the load stayed.")


def _positive(values: pd.Series) -> pd.Series:
    """Finite positive numbers; anything else (text planted in a tag, inf, 0) becomes NaN."""
    v = pd.to_numeric(values, errors="coerce")
    return v.where(v.map(lambda x: isinstance(x, float) and math.isfinite(x) and x > 0))


def _seconds(value: float) -> str:
    return "–" if not math.isfinite(value) else (f"{value:.0f} s" if value < 600 else f"{value / 60:.1f} min")


def _run_seconds(runs: pd.DataFrame) -> pd.Series:
    return _positive((runs.end_time - runs.start_time).dt.total_seconds()) if not runs.empty else pd.Series(dtype=float)


def sweep_table(all_runs: pd.DataFrame) -> Table | None:
    """One row per sweep that logged a projection, newest first: projected, real and their ratio."""
    sweeps = all_runs[col(all_runs, "tags.stage") == "sweep"]
    load = metric(sweeps, "probe_others_busy")
    sweeps = sweeps.assign(projected=_positive(metric(sweeps, "projected_seconds")),
                           real=_positive(metric(sweeps, "projected_span_seconds")),
                           load=load.where((load >= 0) & (load <= 1)))
    sweeps = sweeps[sweeps.projected.notna()].sort_values("start_time", ascending=False)
    if sweeps.empty:
        return None
    rows = []
    for _, r in sweeps.head(MAX_SWEEPS).iterrows():
        started = r.start_time.strftime("%Y-%m-%d %H:%M") if pd.notna(r.start_time) else "–"
        rows.append([text(str(r.get("tags.mlflow.runName") or r.run_id)), text(started), text(str(r.status)),
                     text(_seconds(r.projected)), text(_seconds(r.real)), number(r.real / r.projected, "{:.2f}"),
                     number(r.load, "{:.0%}"), text(str(r.get("tags.projection_sources") or "–"))])
    return Table("projections", "The cost projection's record: each sweep, projected against real",
                 ["Sweep", "Started", "Status", "Projected", "Real", "Real / projected", "Others' load while probing",
                  "Figures from"], rows, [NOTE, LOAD_NOTE])


def net_table(all_runs: pd.DataFrame) -> Table | None:
    """Per net (and the WaveGAN), over its finished points that carry their projected seconds:
    the points, their projected and real seconds, and the ratio."""
    runs = all_runs[(all_runs.status == "FINISHED") & col(all_runs, "tags.stage").isin(["train", "gan"])]
    runs = runs.assign(projected=_positive(col(runs, "tags.projected_seconds")), real=_run_seconds(runs),
                       what=col(runs, "tags.net").fillna("gan"))
    runs = runs[runs.projected.notna() & runs.real.notna()]
    if runs.empty:
        return None
    rows = []
    for what, r in runs.groupby("what", sort=True):
        rows.append([text(str(what)), number(len(r), "{:.0f}"), text(_seconds(r.projected.sum())),
                     text(_seconds(r.real.sum())), number(r.real.sum() / r.projected.sum(), "{:.2f}")])
    return Table("projections_per_net", "The cost projection's record: each net's points, projected against real",
                 ["Net", "Points", "Projected", "Real", "Real / projected"], rows,
                 ["Real: each point's run, from its start to its end."])


def projection_tables(all_runs: pd.DataFrame) -> list[Table]:
    """The tables of the projection's record that the experiment has data for."""
    return [t for t in (sweep_table(all_runs), net_table(all_runs)) if t is not None]
