"""Small SVG charts for the report page, written as text.

A :class:`Chart` is a grid of :class:`Panel` s; a panel collects marks in data coordinates
(bars, a histogram, lines, points, a dashed vertical line, text), takes its limits from them
unless told, draws round-number ticks, and :meth:`Chart.svg` returns one ``<svg>`` element to
put inline in the page.

Why written here: matplotlib took 1.1-1.2 s of a 7.3-s analysis of a 20-s video (0.44 s to
import, ~0.2 s per figure to draw and encode), on every acquisition; pygal imports in 0.07 s but
writes a tooltip group per point (800 kB for 3,000 points) and took 0.36 s for the same four
charts. These charts take a few milliseconds and a few tens of kB (docs/architecture.md, *The
report's figures are SVG written by rbcflow*).

Long series are drawn as their per-pixel-column minimum and maximum (:func:`envelope`), so a
one-frame flicker stays visible however long the video. Only presentation attributes are used
(no ``style`` attribute), which the page's Content-Security-Policy allows.
"""

from __future__ import annotations

import math
from html import escape

import numpy as np

FONT = 11  # px


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Round-number ticks (steps of 1, 2 or 5 times a power of ten) within ``[lo, hi]``."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / max(target, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    n = int(math.floor((hi - first) / step + 1e-9)) + 1
    return [round(first + i * step, 12) + 0.0 for i in range(n)]


def _label(v: float) -> str:
    return f"{v:.6g}"


