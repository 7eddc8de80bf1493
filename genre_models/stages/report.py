"""The report stage (``benchmark report``): the study's tables, claims, figures and comparisons,
rebuilt from the tracking store, as markdown (primary, readable on GitHub), a self-contained HTML
page, and every table as CSV and LaTeX beside them; and one MLflow run (``stage=report``)
that keeps the report and its claims tables.

Orchestration only: the runs table, the tables, the claims and the markdown are pure functions
in ``genre_models.reporting``. This stage reads the store (the runs, and in parallel only the
artifacts the report shows: each run's per-track votes, the confusion matrices and validation
curves of the runs drawn), writes the files and logs the run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from genre_models.config import SPLIT_SPECS
from genre_models.genres import GENRES
from genre_models.reporting import figures as fig
from genre_models.reporting.answers import answer_block
from genre_models.reporting.builders import context_table, fold_accuracies, headline_bars, split_tables, split_title
from genre_models.reporting.claims_tables import claims_detail_table, claims_frame, claims_table
from genre_models.reporting.html import to_html
from genre_models.reporting.markdown import Figures, SplitSection, appendix, render
from genre_models.reporting.projections import projection_tables
from genre_models.reporting.runs import ReportError, col, longest_budget, nets_on, select_runs
from genre_models.reporting.significance import Votes
from genre_models.reporting.tables import Table
from genre_models.reporting.verdicts import significance_frame, split_verdicts
from genre_models.training.logger import NULL_LOGGER, RunLogger
from genre_models.tracking.queries import experiment_runs, metric_steps, read_artifacts, rows_of, run_votes
from genre_models.tracking.retry import store_client
from genre_models.tracking.views import view_links
from genre_models.tracking.setup import current_tracking_uri, open_existing_store, use_experiment
from genre_models.outputs import check_not_linked, replace_folder
from genre_models.util import atomic_write, log, safe_name, write_csv

__all__ = ["Report", "ReportError", "write_report"]

#: Artifacts read at once: local files parse in threads, a server's download in them.
FETCH_JOBS = 8


@dataclass
class Report:
    path: str
    text: str
    n_runs: int
    notes: dict = field(default_factory=dict)
    html: str | None = None
    tables: list[str] = field(default_factory=list)  # CSV and LaTeX files written
    run_id: str | None = None  # the report's own MLflow run
    views: list = field(default_factory=list)  # tracking.views.ViewLink: each split's nets side by side


def _fetch(runs: pd.DataFrame, path: str, parse, jobs: int) -> dict:
    return read_artifacts(list(zip(runs.run_id, runs.artifact_uri)), path, parse, jobs)


def read_votes(runs: pd.DataFrame, jobs: int) -> Votes:
    """Every run's track votes, with the repeat groups any run recorded."""
    right, groups = run_votes(list(zip(runs.run_id, runs.artifact_uri)), jobs)
    return Votes.of(right, groups)


def _confusion_file(path: str) -> np.ndarray:
    counts = np.array([[int(float(v)) for v in r[1:]] for r in rows_of(path)[1:]], dtype=np.int64)
    if counts.shape != (len(GENRES), len(GENRES)):
        raise ValueError(f"{path}: not a {len(GENRES)}x{len(GENRES)} confusion matrix")
    return counts


def _history_file(path: str) -> list[float]:
    head, *body = rows_of(path)
    i = head.index("val_accuracy")
    return [float(r[i]) for r in body]


# --------------------------------------------------------------------------- figures


def _confusions(runs: pd.DataFrame, split: str, files: Path, jobs: int) -> dict | None:
    mats, csvs = {}, []
    for net in nets_on(runs, split):
        r = longest_budget(runs[(runs.split == split) & (runs.net == net)])
        found = _fetch(r, "confusion_matrix.csv", _confusion_file, jobs)  # runs that lost the file are left out
        if found:
            counts = sum(found.values())
            mats[net] = (counts, len(found))
            name = f"confusion_{split}_{safe_name(net)}.csv"  # a net's name comes from run tags: never a path
            write_csv(pd.DataFrame(counts, index=GENRES, columns=GENRES).rename_axis("true\\pred"), files / name, index=True)
            csvs.append(name)
    if not mats:
        return None
    png = f"confusion_{split}.png"
    fig.confusions(mats, f"Test confusion summed over seeds, split {split} (colour: share of the true genre's row)",
                   files / png)
    return {"png": png, "csv": csvs}


