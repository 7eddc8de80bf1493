"""``benchmark perf``: the benchmarks, each a command over ``benchmark/perf/``."""

from __future__ import annotations

import json

import click

from benchmark.cli.options import (
    NET_HELP, check_nets, check_torch_net, csv_choice, one_line_errors, run_logger, tracking_options,
)
from genre_models.config import DEVICES, HEADS, PRECISIONS, SPLITS, default_of
from genre_models.models.registry import NETS
from genre_models.sweep.grid import GRIDS, MAX_SEEDS, SweepConfig


@click.group()
def perf():
    """Benchmarks: speed figures as ratios measured side by side in one run."""


@perf.command("preprocess")
@click.option("--data-dir", required=True, type=click.Path())
@click.option("--limit", type=int, default=0, help="Use only the first N files (0: all).")
@click.option("--jobs", type=int, default=0)
@click.option("--repeat-clips", type=click.IntRange(min=2), default=1000, help="Clips in the timed all-pairs repeat search.")
@one_line_errors
def perf_preprocess(data_dir, limit, jobs, repeat_clips):
    """The pipeline against a naive per-file, per-segment librosa loop on the same files, and the repeat search on 1000 clips."""
    from benchmark.perf.preprocess import bench_preprocess

    r = bench_preprocess(data_dir, limit=limit, jobs=jobs, repeat_clips=repeat_clips)
    click.echo(json.dumps(r, indent=2))


@perf.command("train")
@click.option("--net", required=True, callback=check_torch_net, help=NET_HELP)
@click.option("--data-dir", default=None, type=click.Path(), help="Real or synthetic data [default: random tensors].")
@click.option("--batches", type=int, default=20, help="Timed batches per loop.")
@click.option("--batch-size", type=int, default=32)
@click.option("--precision", type=click.Choice(PRECISIONS), default="fp32")
@click.option("--head", type=click.Choice(HEADS), default="flatten")
@click.option("--image-size", type=int, default=180)
@click.option("--device", type=click.Choice(DEVICES), default="auto")
@one_line_errors
def perf_train(**kw):
    """The suite's training loop (with data loading and logging) against a bare PyTorch loop."""
    from benchmark.perf.train import bench_train

    click.echo(json.dumps(bench_train(**kw), indent=2))


@perf.command("study")
@click.option("--grid", type=click.Choice(list(GRIDS)), default="study")
@click.option("--nets", default=",".join(default_of(SweepConfig, "nets")), callback=check_nets, help="Comma-separated nets.")
@click.option("--seeds", type=click.IntRange(1, MAX_SEEDS), default=default_of(SweepConfig, "seeds"))
@click.option("--splits", default=",".join(default_of(SweepConfig, "splits")), callback=csv_choice(list(SPLITS)))
@click.option("--folds", type=click.IntRange(min=3), default=default_of(SweepConfig, "folds"))
@click.option("--jobs", type=click.IntRange(min=1), default=1, help="Points at once in the projection (also shows --jobs 1).")
@click.option("--device", type=click.Choice(DEVICES), default="auto")
@click.option("--precision", type=click.Choice(PRECISIONS), default=default_of(SweepConfig, "precision"))
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), default=3.0, help="Timing per measurement, after a warm-up.")
@click.option("--data-dir", default=None, type=click.Path(), help="Data to size the projection and time preprocessing on "
                                                                  "[default: GTZAN's size, generated clips].")
@click.option("--track/--no-track", "record", default=True, help="Log the projection as an MLflow run (stage=perf).")
@click.option("--json", "as_json", is_flag=True, help="Print every rate and projection as JSON instead of the table.")
@tracking_options
@one_line_errors
def perf_study(record, as_json, tracking_uri, experiment, **kw):
    """Every stage of a grid measured at its full size on this device, and the grid's projected wall time under --jobs."""
    from benchmark.perf.study import bench_study

    logger = None
    if record:
        from genre_models.tracking.setup import setup_tracking

        setup_tracking(tracking_uri, experiment)
        logger = run_logger()
    out = bench_study(logger=logger, **kw)
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(f"{out['grid']} grid on {out['device']} ({out['precision']}, {out['threads']} threads), {out['data']}:")
    click.echo("\n".join(out["table"]))
    if out.get("run_id"):
        click.echo(f"MLflow run {out['run_id']} (projection.json: every rate; --json prints it)")


@perf.command("predict")
@click.option("--net", default="net5", callback=check_torch_net, help=NET_HELP)
@click.option("--clips", type=click.IntRange(min=2), default=100, help="Clips in the folder.")
@click.option("--seconds", type=click.FloatRange(min=1), default=30.0, help="Length of each generated clip.")
@click.option("--repeats", type=click.IntRange(min=1), default=2, help="Turns; each figure is the median.")
@one_line_errors
def perf_predict(**kw):
    """`benchmark predict` on one clip and on a folder of many, each a fresh command, side by side."""
    from benchmark.perf.predict import bench_predict

    click.echo(json.dumps(bench_predict(**kw), indent=2))