def envelope(x: np.ndarray, y: np.ndarray, n_cols: int) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` sorted by x, thinned to each of ``n_cols`` equal x bins' first minimum and
    maximum in x order (all points if there are fewer than ``2 * n_cols``); NaN dropped."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    if x.size <= 2 * n_cols or x[-1] <= x[0]:
        return x, y
    cols = np.minimum(((x - x[0]) / (x[-1] - x[0]) * n_cols).astype(int), n_cols - 1)
    starts = np.flatnonzero(np.r_[True, cols[1:] != cols[:-1]])
    picks = []
    for a, b in zip(starts, np.r_[starts[1:], x.size], strict=True):
        seg = y[a:b]
        picks.extend(sorted({a + int(np.argmin(seg)), a + int(np.argmax(seg))}))
    idx = np.asarray(picks)
    return x[idx], y[idx]


class Panel:
    """One set of axes: marks in data coordinates, drawn into a pixel box by :class:`Chart`."""

    def __init__(self) -> None:
        self._marks: list[tuple] = []
        self.xlim: tuple[float, float] | None = None
        self.ylim: tuple[float, float] | None = None
        self.yticks: list[tuple[float, str]] | None = None
        self.invert_y = False
        self.title = self.xlabel = self.ylabel = ""
        self._legend: list[tuple[str, str]] = []

    # marks ---------------------------------------------------------------------------------
    def rects(self, x0, x1, y0, y1, colour: str, opacity: float = 1.0, label: str = "") -> None:
        """Filled rectangles ``[x0, x1] x [y0, y1]`` (arrays of equal length)."""
        arrs = [np.atleast_1d(np.asarray(a, float)) for a in (x0, x1, y0, y1)]
        self._marks.append(("rects", *arrs, colour, opacity))
        if label:
            self._legend.append((label, colour))

    def hist(self, values, bins, colour: str, opacity: float = 1.0, label: str = "") -> None:
        """A histogram of ``values`` (NaN dropped); ``bins`` a count or the edges."""
        v = np.asarray(values, float)
        counts, edges = np.histogram(v[np.isfinite(v)], bins=bins)
        self.rects(edges[:-1], edges[1:], np.zeros(len(counts)), counts, colour, opacity, label)

    def line(self, x, y, colour: str = "#1f77b4", width: float = 1.0, label: str = "") -> None:
        """A polyline, broken where y is NaN."""
        self._marks.append(("line", np.asarray(x, float), np.asarray(y, float), colour, width))
        if label:
            self._legend.append((label, colour))

    def points(self, x, y, colour: str = "#1f77b4", size: float = 2.0, label: str = "") -> None:
        """Round dots of diameter ``size`` px (NaN skipped)."""
        self._marks.append(("points", np.asarray(x, float), np.asarray(y, float), colour, size))
        if label:
            self._legend.append((label, colour))

    def vline(self, x: float, colour: str = "#000", dashed: bool = True) -> None:
        self._marks.append(("vline", float(x), colour, dashed))

    def text(self, x: float, y: float, s: str) -> None:
        """Text starting just right of data point (x, y), vertically centred."""
        self._marks.append(("text", float(x), float(y), s))

    # limits --------------------------------------------------------------------------------
    def _extent(self, axis: int) -> tuple[float, float]:
        vals: list[np.ndarray] = []
        for m in self._marks:
            kind = m[0]
            if kind == "rects":
                vals += [m[1], m[2]] if axis == 0 else [m[3], m[4]]
            elif kind in ("line", "points"):
                vals.append(m[1 + axis])
            elif kind == "vline" and axis == 0:
                vals.append(np.array([m[1]]))
            elif kind == "text":
                vals.append(np.array([m[1 + axis]]))
        v = np.concatenate(vals) if vals else np.array([])
        v = v[np.isfinite(v)]
        if not v.size:
            return 0.0, 1.0
        lo, hi = float(v.min()), float(v.max())
        if hi <= lo:
            pad = abs(lo) * 0.05 or 0.5
            return lo - pad, hi + pad
        return lo, hi

    def limits(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """(xlim, ylim): those set, else the marks' extent padded 3 % (x) and 5 % (y) on each
        side."""

        def padded(axis: int, share: float) -> tuple[float, float]:
            lo, hi = self._extent(axis)
            pad = (hi - lo) * share
            return lo - pad, hi + pad

        return self.xlim or padded(0, 0.03), self.ylim or padded(1, 0.05)

    # drawing -------------------------------------------------------------------------------
    def draw(self, left: float, top: float, width: float, height: float, clip: str) -> list[str]:
        """SVG elements for the panel in the pixel box (axes, ticks, labels, marks); ``clip``
        names its clipping path (unique in the page)."""
        (x0, x1), (y0, y1) = self.limits()

        def px(x):
            return left + (np.asarray(x, float) - x0) / (x1 - x0) * width

        def py(y):
            f = (np.asarray(y, float) - y0) / (y1 - y0)
            return top + (f if self.invert_y else 1 - f) * height

        out = [
            f'<rect x="{left:.1f}" y="{top:.1f}" width="{width:.1f}" height="{height:.1f}" '
            'fill="none" stroke="#888" stroke-width="0.8"/>'
        ]
        out.append(
            f'<clipPath id="{clip}"><rect x="{left:.1f}" y="{top:.1f}" width="{width:.1f}" '
            f'height="{height:.1f}"/></clipPath><g clip-path="url(#{clip})">'
        )
        for m in self._marks:
            out.extend(_mark_svg(m, px, py, top, height))
        out.append("</g>")
        bottom = top + height
        for t in nice_ticks(x0, x1):
            x = float(px(t))
            out.append(
                f'<line x1="{x:.1f}" y1="{bottom:.1f}" x2="{x:.1f}" y2="{bottom + 4:.1f}" '
                'stroke="#444"/>'
            )
            out.append(_text(x, bottom + 4 + FONT, _label(t), anchor="middle"))
        yticks = self.yticks or [(t, _label(t)) for t in nice_ticks(min(y0, y1), max(y0, y1))]
        for t, name in yticks:
            y = float(py(t))
            out.append(
                f'<line x1="{left - 4:.1f}" y1="{y:.1f}" x2="{left:.1f}" y2="{y:.1f}" '
                'stroke="#444"/>'
            )
            out.append(_text(left - 6, y + FONT * 0.35, name, anchor="end"))
        if self.title:
            out.append(_text(left + width / 2, top - 6, self.title, anchor="middle", bold=True))
        if self.xlabel:
            out.append(
                _text(left + width / 2, bottom + 6 + 2.2 * FONT, self.xlabel, anchor="middle")
            )
        if self.ylabel:
            x, y = left - 44, top + height / 2
            out.append(_text(x, y, self.ylabel, anchor="middle", rotate=(x, y)))
        for i, (name, colour) in enumerate(self._legend):
            y = top + 8 + i * (FONT + 4)
            x = left + width - 8
            out.append(
                f'<rect x="{x - 10:.1f}" y="{y:.1f}" width="10" height="{FONT - 2}" '
                f'fill="{colour}"/>'
            )
            out.append(_text(x - 14, y + FONT - 2, name, anchor="end", size=FONT - 1))
        return out


def _text(
    x: float,
    y: float,
    s: str,
    anchor: str = "start",
    bold: bool = False,
    rotate: tuple[float, float] | None = None,
    size: int = FONT,
) -> str:
    attrs = f'x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"'
    if bold:
        attrs += ' font-weight="600"'
    if rotate:
        attrs += f' transform="rotate(-90 {rotate[0]:.1f} {rotate[1]:.1f})"'
    return f"<text {attrs}>{escape(s)}</text>"


def _path_runs(xs: np.ndarray, ys: np.ndarray) -> str:
    """``M x y L ...`` path data, a new ``M`` after each NaN gap."""
    parts, pen_down = [], False
    for x, y in zip(xs, ys, strict=True):
        if not (math.isfinite(x) and math.isfinite(y)):
            pen_down = False
            continue
        parts.append(f"{'L' if pen_down else 'M'}{x:.1f} {y:.1f}")
        pen_down = True
    return "".join(parts)


def _mark_svg(m: tuple, px, py, top: float, height: float) -> list[str]:
    kind = m[0]
    if kind == "rects":
        _, x0, x1, y0, y1, colour, opacity = m
        a, b = px(x0), px(x1)
        c, d = py(y0), py(y1)
        op = f' fill-opacity="{opacity:g}"' if opacity < 1 else ""
        return [
            f'<rect x="{min(x0_, x1_):.1f}" y="{min(y0_, y1_):.1f}" width="{abs(x1_ - x0_):.1f}" '
            f'height="{abs(y1_ - y0_):.1f}" fill="{colour}"{op}/>'
            for x0_, x1_, y0_, y1_ in zip(a, b, c, d, strict=True)
            if np.isfinite([x0_, x1_, y0_, y1_]).all()
        ]
    if kind == "line":
        _, x, y, colour, width = m
        d = _path_runs(px(x), py(y))
        return (
            [
                f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="{width:g}" '
                'stroke-linejoin="round"/>'
            ]
            if d
            else []
        )
    if kind == "points":
        _, x, y, colour, size = m
        keep = np.isfinite(x) & np.isfinite(y)
        # a zero-length segment with a round cap per point: ~14 bytes a point
        d = "".join(f"M{a:.1f} {b:.1f}h0" for a, b in zip(px(x[keep]), py(y[keep]), strict=True))
        return (
            [f'<path d="{d}" stroke="{colour}" stroke-width="{size:g}" stroke-linecap="round"/>']
            if d
            else []
        )
    if kind == "vline":
        _, x, colour, dashed = m
        xp = float(px(x))
        dash = ' stroke-dasharray="5 3"' if dashed else ""
        return [
            f'<line x1="{xp:.1f}" y1="{top:.1f}" x2="{xp:.1f}" y2="{top + height:.1f}" '
            f'stroke="{colour}" stroke-width="1"{dash}/>'
        ]
    _, x, y, s = m  # text
    return [_text(float(px(x)) + 3, float(py(y)) + FONT * 0.35, s)]


class Chart:
    """A ``rows x cols`` grid of panels in a ``width x height`` px SVG.

    ``name`` is unique in the page (it prefixes the panels' clipping paths); margins are in px:
    ``left`` holds the y labels, ``bottom`` the x labels, ``gap_x``/``gap_y`` lie between panels.
    """

    def __init__(
        self,
        name: str,
        width: int,
        height: int,
        rows: int = 1,
        cols: int = 1,
        *,
        left: float = 62,
        right: float = 12,
        top: float = 24,
        bottom: float = 44,
        gap_x: float = 70,
        gap_y: float = 56,
    ) -> None:
        self.name, self.width, self.height = name, width, height
        self.rows, self.cols = rows, cols
        self.margins = (left, right, top, bottom, gap_x, gap_y)
        self.panels = [Panel() for _ in range(rows * cols)]

    def panel(self, row: int = 0, col: int = 0) -> Panel:
        return self.panels[row * self.cols + col]

    def panel_width(self) -> float:
        """Each panel's width in px (for :func:`envelope`)."""
        left, right, _, _, gap_x, _ = self.margins
        return (self.width - left - right - gap_x * (self.cols - 1)) / self.cols

    def svg(self, title: str = "") -> str:
        """The chart as one ``<svg>`` element (scales to its container: ``viewBox``)."""
        left, right, top, bottom, gap_x, gap_y = self.margins
        w = self.panel_width()
        h = (self.height - top - bottom - gap_y * (self.rows - 1)) / self.rows
        body: list[str] = []
        for i, p in enumerate(self.panels):
            r, c = divmod(i, self.cols)
            x, y = left + c * (w + gap_x), top + r * (h + gap_y)
            body.extend(p.draw(x, y, w, h, clip=f"{self.name}-clip{i}"))
        head = (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" '
            f'height="{self.height}" viewBox="0 0 {self.width} {self.height}" role="img" '
            'font-family="system-ui,sans-serif" fill="#222">'
        )
        label = f"<title>{escape(title)}</title>" if title else ""
        return head + label + "".join(body) + "</svg>"
