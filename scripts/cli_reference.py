"""Print docs/cli.md, the CLI reference, from click's own help: every command and sub-command,
its usage, its help and every option. `python scripts/cli_reference.py > docs/cli.md`;
tests/test_docs.py fails when the file and this output differ."""

from __future__ import annotations

import click

from benchmark.cli import main

HEADER = """# CLI reference

Generated from the commands' own help by `python scripts/cli_reference.py > docs/cli.md`;
`tests/test_docs.py` fails when it is stale. Every command also answers `--help`.
"""


WIDTH = 100  # fixed, so the reference does not depend on the terminal it was made in


def _commands(group: click.Group, path: str, ctx: click.Context):
    for name in sorted(group.commands):
        cmd = group.commands[name]
        sub = cmd.make_context(name, [], parent=ctx, resilient_parsing=True)  # the group's settings, inherited
        yield f"{path} {name}", cmd, sub
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, f"{path} {name}", sub)


def _section(full: str, cmd: click.Command, ctx: click.Context) -> list[str]:
    ctx.terminal_width = ctx.max_content_width = WIDTH
    return [f"## `{full}`", "", "```text", cmd.get_help(ctx).rstrip(), "```", ""]


def render() -> str:
    root = main.make_context("benchmark", [], resilient_parsing=True)
    lines = [HEADER, *_section("benchmark", main, root)]
    for full, cmd, ctx in _commands(main, "benchmark", root):
        lines += _section(full, cmd, ctx)
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")
