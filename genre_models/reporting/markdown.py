"""The report as markdown, pure: the header, one section per split (its tables, the claims,
the comparisons' sentences and the files beside them), the WaveGAN, the context. Every name
that comes from the store is escaped (``tables.md``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pandas as pd

from genre_models.config import SPLIT_SPECS
from genre_models.reporting.answers import FAMILIES
from genre_models.reporting.builders import CAP_MARK, context_table
from genre_models.reporting.runs import col, whole_numbers
from genre_models.reporting.significance import Comparison
from genre_models.reporting.stats import ALPHA, CLIP_MARK, MIN_DRAWS, summarize
from genre_models.reporting.tables import Table, md


@dataclass
class Figures:
    headline: str | None = None
    confusion: dict = field(default_factory=dict)  # split -> {"png", "csv": [...]}
    curves: dict = field(default_factory=dict)  # split -> png
    gan: str | None = None


@dataclass
class SplitSection:
    """What the report says about one split: its tables, the study's claims, the comparisons it
    draws, and the files beside it (all-pairs significance; per-fold accuracies)."""

    tables: list[Table]
    comparisons: list[Comparison]
    claims: Table | None = None
    files: dict[str, str] = field(default_factory=dict)  # what -> file name
    family: str = ""  # the split's Holm family, in words
    detail: Table | None = None  # every test behind the claims (the HTML report's)
    answers: list[str] = field(default_factory=list)  # what the report opens with (``reporting.answers``)


METHOD = (f"Cells: mean over draws (a draw is a seed's split and training run, and under `kfold` one fold of "
          f"it), then the 95% interval in brackets: Student's t over draws, where seeds draw new splits "
          f"(`random`, `track`, `kfold`) with Nadeau & Bengio's correction for overlapping training sets "
          f"(variance term 1/n + n_test/n_train instead of 1/n, from the real training part), on the fixed "
          f"`filtered` split the t-interval over seeds widened by its test tracks' binomial sampling error (every "
          f"seed scores the same tracks, so that error never averages out); a resampled split's runs that lack "
          f"their sample counts get no interval and no test; clipped to the "
          f"scale, [0, 1] for accuracies, and marked {CLIP_MARK} where it reached past it. Under {MIN_DRAWS} draws "
          f"no interval is claimed and no test is run; the values are listed instead. F1: mean ± standard "
          f"deviation over draws. {CAP_MARK}: some runs stopped at their epoch cap. `study`: the published "
          f"figure, a single run of the leaky `random` protocol. Verdicts: each difference is tested under its "
          f"split's variance (the corrected resampled t-test; on `filtered` a t-test whose variance adds the test "
          f"set's own sampling error over its tracks to the seeds' spread, and the training set's, on track "
          f"accuracy; one model against a bound takes that variance on every split), with the exact "
          f"sign-flip test over track clusters (a repeated recording is one cluster) beside it wherever votes "
          f"exist: the larger p decides. On `filtered` a cluster is a run of consecutive track numbers of a genre: "
          f"no artist labels ship with genre-bench, and GTZAN numbers an artist's excerpts mostly in a row "
          f"(Sturm 2013), so a run holds whole artists; caveat: an artist whose excerpts are scattered can still "
          f"span two clusters. A difference that was the same in every draw is not tested. Significant "
          f"means p < {ALPHA:g} after Holm's adjustment over the split's one family: the claims' tests and the "
          f"comparisons the sentences draw. Intervals are unadjusted 95% intervals. McNemar's test is given per "
          f"draw: it holds for the trained nets on these tracks, not for new training runs, and decides nothing; "
          f"the all-pairs p-value matrix is unadjusted and exploratory. `benchmark calibrate` simulates these "
          f"tests on a sweep's shape (docs/protocol.md). Where a model ran more than once for one draw, the "
          f"newest run counts, everywhere.")


def repeats_line(runs: pd.DataFrame) -> list[str]:
    """How many groups of repeated recordings the dataset has, from the newest run that says."""
    groups = whole_numbers(col(runs, "params.repeat_groups"), 0, 10**6).dropna()
    if groups.empty:
        return []
    newest = runs.loc[groups.index].sort_values("start_time").index[-1]
    tracks = whole_numbers(col(runs, "params.repeat_tracks"), 0, 10**7)[newest]
    n, members = int(groups[newest]), ("?" if pd.isna(tracks) else int(tracks))  # params are a stranger's text
    return [f"- **Repeated recordings:** {n} group(s) ({members} tracks) found by fingerprint, each kept on one "
            "side of every split that assigns tracks (`track`, `filtered`, `kfold`) and in one fold; `random` "
            "scatters segments anyway (the manifest's `repeat_group` column names them)."]


def header(experiment: str, runs: pd.DataFrame, notes: dict, tracking_uri: str,
           families: list[str] | None = None) -> list[str]:
    code = sorted(set(col(runs, "tags.code_version").dropna()))
    devices = sorted(set(col(runs, "params.resolved_device").dropna()))
    lines = [f"- **Dataset:** {md(notes['dataset'])}" + (" — **synthetic demo data, not GTZAN**" if notes["synthetic"] else ""),
             *repeats_line(runs),
             f"- **Code version:** {', '.join(md(c) for c in code) or 'unknown'}",
             f"- **Device:** {', '.join(md(d) for d in devices) or 'unknown'}",
             f"- **Date:** {time.strftime('%Y-%m-%d %H:%M %Z')}",
             f"- **Tracking store:** {md(tracking_uri)}, experiment {md(experiment)}; {len(runs)} finished training runs."]
    if families:
        lines.append("- **Holm families** (one per split; the verdicts of the claims and sentences are drawn in it): "
                     + "; ".join(families) + ".")
    if notes["unfinished"]:
        lines.append("- **Note:** unfinished training runs left out: "
                     + ", ".join(f"{n} {s}" for s, n in notes["unfinished"].items()) + ".")
    if notes["other_datasets"]:
        lines.append(f"- **Note:** the dataset {notes['dataset_choice']}; runs on other datasets left out: "
                     + ", ".join(f"{n} on {md(d)}" for d, n in notes["other_datasets"].items())
                     + " (`benchmark report --dataset DIGEST` reports another).")
    if notes.get("malformed"):
        lines.append("- **Note:** training runs whose tags or figures could not be read, left out: "
                     + ", ".join(f"{n} with {md(w)}" for w, n in notes["malformed"].items()) + ".")
    if notes["duplicates"]:
        lines.append(f"- **Note:** {notes['duplicates']} repeated runs of a model for one draw left out (the newest "
                     "counts, in the tables and the tests alike).")
    return lines + [""]


def how_to_read() -> list[str]:
    """The method, at the end: what the cells, intervals and verdicts mean, and the splits."""
    splits = " ".join(f"`{sp.name}`: {sp.description} (leaks tracks: {sp.leaks})." for sp in SPLIT_SPECS.values())
    return ["## How to read this report", "", METHOD, "", FAMILIES, "", "Splits: " + splits, ""]


def opening(experiment: str, sections: dict[str, SplitSection]) -> list[str]:
    """The title and the answers, split by split, before anything else."""
    lines = [f"# genre-bench report: {md(experiment)}", ""]
    answered = [sec.answers for sec in sections.values() if sec.answers]
    if answered:
        lines += ["## Answers", "", "Per split: each claim of the study with its verdict, the comparisons that came "
                  "out significant, and what the undecided claims need. How to read them is at the end.", ""]
        for block in answered:
            lines += block
    return lines


def sequential_lines(all_runs: pd.DataFrame) -> list[str]:
    """The group-sequential sweeps (``sweep --until-decided``) behind the runs: their design, each
    look's adjusted level and why they stopped. The answers above test every run at the fixed
    level; a sequential sweep decided at its looks' levels, which keep alpha over all its looks."""
    seq = all_runs[col(all_runs, "tags.stage") == "sequential"]
    if seq.empty:
        return []
    lines = ["## Sequential sweeps", "", "Seeds were added until the claims were decided (`benchmark sweep "
             "--until-decided`); each look tested its family at exact group-sequential boundaries: the level below "
             "is one test's nominal p at that look, and Holm's step with r tests left used the boundary of a design "
             "at alpha / r, so that the chance of any wrong verdict over all the looks stays at alpha. The answers "
             "above test all the runs at the fixed level instead: where the two differ, the look's verdict is the "
             "one the design vouches for.", ""]
    for _, r in seq.sort_values("start_time", ascending=False).head(5).iterrows():
        design, looks, stopped = (str(r.get(f"tags.{k}") or "") for k in ("design", "looks", "stopped"))
        state = md(stopped) if stopped else f"not finished ({md(str(r.get('tags.error') or r.status))}); the same command resumes it"
        lines.append(f"- {md(design) or 'design not recorded'}. Looks (seeds at level): {md(looks) or 'none'}. "
                     f"Stopped: {state}.")
    return lines + [""]


