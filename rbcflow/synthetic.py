"""Synthetic bright-field shear-flow acquisitions with ground truth.

A generator of videos that look like the lab's recordings (Darrin et al. 2023): a background
with an illumination gradient, slow illumination drift, static debris and camera noise; red cells
drawn as bright-field projections of biconcave discs (dark rim, brighter inside, a dimple in the
middle when seen face on), about 10 px across, moving left to right at a steady speed each.

* Tank-treading cells keep their projected shape (an ellipse at a fixed inclination) while a
  faint membrane texture rolls around the rim.
* Flipping cells tumble on a Jeffery-like orbit: their projection goes disc -> rod (edge-on) ->
  disc with a period of a few to tens of frames, fast through the edge-on phase and slow near
  face-on.
* Unreliable cases (label 2): out of focus (``defocus``: blurred, a bright or dark blob with a
  halo), two cells touching and moving together (``overlap``), a cell entering or leaving the
  focal plane mid-track (``focus_change``: the contrast fades into a defocused blob), a cell cut
  by the top or bottom border (``partial``).

Everything is drawn procedurally from analytic profiles evaluated at pixel centres relative to
the cell's sub-pixel position, so positions are exact to well below a pixel. The truth follows
:data:`rbcflow.schema.TRUTH` and the coordinate convention of :mod:`rbcflow.schema` (``x`` =
column, ``y`` = row, origin at the centre of pixel (0, 0)).

Layers (as in the rest of the package): :func:`render_acquisition` plans the cells and returns a
:class:`SyntheticAcquisition` whose frames are rendered lazily, one at a time (any frame can be
rendered alone, deterministically); :func:`write_frames` streams frames into an AVI, a TIFF stack
or a folder of PNG frames; :func:`write_acquisition` does both and writes the truth tables;
:func:`composite_video` pastes real 31x31 crop sequences onto a synthetic background instead.

Examples
--------
>>> acq = render_acquisition(SynthConfig(width=256, height=128, n_frames=30), rng=0)
>>> frame = acq.frame(0)
>>> frame.shape, frame.dtype.name
((128, 256), 'uint8')
>>> list(acq.truth.columns)
['track_id', 'label', 'frame', 'x', 'y']
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from rbcflow import schema
from rbcflow.errors import OutputError, RbcflowError
from rbcflow.schema import FLIPPING, TANK_TREADING, UNRELIABLE

UNRELIABLE_KINDS = ("defocus", "overlap", "focus_change", "partial")
"""The kinds of unreliable track the generator draws."""

FORMATS = ("avi", "tiff", "png")
"""Output formats: AVI file, multi-page TIFF stack, folder of PNG frames."""

AVI_CODECS: dict[str, str] = {
    "ffv1": "FFV1",  # lossless, compact: the default for tests and benchmarks
    "mjpg": "MJPG",  # lossy (JPEG per frame), the most compact; the shipped sample
    "rgba": "RGBA",  # uncompressed (32-bit RGBA, lossless): the fastest to decode
    "hfyu": "HFYU",  # lossless HuffYUV
    "mp4v": "mp4v",  # lossy MPEG-4 part 2
}
"""``--codec`` names and their FourCCs; all write with the opencv-python-headless wheel's FFmpeg.

