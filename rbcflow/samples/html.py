"""What the overview and patient pages share: the page frame, sortable tables, number formats.

Nothing injected: every text from an input goes through :func:`rbcflow.report.html.esc`, and
the page's Content-Security-Policy allows no network access and one script, the table sorter
below, by its SHA-256 hash (an injected ``<script>`` would not run).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from rbcflow.report.html import esc
from rbcflow.report.verdict import finite_number

SORT_JS = """
document.querySelectorAll("table.sortable").forEach(function (t) {
  t.querySelectorAll("thead th").forEach(function (th, i) {
    th.tabIndex = 0;
    th.addEventListener("click", function () {
      var body = t.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var asc = th.getAttribute("aria-sort") !== "ascending";
      t.querySelectorAll("thead th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      function key(r) {
        var c = r.cells[i], v = c.getAttribute("data-v");
        if (v === null) { v = c.textContent.trim(); }
        return (v !== "" && isFinite(v)) ? parseFloat(v) : v.toLowerCase();
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b), r;
        if (typeof x === typeof y) { r = x < y ? -1 : (x > y ? 1 : 0); }
        else { r = typeof x === "number" ? -1 : 1; }
        return asc ? r : -r;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""
"""The table sorter: a click on a header sorts by that column (numbers by value, via each
cell's ``data-v``), again to reverse."""

_SCRIPT_HASH = base64.b64encode(hashlib.sha256(SORT_JS.encode()).digest()).decode()
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    f"script-src 'sha256-{_SCRIPT_HASH}'"
)

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1200px;
margin:1.5em auto;padding:0 1em;color:#222;line-height:1.4}
h2{border-bottom:1px solid #ccc;padding-bottom:.2em}.sub{color:#555}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .6em;
text-align:left;vertical-align:top;font-size:.92em}th{background:#f5f5f5}
.headline{font-size:1.3em;font-weight:600;margin:.3em 0}
table.sortable th{cursor:pointer;white-space:nowrap}
table.sortable th[aria-sort=ascending]::after{content:" \\25B2"}
table.sortable th[aria-sort=descending]::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums}td.num,td.id{white-space:nowrap}
td.why{font-size:.85em;min-width:16em}
td.v-pass{color:#1b5e20}td.v-check{background:#fff3e0}td.v-fail{background:#ffebee}
td.below{background:#ffebee;font-weight:600;color:#b71c1c}
.flag{color:#b71c1c;font-weight:600}.muted{color:#777}
"""


number = finite_number
"""``x`` as a finite float, or None (the verdict's reading of a report cell)."""


def fmt(x: Any, decimals: int = 3) -> str:
    """A number rounded for people (``-`` when missing)."""
    v = number(x)
    return "-" if v is None else f"{v:.{decimals}f}"


def interval(lo: Any, hi: Any, decimals: int = 3) -> str:
    """``[lo, hi]`` rounded, or ``-``."""
    if number(lo) is None or number(hi) is None:
        return "-"
    return f"[{fmt(lo, decimals)}, {fmt(hi, decimals)}]"


def href(path: str) -> str:
    """A relative link to a file inside the results folder (each part URL-quoted)."""
    return esc(quote(path.replace("\\", "/")))


def cell(text: str, sort: Any = None, cls: str = "") -> str:
    """One ``<td>``: ``text`` is already HTML; ``sort`` the value it sorts by."""
    attrs = f' class="{cls}"' if cls else ""
    if sort is not None:
        attrs += f' data-v="{esc(sort)}"'
    return f"<td{attrs}>{text}</td>"


def table(head: Sequence[str], rows: Sequence[Sequence[str]], table_id: str) -> str:
    """A sortable table: ``head`` plain text, ``rows`` lists of :func:`cell` strings."""
    th = "".join(f"<th scope=col>{esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(r) + "</tr>" for r in rows)
    return (
        f'<table class="sortable" id="{esc(table_id)}"><thead><tr>{th}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


def verdict_cell(row: Mapping[str, Any]) -> str:
    v = str(row.get("verdict") or "-")
    reason = row.get("verdict_reason")
    title = f' title="{esc(reason)}"' if isinstance(reason, str) and reason else ""
    cls = f"v-{v}" if v in ("pass", "check", "fail") else ""
    return f'<td class="{cls}"{title}>{esc(v)}</td>'


def page(title: str, body: Sequence[str]) -> str:
    """A complete self-contained page (styles and the sorter inline, no external resource)."""
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{esc(title)}</title>",
            f"<style>{CSS}</style></head><body>",
            *body,
            f"<script>{SORT_JS}</script>",
            "</body></html>",
        ]
    )
