"""Left-to-right constant-velocity linking with cross-correlation refinement.

Cells in the shear-flow chamber move along +x at a steady speed. Each frame, every active track
predicts its position from its motion model (:mod:`rbcflow.frontend.motion`: a line fitted to
its last ``motion_window`` detections; before it has three, its last position and velocity);
detections are assigned to tracks by minimum total distance (Hungarian algorithm,
:func:`~rbcflow.frontend.assignment.linear_assignment`, scipy's answer without importing
:mod:`scipy.optimize`) within a gate; then each track's position is
refined by cross-correlating the cell's background-subtracted patch of the previous frame with
the current frame around the assigned detection (or the prediction): normalised
cross-correlation (:func:`rbcflow.frontend.kernels.correlation_peaks`, all tracks of a frame in
one compiled call) and a parabolic fit of the peak give the frame-to-frame displacement to a
small fraction of a pixel. The refined position blends the detection centroid (absolute,
noisier) with previous position + displacement (precise, but it would drift if used alone):
``x = w * centroid + (1 - w) * (x_prev + shift)``, and a track whose detections scatter about
its line (a faint or blurred cell) is pulled towards the line (``lam * x + (1 - lam) * line``,
:meth:`~rbcflow.frontend.motion.LineFit.gain`). A steady centre matters for the crops: the
classifier reads shape changes, not jitter.

A track with no detection for a frame keeps going on the correlation (or its prediction) for up
to ``max_gap`` frames (gap closing: those frames are ``detected`` False); it ends when its
prediction leaves the field or it stays lost longer. Trailing undetected frames are removed; an
ended track is then held ``join_window`` frames for a fragment of the same cell
(:mod:`rbcflow.frontend.joining`, counted in :attr:`Linker.n_joins`) before it is released;
tracks shorter than ``min_length``, or with fewer than ``min_detected`` detected frames, are
dropped. A track
is flagged ``interference`` when another object comes closer than ``interference_distance``,
and records per frame whether another detection lies in its crop window
(:attr:`~rbcflow.frontend.tracks.Track.neighbours`, the TRACKS column ``neighbour_frames``).

API layers (STYLE habit 2, as trackpy's ``link_iter`` -> ``link``): :meth:`Linker.step` links one
frame (it returns the tracks that finished), :func:`link_iter` is the one per-frame loop over a
stream of detections (the front end's :func:`rbcflow.frontend.run.run_frontend` streams through
it), :func:`track_frames` a generator of finished tracks over a stream of frames on top of it,
and :func:`rbcflow.frontend.tracks.tracks_to_tables` turns finished tracks into the POSITIONS and
TRACKS tables.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator

import numpy as np

from rbcflow.config import TrackingConfig
from rbcflow.frontend.assignment import linear_assignment
from rbcflow.frontend.correlation import correlation_shifts
from rbcflow.frontend.interference import flag_interference
from rbcflow.frontend.joining import hold_ended, join_pending
from rbcflow.frontend.kernels import gate_costs
from rbcflow.frontend.motion import LineFit, gate_state, predict, scatter
from rbcflow.frontend.splitting import one_per_cell
from rbcflow.frontend.tracks import Track

_INFEASIBLE = 1e9
_WIDEN = 2.0  # gates widened by this many times a track's scatter (motion.scatter)


def _median(values: list[float]) -> float:
    """``float(np.median(values))`` of a short list, without numpy's fixed cost (~15 us a
    call, once per frame): the middle value, or the mean of the two middle ones, the same
    float (signed zeros included; tests/test_link_kernels.py); NaN anywhere: numpy's answer.
    """
    v = sorted(values)
    n = len(v)
    if any(x != x for x in v):
        return float(np.median(values))
    k = n // 2
    # numpy's mean of the middle value(s) adds them to 0.0 (so a median is never -0.0)
    return 0.0 + v[k] if n % 2 else (0.0 + (v[k - 1] + v[k])) / 2.0


class Linker:
    """Per-frame linking core.

    Parameters
    ----------
    background : (rows, cols) float32 ndarray
        Median background (for the correlation patches and the field size).
    cfg : TrackingConfig
    template_half : int
        Half side of the correlation template, pixels (about the cell radius + 3).
    min_separation : float
        A detection closer than this to an active track's position never starts a new track
        (a cell split in two components must not give a duplicate track), pixels.
    crop_reach : float
        Half side of the track's crop window in frame pixels (``15 / scale`` for 31x31 crops,
        :attr:`rbcflow.frontend.crops.CropCutter.reach`): another detection whose centre lies
        within ``crop_reach + r`` of the track's position along both x and y (``r`` its
        radius, ``sqrt(area / pi)``, 0 when its area is unknown) is in the track's crop.
    fill : callable, optional
        ``fill(frame, x, y)``: the payload item (the front end: a crop) of a frame that
        joining two fragments fills in (:func:`rbcflow.frontend.joining.merge_tracks`); it is
        called at most ``max_gap + join_window + 1`` frames after that frame.

    Examples
    --------
    >>> bg = np.zeros((50, 200), np.float32)
    >>> link = Linker(bg, TrackingConfig(refine=False))
    >>> done = []
    >>> for t in range(10):
    ...     done += link.step(t, None, np.array([[10.0 + 5 * t, 25.0]]))
    >>> done += link.finish()
    >>> len(done), done[0].xs[:3]
    (1, [10.0, 15.0, 20.0])
    """

    def __init__(
        self,
        background: np.ndarray,
        cfg: TrackingConfig | None = None,
        *,
        template_half: int = 8,
        min_separation: float = 6.0,
        crop_reach: float = 15.0,
        fill=None,
    ):
        self.cfg = cfg or TrackingConfig()
        self.fill = fill
        self.pending: list[Track] = []  # ended, held for join_window frames (joining)
        self.n_joins = 0
        self.background = np.asarray(background, dtype=np.float32)
        self.rows, self.cols = self.background.shape
        self.half = int(template_half)
        self.min_separation = float(min_separation)
        self.crop_reach = float(crop_reach)
        self.active: list[Track] = []
        self.prev_frame: np.ndarray | None = None
        self.prev_index: int | None = None
        self.prior_vx = 0.0  # median speed of established tracks, for new tracks' 2nd frame
        self.n_finished = 0
        self.n_dropped = 0
        self.seconds = 0.0  # spent in step (the front end's "linking" timing)

    # -- association --------------------------------------------------------------------
    def _assign(self, t: int, xy: np.ndarray) -> np.ndarray:
        """For each active track, the index of its detection or -1."""
        cfg = self.cfg
        n_t, n_d = len(self.active), len(xy)
        match = np.full(n_t, -1, dtype=np.int64)
        if n_t == 0 or n_d == 0:
            return match
        # A tentative track (one detection) is gated from that detection, by a box.
        state = np.array([gate_state(tr, t, self.prior_vx) for tr in self.active])
        # Established tracks: within the search radius of the prediction, and within max_dy
        # of it across the flow (cells keep their lane: a detection pulled across it is the
        # merged blob of this cell and a neighbour's, not this cell).
        # Both widened by twice the track's own scatter about its line (a faint cell's
        # centres wander by 2-3 px; a sharp cell's by a few tenths).
        # New tracks have no velocity yet: a box of plausible motions, and a penalty so that
        # an established track wins a contested detection. (Compiled: one call, the same
        # floats as the numpy of (n_t, n_d) arrays it replaced.)
        cost = np.empty((n_t, n_d))
        feasible = np.empty((n_t, n_d), dtype=bool)
        gate_costs(
            state,
            np.ascontiguousarray(xy, dtype=np.float64),
            int(t),
            float(cfg.min_speed),
            float(cfg.max_speed),
            float(cfg.max_dy),
            float(cfg.search_radius),
            _WIDEN,
            _INFEASIBLE,
            cost,
            feasible,
        )
        rows, cols = linear_assignment(cost)
        ok = feasible[rows, cols]
        match[rows[ok]] = cols[ok]
        return match

    # -- one frame ----------------------------------------------------------------------
    def step(
        self,
        t: int,
        frame: np.ndarray | None,
        xy: np.ndarray,
        areas: np.ndarray | None = None,
    ) -> list[Track]:
        """Link frame ``t``.

        Parameters
        ----------
        t : int
            Frame index (increasing by 1 each call).
        frame : (rows, cols) ndarray or None
            Raw frame (None only with ``refine=False``).
        xy : (n, 2) float ndarray
            Detections (x, y) of frame ``t``, pixels.
        areas : (n,) float ndarray, optional
            Area of each detection, pixels (kept per track frame: see :attr:`Track.areas`).

        Returns
        -------
        list of Track
            Tracks that ended at this step and are kept (>= ``min_length`` frames), with
            ids assigned.
        """
        start = time.perf_counter()
        cfg = self.cfg
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        area = np.full(len(xy), math.nan) if areas is None else np.asarray(areas, dtype=np.float64)
        xy, area = one_per_cell(xy, area, self.min_separation)
        match = self._assign(t, xy)
        refine = cfg.refine and frame is not None and self.prev_frame is not None
        w = cfg.centroid_weight
        still: list[Track] = []
        own: list[int] = []  # detection of each surviving track in this frame, or -1
        ended: list[Track] = []
        # Where each track is expected: its detection, else its prediction.
        plan = []
        for tr, j in zip(self.active, match, strict=True):
            px, py = predict(tr, t)
            dt = t - tr.frames[-1]
            if j < 0 and not self._inside(px, py):
                ended.append(tr)  # left the field
                continue
            centre = (xy[j, 0], xy[j, 1]) if j >= 0 else (px, py)
            plan.append((tr, int(j), (px, py), centre, refine and dt == 1))
        # One correlation call for all the tracks followed from the previous frame.
        corr = [k for k, item in enumerate(plan) if item[4]]
        shifts = {}
        if corr:
            found = correlation_shifts(
                self.prev_frame,
                frame,
                self.background,
                [plan[k][0].last for k in corr],
                [plan[k][3] for k in corr],
                self.half,
                cfg.refine_search,
            )
            shifts = {k: f for k, f in zip(corr, found, strict=True) if f[2] >= cfg.min_correlation}
        for k, (tr, j, (px, py), centre, _) in enumerate(plan):
            shift = shifts.get(k)
            if j >= 0:
                x, y = centre
                if shift is not None:
                    x = w * x + (1 - w) * shift[0]
                    y = w * y + (1 - w) * shift[1]
                tr.gap = 0
            else:
                tr.gap += 1
                if tr.gap > cfg.max_gap:
                    ended.append(tr)
                    continue
                x, y = (shift[0], shift[1]) if shift is not None else (px, py)
            m = tr.motion
            if m is not None:
                # a poorly measured centre follows the track's line (motion.py)
                lam = m.gain(cfg.motion_noise)
                if j >= 0:
                    m.add(t, float(xy[j, 0]), float(xy[j, 1]), (px, py))  # the detection
                x, y = lam * x + (1 - lam) * px, lam * y + (1 - lam) * py
            tr.append(t, float(x), float(y), bool(j >= 0), float(area[j]) if j >= 0 else math.nan)
            if m is not None and m.ready():
                tr.vx, tr.vy = m.velocity()
            still.append(tr)
            own.append(j)
        # New tentative tracks from the detections nobody took.
        taken = np.zeros(len(xy), dtype=bool)
        taken[match[match >= 0]] = True
        if still and not taken.all():
            pos = np.array([tr.last for tr in still])
            near = np.hypot(xy[:, None, 0] - pos[None, :, 0], xy[:, None, 1] - pos[None, :, 1])
            # a faint cell's centres scatter: a second part of its blob is not a new cell
            reach = [self.min_separation + _WIDEN * scatter(tr) for tr in still]
            taken |= (near < np.array(reach)[None, :]).any(axis=1)
        for j in np.flatnonzero(~taken):
            tr = Track()
            tr.append(t, float(xy[j, 0]), float(xy[j, 1]), True, float(area[j]))
            if cfg.motion_window > 0:
                tr.motion = LineFit(cfg.motion_window)
                tr.motion.add(t, float(xy[j, 0]), float(xy[j, 1]))
            still.append(tr)
            own.append(int(j))
        # Ended tracks wait join_window frames for a fragment of the same cell (those that
        # left the field cannot come back); the rest are released.
        left, dropped = hold_ended(ended, self.pending, t, self._inside, cfg)
        self.n_dropped += dropped
        self.n_joins += join_pending(self.pending, still, cfg, self.fill)
        self.active = still
        flag_interference(
            self.active,
            xy,
            own,
            area,
            self.cfg.interference_distance,
            self.min_separation,
            self.crop_reach,
        )
        speeds = [tr.vx for tr in still if len(tr) >= 3]
        if speeds:
            self.prior_vx = _median(speeds)
        self.prev_frame, self.prev_index = frame, t
        window = max(int(cfg.join_window), 0)
        release = [a for a in self.pending if t - a.frames[-1] >= window]
        self.pending = [a for a in self.pending if t - a.frames[-1] < window]
        done = self._close(left + release)
        self.seconds += time.perf_counter() - start
        return done

    def _inside(self, x: float, y: float) -> bool:
        """Whether a predicted position is still in the field: within the columns, and within
        ``search_radius`` of the rows (a cell cut by the top or bottom border has its centre
        at the border or a little beyond it, and flows along it)."""
        m = self.cfg.search_radius
        return 0 <= x <= self.cols - 1 and -m <= y <= self.rows - 1 + m

    def _close(self, ended: list[Track]) -> list[Track]:
        kept = []
        for tr in ended:
            tr.trim()
            if not tr.frames:
                self.n_dropped += 1
                continue
            if len(tr) >= self.cfg.min_length and sum(tr.detected) >= self.cfg.min_detected:
                self.n_finished += 1
                tr.track_id = self.n_finished
                kept.append(tr)
            else:
                self.n_dropped += 1
        return kept

    def finish(self) -> list[Track]:
        """End every active and held track (end of the video); returns the kept ones."""
        ended, self.active = self.active, []
        held, self.pending = self.pending, []
        return self._close(held + ended)


def link_iter(
    linker: Linker, detections: Iterable[tuple[np.ndarray | None, np.ndarray, np.ndarray | None]]
) -> Iterator[tuple[int, np.ndarray | None, list[Track]]]:
    """The per-frame loop: link a stream of detections frame by frame.

    Parameters
    ----------
    linker : Linker
        A fresh linker (frame indices start at 0).
    detections : iterable of (frame, xy, areas)
        In frame order: the raw frame (None only with ``refine=False``), its detections (n, 2)
        and their areas (n,) or None (see :meth:`Linker.step`).

    Yields
    ------
    t, frame, finished
        After each frame: its index, the frame, and the tracks that ended there (kept ones,
        ids assigned); the active tracks then hold their position in frame ``t``. After the last
        frame, once more with ``t`` the number of frames, ``frame`` None and the tracks still
        active then (:meth:`Linker.finish`).
    """
    n = 0
    for t, (frame, xy, areas) in enumerate(detections):
        yield t, frame, linker.step(t, frame, xy, areas)
        n = t + 1
    yield n, None, linker.finish()


def track_frames(
    frames: Iterable[np.ndarray],
    detect,
    background: np.ndarray,
    cfg: TrackingConfig | None = None,
    *,
    template_half: int = 8,
    min_separation: float = 6.0,
    crop_reach: float = 15.0,
) -> Iterator[Track]:
    """Generator of finished tracks over a stream of frames (on :func:`link_iter`).

    Parameters
    ----------
    frames : iterable of (rows, cols) ndarray
        Raw frames, in order (frame indices from 0).
    detect : callable
        ``detect(frame) -> (xy, ...)`` with ``xy`` an (n, 2) array of (x, y), e.g. a
        :class:`rbcflow.frontend.detection.FrameDetector`.
    background : (rows, cols) float32 ndarray
    cfg : TrackingConfig

    Yields
    ------
    Track
        Each kept track as soon as it ends.
    """
    link = Linker(
        background,
        cfg,
        template_half=template_half,
        min_separation=min_separation,
        crop_reach=crop_reach,
    )
    for _, _, finished in link_iter(link, ((f, detect(f)[0], None) for f in frames)):
        yield from finished
