"""A planned acquisition and its truth: :func:`render_acquisition` and
:class:`SyntheticAcquisition`, whose frames render lazily, one at a time.

The truth tables are :data:`rbcflow.schema.TRUTH` (one row per cell and frame) and
:data:`rbcflow.schema.TRACK_TRUTH` (one row per true track, ``NAME.tracks.csv``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rbcflow import schema
from rbcflow.classify.labels import fraction
from rbcflow.schema import FLIPPING, TANK_TREADING
from rbcflow.synthetic.optics import _REF_LEVEL, _background, _cell_patch, _correlate, _quantise
from rbcflow.synthetic.params import SynthConfig
from rbcflow.synthetic.plan import _as_rng, _Cell, _plan


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
        :data:`rbcflow.schema.TRACK_TRUTH`, one row per true track: ``track_id, label, kind,
        dynamics, first_frame, last_frame, n_frames, x_start, x_end, y_mean, speed``
        (px/frame), ``diameter`` (px), ``period`` (flip or membrane period, frames),
        ``aspect_mean, aspect_std`` (projected minor/major axis ratio over the track).
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
        """Relative illumination of frame ``i`` (1 = the mean level): the slow drift, times
        the frame's lamp flicker when ``flicker`` is set (a gain drawn per frame,
        deterministically from the acquisition's seed and ``i``)."""
        cfg = self.config
        t = i / cfg.fps
        level = 1.0 + cfg.drift * math.sin(2 * np.pi * t / cfg.drift_period_s + self._drift_phase)
        if cfg.flicker > 0:
            mean = float(self._background.mean()) if self._background.size else _REF_LEVEL
            g = np.random.default_rng([self._noise_seed, i, 1]).standard_normal()
            level *= 1.0 + cfg.flicker / max(mean, 1.0) * float(g)
        return level

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
            fade = np.float32(1.0 if cell.fade is None else cell.fade[k])
            parts = [cell] if cell.partner is None else [cell, cell.partner]
            for c in parts:
                patch = _cell_patch(c, k, *c.centre(k), self.shape)
                if patch is not None:
                    rs, cs, delta = patch
                    img[rs, cs] *= 1.0 + fade * delta / np.float32(_REF_LEVEL)
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
    tracks = pd.DataFrame(rows, columns=list(schema.TRACK_TRUTH))
    tracks = schema.validate(tracks, schema.TRACK_TRUTH, "track truth")
    return truth, tracks


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
    """True tank-treading fraction among reliable tracks at least ``min_frames`` long
    (:func:`rbcflow.classify.labels.fraction`, the product's one fraction function).

    Returns NaN when there is no such track.
    """
    t = tracks[tracks["n_frames"] >= min_frames]
    tt = int((t["label"] == TANK_TREADING).sum())
    fl = int((t["label"] == FLIPPING).sum())
    return fraction(tt, fl)["tank_treading_fraction"]