def _curves(runs: pd.DataFrame, split: str, files: Path, jobs: int) -> str | None:
    by_net = {}
    for net in nets_on(runs, split):
        r = longest_budget(runs[(runs.split == split) & (runs.net == net)])
        found = _fetch(r, "history.csv", _history_file, jobs)
        missing = [rid for rid in r.run_id if rid not in found]  # older runs: the metric's history instead
        curves = [c for c in [*found.values(), *([v for _, v in metric_steps(rid, "val_accuracy")] for rid in missing)] if c]
        if curves:
            by_net[net] = curves
    if not by_net:
        return None
    name = f"val_curves_{split}.png"
    fig.curves(by_net, f"validation accuracy per epoch, split {split}", files / name)
    return name


def _gan_losses(all_runs: pd.DataFrame, files: Path) -> str | None:
    gans = all_runs[(col(all_runs, "tags.stage") == "gan") & (all_runs.status == "FINISHED")]
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


def make_figures(runs: pd.DataFrame, all_runs: pd.DataFrame, splits: list[str], files: Path, jobs: int) -> Figures:
    made = Figures()
    panels = {s: b for s in splits for b in [headline_bars(runs, s)] if b}
    if panels:
        fig.headline(panels, {s: split_title(s) for s in panels}, files / "headline.png")
        made.headline = "headline.png"
    for split in splits:
        conf, curve = _confusions(runs, split, files, jobs), _curves(runs, split, files, jobs)
        if conf:
            made.confusion[split] = conf
        if curve:
            made.curves[split] = curve
    made.gan = _gan_losses(all_runs, files)
    return made


# --------------------------------------------------------------------------- tables and files


def _write_split(runs: pd.DataFrame, split: str, files: Path, votes: Votes, gans: pd.DataFrame) -> SplitSection:
    """One split's verdicts (one Holm family), answers, tables and files (written into ``files``)."""
    v = split_verdicts(runs, split, votes)
    section = SplitSection(split_tables(runs, split), v.comparisons, claims_table(v.claims, split),
                           family=v.family_words(), detail=claims_detail_table(v.claims, split),
                           answers=answer_block(v, runs, gans))
    write_csv(significance_frame(v), files / f"significance_{split}.csv")
    write_csv(v.matrix, files / f"pvalues_{split}.csv", index=True)
    write_csv(claims_frame(v.claims, split), files / f"claims_tests_{split}.csv")
    section.files = {"all pairs (exploratory, unadjusted) with McNemar per draw": f"significance_{split}.csv",
                     "p-value matrix (unadjusted; McNemar per draw below)": f"pvalues_{split}.csv",
                     "every test behind the claims": f"claims_tests_{split}.csv"}
    if SPLIT_SPECS[split].folded:
        write_csv(fold_accuracies(runs, split), files / f"folds_{split}.csv")
        section.files["accuracy and floors per fold"] = f"folds_{split}.csv"
    return section


def _write_sections(runs: pd.DataFrame, files: Path, votes: Votes, extra: list[Table],
                    gans: pd.DataFrame) -> tuple[dict[str, SplitSection], list[str]]:
    """Each split's tables, claims, comparisons and files (written into ``files``), with the
    ``extra`` tables and the context; the table files written. ``gans``: the finished GAN runs."""
    sections = {split: _write_split(runs, split, files, votes, gans) for split in SPLIT_SPECS
                if split in set(runs.split)}
    written = []
    for t in [t for sec in sections.values() for t in [*sec.tables, sec.claims]] + extra + [context_table()]:
        (files / f"{t.name}.csv").write_text(t.csv())
        (files / f"{t.name}.tex").write_text(t.latex())
        written += [f"{t.name}.csv", f"{t.name}.tex"]
    return sections, written


