"""``benchmark``: a thin click layer over genre_models, one module per command or command group
(``options`` holds what they share). Each command parses options, calls one library function and
prints its result. Errors the user can fix print as one line, exit 2."""

from __future__ import annotations

import logging
import os
import signal
import sys

import click

from benchmark.cli.bounds import bound_options
from benchmark.cli.data import preprocess, synth
from benchmark.cli.perf import perf
from benchmark.cli.predict import nets_cmd, predict
from benchmark.cli.report import calibrate, report
from benchmark.cli.server import server
from benchmark.cli.sweep import sweep
from benchmark.cli.train import gan, train
from benchmark.cli.options import CliError
from genre_models.errors import ConfigError, Interrupted
from genre_models.settings import check_all
from genre_models.util import VERBOSE_ENV, console_logging

#: MLflow's own INFO lines (system metrics started and stopped, a new experiment, where a run is
#: viewed): four or more per run, hidden unless ``-v``. ``MLFLOW_LOGGING_LEVEL`` reaches the worker
#: processes a sweep starts and ``mlflow run``'s commands too; one the user set is kept.
MLFLOW_QUIET_LEVEL = "WARNING"


def _raise_interrupted(signum, frame) -> None:
    raise Interrupted(signal.Signals(signum).name)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
@click.option("-v", "--verbose", is_flag=True,
              help="Also MLflow's own INFO lines (system metrics, experiments, run links) and each sweep point's.")
def main(quiet: bool, verbose: bool) -> None:
    """genre-bench: honest, reproducible GTZAN genre classification, tracked in MLflow."""
    signal.signal(signal.SIGTERM, _raise_interrupted)  # SIGINT raises KeyboardInterrupt already
    try:
        check_all()  # a bad GENRE_BENCH_* value is one line now, not a traceback in a thread later
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    console_logging(logging.WARNING if quiet else logging.INFO)
    from genre_models.util import quiet as no_tty

    if no_tty():  # MLflow's own download bars ignore our quiet rule otherwise
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if verbose and not quiet:
        os.environ["MLFLOW_LOGGING_LEVEL"] = "INFO"
        os.environ[VERBOSE_ENV] = "1"
    else:
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", MLFLOW_QUIET_LEVEL)
    logging.getLogger("mlflow").setLevel(os.environ["MLFLOW_LOGGING_LEVEL"].upper())  # where MLflow is imported already
    for noisy in ("matplotlib", "alembic", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # MLflow logs a store error with its whole traceback before raising it; the raised error is
    # what the user gets, in one line naming the store and the database's own words.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)


for _command in (synth, preprocess, train, gan, server, sweep, report, calibrate, predict, nets_cmd, perf):
    main.add_command(_command)
bound_options(main)


def entry() -> None:
    """The ``benchmark`` command (and ``python -m benchmark``): ``main``, then an exit that skips
    the interpreter's teardown of its modules, which with torch, librosa and scikit-learn loaded
    took 1.2 s of every command (a tenth of a 1000-seed dry run). What teardown would still do
    that matters is done first, in the interpreter's own order: ``threading._shutdown`` (its exit
    hooks, which stop idle thread pools' workers, then a join of every non-daemon thread; a plain
    join of an idle pool's worker waits forever), the ``atexit`` handlers (MLflow's, logging's
    flush, multiprocessing's), and stdout and stderr flushed."""
    import atexit
    import threading

    try:
        main(prog_name="benchmark")
        code = 0
    except SystemExit as exc:
        code = exc.code
    if code is not None and not isinstance(code, int):
        sys.stderr.write(f"{code}\n")
        code = 1
    for sig in (signal.SIGTERM, signal.SIGINT):  # the command is done: a signal now ends it as it would any process
        signal.signal(sig, signal.SIG_DFL)
    threading._shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (``| head``): nothing more can be said
            pass
    os._exit(code or 0)

