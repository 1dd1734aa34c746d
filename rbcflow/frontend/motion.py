"""A track's motion model: a constant-velocity line fitted to its recent detected positions.

Cells in the shear-flow chamber move at a steady speed along their lane, so a track's recent
positions lie on a line ``x(t) = x0 + vx * t``, ``y(t) = y0 + vy * t``. :class:`LineFit` fits
that line by least squares to the last ``window`` detections of the track (the detections'
own centres; running sums: constant work per frame); the track's measurement scatter
``sigma`` is the residual standard deviation of those centres about the line (per axis). The
linker (:class:`rbcflow.frontend.tracking.Linker`) and the fragment joining
(:mod:`rbcflow.frontend.joining`) use it

- to predict where a track is in the next frame (a many-frame baseline, where two noisy
  positions five frames apart carried a faint cell's 2-3 px centre jitter into the velocity);
- to steady the centres of cells it measures poorly (faint, out of focus): the position kept is
  ``lam * measured + (1 - lam) * line``, ``lam = q**2 / (q**2 + sigma**2)`` (a Kalman-like gain,
  ``q`` = ``TrackingConfig.motion_noise``, once six frames are fitted): a sharp cell (sigma
  ~0.3 px) keeps its measured centre, a blurred one (sigma 2-3 px) follows its line;
- to size the gates to the track's own scatter (:func:`scatter`): the assignment's search
  radius and lane, the radius within which a detection is a part of the track's cell and
  starts no new track, and the join gate are widened by twice it;
- to join a short fragment to the track that follows it: the later track's line, once it
  has four frames, extrapolated back through the fragment.

The cross-flow velocity is shrunk towards 0 while few frames are fitted (:data:`VY_PRIOR`);
detections farther than ``max(4 sigma, 3 px)`` from the line (a neighbour's pull) are not
fitted, at most two in a row (a third one is: the cell did move).
"""

from __future__ import annotations

import math
from collections import deque

VY_PRIOR = 20.0
"""Ridge on the cross-flow velocity, frames^2: the fitted slope is ``cov(t, y) / (var(t) +
VY_PRIOR)`` (sums over the fitted frames), shrunk by 5/25 over 4 frames, 82/102 over 10, 2247/2267
over 30."""