def _log_report(logger: RunLogger, experiment: str, report: Report, files: Path, notes: dict) -> str | None:
    """The report's own run: what it read, and the report with its claims tables."""
    with logger.start(f"report-{safe_name(experiment)}"):
        logger.set_tags({"stage": "report", "dataset": notes["dataset"],
                         "mlflow.note.content": f"The genre-bench report of {report.n_runs} finished training runs on "
                                                f"{notes['dataset']}; claims_*.csv hold the study's claims, tested."})
        logger.log_params({"n_runs": report.n_runs, "duplicates_left_out": notes["duplicates"]})
        logger.log_file(report.path)
        for claims in sorted(files.glob("claims_*.csv")):
            logger.log_file(claims, "claims")
        return logger.run_id


def _views(exp_id: str | None, splits: list[str]) -> list:
    """Each reported split's saved view in the MLflow UI; none where the store will not say."""
    if exp_id is None:
        return []
    try:
        return view_links(store_client(), current_tracking_uri(), exp_id, splits)
    except Exception as exc:  # the report stands without them
        log.warning("the report is written, but its views could not be found: %s", str(exc).splitlines()[0][:200])
        return []


def write_report(experiment: str, out: str | None = None, tracking_uri: str | None = None, figures: bool = True,
                 jobs: int = FETCH_JOBS, logger: RunLogger = NULL_LOGGER, dataset: str | None = None) -> Report:
    """Build the report from the store and write it: ``reports/<experiment>/report.md`` by
    default, its ``.html`` twin, and the tables, CSVs and figures in ``<stem>_files/`` beside it
    (a new folder each time: ``outputs.replace_folder``); ``logger`` records it as a run of the
    experiment. ``dataset``: the digest to report on (default: ``runs.choose_dataset``)."""
    open_existing_store(tracking_uri)
    df = experiment_runs(experiment)
    if df is None:
        raise ReportError(f"experiment {experiment!r} does not exist in {current_tracking_uri()}; nothing to report")
    if df.empty:
        raise ReportError(f"experiment {experiment!r} has no runs; nothing to report (run `benchmark sweep` first)")
    runs, notes = select_runs(df, dataset)
    path = Path(out or os.path.join("reports", safe_name(experiment), "report.md"))  # the title keeps the real name
    if not out:
        check_not_linked(path.parent.parent)  # reports/ itself: a planted link would take every report elsewhere
    files = path.parent / f"{path.stem}_files"
    projections = projection_tables(df)
    votes, found = read_votes(runs, jobs), {}

    def write(folder: Path) -> None:
        gans = df[(col(df, "tags.stage") == "gan") & (df.status == "FINISHED")]
        found["sections"], found["written"] = _write_sections(runs, folder, votes, projections, gans)
        found["made"] = make_figures(runs, df, list(found["sections"]), folder, jobs) if figures else Figures()

    replace_folder(files, write)
    sections, written, made = found["sections"], found["written"], found["made"]
    text_ = render(experiment, runs, df, notes, files.name, made, sections, current_tracking_uri(), projections)
    atomic_write(path, lambda tmp: tmp.write_text(text_ + "\n"))
    page = path.with_suffix(".html")
    html_text = to_html(text_ + "\n" + appendix(sections), path.parent, f"genre-bench report: {experiment}")
    atomic_write(page, lambda tmp: tmp.write_text(html_text))
    report = Report(str(path), text_, len(runs), notes, str(page), written)
    exp_id = use_experiment(experiment)
    report.views = _views(exp_id, list(sections))
    try:
        report.run_id = _log_report(logger, experiment, report, files, notes)
    except Exception as exc:  # a reader who may not write (a READ-only account): the files stand
        text = str(getattr(exc, "message", None) or exc).strip().splitlines()
        log.warning("the report is written, but its run could not be logged: %s", text[0] if text else type(exc).__name__)
    return report
