"""Planning the cells of an acquisition: who enters when, on which lane, and how it moves.

Each cell gets a look (:class:`_Look`: its appearance constants, drawn once), a straight lane
across the field that never comes closer than ``min_separation`` to another's (overlap pairs
excepted), a steady speed with AR(1) position jitter, and its shape over time
(:func:`_shape_dynamics`: a fixed ellipse with a rolling texture for tank-treading cells, a
Jeffery orbit for flipping ones). Everything is drawn here, before any frame is rendered, so
that any frame can later be rendered alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rbcflow import schema
from rbcflow.schema import FLIPPING, TANK_TREADING, UNRELIABLE
from rbcflow.synthetic.params import SynthConfig


@dataclass
class _Look:
    """Appearance constants of one cell (grey levels at the reference background)."""

    radius: float  # face-on radius, px
    rim: float  # depth of the dark rim
    rim_width: float  # Gaussian sigma of the rim, px
    inside: float  # brightness of the inside
    dimple: float  # darkening of the centre when face-on (biconcavity)
    halo: float  # faint bright fringe outside the rim
    asym: float  # one-sided illumination of the rim (0 = symmetric)
    light_dir: float  # direction of that illumination, rad
    texture: float  # relative amplitude of the rolling membrane texture
    texture_k: int  # number of texture lobes around the rim
    blob: float  # amplitude of the defocused blob (signed)
    blob_sigma: float  # its width, px


@dataclass
class _Cell:
    """A planned cell: its truth and its per-frame state from frame ``f0`` on."""

    track_id: int
    label: int
    kind: str  # tank-treading | flipping | defocus | overlap | focus_change | partial
    dynamics: str  # tank-treading | flipping (what the cell does underneath)
    f0: int
    x: np.ndarray  # (T,) float64 centre column (pair midpoint for overlap)
    y: np.ndarray  # (T,) float64 centre row
    semi_major: np.ndarray  # (T,) px
    semi_minor: np.ndarray  # (T,) px
    angle: np.ndarray  # (T,) orientation of the major axis, rad from +x towards +y
    faceon: np.ndarray  # (T,) |cos| of the tilt of the symmetry axis to the view axis
    phase: np.ndarray  # (T,) texture phase, rad
    defocus: np.ndarray  # (T,) 0 in focus .. 1 fully out of focus
    look: _Look
    speed: float
    period: float  # flip or membrane period, frames
    partner: _Cell | None = None  # second cell of an overlap, positions absolute
    extent: float = 0.0  # half-size of the patch to render, px
    x_self: np.ndarray | None = None  # overlap: this cell's own centre (x, y are the pair's)
    y_self: np.ndarray | None = None
    fade: np.ndarray | None = None  # (T,) contrast factor (faint episodes), None: all 1

    def centre(self, k: int) -> tuple[float, float]:
        """Where this cell itself is drawn in its ``k``-th frame."""
        if self.x_self is not None and self.y_self is not None:
            return float(self.x_self[k]), float(self.y_self[k])
        return float(self.x[k]), float(self.y[k])

    @property
    def f1(self) -> int:
        return self.f0 + len(self.x)


def _draw_look(rng: np.random.Generator, cfg: SynthConfig) -> _Look:
    diameter = max(4.0, rng.normal(cfg.cell_diameter, cfg.cell_diameter_sd))
    return _Look(
        radius=diameter / 2,
        rim=rng.uniform(13.0, 21.0),
        rim_width=rng.uniform(1.2, 1.6),
        inside=rng.uniform(16.0, 24.0),
        dimple=rng.uniform(18.0, 26.0),
        halo=rng.uniform(0.0, 2.0),
        asym=rng.uniform(0.0, 0.15),
        light_dir=rng.uniform(0, 2 * np.pi),
        # Many small lobes: a texture that rolls without changing the projected shape.
        texture=rng.uniform(0.05, 0.12),
        texture_k=int(rng.integers(4, 7)),
        blob=rng.uniform(20.0, 40.0) * (1.0 if rng.random() < 0.75 else -0.6),
        blob_sigma=rng.uniform(3.0, 4.5),
    )


def _shape_dynamics(
    rng: np.random.Generator, cfg: SynthConfig, look: _Look, dynamics: str, t: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Projected ellipse over time: semi-major, semi-minor, angle, face-on-ness, phase."""
    r = look.radius
    n = len(t)
    if dynamics == "tank-treading":
        aspect = rng.uniform(*cfg.tt_aspect)
        period = rng.uniform(*cfg.tt_period)
        # Area kept ~ the disc's: the cell deforms into an ellipsoid, it does not grow.
        a = np.full(n, r / math.sqrt(aspect))
        b = np.full(n, r * math.sqrt(aspect))
        angle = np.full(n, rng.uniform(-np.pi / 4, np.pi / 4))
        faceon = np.ones(n)
        phase = 2 * np.pi * t / period * rng.choice([-1.0, 1.0])
        return a, b, angle, faceon, phase, period
    # Jeffery orbit of an oblate spheroid in shear flow seen along the gradient direction:
    # tan(tilt) = r_e * tan(psi), psi uniform in time, so the tilt of the symmetry axis away
    # from the view axis dwells near 0 (face-on disc) and sweeps fast through 90 deg (rod).
    period = rng.uniform(*cfg.flip_period)
    r_e = rng.uniform(*cfg.orbit_ratio)
    # Poorly deformable (flipping) cells look smaller and darker, with a shallower central
    # dimple, in the real crops (mean radial profiles of the labelled sequences; after
    # ``sampling.normalise`` their darkest 1 % sits near -2.1 against -1.7 for tank-treading
    # cells). Size and orbit are set so that rbcflow.classify.features measures the same per-class
    # ratios on drawn cells as on the real crops: flipping / tank-treading segmented area 0.71
    # (real 0.72) and mean aspect ratio 1.12 (real 1.13); radius scale 0.68 with r_e 0.25-0.45
    # gave 0.56 and 1.00, and the shipped stage 1 then rejected ~20 % of drawn flipping cells
    # against 1.8 % of real ones (out-of-fold).
    look.dimple *= 0.2
    look.inside *= 0.3
    look.radius *= cfg.flip_radius_scale
    look.rim *= 1.5
    r = look.radius
    psi = 2 * np.pi * t / period + rng.uniform(0, 2 * np.pi)
    tilt = np.arctan2(r_e * np.sin(psi), np.cos(psi))
    faceon = np.abs(np.cos(tilt))
    half_thick = cfg.thickness_ratio * r
    a = np.full(n, r * 1.02)
    b = np.sqrt((r * faceon) ** 2 + (half_thick * np.sin(tilt)) ** 2)
    # The rod lies across the tilt plane: near the vorticity axis (y), with an orbit-dependent
    # inclination (the real edge-on crops are often diagonal).
    angle = np.full(n, np.pi / 2 + rng.uniform(-0.7, 0.7))
    phase = np.zeros(n)
    return a, b, angle, faceon, phase, period


