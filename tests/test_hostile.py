"""A stranger's run can spoil its own row, never a colleague's report or machine: text from a
shared store rendered in every output format, runs with malformed tags, cards that ask for too
much, a batch with one bad clip, outputs written atomically, and stores that do not answer."""

from __future__ import annotations

import csv
import re

import mlflow
import pytest

from genre_models.stages.report import write_report

from conftest import fake_run

EXP = "gtzan-genre-benchmark"

#: Names a stranger could give a net, a dataset or a code version in a shared store.
NASTY = [
    "[x&#93;(javascript:alert(1))",
    "[y](javascript:alert(2))",
    "<img src=x onerror=alert(3)>",
    "line\nbreak | and pipe",
    "=cmd|' /C calc'!A0",
    "@SUM(1+1)",
    "rtl \u202eexe.txt",
    "tab\tand\rreturn",
    "&lt;script&gt;alert(4)&lt;/script&gt;",
    "w" * 10_000,
]


_PIPE = re.compile(r"(?<!\\)\|")


def _tables(text: str) -> list[list[str]]:
    """Each markdown table's lines."""
    out, block = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            block.append(line)
        elif block:
            out.append(block)
            block = []
    return out


def test_store_text_never_becomes_markup_in_any_format(tmp_store, tmp_path):
    client = mlflow.MlflowClient()
    exp_id = mlflow.get_experiment_by_name(EXP).experiment_id
    for i, name in enumerate(NASTY):
        for seed in range(3):
            fake_run(client, exp_id, name, seed, 0.5 + 0.01 * i + 0.02 * seed, epochs=5, stopped_epoch=3, right=5,
                     tags={"input_kind": "mfcc", "net_origin": name, "code_version": name, "net_baseline": "net5"},
                     params={"early_stopping": "True"})
    for seed in range(3):
        fake_run(client, exp_id, "net5", seed, 0.5, stopped_epoch=3, right=4)
    out = tmp_path / "r" / "report.md"
    rep = write_report(EXP, out=str(out), figures=False)
    assert rep.n_runs == 3 * len(NASTY) + 3
    text, page = out.read_text(), out.with_suffix(".html").read_text()
    # Markdown: a name never splits a row (every row has its header's cells), nor makes a tag or a link.
    tables = _tables(text)
    assert len(tables) >= 4
    for table in tables:
        assert {len(_PIPE.findall(row)) for row in table} == {len(_PIPE.findall(table[0]))}, table[0]
    assert "\u202e" not in text and "rtl \\u202eexe.txt" in text and "line\\nbreak" in text  # shown, not obeyed
    assert not re.search(r"(?<!\\)\]\(javascript", text) and "<img" not in text and "&amp;#93;" in text
    # HTML: links and images only from the report's own markup.
    hrefs = re.findall(r'href="([^"]*)"', page)
    assert hrefs and all(h.startswith(("report_files/", "https://")) for h in hrefs), hrefs
    assert re.findall(r"<img\b", page) == [] and "<script" not in page and "\u202e" not in page
    assert "[x&amp;#93;(javascript:alert(1))" in page  # shown as the text it is
    # CSV: no cell a spreadsheet would run, no raw control or direction character.
    files = out.parent / "report_files"
    for f in files.glob("*.csv"):
        for row in csv.reader(f.open(newline="")):
            for cell in row:
                assert not cell.startswith(("=", "+", "@", "\t", "\r")) and "\n" not in cell and "\u202e" not in cell, (f, cell)
    assert any("'=cmd" in f.read_text() for f in files.glob("*.csv"))
    # LaTeX: the specials a name holds are escaped, controls shown.
    tex = "".join(f.read_text() for f in files.glob("*.tex"))
    assert "[x\\&\\#93;(javascript:alert(1))" in tex and "\u202e" not in tex and "tab\\textbackslash{}tand" in tex
