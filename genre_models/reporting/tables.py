"""A report table once, written three ways: markdown (the report), CSV (every number in its own
column, for analysis) and LaTeX (booktabs, for a paper). The text of a cell is the same in the
markdown and the LaTeX; the CSV holds the numbers that text was rounded from."""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field

from genre_models.reporting.stats import Cell
from genre_models.util import csv_text, visible


_TAG = re.compile(r"<(?=[A-Za-z/!?])")  # where markdown would start raw HTML: a tag, a comment, <!...>, <?...>


def md(value: str) -> str:
    """Text from the store (an experiment, net or tag) as markdown that shows it and nothing
    more: control and direction characters shown escaped (a newline cannot split a row), ``&``
    as ``&amp;`` (an entity in a name stays text: ``&#93;`` never becomes a bracket), no raw HTML
    (``<script>`` becomes ``&lt;script>``), a pipe cannot split a table cell and ``](`` cannot make
    a link. Our own markup is added around it, never inside."""
    text = visible(str(value)).replace("&", "&amp;")
    return _TAG.sub("&lt;", text).replace("|", "\\|").replace("](", "\\](")


@dataclass(frozen=True)
class Entry:
    """One table cell: its text, and the numbers behind it (``{"mean": .., "lo": ..}``; the key
    ``""`` for a single number)."""

    text: str
    numbers: dict = field(default_factory=dict)


def text(value: str) -> Entry:
    return Entry(value)


def number(value: float | None, fmt: str = "{:.4f}") -> Entry:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Entry("–")
    return Entry(fmt.format(value), {"": value})


def interval(cell: Cell, digits: int = 3, mark: str = "") -> Entry:
    """Mean and interval (or the values, under 3 seeds) as text; mean, lo, hi and n as numbers."""
    nums = {"mean": cell.mean, "lo": cell.lo, "hi": cell.hi, "n": cell.n} if cell.n else {}
    return Entry(cell.fmt(digits) + mark, nums)


def spread(cell: Cell, digits: int = 2) -> Entry:
    """``mean ± sd`` as text; mean, sd and n as numbers."""
    return Entry(cell.spread(digits), {"mean": cell.mean, "sd": cell.sd, "n": cell.n} if cell.n else {})


@dataclass
class Table:
    """``name``: the file stem of its CSV and LaTeX files; ``notes``: footnotes under it."""

    name: str
    title: str
    header: list[str]
    rows: list[list[Entry]]
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        """Every cell, header and note escaped (``md``): names in it come from the store."""
        out = ["| " + " | ".join(md(h) for h in self.header) + " |", "|" + "|".join("---" for _ in self.header) + "|"]
        out += ["| " + " | ".join(md(e.text) for e in row) + " |" for row in self.rows]
        return "\n".join(out) + "".join(f"\n\n{md(n)}" for n in self.notes)  # each note a paragraph of its own

    def _csv_columns(self) -> list[tuple[int, str, str]]:
        """(column index, number key, CSV header) in table order; keys as first seen down a column."""
        cols = []
        for i, h in enumerate(self.header):
            keys: list[str] = []
            for row in self.rows:
                keys += [k for k in row[i].numbers if k not in keys]
            cols += [(i, k, h if k == "" else f"{h} {k}") for k in keys] or [(i, None, h)]
        return cols

    def csv(self) -> str:
        cols = self._csv_columns()
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow([csv_text(c[2]) for c in cols])
        for row in self.rows:
            w.writerow([csv_text(row[i].text) if k is None else _csv_number(row[i].numbers.get(k)) for i, k, _ in cols])
        return buf.getvalue()

    def latex(self) -> str:
        lines = ["\\begin{table}[t]", "\\centering", f"\\caption{{{latex_escape(self.title)}}}",
                 f"\\begin{{tabular}}{{l{'r' * (len(self.header) - 1)}}}", "\\toprule",
                 " & ".join(latex_escape(h) for h in self.header) + " \\\\", "\\midrule"]
        lines += [" & ".join(latex_escape(e.text) for e in row) + " \\\\" for row in self.rows]
        lines += ["\\bottomrule", "\\end{tabular}"]
        lines += [f"\\par\\footnotesize {latex_escape(n)}" for n in self.notes]
        return "\n".join(lines + ["\\end{table}", ""])


def _csv_number(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return str(int(v)) if float(v).is_integer() and abs(v) > 1 else repr(float(v))


_LATEX = {"\\": "\\textbackslash{}", "&": "\\&", "%": "\\%", "$": "\\$", "#": "\\#", "_": "\\_", "{": "\\{",
          "}": "\\}", "~": "\\textasciitilde{}", "^": "\\textasciicircum{}", "±": "$\\pm$", "–": "--", "−": "$-$",
          "‡": "$^\\ddagger$", "†": "$^\\dagger$", "`": "", "*": ""}


def latex_escape(s: str) -> str:
    """LaTeX's special characters escaped, control and direction characters shown (``visible``)."""
    return "".join(_LATEX.get(ch, ch) for ch in visible(s))