def _as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _lanes_clash(
    t0: float,
    t1: float,
    x_at: Callable[[float], float],
    y: float,
    ext: float,
    others: list[tuple[float, float, Callable[[float], float], float, float]],
    sep: float,
    approach: float | None = None,
    radius: float = 5.0,
) -> bool:
    """Whether a straight track comes closer than ``sep`` (+ extents) to a placed one.

    With ``approach`` (centre to centre, pixels), the rule is instead that the centres never
    come closer than ``approach`` plus what the two extents exceed a cell's radius
    (``radius``) by: cells may then share nearby lanes and pass each other.
    """
    for u0, u1, xo_at, yo, exto in others:
        a, b = max(t0, u0), min(t1, u1)
        if a > b:
            continue
        dy = abs(y - yo)
        limit = (
            sep + ext + exto
            if approach is None
            else approach + max(0.0, ext - radius) + max(0.0, exto - radius)
        )
        if dy >= limit:
            continue
        # x difference is linear in time: its smallest |value| is at an end or a crossing.
        da, db = x_at(a) - xo_at(a), x_at(b) - xo_at(b)
        closest = 0.0 if da * db <= 0 else min(abs(da), abs(db))
        if math.hypot(closest, dy if approach is not None else 0.0) < limit:
            return True
    return False


