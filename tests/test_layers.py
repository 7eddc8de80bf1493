"""The architecture, guarded: folders are layers and imports run one way.

Every module's imports are parsed (top level and inside functions alike) and the test fails on
an import of a higher layer, an import cycle, a stage importing another stage, a ``_private``
name used from another module; and, in the tests and scripts too, on a function longer than
``MAX_FUNCTION_LINES`` or a module longer than ``MAX_MODULE_LINES``. The checker is tested on a
small tree built to break each rule, so a checker that finds nothing cannot pass.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("genre_models", "benchmark")

#: Lower layers first; a module may import its own layer and the ones before it.
LAYERS = (
    ("base", ("genre_models", "genre_models.errors", "genre_models.genres", "genre_models.config", "genre_models.util",
              "genre_models.settings", "genre_models.workers", "genre_models.outputs")),
    ("data", ("genre_models.data",)),
    ("models", ("genre_models.models",)),
    ("training", ("genre_models.training",)),
    ("tracking", ("genre_models.tracking",)),
    ("reporting", ("genre_models.reporting",)),
    ("stages", ("genre_models.stages",)),
    ("workflow", ("genre_models.workflow",)),
    ("sweep", ("genre_models.sweep",)),
    ("cli", ("benchmark",)),
)
#: Layers whose modules must not import each other (a stage never runs another stage).
ISOLATED = ("stages",)
MAX_FUNCTION_LINES = 60


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path) -> dict[str, Path]:
    return {module_name(p, root): p for pkg in PACKAGES for p in sorted((root / pkg).rglob("*.py"))}


def layer_of(module: str) -> int:
    """Index in LAYERS of the longest matching prefix."""
    best, best_len = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = i, len(prefix)
    return best


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, path: Path, known: set[str]) -> list[tuple[str, int, str]]:
    """(imported project module, line, name imported from it or '') for every import in the file."""
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno, "") for a in node.names if a.name.split(".")[0] in PACKAGES]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(node, module, path.name == "__init__.py")
            if target.split(".")[0] not in PACKAGES:
                continue
            for a in node.names:
                sub = f"{target}.{a.name}"
                out.append((sub, node.lineno, "") if sub in known else (target, node.lineno, a.name))
    return out


def _private_attributes(module: str, path: Path, known: set[str]) -> list[tuple[int, str]]:
    """``alias._name`` where ``alias`` is bound to a project module by an import."""
    tree = ast.parse(path.read_text(), str(path))
    aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases |= {a.asname for a in node.names if a.asname and a.name in known}
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(node, module, path.name == "__init__.py")
            aliases |= {a.asname or a.name for a in node.names if f"{target}.{a.name}" in known}
    return [(n.lineno, f"{n.value.id}.{n.attr}") for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in aliases
            and n.attr.startswith("_") and not n.attr.startswith("__")]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each a cycle's members."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def check_tree(root: Path) -> list[str]:
    """Every breach of the layer rules in the tree at ``root``, one line each."""
    mods = modules(root)
    known = set(mods)
    problems, graph = [], {m: set() for m in mods}
    for mod, path in mods.items():
        here = layer_of(mod)
        rel = path.relative_to(root)
        for target, line, name in imports_of(mod, path, known):
            if target not in known or target == mod:
                continue
            graph[mod].add(target)
            there = layer_of(target)
            if there > here:
                problems.append(f"{rel}:{line}: upward import of {target} ({LAYERS[there][0]}) from {LAYERS[here][0]}")
            elif there == here and LAYERS[here][0] in ISOLATED and not mods[target].name == "__init__.py":
                problems.append(f"{rel}:{line}: {mod} imports {target}: a stage never imports another stage")
            if name.startswith("_") and not name.startswith("__"):
                problems.append(f"{rel}:{line}: private name {name} imported from {target}")
        problems += [f"{rel}:{line}: private name {attr} used from another module"
                     for line, attr in _private_attributes(mod, path, known)]
    problems += [f"import cycle: {' -> '.join(c)}" for c in _cycles(graph)]
    return problems


def sized_files(root: Path) -> list[Path]:
    """The modules whose size is checked: every ``.py`` under ``SIZED``."""
    return [p for folder in SIZED if (root / folder).is_dir() for p in sorted((root / folder).rglob("*.py"))]


def long_functions(root: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    out = []
    for path in sized_files(root):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > limit:
                    out.append(f"{path.relative_to(root)}:{node.lineno}: {node.name} is {n} lines")
    return out


def test_imports_run_one_way_with_no_cycle_no_stage_to_stage_and_no_private_names():
    assert check_tree(ROOT) == []


def test_every_module_has_a_layer():
    assert [m for m in modules(ROOT) if layer_of(m) < 0] == []


def test_no_function_is_longer_than_the_limit():
    assert long_functions(ROOT) == []


#: No module of the tree grows past this: one grown past it holds more than one concern
#: (``sweep/projection.py`` reached 576 lines before it became the ``sweep/cost/`` room; the bad-input
#: matrix, 661, before the store's faults became ``test_store_faults.py``).
MAX_MODULE_LINES = 400
#: The folders whose modules are sized: the library, the runner, the tests and the scripts.
SIZED = (*PACKAGES, "tests", "scripts")


def oversized(root: Path) -> dict[str, int]:
    """Every module of ``SIZED`` under ``root`` longer than ``MAX_MODULE_LINES``, with its lines."""
    sizes = {str(p.relative_to(root)): len(p.read_text().splitlines()) for p in sized_files(root)}
    return {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES}


def test_no_module_of_the_whole_tree_is_over_the_limit(tmp_path):
    assert oversized(ROOT) == {}
    _write(tmp_path, "genre_models/sweep/big.py", "x = 1\n" * (MAX_MODULE_LINES + 1))  # the check can fail
    _write(tmp_path, "tests/test_big.py", "x = 1\n" * (MAX_MODULE_LINES + 2))  # in the tests too
    _write(tmp_path, "benchmark/small.py", "x = 1\n")
    assert oversized(tmp_path) == {"genre_models/sweep/big.py": MAX_MODULE_LINES + 1, "tests/test_big.py": MAX_MODULE_LINES + 2}


def test_the_cost_of_a_sweep_has_a_room_of_its_own():
    """``sweep/cost/``: one module per concern, and the projection module it replaced is gone."""
    room = ROOT / "genre_models" / "sweep" / "cost"
    assert {p.stem for p in room.glob("*.py")} == {"__init__", "probe", "load", "history", "model", "words",
                                                    "alternatives", "estimate"}
    assert not (ROOT / "genre_models" / "sweep" / "projection.py").exists()
    assert "get_net(" not in (room / "probe.py").read_text() + (room / "words.py").read_text()  # looked up once


def test_the_cli_is_a_package_of_short_modules_sharing_one_options_module():
    cli = ROOT / "benchmark" / "cli"
    assert (cli / "__init__.py").is_file() and not (ROOT / "benchmark" / "cli.py").exists()
    for path in cli.glob("*.py"):  # the shared decorators live in options.py alone
        if path.name != "options.py":
            assert "def tracking_options" not in path.read_text() and "class CliError" not in path.read_text()


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_checker_catches_each_kind_of_breach(tmp_path):
    for pkg in ("genre_models", "genre_models/data", "genre_models/stages", "genre_models/training", "benchmark"):
        _write(tmp_path, f"{pkg}/__init__.py", "")
    # data -> stages: upward, and only inside a function (as the old gan.py did 29 times)
    _write(tmp_path, "genre_models/data/store.py", "def f():\n    from genre_models.stages.train import train\n")
    # stages -> stages
    _write(tmp_path, "genre_models/stages/train.py", "from genre_models.stages import gan\n")
    _write(tmp_path, "genre_models/stages/gan.py", "from genre_models.training.loop import _autocast\n")
    # a private name through a module alias, and a cycle inside one layer (relative imports)
    _write(tmp_path, "genre_models/training/loop.py", "from . import runtime\nx = runtime._seed\n")
    _write(tmp_path, "genre_models/training/runtime.py", "def g():\n    from .loop import x\n")
    _write(tmp_path, "benchmark/cli.py", "def " + "h():\n" + "    pass\n" * 70)
    _write(tmp_path, "tests/test_x.py", "def " + "test_long():\n" + "    pass\n" * 61)  # tests are held to it too
    found = check_tree(tmp_path)
    text = "\n".join(found)
    assert "store.py:2: upward import of genre_models.stages.train (stages) from data" in text
    assert "genre_models.stages.train imports genre_models.stages.gan: a stage never imports another stage" in text
    assert "private name _autocast imported from genre_models.training.loop" in text
    assert "private name runtime._seed used from another module" in text
    assert "import cycle: genre_models.training.loop -> genre_models.training.runtime" in text
    assert len(found) == 5, found
    assert long_functions(tmp_path) == ["benchmark/cli.py:1: h is 71 lines", "tests/test_x.py:1: test_long is 62 lines"]
