"""The generator's parameters: :class:`SynthConfig` and the kinds of unreliable track it draws."""

from __future__ import annotations

from dataclasses import dataclass

from rbcflow.config import ReaderConfig
from rbcflow.errors import RbcflowError

UNRELIABLE_KINDS = ("defocus", "overlap", "focus_change", "partial")
"""The kinds of unreliable track the generator draws."""


@dataclass(frozen=True)
class SynthConfig:
    """Parameters of a synthetic acquisition: the generator's own recipe (its defaults live
    here, except the frame rate: :attr:`rbcflow.config.ReaderConfig.default_fps`).

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
        closest_approach : None (the lanes rule above), or the smallest centre-to-centre
            distance at which a cell may pass another (a faster cell overtaking a slower one on
            a nearby lane), pixels: crowded recordings with near passes.
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
        flicker : frame-to-frame lamp flicker, grey levels at the mean background level (the
            standard deviation of an independent per-frame illumination gain; 0: none).
        dropout_rate : per cell and frame, the odds that a faint episode starts (a cell that
            briefly loses its contrast: the dropouts a detector misses; 0: none).
        dropout_frames : range of the length of a faint episode, frames (inclusive).
        dropout_contrast : the cell's contrast during a faint episode, relative to its own.
        debris_per_mpx : static debris specks per megapixel.
        noise_std : camera noise, grey levels (Gaussian, per-pixel standard deviation;
            independent between frames).
        noise_corr : spatial correlation of that noise, the sigma of the Gaussian that blurs
            white noise, px (0: independent pixels). Real crops show neighbour-pixel
            correlation ~0.8 (slightly blurred optics, JPEG), hence ~1 px.
    """

    width: int = 1024
    height: int = 768
    fps: float = ReaderConfig().default_fps
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
    closest_approach: float | None = None
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
    flicker: float = 0.0
    dropout_rate: float = 0.0
    dropout_frames: tuple[int, int] = (1, 3)
    dropout_contrast: float = 0.25
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
        if self.closest_approach is not None and self.closest_approach < 0:
            problems.append(f"closest_approach {self.closest_approach} < 0")
        if self.flicker < 0:
            problems.append(f"flicker {self.flicker} < 0")
        if not 0.0 <= self.dropout_rate < 1.0:
            problems.append(f"dropout_rate {self.dropout_rate} is not in [0, 1)")
        if not 1 <= self.dropout_frames[0] <= self.dropout_frames[1]:
            problems.append(f"dropout_frames {self.dropout_frames} is not 1 <= min <= max")
        if problems:
            raise RbcflowError("invalid synthetic configuration: " + "; ".join(problems))


PRESETS: dict[str, dict] = {
    "easy": {},
    "hard": {
        "cells_in_view": 25.0,
        "speed": (4.0, 28.0),
        "closest_approach": 14.0,
        "flicker": 2.7,
        "drift": 0.05,
        "drift_period_s": 8.0,
        "dropout_rate": 0.02,
    },
}
"""Named sets of :class:`SynthConfig` fields: ``easy`` the defaults (~10 cells in view at 2-8
px/frame on separate lanes, steady light); ``hard`` a crowded, fast, flickering recording (the
conditions of issue 12): 25 cells in view at 4-28 px/frame passing down to 14 px centre to
centre, lamp flicker of 2.7 grey levels, a drift of +-5 % (+-6 grey levels at 120) over 8 s and
faint episodes of 1-3 frames (about 4 % of cell positions)."""


def preset_config(name: str = "easy", **overrides) -> SynthConfig:
    """The :class:`SynthConfig` of a named preset (:data:`PRESETS`), fields overridden.

    Examples
    --------
    >>> preset_config("hard", n_frames=50).cells_in_view
    25.0
    """
    if name not in PRESETS:
        raise RbcflowError(f"unknown synthetic preset {name!r}; choose from {sorted(PRESETS)}")
    return SynthConfig(**{**PRESETS[name], **overrides})