def _passes(t0: float, t1: float, x_at: Callable[[float], float], other: tuple) -> bool:
    """Whether a cell in the field from ``t0`` to ``t1`` overtakes (or is overtaken by) a
    placed one while both are in the field."""
    u0, u1, xo_at = other[0], other[1], other[2]
    a, b = max(t0, u0), min(t1, u1)
    return a < b and (x_at(a) - xo_at(a)) * (x_at(b) - xo_at(b)) < 0


def _faint_episodes(rng: np.random.Generator, cfg: SynthConfig, n: int) -> np.ndarray | None:
    """A cell's contrast factor over its ``n`` frames: 1, with faint episodes (``dropout_*``
    fields) starting at each frame with odds ``dropout_rate``; None when there are none."""
    if cfg.dropout_rate <= 0 or n == 0:
        return None
    starts = np.flatnonzero(rng.random(n) < cfg.dropout_rate)
    if starts.size == 0:
        return None
    fade = np.ones(n)
    lo, hi = cfg.dropout_frames
    for s, k in zip(starts, rng.integers(lo, hi + 1, size=starts.size), strict=True):
        fade[s : s + int(k)] = cfg.dropout_contrast
    return fade


def _ar1(rng: np.random.Generator, n: int, std: float, rho: float = 0.7) -> np.ndarray:
    """Stationary AR(1) jitter of standard deviation ``std``."""
    if std <= 0 or n == 0:
        return np.zeros(n)
    e = rng.standard_normal(n) * std * math.sqrt(1 - rho * rho)
    out = np.empty(n)
    out[0] = rng.standard_normal() * std
    for i in range(1, n):
        out[i] = rho * out[i - 1] + e[i]
    return out