class LineFit:
    """Least-squares constant-velocity fit over a sliding window of detected frames.

    Examples
    --------
    >>> f = LineFit(10)
    >>> for t in range(8):
    ...     _ = f.add(t, 5.0 + 3.0 * t, 20.0 + (0.5 if t % 2 else -0.5))
    >>> x, y = f.predict(10)
    >>> round(x, 6), round(y, 2), round(f.velocity()[0], 6), round(f.sigma, 2)
    (35.0, 20.21, 3.0, 0.4)
    """

    __slots__ = ("window", "pts", "t0", "sums", "rejected", "_coef", "_s2")

    def __init__(self, window: int = 30):
        self.window = int(window)
        self.pts: deque = deque()
        self.t0: int | None = None
        self.sums = [0.0] * 8  # t, t*t, x, t*x, x*x, y, t*y, y*y (t relative to t0)
        self.rejected = 0
        self._coef: tuple[float, float, float, float] | None = None  # cached per add
        self._s2 = 0.0

    def __len__(self) -> int:
        return len(self.pts)

    def _update(self, t: float, x: float, y: float, sign: float) -> None:
        s = self.sums
        s[0] += sign * t
        s[1] += sign * t * t
        s[2] += sign * x
        s[3] += sign * t * x
        s[4] += sign * x * x
        s[5] += sign * y
        s[6] += sign * t * y
        s[7] += sign * y * y

    def ready(self) -> bool:
        """Three or more detected frames spanning at least two frames: a line to trust."""
        return len(self.pts) >= 3 and self.pts[-1][0] - self.pts[0][0] >= 2

    def coefficients(self) -> tuple[float, float, float, float]:
        """``(x0, vx, y0, vy)`` of the line, times relative to the first frame fitted."""
        if self._coef is None:
            self._coef = self._solve()
        return self._coef

    def _solve(self) -> tuple[float, float, float, float]:
        n = len(self.pts)
        st, stt, sx, stx, _, sy, sty, _ = self.sums
        den = n * stt - st * st
        if n < 2 or den <= 1e-9:
            _, x, y = self.pts[-1]
            return x, 0.0, y, 0.0
        vx = (n * stx - st * sx) / den
        # across the flow, shrunk towards 0 while few frames are fitted (cells keep their
        # lane: a 4-frame slope of a faint cell's jittery centre is noise)
        vy = (n * sty - st * sy) / (den + n * VY_PRIOR)
        return (sx - vx * st) / n, vx, (sy - vy * st) / n, vy

    def predict(self, t: int) -> tuple[float, float]:
        """The line's position in frame ``t``."""
        x0, vx, y0, vy = self.coefficients()
        u = t - self.t0
        return x0 + vx * u, y0 + vy * u

    def velocity(self) -> tuple[float, float]:
        _, vx, _, vy = self.coefficients()
        return vx, vy

    @property
    def sigma2(self) -> float:
        """Residual variance of the fitted positions about the line, per axis, px^2 (0 with
        fewer than three)."""
        return self._s2

    def _residual(self) -> float:
        n = len(self.pts)
        if n < 3:
            return 0.0
        st, stt, sx, stx, sxx, sy, sty, syy = self.sums
        vt = stt - st * st / n
        rss = sxx - sx * sx / n + syy - sy * sy / n
        if vt > 1e-9:
            rss -= ((stx - st * sx / n) ** 2 + (sty - st * sy / n) ** 2) / vt
        return max(rss, 0.0) / (2 * (n - 2))

    @property
    def sigma(self) -> float:
        """:attr:`sigma2`'s square root, px."""
        return math.sqrt(self.sigma2)

    def gain(self, q: float) -> float:
        """Weight of a new measurement against the line: ``q**2 / (q**2 + sigma**2)``, 1
        until six frames are fitted."""
        if len(self.pts) < 6 or q <= 0:
            return 1.0
        return q * q / (q * q + self.sigma2)

    def add(self, t: int, x: float, y: float, pred: tuple[float, float] | None = None) -> bool:
        """Fit the measurement of frame ``t``; False when it was rejected as an outlier.
        ``pred``: :meth:`predict` for ``t``, when the caller has it."""
        if self.t0 is None:
            self.t0 = t
        if len(self.pts) >= 6 and self.rejected < 2:
            px, py = self.predict(t) if pred is None else pred
            d2 = (x - px) ** 2 + (y - py) ** 2
            if d2 > max(16.0 * self.sigma2, 9.0):
                self.rejected += 1
                return False
        self.rejected = 0
        u = t - self.t0
        self.pts.append((u, x, y))
        self._update(u, x, y, 1.0)
        if len(self.pts) > self.window:
            self._update(*self.pts.popleft(), -1.0)
        self._coef = None
        self._s2 = self._residual()
        return True


def scatter(track) -> float:
    """A track's measurement scatter about its line (its motion model's :attr:`LineFit.sigma`
    once six frames are fitted), px; 0 without a model."""
    m = track.motion
    return m.sigma if m is not None and len(m) >= 6 else 0.0


def has_velocity(tr) -> bool:
    """Two detected frames or more (a velocity); without a motion model, two frames."""
    return len(tr.motion) >= 2 if tr.motion is not None else len(tr) >= 2


def anchor(tr) -> tuple[float, float, int]:
    """(x, y, t) where a track was last seen: a tentative track's (one detection) last
    detection (its undetected frames hold no velocity), else its last position."""
    m = tr.motion
    if m is not None and len(m) == 1:
        u, x, y = m.pts[-1]
        return x, y, u + m.t0
    return tr.xs[-1], tr.ys[-1], tr.frames[-1]


def predict(tr, t: int) -> tuple[float, float]:
    """Where track ``tr`` is expected in frame ``t``: on its motion model's line when it
    has one (:meth:`LineFit.ready`), else from its last position
    and velocity."""
    if tr.motion is not None and tr.motion.ready():
        return tr.motion.predict(t)
    dt = t - tr.frames[-1]
    return tr.xs[-1] + tr.vx * dt, tr.ys[-1] + tr.vy * dt


def gate_state(tr, t: int, prior_vx: float) -> tuple[float, float, int, float, float, bool, float]:
    """What the linker's assignment needs of track ``tr`` for frame ``t``, in one call: its
    :func:`anchor` (x, y, frame), where it is expected (:func:`predict`; a tentative track:
    its detection moved at ``prior_vx``), whether it :func:`has_velocity`, its
    :func:`scatter`."""
    x, y, f = anchor(tr)
    ok = has_velocity(tr)
    px, py = predict(tr, t) if ok else (x + prior_vx * (t - f), y)
    return x, y, f, px, py, ok, scatter(tr)
