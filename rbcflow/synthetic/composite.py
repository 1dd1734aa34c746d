"""Composites: real crop sequences pasted onto a synthetic background (:func:`composite_video`),
for tests of the front end on real cell appearance."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence

import cv2
import numpy as np
import pandas as pd

from rbcflow import schema
from rbcflow.errors import OutputError, RbcflowError
from rbcflow.schema import CROP_SIZE
from rbcflow.synthetic.optics import _background, _quantise
from rbcflow.synthetic.params import SynthConfig
from rbcflow.synthetic.plan import _ar1, _as_rng, _lanes_clash
from rbcflow.synthetic.write import truth_paths, write_frames, write_tables


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
    cfg = cfg or SynthConfig(width=512, height=384)
    rng = _as_rng(rng)
    seqs = list(sequences)
    if not seqs:
        raise RbcflowError("composite_video: no sequence given")
    cols, rows = cfg.width, cfg.height
    half = CROP_SIZE // 2
    margin = half + 2
    if cols < CROP_SIZE + 2 * margin or rows < 2 * margin:
        raise RbcflowError(
            f"composite_video: frame {cols}x{rows} too small for {CROP_SIZE}x{CROP_SIZE} crops"
        )
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
