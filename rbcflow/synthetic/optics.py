"""What the microscope and the camera make of a cell: contrast profiles, illumination, noise.

A cell's bright-field contrast is drawn from analytic profiles (:func:`_focused_profile`, a
dark rim with a brighter inside and a central dimple; :func:`_defocused_profile`, a blob with a
halo) evaluated at pixel centres relative to its sub-pixel position (:func:`_cell_patch`); the
static illumination (gradient, vignetting, a smooth pattern, debris) is :func:`_background`;
camera noise is spatially correlated (:func:`_correlate`) and frames are quantised to 8 or 16
bits (:func:`_quantise`).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from rbcflow.synthetic.params import SynthConfig
from rbcflow.synthetic.plan import _Cell, _Look

_REF_LEVEL = 120.0
"""Cell contrasts are given in grey levels at this background level; they scale with the local
background (bright-field contrast is a transmission, so multiplicative)."""


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
