"""The hours to a decision, before a sweep runs (``sweep --dry-run``): where the store already
holds runs of the sweep's nets on its dataset, each claim's verdict on each of the sweep's splits
today, and for the claims not decided the draws and hours they need, here and on one H200
(``reporting.decisions``). Read only, like the rest of the dry run: nothing is created to find
out that there is nothing yet."""

from __future__ import annotations

from dataclasses import dataclass

from genre_models.reporting.answers import needs_line
from genre_models.reporting.runs import ReportError, col, select_runs
from genre_models.reporting.significance import Votes
from genre_models.reporting.verdicts import split_verdicts
from genre_models.sweep.grid import SweepConfig
from genre_models.tracking.queries import experiment_runs, existing_store, run_votes


@dataclass(frozen=True)
class Decisions:
    """What the store says now: one line per claim and split, and the runs it rests on."""

    runs: int
    dataset: str
    lines: tuple[str, ...]

    def text(self) -> list[str]:
        return [f"to a decision (from the store's {self.runs} finished training runs on {self.dataset}, at the study's "
                "effects; the claims' draws as `benchmark report` counts them):", *self.lines]


def decisions(cfg: SweepConfig, experiment: str, tracking_uri: str | None, digest: str) -> Decisions | None:
    """None where the store holds no finished run of this dataset on the sweep's splits."""
    if existing_store(tracking_uri) is None:
        return None
    import mlflow

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    df = experiment_runs(experiment)
    if df is None or df.empty:
        return None
    try:
        runs, notes = select_runs(df, digest)
    except ReportError:  # no run of this dataset (or none readable): nothing to decide from yet
        return None
    runs = runs[runs.split.isin(cfg.splits) & runs.net.isin(cfg.nets)]
    if runs.empty:
        return None
    right, groups = run_votes(list(zip(runs.run_id, runs.artifact_uri)), 8)
    votes, gans = Votes.of(right, groups), df[(col(df, "tags.stage") == "gan") & (df.status == "FINISHED")]
    lines = []
    for split in [s for s in cfg.splits if s in set(runs.split)]:
        v = split_verdicts(runs, split, votes, pairs=False)
        for row in v.claims:
            if row.missing:
                continue
            need = needs_line(row, v, runs, gans) if row.verdict == "not shown at this n" else row.verdict_words
            lines.append(f"  `{split}` {row.claim}: {need}")
    return Decisions(len(runs), notes["dataset"], tuple(lines)) if lines else None
