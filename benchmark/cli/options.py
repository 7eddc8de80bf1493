"""The options and checks the commands share: one place for each decorator and callback, and
the one-line error every command gives."""

from __future__ import annotations

import functools
import signal
import sys

import click

from genre_models.config import (
    IMAGE_SOURCES, MAX_SEED, SPLITS, DataConfig, FeatureConfig, default_cache_dir, default_of,
)
from genre_models.errors import GenreBenchError, Interrupted, interrupt_signal
from genre_models.models.registry import NETS, get_net
from genre_models.util import visible


def run_logger(enabled: bool = True, system_metrics: bool = False):
    """The run logger a command hands its stage: MLflow's, or one that keeps nothing."""
    from genre_models.tracking.logger import MlflowLogger
    from genre_models.training.logger import NULL_LOGGER

    return MlflowLogger(system_metrics=system_metrics) if enabled else NULL_LOGGER


def system_metrics_option(default: bool):
    return click.option("--system-metrics/--no-system-metrics", default=default,
                        help="Record CPU, memory (and, with nvidia-ml-py, GPU) use in each training and GAN run.")


class CliError(click.ClickException):
    """``error: ...`` on one line, exit code 2 (like click's own usage errors)."""

    exit_code = 2

    def show(self, file=None) -> None:
        # One line whatever the message names: a file or folder called "x\nINFO ok" prints as its escapes.
        click.echo(f"error: {visible(self.format_message())}", file=file or sys.stderr)


def say(line: str, err: bool = False) -> None:
    """Print one line that holds names from disk or a store (a clip, a folder, a tag): its
    newlines, ESC and other invisible characters show as escapes, so no name fakes a line."""
    click.echo(visible(line), err=err)


#: What ``--net`` takes, for its help.
NET_HELP = (f"A registry net ({', '.join(NETS)}), an installed plugin's name (`benchmark nets`), or a plugin "
            "as package.module:factory.")


def check_net(ctx, param, value):
    """``--net``: the net's name, its plugin loaded and checked now, before any data is read."""
    if value is None:
        return value
    try:
        return get_net(value).name
    except GenreBenchError as exc:
        raise CliError(str(exc)) from None


def check_torch_net(ctx, param, value):
    """``--net`` for a measurement of the training loop: a torch net (the baselines have no loop)."""
    name = check_net(ctx, param, value)
    if name is not None and get_net(name).family != "torch":
        raise CliError(f"{name} is a classical baseline, fitted once without a training loop: this measures a torch "
                       f"net's ({', '.join(n for n, s in NETS.items() if s.family == 'torch')}, or a plugin's)")
    return name


def check_nets(ctx, param, value):
    """``--nets``: comma-separated ``--net`` values, each loaded and checked now."""
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    if not items:
        raise click.BadParameter("no net given")
    return tuple(check_net(ctx, param, v) for v in items)  # a name given twice is merged, with a note, by SweepConfig


def one_line_errors(fn):
    """Turn the suite's own errors (and MLflow's) into ``error: ...`` on one line, exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (KeyboardInterrupt, Interrupted) as exc:  # the run, if any, already ended KILLED
            sig = interrupt_signal(exc)
            click.echo(f"error: interrupted by {sig}; any run in progress was ended KILLED", err=True)
            raise SystemExit(128 + signal.Signals[sig].value) from None
        except GenreBenchError as exc:
            raise CliError(str(exc)) from None
        except Exception as exc:
            from genre_models.tracking.setup import mlflow_error_message

            message = mlflow_error_message(exc)
            if message is None:
                raise
            raise CliError(message) from None

    return wrapper



def tracking_options(fn):
    fn = click.option("--experiment", default=None, help="MLflow experiment [default: $MLFLOW_EXPERIMENT_NAME or gtzan-genre-benchmark].")(fn)
    fn = click.option("--tracking-uri", default=None, help="MLflow store [default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db].")(fn)
    return fn


def split_options(cls: type, split_help: str = "How tracks are split into train, validation and test."):
    """--split, --seed, --fold and --folds, with ``cls``'s defaults."""
    def deco(fn):
        fn = click.option("--folds", type=click.IntRange(min=3), default=default_of(cls, "folds"),
                          help="--split kfold: the number of folds.")(fn)
        fn = click.option("--fold", type=click.IntRange(min=0), default=default_of(cls, "fold"),
                          help="--split kfold: the fold to test (0..folds-1); the next fold validates.")(fn)
        fn = click.option("--seed", type=click.IntRange(0, MAX_SEED), default=default_of(cls, "seed"))(fn)
        return click.option("--split", type=click.Choice(SPLITS), default=default_of(cls, "split"), help=split_help)(fn)
    return deco


def feature_options(fn):
    fn = click.option("--jobs", type=click.IntRange(min=0), default=default_of(DataConfig, "jobs"), show_default=True,
                      help="Feature-extraction processes (0: one per core).")(fn)
    fn = click.option("--cache-dir", default=default_cache_dir, show_default="$GENRE_BENCH_CACHE or ~/.cache/genre-bench",
                      help="Feature cache folder.")(fn)
    fn = click.option("--image-size", type=int, default=default_of(FeatureConfig, "image_size"), show_default=True,
                      help="Side of the square image input (net1-net4).")(fn)
    fn = click.option("--image-source", type=click.Choice(IMAGE_SOURCES), default=default_of(FeatureConfig, "image_source"),
                      show_default=True,
                      help="auto: Kaggle PNG when present, else rendered from audio; png; audio.")(fn)
    fn = click.option("--data-dir", required=True, type=click.Path(), help="GTZAN folder (top, Data/, or the genre folders' parent).")(fn)
    return fn


def csv_choice(choices):
    def parse(ctx, param, value):
        items = tuple(v.strip() for v in value.split(",") if v.strip())
        bad = [v for v in items if v not in choices]
        if bad or not items:
            raise click.BadParameter(f"{', '.join(bad) or 'nothing'} not in {', '.join(choices)}")
        return items
    return parse