def _plan(cfg: SynthConfig, rng: np.random.Generator) -> list[_Cell]:
    """Draw every cell that is in view at some frame of the acquisition."""
    cols, rows = cfg.width, cfg.height
    vmin, vmax = cfg.speed
    r_max = cfg.cell_diameter / 2 + 3 * cfg.cell_diameter_sd
    entry = r_max + 6.0  # cells start fully outside the field (with their halo)
    path = cols + 2 * entry
    mean_inv_speed = 1 / vmin if vmax == vmin else math.log(vmax / vmin) / (vmax - vmin)
    rate = cfg.cells_in_view / (path * mean_inv_speed)  # arrivals per frame
    t_start = -path / vmin  # warm-up: the field is already populated at frame 0
    placed: list[tuple[float, float, Callable[[float], float], float, float]] = []
    cells: list[_Cell] = []
    weights = np.asarray(cfg.unreliable_weights, float)
    weights = weights / weights.sum() if weights.sum() > 0 else weights
    t_arrive = t_start
    next_id = 1
    while rate > 0:
        t_arrive += rng.exponential(1 / rate)
        if t_arrive >= cfg.n_frames:
            break
        v = rng.uniform(vmin, vmax)
        if rng.random() < cfg.unreliable_fraction and len(cfg.unreliable_kinds):
            label = UNRELIABLE
            kind = str(rng.choice(cfg.unreliable_kinds, p=weights))
        else:
            label = TANK_TREADING if rng.random() < cfg.tt_fraction else FLIPPING
            kind = schema.LABEL_NAMES[label]
        dynamics = (
            kind
            if label != UNRELIABLE
            else ("tank-treading" if rng.random() < cfg.tt_fraction else "flipping")
        )
        look = _draw_look(rng, cfg)
        ext = look.radius
        partner_offset = (0.0, 0.0)
        if kind == "overlap":
            dist = rng.uniform(0.75, 1.05) * 2 * look.radius
            ang = rng.uniform(0, 2 * np.pi)
            partner_offset = (dist / 2 * math.cos(ang), dist / 2 * math.sin(ang))
            ext = look.radius + dist / 2
        if kind == "defocus":
            ext = max(ext, 2.5 * look.blob_sigma)
        t_exit = t_arrive + path / v
        if t_exit < 0:
            continue
        span = t_exit - t_arrive
        drift = rng.uniform(-cfg.y_drift, cfg.y_drift)
        margin = ext + abs(drift) * span + 2

        def x_at(t: float, t_a: float = t_arrive, v_: float = v) -> float:
            return -entry + v_ * (t - t_a)

        y0 = None
        for _ in range(60):
            if kind == "partial":
                # Centre inside the field but the cell cut by the top or bottom border.
                off = rng.uniform(0.0, 0.4 * look.radius)
                cand = off if rng.random() < 0.5 else rows - 1 - off
                drift = 0.0
            else:
                if rows - 2 * margin <= 0:
                    break
                cand = rng.uniform(margin, rows - margin)
                near = [p for p in placed if _passes(t_arrive, t_exit, x_at, p)]
                if cfg.closest_approach is not None and near and rng.random() < 0.5:
                    # A near pass: a lane just beyond the closest approach from the lane of a
                    # cell in view at the same time.
                    yo = near[int(rng.integers(len(near)))][3]
                    gap = cfg.closest_approach + rng.uniform(0.0, 6.0)
                    cand = yo + gap * (1.0 if rng.random() < 0.5 else -1.0)
                    if not margin <= cand <= rows - margin:
                        continue
            if not _lanes_clash(
                t_arrive,
                t_exit,
                x_at,
                cand,
                ext,
                placed,
                cfg.min_separation,
                cfg.closest_approach,
                cfg.cell_diameter / 2 + 2 * cfg.cell_diameter_sd,
            ):
                y0 = cand
                break
        if y0 is None:
            continue  # no free lane now: the field is crowded, skip this arrival
        placed.append((t_arrive, t_exit, x_at, y0, ext))
        f0 = max(0, int(math.ceil(t_arrive)))
        f1 = min(cfg.n_frames, int(math.floor(t_exit)) + 1)
        if f1 <= f0:
            continue
        t = np.arange(f0, f1, dtype=float)
        n = len(t)
        x = -entry + v * (t - t_arrive) + _ar1(rng, n, cfg.position_jitter)
        y = y0 + drift * (t - t_arrive) + _ar1(rng, n, cfg.position_jitter * 0.5)
        if kind == "partial":
            y = np.clip(y, 0.0, rows - 1.0)
        a, b, angle, faceon, phase, period = _shape_dynamics(rng, cfg, look, dynamics, t)
        defocus = np.zeros(n)
        if kind == "defocus":
            defocus[:] = rng.uniform(0.65, 1.0)
        elif kind == "focus_change":
            # Enter or leave the focal plane somewhere in the middle of the crossing.
            t_mid = t_arrive + span * rng.uniform(0.3, 0.7)
            width = rng.uniform(5.0, 20.0)
            ramp = 1 / (1 + np.exp(-(t - t_mid) / width))
            defocus = ramp if rng.random() < 0.5 else 1 - ramp
        cell = _Cell(
            next_id,
            label,
            kind,
            dynamics,
            f0,
            x,
            y,
            a,
            b,
            angle,
            faceon,
            phase,
            defocus,
            look,
            v,
            period,
            extent=0.0,
        )
        cell.extent = max(a.max(), 2.5 * look.blob_sigma) + 4 * look.rim_width + 2
        if kind == "overlap":
            plook = _draw_look(rng, cfg)
            plook.asym, plook.light_dir = look.asym, look.light_dir  # same illumination
            pdyn = "tank-treading" if rng.random() < cfg.tt_fraction else "flipping"
            pa, pb, pang, pface, pphase, _ = _shape_dynamics(rng, cfg, plook, pdyn, t)
            dxo, dyo = partner_offset
            cell.partner = _Cell(
                next_id,
                label,
                kind,
                pdyn,
                f0,
                x + dxo,
                y + dyo,
                pa,
                pb,
                pang,
                pface,
                pphase,
                np.zeros(n),
                plook,
                v,
                float("nan"),
            )
            cell.partner.extent = pa.max() + 4 * plook.rim_width + 2
            # The cell itself sits on the other side of the midpoint.
            cell.x_self = x - dxo
            cell.y_self = y - dyo
        cell.fade = _faint_episodes(rng, cfg, n)
        cells.append(cell)
        next_id += 1
    return cells