def table_block(t: Table, rel: str) -> list[str]:
    return [f"### {md(t.title)}", "", t.markdown(), "",
            f"Files: [{t.name}.csv]({rel}/{t.name}.csv) · [{t.name}.tex]({rel}/{t.name}.tex)", ""]


def split_block(split: str, section: SplitSection, made: Figures, rel: str) -> list[str]:
    lines = [f"## Split `{split}`", ""]
    for t in section.tables:
        lines += table_block(t, rel)
    if section.claims is not None:
        lines += table_block(section.claims, rel)
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
           sections: dict[str, SplitSection], tracking_uri: str, projections: list[Table] = ()) -> str:
    lines = opening(experiment, sections) + sequential_lines(all_runs)
    lines += header(experiment, runs, notes, tracking_uri, [s.family for s in sections.values() if s.family])
    if made.headline:
        lines += ["## Headline: test accuracy per net and split", "",
                  f"![test accuracy per net, split by split, with the study's figures]({rel}/{made.headline})", ""]
    for split, section in sections.items():
        lines += split_block(split, section, made, rel)
    gans = all_runs[(col(all_runs, "tags.stage") == "gan") & (all_runs.status == "FINISHED")]
    if not gans.empty:
        q = summarize(pd.to_numeric(col(gans, "metrics.gen_quality_accuracy"), errors="coerce"))
        lines += ["## WaveGAN", "", f"{len(gans)} finished GAN runs. Generated-clip quality (a real-data net5 "
                  f"recognising the intended genre; chance 0.100): {q}.", ""]
        if made.gan:
            lines += [f"![WaveGAN losses]({rel}/{made.gan})", ""]
    if projections:
        lines += ["## What the sweeps cost, against their projection", ""]
        for t in projections:
            lines += table_block(t, rel)
    lines += ["## Context", "", *table_block(context_table(), rel)]
    return "\n".join(lines + how_to_read())


def appendix(sections: dict[str, SplitSection]) -> str:
    """Every test behind the claims, per split: markdown for the HTML report, whose claims table
    keeps one line per claim as report.md does."""
    lines = ["## Every test behind the claims", ""]
    for section in sections.values():
        if section.detail is not None and section.detail.rows:
            lines += [f"### {md(section.detail.title)}", "", section.detail.markdown(), ""]
    return "\n".join(lines) if len(lines) > 2 else ""