A 24-bit uncompressed DIB AVI cannot be written by that FFmpeg build (the ``DIB `` tag is
refused and FourCC 0 writes lossy 4:2:0 YUV), hence ``rgba`` for uncompressed frames."""

_REF_LEVEL = 120.0
"""Cell contrasts are given in grey levels at this background level; they scale with the local
background (bright-field contrast is a transmission, so multiplicative)."""


# -- parameters -------------------------------------------------------------------------------
@dataclass(frozen=True)
class SynthConfig:
    """Parameters of a synthetic acquisition (defaults live only here).

    Geometry and timing
        width, height : frame size, pixels (cols x rows).
        fps : frame rate written into the container, frames/s.
        n_frames : number of frames.
        bit_depth : 8 or 16 (16-bit frames are the 8-bit grey levels times 256, with the
            sub-level precision kept; only TIFF and PNG can hold them).
    Cells
        cells_in_view : mean number of cell centres in the field at any time (Poisson arrivals).
        cell_diameter, cell_diameter_sd : projected diameter of a face-on cell, pixels (mean,
            spread); real crops show 8-12 px.
        thickness_ratio : edge-on thickness / diameter of a biconcave disc.
        speed : range of speeds along x, pixels/frame (uniform, steady per cell).
        position_jitter : standard deviation of the frame-to-frame position jitter, pixels.
        y_drift : largest drift across the flow, pixels/frame (uniform in +-y_drift).
        min_separation : minimum centre distance between two cells (plus their extent), pixels;
            cells are placed on lanes that never come closer (overlap tracks excepted).
        tt_fraction : fraction of tank-treading cells among reliable ones.
        unreliable_fraction : fraction of unreliable tracks (label 2).
        unreliable_kinds, unreliable_weights : kinds of unreliable track and their odds.
        tt_aspect : range of the projected aspect ratio (minor/major) of tank-treading cells.
        tt_period : range of the membrane rotation period of tank-treading cells, frames.
        flip_period : range of the flipping (Jeffery orbit) period, frames.
        orbit_ratio : range of the Jeffery ``r_e``: the smaller, the faster the edge-on phase
            (calibrated on the real crops' aspect ratios, see ``_shape_dynamics``).
        flip_radius_scale : face-on radius of flipping cells relative to tank-treading ones.
    Background and camera
        background : range of the mean background level, grey levels (drawn per acquisition).
        gradient : illumination gradient across the field, grey levels (peak to peak).
        vignette : darkening of the corners relative to the centre, grey levels.
        pattern : standard deviation of the smooth fixed illumination pattern, grey levels.
        drift : relative amplitude of the slow illumination drift (0.02 = +-2 %).
        drift_period_s : period of that drift, seconds.
        debris_per_mpx : static debris specks per megapixel.
        noise_std : camera noise, grey levels (Gaussian, per-pixel standard deviation;
            independent between frames).
        noise_corr : spatial correlation of that noise, the sigma of the Gaussian that blurs
            white noise, px (0: independent pixels). Real crops show neighbour-pixel
            correlation ~0.8 (slightly blurred optics, JPEG), hence ~1 px.
    """

    width: int = 1024
    height: int = 768
    fps: float = 60.0
    n_frames: int = 600
    bit_depth: int = 8
    cells_in_view: float = 10.0
    cell_diameter: float = 10.2
    cell_diameter_sd: float = 0.7
    thickness_ratio: float = 0.35
    speed: tuple[float, float] = (2.0, 8.0)
    position_jitter: float = 0.1
    y_drift: float = 0.005
    min_separation: float = 20.0
    tt_fraction: float = 0.8
    unreliable_fraction: float = 0.5
    unreliable_kinds: tuple[str, ...] = UNRELIABLE_KINDS
    unreliable_weights: tuple[float, ...] = (0.35, 0.2, 0.25, 0.2)
    tt_aspect: tuple[float, float] = (0.72, 0.92)
    tt_period: tuple[float, float] = (20.0, 60.0)
    flip_period: tuple[float, float] = (12.0, 60.0)
    orbit_ratio: tuple[float, float] = (0.7, 1.0)
    flip_radius_scale: float = 0.86
    background: tuple[float, float] = (100.0, 140.0)
    gradient: float = 7.0
    vignette: float = 6.0
    pattern: float = 1.5
    drift: float = 0.02
    drift_period_s: float = 20.0
    debris_per_mpx: float = 20.0
    noise_std: float = 1.9
    noise_corr: float = 1.0

    def __post_init__(self) -> None:
        problems = []
        if self.width < 32 or self.height < 32:
            problems.append(f"frame size {self.width}x{self.height} is below 32x32")
        if self.n_frames < 1:
            problems.append(f"n_frames {self.n_frames} < 1")
        if self.fps <= 0:
            problems.append(f"fps {self.fps} <= 0")
        if self.bit_depth not in (8, 16):
            problems.append(f"bit_depth {self.bit_depth} is not 8 or 16")
        if not 0 < self.speed[0] <= self.speed[1]:
            problems.append(f"speed range {self.speed} is not 0 < min <= max")
        for name in ("tt_fraction", "unreliable_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} {getattr(self, name)} is not in [0, 1]")
        if self.cells_in_view < 0:
            problems.append(f"cells_in_view {self.cells_in_view} < 0")
        if self.cell_diameter < 3:
            problems.append(f"cell_diameter {self.cell_diameter} < 3 px")
        unknown = set(self.unreliable_kinds) - set(UNRELIABLE_KINDS)
        if unknown or len(self.unreliable_kinds) != len(self.unreliable_weights):
            problems.append(
                f"unreliable_kinds {self.unreliable_kinds} / weights "
                f"{self.unreliable_weights} do not match {UNRELIABLE_KINDS}"
            )
        if problems:
            raise RbcflowError("invalid synthetic configuration: " + "; ".join(problems))


# -- one cell -------------------------------------------------------------------------------
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
    # cells). Size and orbit are set so that rbcflow.features measures the same per-class
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


def _focused_profile(
    u: np.ndarray,
    v: np.ndarray,
    a: float,
    b: float,
    faceon: float,
    phase: float,
    look: _Look,
    rot: float,
) -> np.ndarray:
    """Bright-field contrast of an in-focus cell; u, v along its major/minor axes, px."""
    g = np.hypot(u / (a * a), v / (b * b))
    rho = np.hypot(u / a, v / b)
    # Signed distance to the ellipse outline (exact on the axes, first order elsewhere);
    # keeps the rim width constant in pixels whether the cell is a disc or a thin rod.
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(g > 1e-9, (rho - 1.0) * rho / np.maximum(g, 1e-9), -b)
    polar = np.arctan2(v, u) + rot
    rim_gain = 1.0 + look.asym * np.cos(polar - look.light_dir)
    if look.texture:
        rim_gain = rim_gain * (1.0 + look.texture * np.cos(look.texture_k * polar - phase))
    rim = -look.rim * rim_gain * np.exp(-0.5 * ((d - 0.3) / look.rim_width) ** 2)
    edge = min(1.4, 0.5 * b)
    inside = look.inside * 0.5 * (1.0 - np.tanh((d + edge) / 0.8))
    dimple = -look.dimple * faceon * np.exp(-0.5 * (rho / 0.45) ** 2)
    halo = look.halo * np.exp(-0.5 * ((d - 1.9) / 1.0) ** 2)
    return rim + inside + dimple + halo


def _defocused_profile(dx: np.ndarray, dy: np.ndarray, look: _Look) -> np.ndarray:
    """A cell far from the focal plane: a soft blob with an opposite halo (difference of
    Gaussians), bright above focus, dark below."""
    r2 = dx * dx + dy * dy
    s1 = look.blob_sigma
    s2 = 1.9 * s1
    return look.blob * (np.exp(-0.5 * r2 / s1**2) - 0.35 * np.exp(-0.5 * r2 / s2**2))


def _cell_patch(
    cell: _Cell, k: int, x: float, y: float, shape: tuple[int, int]
) -> tuple[slice, slice, np.ndarray] | None:
    """Contrast patch of ``cell`` in its ``k``-th frame, centred at (x, y); None if outside."""
    rows, cols = shape
    h = int(math.ceil(cell.extent))
    cx, cy = int(round(x)), int(round(y))
    r0, r1 = max(cy - h, 0), min(cy + h + 1, rows)
    c0, c1 = max(cx - h, 0), min(cx + h + 1, cols)
    if r0 >= r1 or c0 >= c1:
        return None
    dy, dx = np.mgrid[r0:r1, c0:c1].astype(np.float32)
    dx -= x
    dy -= y
    look = cell.look
    w = float(cell.defocus[k])
    delta = np.zeros(dx.shape, np.float32)
    if w < 0.999:
        ang = float(cell.angle[k])
        ca, sa = math.cos(ang), math.sin(ang)
        u = dx * ca + dy * sa
        v = -dx * sa + dy * ca
        focused = _focused_profile(
            u,
            v,
            float(cell.semi_major[k]),
            float(cell.semi_minor[k]),
            float(cell.faceon[k]),
            float(cell.phase[k]),
            look,
            ang,
        )
        if w > 0.02:
            # Defocus spreads the cell's contrast before it turns into a blob.
            focused = cv2.GaussianBlur(
                focused.astype(np.float32), (0, 0), 0.3 + 3.0 * w, borderType=cv2.BORDER_REPLICATE
            )
        delta += (1.0 - w) * focused
    if w > 0.001:
        delta += w * _defocused_profile(dx, dy, look)
    return slice(r0, r1), slice(c0, c1), delta


# -- the acquisition ----------------------------------------------------------------------------
def _as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """A smooth random field of unit standard deviation (bicubic upsampling of a coarse grid)."""
    rows, cols = shape
    coarse = rng.standard_normal((max(2, cells * rows // max(cols, 1) + 2), cells + 2))
    field_ = cv2.resize(coarse.astype(np.float32), (cols, rows), interpolation=cv2.INTER_CUBIC)
    return (field_ - field_.mean()) / max(float(field_.std()), 1e-6)


def _background(rng: np.random.Generator, cfg: SynthConfig) -> np.ndarray:
    """The static illumination (rows, cols) float32, debris included, grey levels."""
    rows, cols = cfg.height, cfg.width
    level = rng.uniform(*cfg.background)
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    xn = (xx - (cols - 1) / 2) / max(cols, rows)
    yn = (yy - (rows - 1) / 2) / max(cols, rows)
    theta = rng.uniform(0, 2 * np.pi)
    span = max(float(np.ptp(xn * math.cos(theta) + yn * math.sin(theta))), 1e-6)
    bg = level + cfg.gradient * (xn * math.cos(theta) + yn * math.sin(theta)) / span
    bg -= cfg.vignette * (xn**2 + yn**2) / 0.3125  # 0.3125: corner radius^2 at 4:3
    bg += cfg.pattern * _smooth_field(rng, (rows, cols), 6)
    bg = bg.astype(np.float32)
    n_debris = rng.poisson(cfg.debris_per_mpx * rows * cols / 1e6)
    for _ in range(n_debris):
        # Dust on the optics: small static specks, mostly dark, some elongated.
        x, y = rng.uniform(0, cols), rng.uniform(0, rows)
        sx, sy = rng.uniform(0.7, 2.5), rng.uniform(0.7, 2.5)
        amp = rng.uniform(-35, -8) if rng.random() < 0.8 else rng.uniform(5, 12)
        h = int(3 * max(sx, sy)) + 1
        r0, r1 = max(int(y) - h, 0), min(int(y) + h + 1, rows)
        c0, c1 = max(int(x) - h, 0), min(int(x) + h + 1, cols)
        gy, gx = np.mgrid[r0:r1, c0:c1]
        spot = amp * np.exp(-0.5 * (((gx - x) / sx) ** 2 + ((gy - y) / sy) ** 2))
        bg[r0:r1, c0:c1] *= (1.0 + spot / _REF_LEVEL).astype(np.float32)
    return bg


def _lanes_clash(
    t0: float,
    t1: float,
    x_at: Callable[[float], float],
    y: float,
    ext: float,
    others: list[tuple[float, float, Callable[[float], float], float, float]],
    sep: float,
) -> bool:
    """Whether a straight track comes closer than ``sep`` (+ extents) to a placed one."""
    for u0, u1, xo_at, yo, exto in others:
        a, b = max(t0, u0), min(t1, u1)
        if a > b:
            continue
        if abs(y - yo) >= sep + ext + exto:
            continue
        # x difference is linear in time: its smallest |value| is at an end or a crossing.
        da, db = x_at(a) - xo_at(a), x_at(b) - xo_at(b)
        closest = 0.0 if da * db <= 0 else min(abs(da), abs(db))
        if closest < sep + ext + exto:
            return True
    return False


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
            if not _lanes_clash(t_arrive, t_exit, x_at, cand, ext, placed, cfg.min_separation):
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
        cells.append(cell)
        next_id += 1
    return cells


@dataclass
class SyntheticAcquisition:
    """A planned synthetic acquisition; frames are rendered on demand.

    Attributes
    ----------
    config : SynthConfig
    truth : DataFrame
        :data:`rbcflow.schema.TRUTH`, one row per cell and frame where the cell's centre lies
        in the field (``-0.5 <= x < width - 0.5`` and the same for ``y``).
    tracks : DataFrame
        One row per true track: ``track_id, label, kind, dynamics, first_frame, last_frame,
        n_frames, x_start, x_end, y_mean, speed`` (px/frame), ``diameter`` (px), ``period``
        (flip or membrane period, frames), ``aspect_mean, aspect_std`` (projected minor/major
        axis ratio over the track).
    """

    config: SynthConfig
    truth: pd.DataFrame
    tracks: pd.DataFrame
    _cells: list[_Cell] = field(repr=False)
    _background: np.ndarray = field(repr=False)
    _noise_seed: int = field(repr=False)
    _drift_phase: float = field(repr=False)

    def __len__(self) -> int:
        return self.config.n_frames

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols)."""
        return self.config.height, self.config.width

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint8 if self.config.bit_depth == 8 else np.uint16)

    def illumination(self, i: int) -> float:
        """Relative illumination of frame ``i`` (1 = the mean level)."""
        cfg = self.config
        t = i / cfg.fps
        return 1.0 + cfg.drift * math.sin(2 * np.pi * t / cfg.drift_period_s + self._drift_phase)

    def background_frame(self, i: int) -> np.ndarray:
        """The illumination of frame ``i`` without cells and noise: (rows, cols) float32, grey
        levels (static background with debris, times the slow drift)."""
        if not 0 <= i < len(self):
            raise IndexError(f"frame {i} out of range for {len(self)} frames")
        return self._background * np.float32(self.illumination(i))

    def frame_float(self, i: int) -> np.ndarray:
        """Frame ``i`` before quantisation: (rows, cols) float32, grey levels, noise included."""
        if not 0 <= i < len(self):
            raise IndexError(f"frame {i} out of range for {len(self)} frames")
        img = self.background_frame(i)
        for cell in self._cells:
            if not cell.f0 <= i < cell.f1:
                continue
            k = i - cell.f0
            parts = [cell] if cell.partner is None else [cell, cell.partner]
            for c in parts:
                patch = _cell_patch(c, k, *c.centre(k), self.shape)
                if patch is not None:
                    rs, cs, delta = patch
                    img[rs, cs] *= 1.0 + delta / np.float32(_REF_LEVEL)
        noise = np.random.default_rng([self._noise_seed, i]).standard_normal(
            img.shape, dtype=np.float32
        )
        img += np.float32(self.config.noise_std) * _correlate(noise, self.config.noise_corr)
        return img

    def frame(self, i: int) -> np.ndarray:
        """Frame ``i``: (rows, cols) uint8 (or uint16 when ``bit_depth`` is 16)."""
        return _quantise(self.frame_float(i), self.config.bit_depth)

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        """Frames ``start..stop-1`` in order, one at a time (bounded memory)."""
        stop = len(self) if stop is None else min(stop, len(self))
        for i in range(start, stop):
            yield self.frame(i)

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.frames()


