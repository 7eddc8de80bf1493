"""``benchmark sweep --until-decided``: add whole seeds (every fold of a new seed) one at a time,
and after each look at the claims again under a group-sequential design
(``reporting.sequential``), until every claim the nets can test is supported or contradicted, or
the budget would be exceeded (``--max-hours``: the next seed's projected cost is checked before it
starts, and the sweep stops there; ``--max-seeds``, the design's horizon).

Each look is an ordinary sweep of ``seeds`` seeds, so its points are resumed like any other, and
the looks are recomputed from the store's runs: Ctrl-C or SIGTERM between or during looks leaves
valid runs, and the same command goes on where it stopped. One run (``stage=sequential``) records
every look: its seeds, one test's nominal level and the alpha spent (metrics by look), every
claim's verdict and p (``looks.json``), the design, and why it stopped.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, replace

from genre_models.errors import interrupt_signal
from genre_models.reporting.claims import MARGIN
from genre_models.reporting.runs import select_runs
from genre_models.reporting.sequential import Design, Look, look
from genre_models.reporting.significance import Votes
from genre_models.sweep.driver import OverBudget, SweepResult, run_sweep
from genre_models.sweep.grid import SweepConfig
from genre_models.sweep.point import one_line
from genre_models.tracking.queries import experiment_runs, run_votes
from genre_models.tracking.retry import store_client
from genre_models.tracking.setup import setup_tracking


@dataclass
class UntilResult:
    design: Design
    looks: list[Look] = field(default_factory=list)
    stopped: str = ""
    run_id: str = ""
    sweeps: list[SweepResult] = field(default_factory=list)

    def failed(self) -> int:
        return sum(s.failed for s in self.sweeps)


def _key(cfg: SweepConfig, design: Design) -> str:
    blob = json.dumps({**asdict(replace(cfg, seeds=1, max_hours=None, jobs=1)), **asdict(design)}, sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _open_record(client, exp_id: str, key: str, design: Design) -> str:
    """The sequential run of this command: the earlier one (resumed), else a new one."""
    found = client.search_runs([exp_id], f"tags.sequential_key = '{key}' and tags.stage = 'sequential'", max_results=1)
    if found:
        rid = found[0].info.run_id
        client.update_run(rid, status="RUNNING")
        return rid
    rid = client.create_run(exp_id, run_name=f"until-decided-{key[:8]}", tags={
        "stage": "sequential", "sequential_key": key, "design": design.words(),
        "mlflow.note.content": f"`sweep --until-decided`: {design.words()}. looks.json holds every look."}).info.run_id
    for k, v in {"first_seeds": design.first, "max_seeds": design.horizon, "alpha": design.alpha}.items():
        client.log_param(rid, k, v)
    return rid


def _record(client, rid: str, looks: list[Look]) -> None:
    k = len(looks) - 1
    lk = looks[-1]
    for name, value in (("look_seeds", lk.seeds), ("look_level", lk.level), ("spent_alpha", lk.spent),
                        ("claims_open", len(lk.open))):
        client.log_metric(rid, name, float(value), step=k)
    client.log_text(rid, json.dumps([x.as_dict() for x in looks], indent=2), "looks.json")
    client.set_tag(rid, "looks", "; ".join(f"{_seeds(x.seeds)} at {x.level:.2g}" for x in looks)[:4900])


def _seeds(n: int) -> str:
    return f"{n} seed{'' if n == 1 else 's'}"


def _look(cfg: SweepConfig, experiment: str, dataset: str, design: Design, seeds: int) -> Look:
    runs, _ = select_runs(experiment_runs(experiment), dataset)
    runs = runs[runs.net.isin(cfg.nets) & runs.split.isin(cfg.splits)]
    right, groups = run_votes(list(zip(runs.run_id, runs.artifact_uri)), 8)
    return look(runs, cfg.splits, Votes.of(right, groups), design, seeds, MARGIN)


def look_line(lk: Look, design: Design) -> str:
    decided = len(lk.claims) - len(lk.open)
    return (f"look at {_seeds(lk.seeds)} (level {lk.level:.2g}, alpha spent {lk.spent:.3g} of {design.alpha:g}): "
            f"{decided} of {len(lk.claims)} claims decided" + (f"; open: {', '.join(f'{c} on `{s}`' for s, c in lk.open)}"
                                                             if lk.open else ""))


def run_until_decided(cfg: SweepConfig, max_seeds: int, tracking_uri: str | None = None,
                      experiment: str | None = None, echo=lambda line, final=False: None) -> UntilResult:
    """Looks from ``cfg.seeds`` seeds up to ``max_seeds``, a seed at a time, within ``cfg.max_hours``."""
    design = Design(cfg.seeds, max_seeds)
    experiment = setup_tracking(tracking_uri, experiment)
    client = store_client()
    exp_id = client.get_experiment_by_name(experiment).experiment_id
    result = UntilResult(design, run_id=_open_record(client, exp_id, _key(cfg, design), design))
    started, seeds = time.time(), cfg.seeds
    try:
        while True:
            left = None if cfg.max_hours is None else cfg.max_hours - (time.time() - started) / 3600
            try:
                sweep = run_sweep(replace(cfg, seeds=seeds, max_hours=left), tracking_uri, experiment, echo)
            except OverBudget as exc:
                if not result.looks:
                    raise
                result.stopped = f"budget: the next seed would exceed --max-hours ({one_line(exc)})"
                break
            result.sweeps.append(sweep)
            result.looks.append(_look(cfg, experiment, sweep.dataset, design, seeds))
            _record(client, result.run_id, result.looks)
            echo(look_line(result.looks[-1], design), final=True)
            result.stopped = _stop(result.looks[-1], seeds, max_seeds)
            if result.stopped:
                break
            seeds += 1
    except BaseException as exc:  # Ctrl-C, SIGTERM or a failure: the looks so far stand; the command resumes
        sig = interrupt_signal(exc)
        client.set_tag(result.run_id, "error", f"{sig} received" if sig else one_line(exc))
        client.set_terminated(result.run_id, "KILLED" if sig else "FAILED")
        raise
    client.set_tag(result.run_id, "stopped", result.stopped)
    client.set_terminated(result.run_id, "FINISHED")
    echo(f"until decided: {result.stopped}; {len(result.looks)} look(s), record run {result.run_id}", final=True)
    return result


def _stop(lk: Look, seeds: int, max_seeds: int) -> str:
    if not lk.claims:
        return "no claim its nets can test on these splits"
    if not lk.open:
        return f"every claim its nets can test is decided, at {seeds} seeds"
    if seeds >= max_seeds:
        return f"--max-seeds {max_seeds} reached with {len(lk.open)} claim(s) still open"
    return ""
