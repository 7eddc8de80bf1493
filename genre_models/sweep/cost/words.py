"""The projection in words a person reads: where each stage's seconds and epochs came from
(``probe``, ``store``, ``prior``, or ``budget`` for epochs a cap fixes), the dry run's table, and
durations. Every net's spec comes from the projection's own ``nets`` (``model.NetCost``)."""

from __future__ import annotations

import math

from genre_models.sweep.cost.model import Projection, expected_epochs, learned_of


def rate_words(stage: str, rates: dict) -> str:
    """A stage's seconds, in words: the rate the probe measured, or the store's runs it used."""
    if stage == "preprocess":
        return f"probe: {rates['preprocess'].get('seconds_per_clip', math.nan):.2f} s a clip"
    if stage == "gan":
        g = rates["gan"]
        scaled = f", timed at batch {g['probe_batch']}" if g["scaled_from_probe"] else ""
        return f"probe: {g['steps_per_s']:.3g} steps/s (d {g['d']}, batch {g['batch']}{scaled})"
    if stage in rates.get("unmeasured", {}):
        return f"not measured ({rates['unmeasured'][stage]})"
    learned = learned_of(stage, rates)
    if learned.get("timed_runs"):
        return f"store: {learned['timed_runs']} finished run{'s' if learned['timed_runs'] > 1 else ''} here"
    if stage in rates["classical"]:
        c = rates["classical"][stage]
        return f"probe: {c['fit_seconds']:.2f} s a fit of {c['probe_samples']} samples"
    n = rates["nets"][stage]
    return f"probe: {n['train_samples_per_s']:.4g} samples/s training (batch {n['batch']})"


def epoch_words(stage: str, cfg_epochs: set, proj: Projection) -> str:
    """A stage's epochs, in words: its budget, the store's stopping epochs, or the prior."""
    rates = proj.rates
    if stage in ("preprocess", "gan") or stage in rates.get("unmeasured", {}):
        return "-"
    spec = proj.nets[stage].spec
    if spec.family == "classical":
        return "one fit"
    learned = learned_of(stage, rates)
    cap = max(cfg_epochs)
    epochs, source = expected_epochs(cap, spec.early_stopping, learned)
    if source == "budget":
        return f"budget: {'/'.join(str(e) for e in sorted(cfg_epochs))}"
    if source == "store":
        return f"store: stops at {epochs:.3g} ({learned['stop_runs']} run{'s' if learned['stop_runs'] > 1 else ''})"
    return f"prior: stops at {epochs:.3g}"


def sources(proj: Projection) -> dict[str, str]:
    """Where each stage's figures came from: its seconds' (``probe`` or ``store``; ``not
    measured`` where the probe could not build it), then for an early-stopping net its epochs'
    where the store or the prior set them (``store`` or ``prior``; a cap below both is its budget)."""
    out = {}
    for stage, epochs in _stage_epochs(proj).items():
        if stage in proj.rates.get("unmeasured", {}):
            out[stage] = "not measured"
            continue
        learned = learned_of(stage, proj.rates)
        out[stage] = "store" if learned.get("timed_runs") else "probe"
        if stage != "gan" and proj.nets[stage].spec.early_stopping:
            _, source = expected_epochs(max(epochs), True, learned)
            out[stage] += f", epochs {source}" if source != "budget" else ""
    return out


def _stage_epochs(proj: Projection) -> dict[str, set]:
    """Each stage's epoch budgets among the points (the GAN's: none)."""
    out: dict[str, set] = {}
    for p in proj.points:
        if p.kind == "gan":
            out.setdefault("gan", set()).add(0)
        else:
            out.setdefault(p.net, set()).add(p.epochs or proj.nets[p.net].spec.epochs)
    return out


def table(proj: Projection) -> list[str]:
    """The projection as a table a person reads: stage, points, where its seconds and its
    epochs came from (probe, store or prior), minutes."""
    counts: dict[str, int] = {}
    for p in proj.points:
        key = "gan" if p.kind == "gan" else p.net
        counts[key] = counts.get(key, 0) + 1
    rows = [("stage", "points", "seconds from", "epochs from", "minutes")]
    if proj.preprocess_s:
        rows.append(("preprocess", "-", rate_words("preprocess", proj.rates), "-", f"{proj.preprocess_s / 60:.1f}"))
    epochs = _stage_epochs(proj)
    rows += [(k, str(counts[k]), rate_words(k, proj.rates), epoch_words(k, epochs[k], proj), f"{v / 60:.1f}")
             for k, v in proj.stages.items()]
    rows.append((f"wall time, --jobs {proj.jobs}", str(len(proj.points)), "", "", f"{proj.makespan_s / 60:.1f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return ["  ".join(c.ljust(w) if i < 4 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]


def duration(seconds: float) -> str:
    """``40 s``, ``4 min``, ``3.2 h``, ``105 days``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h" if seconds < 48 * 3600 else f"{seconds / 86400:.0f} days"

