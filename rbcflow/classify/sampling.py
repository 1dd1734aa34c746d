"""Sequence preparation for the classifiers: downsampling to K frames, padding, normalisation.

Both classifiers see a cell's crops as a short stack of frames:

* stage 1 (C-RNN) takes up to K frames chosen by :func:`uniform_indices` (evenly spaced), and
  takes shorter sequences as they are (it is padding-invariant);
* stage 2 (CNN) takes exactly K frames chosen by :func:`similarity_indices` (the frames where
  the shape changes are kept), blank frames padded at the end when the track is shorter.

Crops are raw intensities (uint8, background 100-140 in the real data). :func:`normalise` makes
them independent of the illumination level: it divides by the background level, read as the
median of the crops' border pixels, so that a frame is its relative transmission contrast.

SSIM follows :func:`skimage.metrics.structural_similarity` with its defaults (7 x 7 uniform
window, sample covariance, K1 = 0.01, K2 = 0.03, mean over the window positions that fit inside
the image); :func:`ssim_batch` is a vectorised equivalent for stacks of image pairs, tested to
agree with scikit-image to 1e-6.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import cv2
import numpy as np

SSIM_WIN = 7
"""Side of the SSIM window, pixels (scikit-image's default)."""

NORMALISATION = {"method": "border_median_relative", "scale": 0.1, "border": 2}
"""Description of :func:`normalise` as written into model configs."""


def uniform_indices(n: int, k: int) -> np.ndarray:
    """Indices of ``k`` evenly spaced frames out of ``n`` (all ``n`` when ``n <= k``).

    Examples
    --------
    >>> uniform_indices(10, 4).tolist()
    [0, 3, 6, 9]
    >>> uniform_indices(3, 5).tolist()
    [0, 1, 2]
    """
    if n < 1 or k < 1:
        raise ValueError(f"need n >= 1 and k >= 1, got n={n}, k={k}")
    if n <= k:
        return np.arange(n)
    return np.round(np.linspace(0, n - 1, k)).astype(np.int64)


def uniform_downsample(frames: np.ndarray, k: int) -> np.ndarray:
    """At most ``k`` evenly spaced frames of ``frames`` ``(T, H, W)``, first and last kept."""
    return frames[uniform_indices(len(frames), k)]


def _box_sums(x: np.ndarray) -> np.ndarray:
    """Sums over every ``7 x 7`` window fully inside each image of ``x`` ``(N, H, W)``.

    One OpenCV box filter over the images stacked into a tall mosaic; the windows that straddle
    two images are cut away. ``x`` is float32 holding integers below 2**24 (sums exact) or
    float64. Returns ``(N, H - 6, W - 6)`` of the dtype of ``x``.
    """
    n, h, w = x.shape
    r = SSIM_WIN // 2
    mosaic = cv2.boxFilter(
        np.ascontiguousarray(x).reshape(n * h, w),
        -1,
        (SSIM_WIN, SSIM_WIN),
        normalize=False,
        borderType=cv2.BORDER_CONSTANT,
    )
    return mosaic.reshape(n, h, w)[:, r : h - r, r : w - r]


class _SsimTerms:
    """Per-frame window sums of a stack of frames, to get the SSIM of any pair of its frames.

    Written with the window sums ``S_a`` (of ``a``), ``S_aa`` (of ``a*a``), ``S_ab`` and
    ``n = 49`` pixels per window, scikit-image's SSIM map is exactly

        (2 S_a S_b + n^2 C1) (2 (n S_ab - S_a S_b) + n (n-1) C2)
        / ((S_a^2 + S_b^2 + n^2 C1) ((n S_aa - S_a^2) + (n S_bb - S_b^2) + n (n-1) C2))

    For 8-bit frames every sum and product up to the constants is an integer below 2**31, so
    it is computed exactly in int32 (fast) and only the last products and the ratio in float32
    (relative error ~1e-7); other dtypes use float64 throughout.
    """

    def __init__(self, frames: np.ndarray, data_range: float):
        frames = np.asarray(frames)
        if frames.ndim != 3 or min(frames.shape[1:]) < SSIM_WIN:
            raise ValueError(f"expected (N, H, W) frames with H, W >= 7, got {frames.shape}")
        self.exact = frames.dtype.kind in "ub" and frames.dtype.itemsize == 1
        n = SSIM_WIN * SSIM_WIN
        if self.exact:
            x = frames.astype(np.float32)
            self.frames = x
            sa = _box_sums(x).astype(np.int32)
            saa = _box_sums(x * x).astype(np.int32)
            ftype = np.float32
        else:
            x = frames.astype(np.float64)
            self.frames = x
            sa, saa = _box_sums(x), _box_sums(x * x)
            ftype = np.float64
        self.sa = sa
        self.sq = sa * sa
        self.var = n * saa - self.sq
        self.ftype = ftype
        self.c1 = ftype(n * n * (0.01 * data_range) ** 2)
        self.c2 = ftype(n * (n - 1) * (0.03 * data_range) ** 2)

    def ssim(self, p: np.ndarray, q: np.ndarray) -> np.ndarray:
        """Mean SSIM of frames ``p[i]`` and ``q[i]``: ``(len(p),)`` float64."""
        if len(p) == 0:
            return np.zeros(0)
        n = SSIM_WIN * SSIM_WIN
        sab = _box_sums(self.frames[p] * self.frames[q])
        if self.exact:
            sab = sab.astype(np.int32)
        sa, sb = self.sa[p], self.sa[q]
        sasb = sa * sb
        cross = n * sab - sasb
        f = self.ftype
        num = (2 * sasb).astype(f) + self.c1
        num *= (2 * cross).astype(f) + self.c2
        den = (self.sq[p] + self.sq[q]).astype(f) + self.c1
        den *= (self.var[p] + self.var[q]).astype(f) + self.c2
        return (num / den).mean(axis=(1, 2), dtype=np.float64)


def ssim_batch(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> np.ndarray:
    """SSIM of each pair of images ``a[i], b[i]``, vectorised.

    Equal (to 1e-6) to ``skimage.metrics.structural_similarity(a[i], b[i],
    data_range=data_range)`` with its default window (7 x 7 uniform, sample covariance).

    Parameters
    ----------
    a, b : (N, H, W) ndarray, any real dtype
        Image pairs; ``H, W >= 7``.
    data_range : float
        Dynamic range of the images (255 for uint8 crops).

    Returns
    -------
    (N,) float64 ndarray
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"expected two (N, H, W) stacks of one shape, got {a.shape}, {b.shape}")
    if len(a) == 0:
        return np.zeros(0)
    if a.dtype != b.dtype:
        a, b = a.astype(np.float64), b.astype(np.float64)
    terms = _SsimTerms(np.concatenate([a, b]), data_range)
    idx = np.arange(len(a))
    return terms.ssim(idx, idx + len(a))


def consecutive_ssim(frames: np.ndarray, data_range: float = 255.0) -> np.ndarray:
    """SSIM of each pair of consecutive frames of ``frames`` ``(T, H, W)``: ``(T-1,)``."""
    if len(frames) < 2:
        return np.zeros(0)
    return ssim_batch(frames[:-1], frames[1:], data_range)


_CHUNK = 256  # sequences handled together (bounds memory: ~10 kB per frame)


def similarity_indices_many(
    sequences: Sequence[np.ndarray], k: int, data_range: float = 255.0
) -> list[np.ndarray]:
    """Similarity downsampling of many sequences at once: the frames kept for each.

    For each sequence longer than ``k``, repeatedly find the most similar pair of consecutive
    kept frames (highest SSIM) and drop the later frame of the pair, until ``k`` frames remain;
    so runs of frames where the cell does not change collapse to their first frame, and the
    frames where the projected shape changes are kept. Sequences of ``k`` frames or fewer keep
    all their frames.

    Vectorised: the window sums of each frame are computed once; all sequences advance in
    lockstep, so each step computes the one new SSIM of every sequence in one call.

    Parameters
    ----------
    sequences : sequence of (T_i, H, W) ndarray
        Raw crops (any real dtype; uint8 with ``data_range`` 255).
    k : int
        Frames to keep.
    data_range : float
        Dynamic range for SSIM.

    Returns
    -------
    list of (min(T_i, k),) int64 ndarray
        Sorted indices of the kept frames of each sequence.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    out = [np.arange(len(s), dtype=np.int64) for s in sequences]
    long = [i for i in range(len(sequences)) if len(sequences[i]) > k]
    for c in range(0, len(long), _CHUNK):
        chunk = long[c : c + _CHUNK]
        kept = _similarity_chunk([np.asarray(sequences[i]) for i in chunk], k, data_range)
        for i, kk in zip(chunk, kept, strict=True):
            out[i] = np.asarray(kk, dtype=np.int64)
    return out


def _similarity_chunk(seqs: list[np.ndarray], k: int, data_range: float) -> list[list[int]]:
    dtypes = {s.dtype for s in seqs}
    frames = np.concatenate(seqs if len(dtypes) == 1 else [s.astype(np.float64) for s in seqs])
    terms = _SsimTerms(frames, data_range)  # window sums of each frame, computed once
    offsets = np.cumsum([0] + [len(s) for s in seqs])
    # Global frame indices of the kept frames; sims[i][j] = SSIM(kept[i][j], kept[i][j + 1]).
    kept = [list(range(offsets[i], offsets[i + 1])) for i in range(len(seqs))]
    first = np.concatenate([kk[:-1] for kk in kept])
    all_sims = terms.ssim(first, first + 1)
    sims = [all_sims[offsets[i] - i : offsets[i + 1] - i - 1].tolist() for i in range(len(seqs))]
    active = list(range(len(seqs)))
    while active:
        where, p, q = [], [], []
        for i in active:
            s = sims[i]
            j = s.index(max(s))  # first most similar pair (kept[j], kept[j+1]): drop kept[j+1]
            del kept[i][j + 1]
            del s[j]  # s[j] is now the old (kept[j+1], kept[j+2]) pair, replaced below
            if j + 1 < len(kept[i]):
                where.append((i, j))
                p.append(kept[i][j])
                q.append(kept[i][j + 1])
        if where:
            new = terms.ssim(np.asarray(p), np.asarray(q))
            for (i, j), v in zip(where, new.tolist(), strict=True):
                sims[i][j] = v
        active = [i for i in active if len(kept[i]) > k]
    return [[g - offsets[i] for g in kk] for i, kk in enumerate(kept)]


def similarity_indices(frames: np.ndarray, k: int, data_range: float = 255.0) -> np.ndarray:
    """Indices of the ``k`` frames kept by similarity downsampling of one sequence.

    See :func:`similarity_indices_many`.

    Examples
    --------
    >>> f = np.zeros((6, 31, 31), np.uint8)
    >>> f[3:, 10:20, 10:20] = 200          # the cell changes at frame 3 only
    >>> similarity_indices(f, 2).tolist()
    [0, 3]
    """
    return similarity_indices_many([frames], k, data_range)[0]


def similarity_downsample(frames: np.ndarray, k: int, data_range: float = 255.0) -> np.ndarray:
    """The frames of ``frames`` ``(T, H, W)`` kept by similarity downsampling to ``k``."""
    return frames[similarity_indices(frames, k, data_range)]


@functools.lru_cache(maxsize=8)
def _ring_mask(h: int, w: int, width: int) -> np.ndarray:
    ring = np.ones((h, w), dtype=bool)
    ring[width : h - width, width : w - width] = False
    ring.flags.writeable = False
    return ring


def border_ring(frames: np.ndarray, width: int = 2) -> np.ndarray:
    """The pixels within ``width`` of the edges of each frame: the crops' background sample.

    The cell is centred, so these pixels are mostly background: their median is the background
    level of :func:`normalise` (over all frames) and of :func:`rbcflow.classify.features`'s
    segmentation (per frame), and their spread is the crop's noise there.

    Parameters
    ----------
    frames : (T, H, W) ndarray
    width : int
        Width of the ring, pixels (``1 <= width``, ``2 * width < min(H, W)``).

    Returns
    -------
    (T, n) ndarray of the dtype of ``frames``
        ``n = H * W - (H - 2 width) (W - 2 width)`` pixels per frame, in row-major order.

    Examples
    --------
    >>> f = np.arange(2 * 5 * 5).reshape(2, 5, 5)
    >>> border_ring(f, 2).shape, border_ring(f, 1)[0].tolist()[:7]
    ((2, 24), [0, 1, 2, 3, 4, 5, 9])
    """
    frames = np.asarray(frames)
    h, w = frames.shape[-2:]
    return frames[..., _ring_mask(h, w, width)]


def normalise(frames: np.ndarray, border: int = 2, scale: float = 0.1) -> np.ndarray:
    """Relative contrast of a crop sequence, independent of the illumination level.

    ``(x - bg) / (scale * bg)`` where ``bg`` is the median of the pixels within ``border`` of
    the crop edges over all frames (the cell is centred, so these are mostly background).
    Bright-field intensities are transmission times illumination, so dividing by the background
    removes the illumination level; ``scale`` puts typical cell contrast near 1.

    Parameters
    ----------
    frames : (T, H, W) ndarray
        Raw intensities (uint8 or any real dtype).
    border : int
        Width of the border ring, pixels.
    scale : float
        Relative contrast that maps to 1.

    Returns
    -------
    (T, H, W) float32 ndarray
        Background near 0, the dark cell rim negative.
    """
    x = np.asarray(frames, dtype=np.float32)
    bg = max(float(np.median(border_ring(x, border))), 1.0)  # a black crop would divide by zero
    return (x - bg) / np.float32(scale * bg)


def pad_frames(frames: np.ndarray, k: int) -> np.ndarray:
    """Pad ``frames`` ``(T, H, W)`` with blank (zero) frames at the end to exactly ``k``.

    Frames beyond ``k`` are an error: downsample first.
    """
    t = len(frames)
    if t > k:
        raise ValueError(f"{t} frames do not fit in {k}: downsample first")
    if t == k:
        return frames
    pad = np.zeros((k - t, *frames.shape[1:]), dtype=frames.dtype)
    return np.concatenate([frames, pad])


SAMPLINGS = ("uniform", "similarity")


def prepare(
    sequences: Sequence[np.ndarray], k: int, sampling: str, pad: bool, data_range: float = 255.0
) -> list[np.ndarray]:
    """Model inputs of many raw crop sequences: downsample to ``k``, normalise, maybe pad.

    Parameters
    ----------
    sequences : sequence of (T_i, 31, 31) ndarray
        Raw crops (uint8 in the real data), ``T_i >= 1``.
    k : int
        Frames kept.
    sampling : {"uniform", "similarity"}
        How the ``k`` frames are chosen (:func:`uniform_indices` or
        :func:`similarity_indices_many`).
    pad : bool
        Pad with blank frames to exactly ``k`` (the stage-2 CNN); otherwise sequences shorter
        than ``k`` keep their length (the stage-1 C-RNN).

    Returns
    -------
    list of (k or min(T_i, k), 31, 31) float32 ndarray
        Normalised by :func:`normalise` (computed on the kept frames).
    """
    if sampling == "uniform":
        idx = [uniform_indices(len(s), k) for s in sequences]
    elif sampling == "similarity":
        idx = similarity_indices_many(sequences, k, data_range)
    else:
        raise ValueError(f"unknown sampling {sampling!r} (known: {SAMPLINGS})")
    out = []
    for s, i in zip(sequences, idx, strict=True):
        x = normalise(np.asarray(s)[i], NORMALISATION["border"], NORMALISATION["scale"])
        out.append(pad_frames(x, k) if pad else x)
    return out