def _correlate(white: np.ndarray, sigma: float) -> np.ndarray:
    """Spatially correlated noise of unit per-pixel std from white noise (2-D float32).

    Blurs with a Gaussian of ``sigma`` px and divides by the kernel's L2 norm, so the
    standard deviation stays 1 (away from the borders, which are reflected).
    """
    if sigma <= 0:
        return white
    ksize = 2 * int(math.ceil(3 * sigma)) + 1
    k = cv2.getGaussianKernel(ksize, sigma).astype(np.float64).ravel()
    gain = float(np.sum(k * k))  # separable: the 2-D L2 norm is the product of two 1-D ones
    out = cv2.sepFilter2D(white, -1, k, k, borderType=cv2.BORDER_REFLECT_101)
    out *= np.float32(1.0 / gain)
    return out


def _quantise(img: np.ndarray, bit_depth: int) -> np.ndarray:
    if bit_depth == 8:
        return np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return np.clip(np.rint(img * 256.0), 0, 65535).astype(np.uint16)


def _tables(cells: list[_Cell], cfg: SynthConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    truth_parts, rows = [], []
    for c in cells:
        inside = (c.x >= -0.5) & (c.x < cfg.width - 0.5) & (c.y >= -0.5) & (c.y < cfg.height - 0.5)
        if not inside.any():
            continue
        frames = np.arange(c.f0, c.f1)[inside]
        truth_parts.append(
            pd.DataFrame(
                {
                    "track_id": c.track_id,
                    "label": c.label,
                    "frame": frames,
                    "x": c.x[inside],
                    "y": c.y[inside],
                }
            )
        )
        aspect = c.semi_minor[inside] / c.semi_major[inside]
        rows.append(
            {
                "track_id": c.track_id,
                "label": c.label,
                "kind": c.kind,
                "dynamics": c.dynamics,
                "first_frame": int(frames[0]),
                "last_frame": int(frames[-1]),
                "n_frames": int(inside.sum()),
                "x_start": float(c.x[inside][0]),
                "x_end": float(c.x[inside][-1]),
                "y_mean": float(c.y[inside].mean()),
                "speed": c.speed,
                "diameter": 2 * c.look.radius,
                "period": c.period,
                "aspect_mean": float(aspect.mean()),
                "aspect_std": float(aspect.std()),
            }
        )
    truth = (
        pd.concat(truth_parts, ignore_index=True)
        if truth_parts
        else schema.empty_table(schema.TRUTH)
    )
    truth = schema.validate(truth, schema.TRUTH, "truth")
    truth = truth.sort_values(["frame", "track_id"], kind="stable").reset_index(drop=True)
    tracks = pd.DataFrame(rows, columns=TRACK_TRUTH_COLUMNS)
    return truth, tracks


TRACK_TRUTH_COLUMNS = [
    "track_id",
    "label",
    "kind",
    "dynamics",
    "first_frame",
    "last_frame",
    "n_frames",
    "x_start",
    "x_end",
    "y_mean",
    "speed",
    "diameter",
    "period",
    "aspect_mean",
    "aspect_std",
]
"""Columns of the per-track truth table (``NAME.tracks.csv``)."""


def render_acquisition(
    cfg: SynthConfig | None = None, rng: np.random.Generator | int | None = None
) -> SyntheticAcquisition:
    """Plan a synthetic acquisition: cells, truth, background; frames render lazily.

    Parameters
    ----------
    cfg : SynthConfig, optional
        Parameters (defaults: 1024x768, 600 frames at 60 fps, ~10 cells in view).
    rng : numpy Generator, int or None
        Source of randomness; the same seed gives the same acquisition, frame for frame.

    Returns
    -------
    SyntheticAcquisition
        ``.truth`` and ``.tracks`` tables; ``.frame(i)`` / ``.frames()`` render the video.
    """
    cfg = cfg or SynthConfig()
    rng = _as_rng(rng)
    background = _background(rng, cfg)
    cells = _plan(cfg, rng)
    truth, tracks = _tables(cells, cfg)
    noise_seed = int(rng.integers(0, 2**63 - 1))
    return SyntheticAcquisition(
        cfg, truth, tracks, cells, background, noise_seed, float(rng.uniform(0, 2 * np.pi))
    )


def true_fraction(tracks: pd.DataFrame, min_frames: int = schema.MIN_TRACK_LENGTH) -> float:
    """True tank-treading fraction among reliable tracks at least ``min_frames`` long.

    Returns NaN when there is no such track.
    """
    t = tracks[tracks["n_frames"] >= min_frames]
    tt = int((t["label"] == TANK_TREADING).sum())
    fl = int((t["label"] == FLIPPING).sum())
    return tt / (tt + fl) if tt + fl else float("nan")


# -- writing ------------------------------------------------------------------------------------
def guess_format(path: str | os.PathLike) -> str:
    """``avi``, ``tiff`` or ``png`` (a folder of frames) from the output path.

    A path ending in ``/``, an existing folder, or a path without suffix is a frame folder.
    """
    p = str(path)
    suffix = Path(p).suffix.lower()
    if p.endswith(("/", os.sep)) or Path(p).is_dir() or not suffix:
        return "png"
    if suffix == ".avi":
        return "avi"
    if suffix in (".tif", ".tiff"):
        return "tiff"
    raise OutputError(f"unknown video format {suffix!r} (use .avi, .tif/.tiff or a folder/)", path)


def truth_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """Where the truth tables of a video go: ``NAME.truth.csv`` and ``NAME.tracks.csv`` beside
    ``NAME.avi`` / ``NAME.tif`` / ``NAME/``."""
    p = Path(str(path).rstrip("/" + os.sep))
    stem = p.with_suffix("") if p.suffix.lower() in (".avi", ".tif", ".tiff") else p
    return (stem.parent / (stem.name + ".truth.csv"), stem.parent / (stem.name + ".tracks.csv"))


def _partial_name(p: Path) -> Path:
    # Keep the real suffix last: OpenCV picks the container from it.
    return p.with_name(f".{p.stem}.partial{p.suffix}")


def _replace(tmp: Path, final: Path) -> None:
    if final.is_dir() and tmp.is_dir():
        import shutil

        shutil.rmtree(final)
    os.replace(tmp, final)


def write_frames(
    frames: Iterable[np.ndarray],
    path: str | os.PathLike,
    fps: float = 60.0,
    fmt: str | None = None,
    codec: str | None = None,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Stream grayscale frames into a video file or frame folder, one frame at a time.

    Written under a temporary name and renamed when complete (an interrupted run leaves no
    half video under the final name).

    Parameters
    ----------
    frames : iterable of (rows, cols) uint8 or uint16 ndarrays
        All of the same shape; uint16 only for TIFF and PNG.
    path : path
        ``NAME.avi``, ``NAME.tif``/``NAME.tiff`` or a folder (``NAME/``) of PNG frames
        ``frame_000000.png``...
    fps : float
        Frame rate stored in the AVI, frames/s (TIFF and PNG carry none).
    fmt : {'avi', 'tiff', 'png'}, optional
        Output format; guessed from ``path`` when None.
    codec : str, optional
        AVI codec, a key of :data:`AVI_CODECS` (default ``ffv1``, lossless). Frames are
        written as 24-bit BGR (grey replicated on the three channels), as the lab camera does.
    overwrite : bool
        Replace an existing output instead of raising :class:`OutputError`.
    progress : callable, optional
        Called with 1 after each frame written.

    Returns
    -------
    int
        Number of frames written.
    """
    path = Path(path)
    fmt = fmt or guess_format(path)
    if fmt not in FORMATS:
        raise OutputError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})", path)
    if path.exists() and not overwrite:
        raise OutputError("exists already (use overwrite / --force to replace it)", path)
    if not path.parent.exists():
        raise OutputError("parent folder does not exist", path.parent)
    if fmt == "avi":
        codec = (codec or "ffv1").lower()
        if codec not in AVI_CODECS:
            raise OutputError(
                f"unknown AVI codec {codec!r} (choose from {', '.join(AVI_CODECS)})", path
            )
    elif codec is not None:
        raise OutputError(f"a codec ({codec}) applies to AVI output only", path)
    tmp = _partial_name(path)
    n = 0
    try:
        if fmt == "avi":
            n = _write_avi(frames, tmp, fps, AVI_CODECS[codec], progress)
        elif fmt == "tiff":
            n = _write_tiff(frames, tmp, progress)
        else:
            n = _write_png_folder(frames, tmp, progress)
        if n == 0:
            raise OutputError("no frame to write", path)
        _replace(tmp, path)
    finally:
        if tmp.is_dir():
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
    return n


def _write_avi(
    frames: Iterable[np.ndarray],
    path: Path,
    fps: float,
    fourcc: str,
    progress: Callable[[int], None] | None,
) -> int:
    writer = None
    n = 0
    try:
        for frame in frames:
            if frame.dtype != np.uint8:
                raise OutputError(f"AVI holds 8-bit frames only, got {frame.dtype}", path)
            if writer is None:
                rows, cols = frame.shape
                writer = cv2.VideoWriter(
                    str(path),
                    cv2.CAP_FFMPEG,
                    cv2.VideoWriter_fourcc(*fourcc),
                    float(fps),
                    (cols, rows),
                    True,
                )
                if not writer.isOpened():
                    raise OutputError(f"OpenCV cannot write AVI with codec {fourcc}", path)
            writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
            n += 1
            if progress:
                progress(1)
    finally:
        if writer is not None:
            writer.release()
    return n


def _write_tiff(
    frames: Iterable[np.ndarray], path: Path, progress: Callable[[int], None] | None
) -> int:
    import tifffile

    n = 0
    with tifffile.TiffWriter(path, bigtiff=False) as tif:
        for frame in frames:
            # One page per frame; contiguous pages make one series that readers page through.
            tif.write(frame, photometric="minisblack", contiguous=True, metadata=None)
            n += 1
            if progress:
                progress(1)
    return n


def _write_png_folder(
    frames: Iterable[np.ndarray], folder: Path, progress: Callable[[int], None] | None
) -> int:
    folder.mkdir()
    n = 0
    for frame in frames:
        if not cv2.imwrite(str(folder / f"frame_{n:06d}.png"), frame):
            raise OutputError("cannot write PNG frame", folder / f"frame_{n:06d}.png")
        n += 1
        if progress:
            progress(1)
    return n


def write_tables(
    path: str | os.PathLike, truth: pd.DataFrame, tracks: pd.DataFrame, overwrite: bool = False
) -> tuple[Path, Path]:
    """Write ``NAME.truth.csv`` and ``NAME.tracks.csv`` beside the video ``path``."""
    truth_csv, tracks_csv = truth_paths(path)
    for p, table in ((truth_csv, truth), (tracks_csv, tracks)):
        if p.exists() and not overwrite:
            raise OutputError("exists already (use overwrite / --force to replace it)", p)
        tmp = p.with_name(f".{p.name}.partial")
        table.to_csv(tmp, index=False, float_format="%.4f")
        os.replace(tmp, p)
    return truth_csv, tracks_csv


def write_acquisition(
    path: str | os.PathLike,
    cfg: SynthConfig | None = None,
    rng: np.random.Generator | int | None = None,
    fmt: str | None = None,
    codec: str | None = None,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Render a synthetic acquisition into a video and write its truth beside it.

    Parameters
    ----------
    path : path
        ``NAME.avi``, ``NAME.tif`` or ``NAME/`` (see :func:`write_frames`).
    cfg, rng : see :func:`render_acquisition`.
    fmt, codec, overwrite, progress : see :func:`write_frames`.

    Returns
    -------
    DataFrame
        The truth (:data:`rbcflow.schema.TRUTH`); also written to ``NAME.truth.csv``, with the
        per-track truth in ``NAME.tracks.csv`` (:func:`truth_paths`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "demo.avi"
    >>> truth = write_acquisition(out, SynthConfig(width=128, height=96, n_frames=12), rng=1)
    >>> sorted(p.name for p in out.parent.iterdir())
    ['demo.avi', 'demo.tracks.csv', 'demo.truth.csv']
    """
    cfg = cfg or SynthConfig()
    acq = render_acquisition(cfg, rng)
    for p in truth_paths(path):
        if p.exists() and not overwrite:
            raise OutputError("exists already (use overwrite / --force to replace it)", p)
    write_frames(acq.frames(), path, cfg.fps, fmt, codec, overwrite, progress)
    write_tables(path, acq.truth, acq.tracks, overwrite=overwrite)
    return acq.truth


# -- composites of real crops -------------------------------------------------------------------
def composite_video(
    sequences: Sequence,
    path: str | os.PathLike,
    cfg: SynthConfig | None = None,
    rng: np.random.Generator | int | None = None,
    speed: tuple[float, float] = (2.0, 6.0),
    cells_in_view: float = 4.0,
    fmt: str | None = None,
    codec: str | None = None,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A video made of real 31x31 crop sequences moving left to right on a synthetic background.

    Each sequence's frame ``k`` is pasted, centred on the track's sub-pixel position, in the
    ``k``-th frame of its track; the crop's own background (the median of its border) is taken
    out so that the cell sits on the synthetic illumination, and a raised-cosine window fades
    the crop's edges (and any neighbour cut into them) into the background. Inside the window
    the synthetic camera noise is weakened so that the crop's own noise is not doubled.
    Made for tests of the front end on real cell appearance; never ship the result.

    Parameters
    ----------
    sequences : sequence of :class:`rbcflow.io.sequences.Sequence`
        Real crops, ``(T, 31, 31)`` uint8 each.
    path : path
        Output video (see :func:`write_frames`); the truth tables go beside it.
    cfg : SynthConfig, optional
        Background, noise, size and fps (its cell parameters are not used). Default: a
        512x384 field.
    rng : numpy Generator, int or None
    speed : (min, max) px/frame
        Track speeds; slowed down where needed so that a whole sequence crosses the field.
    cells_in_view : float
        Mean number of sequences shown at once.

    Returns
    -------
    truth, tracks : DataFrames
        ``truth`` as :data:`rbcflow.schema.TRUTH` with the sequence's label (-1 when
        unlabelled); ``tracks`` one row per sequence: ``track_id, label, sequence_name,
        first_frame, last_frame, n_frames, speed, y``.
    """
    from rbcflow.schema import CROP_SIZE

    cfg = cfg or SynthConfig(width=512, height=384)
    rng = _as_rng(rng)
    seqs = list(sequences)
    if not seqs:
        raise RbcflowError("composite_video: no sequence given")
    cols, rows = cfg.width, cfg.height
    half = CROP_SIZE // 2
    margin = half + 2
    if cols < CROP_SIZE + 2 * margin or rows < 2 * margin:
        raise RbcflowError(f"composite_video: frame {cols}x{rows} too small for 31x31 crops")
    lengths = np.array([len(s.frames) for s in seqs])
    # Pick speeds first, then arrivals so that ``cells_in_view`` are shown on average.
    speeds = rng.uniform(*speed, size=len(seqs))
    room = cols - 2 * margin
    speeds = np.minimum(speeds, room / np.maximum(lengths - 1, 1))
    rate = cells_in_view / max(float(lengths.mean()), 1.0)
    placed: list[tuple[float, float, Callable[[float], float], float, float]] = []
    plan = []
    t = 0.0
    for k in rng.permutation(len(seqs)):
        seq, v, n = seqs[k], float(speeds[k]), int(lengths[k])
        x0 = rng.uniform(margin, cols - margin - v * (n - 1))
        while True:
            f0 = int(round(t))

            def x_at(tt: float, f0_: int = f0, x0_: float = x0, v_: float = v) -> float:
                return x0_ + v_ * (tt - f0_)

            y = None
            for _ in range(40):
                cand = rng.uniform(margin, rows - 1 - margin)
                if not _lanes_clash(f0, f0 + n - 1, x_at, cand, half, placed, 4.0):
                    y = cand
                    break
            if y is not None:
                break
            t += 1.0 / max(rate, 1e-6) * 0.25  # crowded: wait a little
        placed.append((f0, f0 + n - 1, x_at, y, half))
        plan.append((seq, f0, x0, v, y))
        t += rng.exponential(1 / rate)
    n_frames = max(f0 + len(seq.frames) for seq, f0, *_ in plan)
    bg = _background(rng, cfg)
    noise_seed = int(rng.integers(0, 2**63 - 1))
    jitter = [
        (
            _ar1(rng, len(seq.frames), cfg.position_jitter),
            _ar1(rng, len(seq.frames), cfg.position_jitter * 0.5),
        )
        for seq, *_ in plan
    ]

    # A raised-cosine window: 1 on the cell, 0 at the crop's border.
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    rr = np.hypot(xx, yy)
    inner, outer = half - 4.5, half - 0.5
    window = np.clip((outer - rr) / (outer - inner), 0, 1)
    window = (0.5 - 0.5 * np.cos(np.pi * window)).astype(np.float32)

    truth_rows, track_rows = [], []
    for tid, ((seq, f0, x0, v, y), (jx, jy)) in enumerate(zip(plan, jitter, strict=True), 1):
        n = len(seq.frames)
        xs = x0 + v * np.arange(n) + jx
        ys = y + jy
        label = -1 if seq.label is None else int(seq.label)
        truth_rows.append(
            pd.DataFrame(
                {"track_id": tid, "label": label, "frame": f0 + np.arange(n), "x": xs, "y": ys}
            )
        )
        track_rows.append(
            {
                "track_id": tid,
                "label": label,
                "sequence_name": seq.name,
                "first_frame": f0,
                "last_frame": f0 + n - 1,
                "n_frames": n,
                "speed": v,
                "y": y,
            }
        )
    truth = schema.validate(pd.concat(truth_rows, ignore_index=True), schema.TRUTH, "truth")
    truth = truth.sort_values(["frame", "track_id"], kind="stable").reset_index(drop=True)
    tracks = pd.DataFrame(track_rows)

    by_frame: dict[int, list[tuple[np.ndarray, float, float]]] = {}
    for (seq, f0, *_), part in zip(plan, truth_rows, strict=True):
        for k, (x, yv) in enumerate(zip(part["x"], part["y"], strict=True)):
            by_frame.setdefault(f0 + k, []).append((seq.frames[k], float(x), float(yv)))
    drift_phase = float(rng.uniform(0, 2 * np.pi))

    def frames() -> Iterator[np.ndarray]:
        for i in range(n_frames):
            t_s = i / cfg.fps
            img = bg * np.float32(
                1 + cfg.drift * math.sin(2 * np.pi * t_s / cfg.drift_period_s + drift_phase)
            )
            gain = np.ones_like(img)
            for crop, x, yv in by_frame.pop(i, []):
                crop = crop.astype(np.float32)
                border = np.concatenate([crop[0], crop[-1], crop[1:-1, 0], crop[1:-1, -1]])
                rel = crop / max(float(np.median(border)), 1.0) - 1.0
                # Sub-pixel placement: shift the crop's relative contrast bilinearly.
                cx, cy = int(round(x)), int(round(yv))
                m = np.float32([[1, 0, x - cx], [0, 1, yv - cy]])
                rel = cv2.warpAffine(
                    rel,
                    m,
                    (CROP_SIZE, CROP_SIZE),
                    flags=cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_CONSTANT,
                    borderValue=0.0,
                )
                r0, c0 = cy - half, cx - half
                sl = (
                    slice(max(r0, 0), min(r0 + CROP_SIZE, rows)),
                    slice(max(c0, 0), min(c0 + CROP_SIZE, cols)),
                )
                sub = (
                    slice(sl[0].start - r0, sl[0].stop - r0),
                    slice(sl[1].start - c0, sl[1].stop - c0),
                )
                img[sl] *= 1.0 + window[sub] * rel[sub]
                gain[sl] = np.minimum(gain[sl], np.sqrt(1.0 - window[sub] ** 2))
            noise = np.random.default_rng([noise_seed, i]).standard_normal(
                img.shape, dtype=np.float32
            )
            img += np.float32(cfg.noise_std) * gain * noise
            yield _quantise(img, cfg.bit_depth)

    for p in truth_paths(path):
        if p.exists() and not overwrite:
            raise OutputError("exists already (use overwrite / --force to replace it)", p)
    write_frames(frames(), path, cfg.fps, fmt, codec, overwrite, progress)
    write_tables(path, truth, tracks, overwrite=overwrite)
    return truth, tracks
