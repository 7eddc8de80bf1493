"""The report as markdown, pure: the header, one section per split (its tables, the claims,
the comparisons' sentences and the files beside them), the WaveGAN, the context. Every name
that comes from the store is escaped (``tables.md``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pandas as pd

from genre_models.config import SPLIT_SPECS
from genre_models.reporting.builders import CAP_MARK, context_table
from genre_models.reporting.runs import col
from genre_models.reporting.significance import Comparison
from genre_models.reporting.stats import ALPHA, CLIP_MARK, MIN_SEEDS_FOR_INTERVAL, summarize
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


METHOD = (f"Cells: mean over draws (a draw is a seed's split and training run, and under `kfold` one fold of "
          f"it), then the 95% interval in brackets: Student's t over draws, where seeds draw new splits "
          f"(`random`, `track`, `kfold`) with Nadeau & Bengio's correction for overlapping training sets "
          f"(variance term 1/n + n_test/n_train instead of 1/n, from the real training part), on the fixed "
          f"`filtered` split the plain t-interval (training noise on one test set); clipped to the scale, [0, 1] "
          f"for accuracies, and marked {CLIP_MARK} where it reached past it. Under {MIN_SEEDS_FOR_INTERVAL} draws "
          f"no interval is claimed and the values are listed instead. F1: mean ± standard deviation over draws. "
          f"{CAP_MARK}: some runs stopped at their epoch cap. `study`: the published figure, a single run of the "
          f"leaky `random` protocol. Comparisons: the verdict is the corrected resampled t-test over the draws both "
          f"models ran (a plain paired t-test on `filtered`) on accuracy over segments or images where both models "
          f"score the same unit, else on track accuracy (vote); a difference that was the same in every draw is not "
          f"tested. Beside it, McNemar's test on the track votes (clustered by track where a track was tested in "
          f"several draws), which holds for the trained nets, not for new draws. Significant means p < {ALPHA:g} "
          f"after Holm's adjustment over the comparisons a split draws (and, separately, over all pairs and over "
          f"the claims). Where a model ran more than once for one draw, the newest run counts, everywhere.")


def repeats_line(runs: pd.DataFrame) -> list[str]:
    """How many groups of repeated recordings the dataset has, from the newest run that says."""
    groups = pd.to_numeric(col(runs, "params.repeat_groups"), errors="coerce").dropna()
    if groups.empty:
        return []
    newest = runs.loc[groups.index].sort_values("start_time").iloc[-1]
    n, members = int(float(newest["params.repeat_groups"])), newest.get("params.repeat_tracks", "?")
    return [f"- **Repeated recordings:** {n} group(s) ({members} tracks) found by fingerprint, each kept on one "
            "side of every split that assigns tracks (`track`, `filtered`, `kfold`) and in one fold; `random` "
            "scatters segments anyway (the manifest's `repeat_group` column names them)."]


def header(experiment: str, runs: pd.DataFrame, notes: dict, tracking_uri: str) -> list[str]:
    code = sorted(set(col(runs, "tags.code_version").dropna()))
    devices = sorted(set(col(runs, "params.resolved_device").dropna()))
    lines = [f"# genre-bench report: {md(experiment)}", "",
             f"- **Dataset:** {md(notes['dataset'])}" + (" — **synthetic demo data, not GTZAN**" if notes["synthetic"] else ""),
             *repeats_line(runs),
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
        lines.append(f"- **Note:** {notes['duplicates']} repeated runs of a model for one draw left out (the newest "
                     "counts, in the tables and the tests alike).")
    splits = " ".join(f"`{sp.name}`: {sp.description} (leaks tracks: {sp.leaks})." for sp in SPLIT_SPECS.values())
    return lines + ["", METHOD + " " + splits, ""]


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
           sections: dict[str, SplitSection], tracking_uri: str) -> str:
    lines = header(experiment, runs, notes, tracking_uri)
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
    lines += ["## Context", "", *table_block(context_table(), rel)]
    return "\n".join(lines)
