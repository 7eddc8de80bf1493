"""``benchmark report`` and ``benchmark calibrate``: the tables and verdicts from the store, and
the level of the verdicts' tests by simulation."""

from __future__ import annotations

import click

from benchmark.cli.options import one_line_errors, run_logger, say, tracking_options
from genre_models.config import MAX_SEED, SPLITS
from genre_models.sweep.grid import MAX_SEEDS


@click.command()
@click.option("--out", default=None, type=click.Path(), help="Markdown file [default: reports/<experiment>/report.md]; "
              "its HTML twin, tables (CSV, LaTeX) and figures go beside it.", show_default=False)
@click.option("--no-figures", is_flag=True, help="Tables only: skip the PNGs (headline, confusion matrices, curves).")
@click.option("--force", is_flag=True, help="Replace the file --out names if it exists (the default place is always replaced).")
@click.option("--dataset", default=None, help="Report the runs of this dataset digest [default: the one most finished "
              "training runs of the experiment were trained on; the header names the others].", show_default=False)
@tracking_options
@one_line_errors
def report(out, no_figures, force, dataset, tracking_uri, experiment):
    """Write the study's tables (mean and 95% interval over seeds, beside the published numbers), figures,
    CSV and LaTeX tables and an HTML page, from the tracking store."""
    from genre_models.stages.report import write_report
    from genre_models.tracking.setup import experiment_name
    from genre_models.util import check_out

    if out:
        check_out(out, force, create=True)  # the report makes its folder
    rep = write_report(experiment_name(experiment), out=out, tracking_uri=tracking_uri, figures=not no_figures,
                       logger=run_logger(), dataset=dataset)
    click.echo(rep.text)
    click.echo(f"\nwrote {rep.path} ({rep.n_runs} runs), {rep.html} and {len(rep.tables)} table files; "
               f"MLflow run {rep.run_id} keeps the report and its claims tables")
    # Last, what a newcomer copies: where the report is, and the comparison in the MLflow UI.
    click.echo(f"report: {rep.path} (open {rep.html} in a browser)")
    for view in rep.views:
        say(view.line())


@click.command()
@click.option("--split", type=click.Choice(SPLITS), default=None,
              help="The protocol's split [default: the sweep's busiest with --experiment, else kfold].")
@click.option("--tracks", type=click.IntRange(min=20), default=None, help="Tracks in the data set [default: 150, or the sweep's].")
@click.option("--folds", type=click.IntRange(min=3), default=None, help="Folds of --split kfold [default: 5, or the sweep's].")
@click.option("--seeds", type=click.IntRange(min=1, max=MAX_SEEDS), default=None, help="Seeds [default: 3, or the sweep's].")
@click.option("--segments", type=click.IntRange(min=1, max=200), default=None,
              help="Segments per track of a segment-scored net [default: 10, or the sweep's].")
@click.option("--sims", type=click.IntRange(min=10, max=100000), default=500, help="Simulated sweeps per scenario.")
@click.option("--alpha", type=click.FloatRange(0.001, 0.5), default=0.05, help="The level tested.")
@click.option("--margin", type=click.FloatRange(0.001, 0.5), default=0.02,
              help="The margin of 'steady' (TOST) and 'no better than' (non-superiority), in accuracy.")
@click.option("--scenarios", default="realistic,realistic+repeats", show_default=True,
              help="Comma-separated scenario names, or all: realistic (the world real sweeps live in), training-noise, "
                   "track-lean, few-discordant, and each again with repeated recordings (realistic+repeats, ...).")
@click.option("--effect", type=click.FloatRange(0.001, 0.49), default=None,
              help="Power at this effect (in accuracy) for every claim and drawn difference, instead of the study's "
                   "own effects.")
@click.option("--no-power", is_flag=True, help="Simulate the nulls only (no alternative world: about a third faster).")
@click.option("--until-decided", is_flag=True,
              help="Simulate `sweep --until-decided` whole: looks from --seeds seeds, a seed at a time, up to --max-seeds; "
                   "the family's level over every look, and its power with the seeds it stops at.")
@click.option("--max-seeds", type=click.IntRange(1, MAX_SEEDS), default=10, show_default=True,
              help="With --until-decided: the design's horizon (its alpha is spent by then).")
@click.option("--jobs", type=click.IntRange(min=0), default=0, help="Processes (0: one per usable core).")
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=0, help="The simulation's seed: the same seed, the same rates.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="Also write the rates as JSON: a list of {scenario, test, rejection_rate, interval, sims, ...}.")
@click.option("--force", is_flag=True, help="Replace the file --json names if it exists.")
@click.option("--tracking-uri", default=None, help="MLflow store [default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db].")
@click.option("--experiment", default=None,
              help="A finished sweep's experiment: take the shape and the observed spreads from it (and log there); "
                   "options given still apply. Without it the run goes to the experiment genre-bench-calibration.")
@one_line_errors
def calibrate(split, tracks, folds, seeds, segments, sims, alpha, margin, scenarios, effect, no_power, until_decided,
              max_seeds, jobs, seed, json_out, force, tracking_uri, experiment):
    """Do the report's tests keep their level on a protocol of this shape, and what power do they have?
    Simulates sweeps (named noise scenarios) through the report's own verdicts: under each test's null, and where
    the study's effects (or --effect) hold; prints each rate with its 95% interval; exit 1 if a test that decides
    a verdict rejects above its level (its rate plus two Monte-Carlo sd over alpha)."""
    import dataclasses

    from genre_models.reporting.calibration import CalibrationConfig
    from genre_models.reporting.simulation import SCENARIOS, Shape
    from genre_models.stages.calibrate import EXPERIMENT, config_from_experiment, run_calibration
    from genre_models.tracking.setup import setup_tracking
    from genre_models.util import check_out, progress, usable_cores

    if json_out:
        check_out(json_out, force, "--json")
    names = tuple(SCENARIOS) if scenarios.strip() == "all" else tuple(v.strip() for v in scenarios.split(",") if v.strip())
    alternative = "none" if no_power else "effect" if effect is not None else "study"
    kw = dict(scenarios=names, sims=sims, alpha=alpha, margin=margin, seed=seed, alternative=alternative,
              effect=effect or 0.0)
    if experiment:
        cfg, source = config_from_experiment(experiment, split, tracking_uri, **kw)
    else:
        cfg, source = CalibrationConfig(shape=Shape(split=split or "kfold"), **kw), "the options given"
    given = {k: v for k, v in dict(tracks=tracks, folds=folds, seeds=seeds, segments=segments).items() if v is not None}
    cfg = dataclasses.replace(cfg, shape=dataclasses.replace(cfg.shape, **given),
                              until_decided=max_seeds if until_decided else 0)
    setup_tracking(tracking_uri, experiment or EXPERIMENT)
    bar = progress(total=sims * len(names), desc="calibrate", unit="sweep")
    res = run_calibration(cfg, jobs=usable_cores() if jobs == 0 else jobs, source=source, json_out=json_out,
                          logger=run_logger(), progress=lambda done, total: bar.update(done - bar.n))
    bar.close()
    click.echo(res.table())
    click.echo(f"\n{res.summary()}" + (f"; wrote {res.json_path}" if res.json_path else "") + f"; MLflow run {res.run_id}")
    if res.failing:
        raise SystemExit(1)
