"""``benchmark sweep``: the study's grid as one parent run, or its plan and cost (``--dry-run``)."""

from __future__ import annotations

import json
import os
import sys

import click

from benchmark.cli.options import (
    CliError, check_nets, csv_choice, one_line_errors, run_logger, say, system_metrics_option, tracking_options,
)
from genre_models.config import DEVICES, PRECISIONS, SPLITS, default_cache_dir, default_of
from genre_models.sweep.grid import DATA_ACCESS, EXECUTORS, GRIDS, MAX_SEEDS, SweepConfig


@click.command()
@click.option("--data-dir", default="demo-data", type=click.Path(), help="GTZAN folder (with --demo: where the demo data goes).")
@click.option("--demo", is_flag=True, help="Synthesise the demo data if absent, run the demo grid, then write the report.")
@click.option("--grid", type=click.Choice(list(GRIDS)), default=None,
              help="Named grid [default: study; demo with --demo].", show_default=False)
@click.option("--nets", default=",".join(default_of(SweepConfig, "nets")), callback=check_nets,
              help="Comma-separated nets: registry nets, installed plugins' names, or package.module:factory.")
@click.option("--seeds", type=click.IntRange(1, MAX_SEEDS), default=default_of(SweepConfig, "seeds"), help="Seeds 0..N-1 for every grid point.")
@click.option("--splits", default=",".join(default_of(SweepConfig, "splits")), callback=csv_choice(list(SPLITS)),
              help="Comma-separated splits (kfold: every point once per fold).")
@click.option("--folds", type=click.IntRange(min=3), default=default_of(SweepConfig, "folds"),
              help="--splits kfold: the number of folds.")
@click.option("--max-epochs", type=click.IntRange(min=1), default=None, help="Cap every net's epochs (and early-stopping maximum).")
@click.option("--jobs", type=click.IntRange(min=1), default=default_of(SweepConfig, "jobs"), help="Grid points run at once (worker processes).")
@click.option("--device", type=click.Choice(DEVICES), default=default_of(SweepConfig, "device"))
@click.option("--precision", type=click.Choice(PRECISIONS), default=default_of(SweepConfig, "precision"))
@click.option("--cache-dir", default=default_cache_dir, show_default="$GENRE_BENCH_CACHE or ~/.cache/genre-bench")
@click.option("--preprocess-jobs", type=click.IntRange(min=0), default=default_of(SweepConfig, "preprocess_jobs"),
              help="Feature-extraction processes (0: one per core).")
@click.option("--executor", type=click.Choice(EXECUTORS), default=default_of(SweepConfig, "executor"),
              help="local: this process (or --jobs workers); ray: one Ray task per grid point (pip install 'genre-bench[ray]').")
@click.option("--ray-address", default="", show_default=False,
              help="Ray cluster HOST:PORT [default: Ray's rule: $RAY_ADDRESS, else the cluster last started here, "
                   "else a new local one].")
@click.option("--cpus-per-run", type=float, default=default_of(SweepConfig, "cpus_per_run"), help="Ray: CPUs (and torch threads) each grid point reserves.")
@click.option("--gpus-per-run", type=float, default=default_of(SweepConfig, "gpus_per_run"), help="Ray: GPU fraction each grid point reserves (0.25: four share one).")
@click.option("--retries", type=int, default=default_of(SweepConfig, "retries"), help="Ray: re-runs of a grid point whose worker died.")
@click.option("--data-access", type=click.Choice(DATA_ACCESS), default=default_of(SweepConfig, "data_access"),
              help="shared: workers read --data-dir; artifacts: workers download a features run (auto: artifacts under ray).")
@system_metrics_option(default_of(SweepConfig, "system_metrics"))
@click.option("--register/--no-register", default=default_of(SweepConfig, "register"),
              help="Register the best run per net and split (chosen on validation) as models:/genre-bench-<net>@<split>.")
@click.option("--max-hours", type=click.FloatRange(min=0, min_open=True), default=None, show_default=False,
              help="Stop before running anything when the projected wall time is longer.")
@click.option("--wait-for-quiet", type=float, default=default_of(SweepConfig, "wait_for_quiet"), metavar="S",
              help="Before the cost probe, wait up to S seconds for other work to leave the cores (a busy machine "
                   "makes the probe, and the projection, read slow).")
@click.option("--until-decided", is_flag=True,
              help="Start with --seeds seeds, then add whole seeds one at a time, testing the claims again after each "
                   "under a group-sequential design, until every claim the nets can test is decided, --max-seeds is "
                   "reached, or the next seed's projected cost would exceed --max-hours. The same command resumes.")