@perf.command("report")
@click.option("--runs", type=click.IntRange(min=10), default=2000, help="Fabricated training runs in the experiment.")
@click.option("--figures/--no-figures", default=True, help="Time the report with its figures (as `benchmark report`).")
@click.option("--repeats", type=click.IntRange(min=1), default=2, help="Turns; each figure is the best.")
@one_line_errors
def perf_report(**kw):
    """`benchmark report` on an experiment of fabricated runs, beside MLflow's own search of it."""
    from benchmark.perf.report import bench_report

    click.echo(json.dumps(bench_report(**kw), indent=2))


@perf.command("precision")
@click.option("--net", callback=check_torch_net, default="net2", help=NET_HELP)
@click.option("--batches", type=click.IntRange(min=1), default=4)
@click.option("--batch-size", type=click.IntRange(min=1), default=32)
@click.option("--image-size", type=click.IntRange(min=8), default=180)
@click.option("--device", type=click.Choice(DEVICES), default="auto")
@click.option("--repeats", type=click.IntRange(min=1), default=3)
@one_line_errors
def perf_precision(**kw):
    """bf16 against fp32 side by side on this device, and what --precision auto picks here."""
    from benchmark.perf.precision import bench_precision

    click.echo(json.dumps(bench_precision(**kw), indent=2))


@perf.command("contention")
@click.option("--net", type=click.Choice([n for n, s in NETS.items() if s.family == "torch"]), default="net5")
@click.option("--batches", type=click.IntRange(min=1), default=40, help="Timed batches per process.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32)
@click.option("--image-size", type=click.IntRange(min=8), default=180)
@click.option("--repeats", type=click.IntRange(min=1), default=2, help="Turns per round; each reports its best.")
@one_line_errors
def perf_contention(**kw):
    """One training process alone, then two at once, with and without the thread budget: the pair's throughput over the single's."""
    from benchmark.perf.contention import bench_contention

    click.echo(json.dumps(bench_contention(**kw), indent=2))


@perf.command("startup")
@click.option("--repeats", type=click.IntRange(min=1), default=5)
@one_line_errors
def perf_startup(**kw):
    """How long `benchmark --help` and an argument error take, beside Python's own start and `import torch`."""
    from benchmark.perf.startup import bench_startup

    click.echo(json.dumps(bench_startup(**kw), indent=2))


@perf.command("gan")
@click.option("--d", type=int, default=8, help="Model size for the fp32/bf16 comparison.")
@click.option("--batch-size", type=int, default=16)
@click.option("--steps", type=int, default=3, help="Timed G+D steps per precision and repeat.")
@click.option("--device", type=click.Choice(DEVICES), default="auto")
@click.option("--paper-probe/--no-paper-probe", default=True, help="Also time the paper-size model (d=64) and extrapolate.")
@click.option("--probe-batch", type=int, default=2, help="Batch for the d=64 probe, scaled linearly to 64 (use 64 on a GPU).")
@click.option("--study-steps", type=int, default=20000, help="Steps for the study-scale time estimate.")
@one_line_errors
def perf_gan(**kw):
    """WaveGAN G+D steps/s in fp32 and bf16, and an estimate for the paper-size model at the study's scale."""
    from benchmark.perf.gan import bench_gan

    click.echo(json.dumps(bench_gan(**kw), indent=2))


@perf.command("sweep")
@click.option("--data-dir", default="demo-data", type=click.Path(), help="Data for the tiny sweep (the demo data is written if absent).")
@click.option("--nets", default="net1,net5", callback=check_nets, help="Comma-separated nets.")
@click.option("--grid", type=click.Choice(list(GRIDS)), default="demo", show_default=True)
@click.option("--splits", default="track", callback=csv_choice(list(SPLITS)), help="Comma-separated splits [default: track].")
@click.option("--seeds", type=click.IntRange(min=1), default=3)
@click.option("--max-epochs", type=click.IntRange(min=1), default=2, show_default=True,
              help="Cap every epoch budget (the fast grid's own cap is 50).")
@click.option("--repeats", type=click.IntRange(min=1), default=2, help="Turns per way; each reports its fastest.")
@click.option("--jobs", type=click.IntRange(min=2), default=2, help="Worker processes for the local executor.")
@click.option("--ray/--no-ray", default=True, help="Also time the Ray executor (starts a head unless --ray-address).")
@click.option("--ray-address", default="", help="An existing Ray cluster [default: start a head on 127.0.0.1].",
              show_default=False)
@click.option("--ray-cpus", type=int, default=0, help="CPUs of the head started here (0: all cores).")
@one_line_errors
def perf_sweep(data_dir, **kw):
    """The same tiny sweep through the local executor (1 and --jobs workers) and through Ray: the overhead ratio."""
    from benchmark.perf.sweep import bench_executors
    from genre_models.data.synth import ensure_demo_data

    ensure_demo_data(data_dir)
    click.echo(json.dumps(bench_executors(data_dir, **kw), indent=2))
