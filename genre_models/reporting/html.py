"""The report's markdown as one self-contained HTML page (images embedded), for sharing.

Only the markdown the report itself writes is understood: headings, paragraphs, ``- `` lists,
pipe tables, images, links, ``**bold**``, ``*italics*`` and ``code``. Anything else stays as escaped text.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from genre_models.util import visible

_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}code{background:#f3f3f3;padding:0 3px}
img{max-width:100%;border:1px solid #eee}"""

# Only an unescaped ``](`` makes an image or a link: ``\](`` is a bracket a name held (``tables.md``).
_IMAGE = re.compile(r"!\[([^\]]*)(?<!\\)\]\(([^)]+)\)")
_LINK = re.compile(r"\[([^\]]+)(?<!\\)\]\(([^)]+)\)")


def safe_href(href: str) -> bool:
    """A link the report may carry: a relative path within the page's folder (no scheme, no
    ``..``), an in-page anchor, or ``https:``; never ``javascript:``, ``data:`` or ``file:``."""
    if href.startswith("https://"):
        return True
    first = href.split("/", 1)[0]
    return bool(href) and ":" not in first and not href.startswith(("/", "\\")) and ".." not in href.split("/")


def _data_uri(src: str, base: Path) -> str | None:
    """An image as a data URI: only a file in the report's own folder, else None."""
    path = base / src
    if not safe_href(src) or src.startswith("https://") or not path.is_file():
        return None
    kind = {"png": "image/png", "svg": "image/svg+xml"}.get(path.suffix.lstrip(".").lower(), "application/octet-stream")
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode()}"


def _inline(s: str, base: Path) -> str:
    """Escape, then turn the report's inline markup into tags (images embedded)."""
    out, last = [], 0
    for m in _IMAGE.finditer(s):
        out.append(_inline_text(s[last:m.start()]))
        src = _data_uri(m.group(2), base)
        out.append(f'<img alt="{html.escape(m.group(1))}" src="{src}">' if src else html.escape(m.group(1)))
        last = m.end()
    return "".join(out) + _inline_text(s[last:])


def _inline_text(s: str) -> str:
    s = html.escape(html.unescape(s), quote=False)  # the markdown's own escapes (``tables.md``) shown as GitHub shows them
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    s = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", s)
    s = re.sub(r"\*([^*\s][^*]*)\*", r"<em>\1</em>", s)
    s = _LINK.sub(lambda m: f'<a href="{html.escape(m.group(2))}">{m.group(1)}</a>' if safe_href(html.unescape(m.group(2)))
                  else m.group(1), s)
    return s.replace("\\](", "](").replace("\\|", "|")


_CELL = re.compile(r"(?<!\\)\|")  # a pipe that splits cells; ``\|`` is a pipe in a cell


def _table(lines: list[str], base: Path) -> str:
    rows = [[c.strip().replace("\\|", "|") for c in _CELL.split(line.strip()[1:-1])] for line in lines]
    head, body = rows[0], [r for r in rows[2:]]
    out = ["<table>", "<tr>" + "".join(f"<th>{_inline(c, base)}</th>" for c in head) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{_inline(c, base)}</td>" for c in r) + "</tr>" for r in body]
    return "\n".join(out + ["</table>"])


def to_html(markdown: str, base: Path, title: str) -> str:
    """``base``: the folder the markdown's relative image paths start from."""
    blocks, i, lines = [], 0, markdown.splitlines()
    while i < len(lines):
        line = lines[i]
        if line.startswith("|"):
            j = i
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            blocks.append(_table(lines[i:j], base))
            i = j
            continue
        if line.startswith("- "):
            j = i
            while j < len(lines) and lines[j].startswith("- "):
                j += 1
            blocks.append("<ul>" + "".join(f"<li>{_inline(x[2:], base)}</li>" for x in lines[i:j]) + "</ul>")
            i = j
            continue
        heading = re.match(r"(#{1,6}) (.*)", line)
        if heading:
            n = len(heading.group(1))
            blocks.append(f"<h{n}>{_inline(heading.group(2), base)}</h{n}>")
        elif line.strip():
            blocks.append(f"<p>{_inline(line, base)}</p>")
        i += 1
    body = "\n".join(blocks)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(visible(title))}</title>"
            f"<style>{_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")
