"""Docs that stay true: every `benchmark ...` and `mlflow run ...` command in the README and
docs/ parses (the command exists, its options exist, its values and choices are valid), every
relative link and anchor points at something that exists, the CLI reference is current, and the
README stays a short front door. Nothing is run: commands go through click's own parser with the
options' callbacks (which would load plugins) set aside."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from benchmark.cli import main

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_SPAN = re.compile(r"`((?:benchmark|mlflow run|python -m benchmark) [^`]+)`")
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def shell_blocks(text: str) -> list[str]:
    """The code blocks fenced as shell (``bash``, ``sh``, ``console`` or no language), line by line."""
    blocks, lang, lines = [], None, []
    for line in text.splitlines():
        fence = line.strip().startswith("```")
        if fence and lang is None:
            lang, lines = line.strip()[3:].strip(), []
        elif fence:
            if lang in ("bash", "sh", "console", ""):
                blocks.append("\n".join(lines) + "\n")
            lang = None
        elif lang is not None:
            lines.append(line)
    return blocks


def shell_commands(text: str) -> list[str]:
    """Every shell command in ``text``'s code blocks and inline code, one string each: lines
    joined at a trailing backslash, comments dropped, split at ``&&``, ``||``, ``;`` and ``|``."""
    out = []
    for block in shell_blocks(text):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
            lexer.whitespace_split, lexer.commenters = True, "#"
            words, current = list(lexer), []
            for w in words + ["&&"]:
                if w in ("&&", "||", ";", "|", "&"):
                    out.append(current) if current else None
                    current = []
                else:
                    current.append(w)
    return [" ".join(shlex.quote(w) for w in c) for c in out if c]


def prose_commands(text: str) -> list[str]:
    """Commands named in inline code (`benchmark train`), where ``...`` marks an elision."""
    return [span for span in _SPAN.findall(text) if "..." not in span and "…" not in span]


def ours(cmd: str) -> list[str] | None:
    """The words of a genre-bench or ``mlflow run`` command (environment assignments dropped), else None."""
    words = shlex.split(cmd)
    while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
        words = words[1:]
    if words[:3] == ["python", "-m", "benchmark"]:
        return ["benchmark", *words[3:]]
    if words[:1] == ["benchmark"] or words[:2] == ["mlflow", "run"]:
        return words
    return None


def _set_aside(command, required: bool):
    """The command and its sub-commands with every parameter callback set aside, and (for a
    command named in prose) no parameter required; restored after."""
    saved = []
    stack = [command]
    while stack:
        cmd = stack.pop()
        saved += [(p, p.callback, p.required) for p in cmd.params]
        stack += list(getattr(cmd, "commands", {}).values())
    for p, _, req in saved:
        p.callback, p.required = None, req and required
    return saved


def parse_benchmark(words: list[str], required: bool = True) -> None:
    """Resolve ``benchmark <group> <command> [options]`` through click's parser. ``required``:
    a command shown to be run must give its required options; one named in prose need not."""
    import click

    saved = _set_aside(main, required)
    try:
        ctx = main.make_context("benchmark", words[1:])
        cmd, args = main, ctx.protected_args + ctx.args
        while hasattr(cmd, "commands") and args:
            name, cmd, args = cmd.resolve_command(ctx, args)
            if hasattr(cmd, "commands") and not args:
                return  # a group named in prose ("the `benchmark perf` commands")
            ctx = cmd.make_context(name, args, parent=ctx)
            args = getattr(ctx, "protected_args", []) + (ctx.args if hasattr(cmd, "commands") else [])
    except click.exceptions.Exit as done:  # --help: it exists, and says so
        assert done.exit_code == 0
    finally:
        for p, cb, req in saved:
            p.callback, p.required = cb, req


PROJECT = yaml.safe_load((ROOT / "MLproject").read_text())
_TYPES = {"int": int, "float": float, "string": str, "path": str}


def parse_mlflow_run(words: list[str]) -> None:
    """``mlflow run . -e <entry> -P k=v ...``: MLflow's own options parse, the entry point exists
    in MLproject, and every -P names one of its parameters with a value of its type."""
    from mlflow.cli import cli as mlflow_cli

    ctx = mlflow_cli.commands["run"].make_context("run", words[2:])
    entry = ctx.params.get("entry_point") or "main"
    assert entry in PROJECT["entry_points"], f"no entry point {entry!r} in MLproject"
    declared = PROJECT["entry_points"][entry]["parameters"]
    for pair in ctx.params.get("param_list") or ():
        key, _, value = pair.partition("=")
        assert key in declared, f"entry point {entry} has no parameter {key!r}"
        _TYPES[declared[key]["type"]](value)


def all_commands() -> list[tuple[str, list[str], bool]]:
    """(where, words, shown to be run) for every command of ours in the README and docs/."""
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for cmd, run in [(c, True) for c in shell_commands(text)] + [(c, False) for c in prose_commands(text)]:
            words = ours(cmd)
            if words:
                found.append((f"{doc.relative_to(ROOT)}: {cmd}", words, run))
    return found


COMMANDS = all_commands()


def test_the_docs_hold_commands_to_check():
    assert sum(run for *_, run in COMMANDS) > 40 and any(w[:2] == ["mlflow", "run"] for _, w, _ in COMMANDS)
    assert shell_commands("```bash\nA=1 benchmark sweep --demo && benchmark report  # and\n```\n") == [
        "A=1 benchmark sweep --demo", "benchmark report"]
    assert shell_commands("```python\nx = 'benchmark train'\n```\n") == []  # only shell blocks


@pytest.mark.parametrize("where,words,run", COMMANDS, ids=[w for w, *_ in COMMANDS])
def test_every_documented_command_parses(where, words, run):
    if words[0] == "benchmark":
        parse_benchmark(words, required=run)
    else:
        parse_mlflow_run(words)


def test_the_parser_catches_what_the_docs_could_get_wrong():
    import click

    for bad in (["benchmark", "swep"], ["benchmark", "sweep", "--grid", "huge"], ["benchmark", "train", "--net", "net5"],
                ["benchmark", "predict", "x.wav", "--model-uri", "m", "--topp", "3"]):
        with pytest.raises(click.UsageError):
            parse_benchmark(bad)
    with pytest.raises(AssertionError, match="no parameter 'epoch'"):
        parse_mlflow_run(["mlflow", "run", ".", "-e", "net2", "-P", "epoch=3"])
    with pytest.raises(ValueError):
        parse_mlflow_run(["mlflow", "run", ".", "-e", "net2", "-P", "epochs=many"])


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(doc: Path) -> set[str]:
    return {slug(h) for h in re.findall(r"^#+ (.+)$", doc.read_text(), re.M)}


def test_every_relative_link_and_anchor_points_at_something():
    broken = []
    for doc in DOCS:
        for target in _LINK.findall(re.sub(r"^```.*?^```", "", doc.read_text(), flags=re.S | re.M)):
            if re.match(r"^[a-z]+:", target):
                continue  # http:, https:, mailto:
            path, _, anchor = target.partition("#")
            where = (doc.parent / path).resolve() if path else doc
            if not where.exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and where.suffix == ".md" and anchor not in anchors(where):
                broken.append(f"{doc.relative_to(ROOT)}: {target} (no such heading)")
    assert broken == []


def test_the_readme_is_a_short_front_door_linking_every_docs_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    pages = {p.name for p in (ROOT / "docs").glob("*.md") if p.name != "README.md"}
    assert {"data.md", "protocol.md", "nets.md", "sweep-report.md", "mlflow.md", "scaling.md", "performance.md",
            "cli.md"} <= pages
    linked = {Path(t.partition("#")[0]).name for t in _LINK.findall(readme) if t.startswith("docs/")}
    assert pages <= linked, pages - linked


def test_the_cli_reference_is_current():
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "cli_reference.py")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (ROOT / "docs" / "cli.md").read_text(), \
        "docs/cli.md is stale: python scripts/cli_reference.py > docs/cli.md"