@click.option("--max-seeds", type=click.IntRange(1, MAX_SEEDS), default=10, show_default=True,
              help="With --until-decided: the most seeds (the design's horizon: its alpha is spent by then).")
@click.option("--dry-run", is_flag=True, help="Print the plan (points, dependencies, what the store holds) and its "
                                              "projected wall time here, then exit: nothing is run or created.")
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: the plan and projection as JSON.")
@tracking_options
@one_line_errors
def sweep(data_dir, demo, grid, nets, seeds, splits, folds, max_epochs, jobs, device, precision, cache_dir, preprocess_jobs,
          executor, ray_address, cpus_per_run, gpus_per_run, retries, data_access, system_metrics, register, max_hours,
          wait_for_quiet, until_decided, max_seeds, dry_run, as_json, tracking_uri, experiment):
    """Run the study's grid (nets x epochs x splits x seeds, and the GAN net6 needs) as one parent MLflow run.

    Re-running the same command skips grid points that already have a FINISHED run."""
    from genre_models.data.synth import ensure_demo_data
    from genre_models.sweep.grid import get_grid

    grid = grid or ("demo" if demo else default_of(SweepConfig, "grid"))
    if as_json and not dry_run:
        raise CliError("--json goes with --dry-run")
    if demo and not dry_run and ensure_demo_data(data_dir):
        click.echo(f"wrote the synthetic demo data to {data_dir}")
    cfg = SweepConfig(data_dir=data_dir, grid=grid, nets=nets, seeds=seeds, splits=splits, folds=folds, max_epochs=max_epochs, jobs=jobs,
                      device=device, precision=precision, cache_dir=cache_dir, preprocess_jobs=preprocess_jobs,
                      executor=executor, ray_address=ray_address, cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run,
                      retries=retries, data_access=data_access, system_metrics=system_metrics, register=register,
                      max_hours=max_hours, wait_for_quiet=wait_for_quiet)
    if dry_run:
        _dry_run(cfg, tracking_uri, experiment, as_json, demo)
        return
    from genre_models.sweep.driver import run_sweep  # the runner's imports (a second) are not the dry run's

    click.echo(f"grid {grid}: {get_grid(grid).description}")
    tty = sys.stderr.isatty() and not os.environ.get("CI")

    def echo(line: str, final: bool = False) -> None:
        if final:
            if tty:
                click.echo("", err=True)
            click.echo(line)
        elif tty:
            click.echo(f"\r{line:<110}", nl=False, err=True)
        else:
            click.echo(line, err=True)

    if until_decided:
        _until_decided(cfg, max_seeds, tracking_uri, experiment, echo, demo)
        return
    res = run_sweep(cfg, tracking_uri, experiment, echo=echo)
    for label, out in res.outcomes.items():
        if out["status"] == "FAILED":
            click.echo(f"  FAILED {label}: {out.get('error', '')}")
    if demo:
        _demo_report(tracking_uri, experiment)
    if res.failed:
        raise SystemExit(1)


def _until_decided(cfg, max_seeds: int, tracking_uri, experiment, echo, demo: bool) -> None:
    from genre_models.sweep.until import run_until_decided

    if max_seeds < cfg.seeds:
        raise CliError(f"--max-seeds ({max_seeds}) is under --seeds ({cfg.seeds}), the first look's seeds")
    res = run_until_decided(cfg, max_seeds, tracking_uri, experiment, echo=echo)
    if demo:
        _demo_report(tracking_uri, experiment)
    if res.failed():
        raise SystemExit(1)


def _demo_report(tracking_uri, experiment) -> None:
    from genre_models.stages.report import write_report
    from genre_models.tracking.setup import experiment_name

    rep = write_report(experiment_name(experiment), out=None, tracking_uri=tracking_uri, logger=run_logger())
    click.echo(f"report: {rep.path} (open {rep.html} in a browser); its run {rep.run_id}")
    for view in rep.views:
        say(view.line())


def _dry_run(cfg, tracking_uri, experiment, as_json: bool, demo: bool) -> None:
    from genre_models.sweep.plan import dry_run
    from genre_models.tracking.setup import experiment_name

    if demo and not os.path.isdir(cfg.data_dir):  # the demo data is written on the first real run
        raise CliError(f"{cfg.data_dir}: no demo data yet; `benchmark synth --out {cfg.data_dir}` writes it "
                       "(or run the sweep, which does)")
    plan = dry_run(cfg, tracking_uri, experiment_name(experiment))
    click.echo(json.dumps(plan.as_dict(), indent=2, default=str) if as_json else "\n".join(plan.lines()))
