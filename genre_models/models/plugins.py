"""Nets from outside genre-bench: a ``NetSpec`` in the user's own package.

Two ways in, both resolved by ``registry.get_net``:

* an entry point in the group ``genre_bench.nets`` of an installed package
  (``[project.entry-points."genre_bench.nets"] crnn = "my_pkg.nets:crnn"``): the net is then
  known by the entry point's name everywhere, in every process that has the package;
* a reference ``package.module:factory`` typed where a net name goes (``--net``). The net is
  then known by its spec's name; the reference is kept in ``GENRE_BENCH_NETS`` (inherited by
  ``--jobs`` workers and ``mlflow run`` children) and handed to Ray tasks with each point.

The factory is a ``NetSpec`` or a callable returning one. Loading it checks, before any data is
read: that it imports, that the factory returns a ``NetSpec`` with a free, valid name, a known
input kind and optimizer, and that its model turns the input example into (B, 10) logits. Each
failure is one ``ConfigError`` line naming the plugin.
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import replace
from importlib import metadata

from genre_models.errors import ConfigError
from genre_models.genres import N_CLASSES
from genre_models.models.spec import INPUT_KINDS, OPTIMIZERS, InputShape, NetSpec

ENTRY_POINT_GROUP = "genre_bench.nets"
#: ``name=package.module:factory`` pairs, comma-separated: the nets this process loaded by reference.
REFS_ENV = "GENRE_BENCH_NETS"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_loaded: dict[str, NetSpec] = {}


def entry_points() -> dict[str, metadata.EntryPoint]:
    """Installed plugins by name (nothing is imported)."""
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def loaded_refs() -> dict[str, str]:
    """The nets loaded by reference here or in a parent process: name -> reference."""
    pairs = (item.split("=", 1) for item in os.environ.get(REFS_ENV, "").split(",") if "=" in item)
    return {name: ref for name, ref in pairs}


def use_refs(refs: dict[str, str]) -> None:
    """Make nets another process loaded by reference resolvable here (a worker, a Ray task)."""
    if refs:
        os.environ[REFS_ENV] = ",".join(f"{n}={r}" for n, r in {**loaded_refs(), **refs}.items())


def find(name: str, builtin: tuple[str, ...]) -> NetSpec:
    if name in _loaded:
        return _loaded[name]
    if ":" in name:
        spec = _load(name, f"plugin {name}", builtin, origin=f"module {name}", ref=name)
        use_refs({spec.name: name})
        return spec
    if name in loaded_refs():
        ref = loaded_refs()[name]
        return _load(ref, f"plugin {ref}", builtin, origin=f"module {ref}", ref=ref, expect=name)
    eps = entry_points()
    if name in eps:
        ep = eps[name]
        dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else "an unknown distribution"
        return _load(ep.value, f"plugin {name!r} (entry point {ep.value} of {dist})", builtin,
                     origin=f"entry point {ep.value} ({dist})", ref="", expect=name)
    known = [*builtin, *sorted(eps)]
    raise ConfigError(f"unknown net {name!r}; valid nets: {', '.join(known)}, or a plugin as package.module:factory")


def _load(target: str, label: str, builtin: tuple[str, ...], *, origin: str, ref: str, expect: str = "") -> NetSpec:
    spec = replace(_factory_spec(target, label), origin=origin, ref=ref)
    if expect and spec.name != expect:
        raise ConfigError(f"{label}: the factory returned a net named {spec.name!r}, not {expect!r}")
    check_spec(spec, label, builtin)
    check_output(spec, label)
    _loaded[spec.name] = spec
    return spec


def _factory_spec(ref: str, label: str) -> NetSpec:
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"{label}: a plugin reference is package.module:factory")
    try:
        obj = importlib.import_module(module_name)
    except Exception as exc:  # the plugin's own import failed: say so in one line
        raise ConfigError(f"{label}: cannot import {module_name}: {_one_line(exc)}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"{label}: {module_name} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not isinstance(obj, NetSpec):
        if not callable(obj):
            raise ConfigError(f"{label}: {attr} is a {type(obj).__name__}, neither a NetSpec nor a factory returning one")
        try:
            obj = obj()
        except Exception as exc:
            raise ConfigError(f"{label}: the factory raised {_one_line(exc)}") from None
    if not isinstance(obj, NetSpec):
        raise ConfigError(f"{label}: the factory returned a {type(obj).__name__}, not a "
                          "genre_models.models.spec.NetSpec")
    return obj


def check_spec(spec: NetSpec, label: str, builtin: tuple[str, ...]) -> None:
    problems = []
    if not _NAME.match(spec.name):
        problems.append(f"name {spec.name!r} is not letters, digits, '.', '_' or '-' (at most 63)")
    elif spec.name in builtin:
        problems.append(f"name {spec.name!r} is a built-in net's")
    if spec.input_kind not in INPUT_KINDS:
        problems.append(f"input kind {spec.input_kind!r} is not one genre-bench has ({', '.join(INPUT_KINDS)})")
    if spec.optimizer not in OPTIMIZERS:
        problems.append(f"optimizer {spec.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
    if not (isinstance(spec.lr, (int, float)) and spec.lr > 0) or spec.epochs < 1 or spec.batch_size < 1 or spec.patience < 1:
        problems.append("lr, epochs, batch_size and patience must be above 0")
    if spec.scores_gan or spec.uses_gan:
        problems.append("uses_gan and scores_gan are the study's roles (net6, net5), not a plugin's")
    if spec.baseline is not None and spec.baseline not in builtin:
        problems.append(f"baseline {spec.baseline!r} is not a built-in net")
    if problems:
        raise ConfigError(f"{label}: {'; '.join(problems)}")


def check_output(spec: NetSpec, label: str) -> None:
    """Build the model at the default input shape and run a batch of 2 through it: (2, 10) logits."""
    import torch

    shape = InputShape()
    try:
        model = spec.build(shape, "flatten")
    except Exception as exc:
        raise ConfigError(f"{label}: building the model raised {_one_line(exc)}") from None
    if not isinstance(model, torch.nn.Module):
        raise ConfigError(f"{label}: build returned a {type(model).__name__}, not a torch.nn.Module")
    x = spec.input_example(shape, batch=2)
    try:
        with torch.no_grad():
            out = model.eval()(x)
    except Exception as exc:
        raise ConfigError(f"{label}: the model fails on a {spec.input_kind} input {tuple(x.shape)}: {_one_line(exc)}") from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, N_CLASSES):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"{label}: the model turns a {spec.input_kind} input {tuple(x.shape)} into {got}, "
                          f"not (2, {N_CLASSES}) logits")


def installed(builtin: tuple[str, ...]) -> list[tuple[str, NetSpec | None, str]]:
    """Every installed plugin: (name, its spec or None, the problem if it does not load)."""
    out = []
    for name in sorted(entry_points()):
        try:
            out.append((name, find(name, builtin), ""))
        except ConfigError as exc:
            out.append((name, None, str(exc)))
    return out


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
