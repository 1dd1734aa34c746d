"""Classify tracks while the front end is still finding them.

:class:`TrackClassifier` is the front end's ``on_track`` callback during ``analyze``: finished
tracks are collected in batches and, in one worker thread fed by a bounded queue, given their
probabilities (:meth:`Classifier.predict <rbcflow.classify.inference.Classifier.predict>`),
their label (:func:`rbcflow.classify.labels.label_tracks`, the one rule) and their shape
features; a few gallery strips per class are kept for the report.

Why a thread: torch, numpy and OpenCV release the GIL, so classification uses the core the front
end leaves idle; and memory stays bounded: only per-track numbers and the gallery's strips are
kept, never all crops.

Threads: while it runs, torch and OpenCV get the shares of :func:`rbcflow.threads.analyze_budget`
(one thread each on 2 cores, so their pools do not fight the front end's threads); the previous
settings come back for the tracks classified after the front end has finished and after
:meth:`TrackClassifier.finish` / :meth:`~TrackClassifier.abort`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd

from rbcflow.classify.features import track_features
from rbcflow.classify.labels import RULE_COLUMNS, label_tracks, track_rules
from rbcflow.config import ReportConfig
from rbcflow.run_settings import StreamConfig
from rbcflow.schema import GalleryItem
from rbcflow.threads import ThreadBudget, analyze_budget, apply


class ClassifierLike(Protocol):
    """What the pipeline needs of :class:`rbcflow.classify.inference.Classifier`."""

    stage1_checksum: str
    stage2_checksum: str

    def predict(
        self,
        sequences: list[np.ndarray],
        *,
        batch_size: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> pd.DataFrame: ...


@dataclass
class Collected:
    """What :class:`TrackClassifier` gathered: per-track rows in arrival order, with the
    predictions (p_reliable, p_tank_treading, label, rule) and shape features of the same
    tracks in the same order, and the gallery per label."""

    rows: list[dict] = field(default_factory=list)
    predictions: list[pd.DataFrame] = field(default_factory=list)
    features: list[pd.DataFrame] = field(default_factory=list)
    gallery: dict[str, list[GalleryItem]] = field(default_factory=dict)
    error: BaseException | None = None
    done: int = 0


def gallery_strip(crops: np.ndarray, k: int) -> np.ndarray:
    """``k`` frames evenly spaced through a track, side by side: ``(31, 31 * k)`` uint8."""
    idx = np.unique(np.linspace(0, len(crops) - 1, min(k, len(crops))).round().astype(int))
    sel = crops[idx]
    return sel.transpose(1, 0, 2).reshape(sel.shape[1], -1)


def _margin(item: GalleryItem, thr_rel: float) -> float:
    """Distance of a call from its decision threshold (small: borderline)."""
    if item.label == "unreliable":
        return abs(item.p_reliable - thr_rel)
    return abs(item.p_tank_treading - 0.5)


def prune_gallery(items: list[GalleryItem], thr_rel: float, cfg: StreamConfig) -> list[GalleryItem]:
    """The borderline calls (nearest their threshold) and the most confident ones of a class."""
    if len(items) <= cfg.gallery_borderline + cfg.gallery_confident:
        return items
    ranked = sorted(items, key=lambda g: (_margin(g, thr_rel), g.track_id))
    return ranked[: cfg.gallery_borderline] + ranked[-cfg.gallery_confident :]


class TrackClassifier:
    """Receives finished tracks (``on_track(row, crops)``) and classifies them in batches.

    With ``threaded`` the work runs in one worker thread fed by a bounded queue, beside the
    front end; otherwise inline, whenever a batch is full. A batch is full at
    ``StreamConfig.batch_tracks`` tracks, or at ``min_batch_tracks`` while the worker waits
    with nothing to do, so that a video with few tracks is not left to classify after it is
    tracked. :meth:`finish` returns the :class:`Collected` results.
    """

    def __init__(
        self,
        classifier: ClassifierLike,
        report_cfg: ReportConfig,
        *,
        threaded: bool = True,
        cfg: StreamConfig | None = None,
    ):
        self.classifier = classifier
        self.report_cfg = report_cfg
        self.cfg = cfg or StreamConfig()
        self.batch = self.cfg.batch_tracks
        self.out = Collected()
        self._pending: list[tuple[dict, np.ndarray]] = []
        self._progress: Callable[[int], None] = lambda n=1: None
        self._lock = threading.Lock()
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        # before the worker starts: torch's count is read by a thread at its first operation
        self.threads = analyze_budget(
            torch_threads=self.cfg.torch_threads, opencv_threads=self.cfg.opencv_threads
        )
        self._threads_before: ThreadBudget | None = apply(self.threads)
        self._alone = threading.Event()  # set once the front end has finished
        self._idle = threading.Event()  # set while the worker waits on an empty queue
        self._min_batch = max(1, min(self.cfg.min_batch_tracks, self.batch))
        if threaded:
            self._queue = queue.Queue(maxsize=max(1, self.cfg.queue_tracks // self.batch))
            self._thread = threading.Thread(target=self._work, name="rbcflow-classify", daemon=True)
            self._thread.start()

    def set_progress(self, progress: Callable[[int], None]) -> int:
        """Route progress to ``progress`` from now on; returns the tracks done so far."""
        with self._lock:
            self._progress = progress
            return self.out.done

    def __call__(self, row: dict, crops: np.ndarray) -> None:
        if self.out.error is not None:
            raise self.out.error
        self._pending.append((row, np.asarray(crops, dtype=np.uint8)))
        n = len(self._pending)
        if n >= self.batch or (n >= self._min_batch and self._idle.is_set()):
            self._submit()

    def _submit(self) -> None:
        items, self._pending = self._pending, []
        if not items:
            return
        if self._queue is None:
            self._process(items)
        else:
            self._queue.put(items)

    def _work(self) -> None:
        assert self._queue is not None
        while True:
            if self._queue.empty():
                self._idle.set()
            items = self._queue.get()
            self._idle.clear()
            if items is None:
                return
            if self._alone.is_set() and self._threads_before is not None:
                # the front end is done: the tail runs alone, with the previous settings (torch
                # reads its count per thread once a thread has run an operation: set it here)
                apply(self._threads_before)
            if self.out.error is not None:
                continue  # drain: the front end learns of the error on its next track
            try:
                self._process(items)
            except BaseException as exc:  # re-raised in the caller's thread
                self.out.error = exc

    def _process(self, items: list[tuple[dict, np.ndarray]]) -> None:
        rows = [r for r, _ in items]
        seqs = [c for _, c in items]
        pred = self.classifier.predict(seqs, batch_size=max(len(seqs), 1))
        if len(pred) != len(seqs):
            raise RuntimeError(f"classifier returned {len(pred)} rows for {len(seqs)} tracks")
        pred = pred[["p_reliable", "p_tank_treading"]].reset_index(drop=True).astype(float)
        # the front end's columns (the acquisition-relative ones are NaN until every track is
        # known: the pipeline's final relabel applies their rules)
        measures = {
            key: np.array([r.get(key, np.nan) for r in rows], dtype=float) for key in RULE_COLUMNS
        }
        rule = track_rules(len(rows), self.report_cfg, **measures)
        pred["label"] = label_tracks(
            pred["p_reliable"], pred["p_tank_treading"], self.report_cfg, rule=rule
        )
        pred["rule"] = rule
        feats = track_features(seqs)
        self._keep_gallery(rows, seqs, pred, feats)
        with self._lock:
            self.out.rows.extend(rows)
            self.out.predictions.append(pred)
            self.out.features.append(feats)
            self.out.done += len(rows)
            self._progress(len(rows))

    def _keep_gallery(self, rows, seqs, pred, feats) -> None:
        thr_rel = self.report_cfg.reliable_threshold
        cap = 4 * (self.cfg.gallery_borderline + self.cfg.gallery_confident)
        for i, label in enumerate(pred["label"]):
            item = GalleryItem(
                track_id=int(rows[i]["track_id"]),
                label=str(label),
                p_reliable=float(pred.at[i, "p_reliable"]),
                p_tank_treading=float(pred.at[i, "p_tank_treading"]),
                strip=gallery_strip(seqs[i], self.cfg.gallery_frames),
                n_frames=len(seqs[i]),
                features={
                    k: float(feats.at[i, k]) for k in ("ar_mean", "ar_std", "orientation_std")
                },
            )
            items = self.out.gallery.setdefault(str(label), [])
            items.append(item)
            if len(items) > cap:
                self.out.gallery[str(label)] = prune_gallery(items, thr_rel, self.cfg)
        # prune at the end of every batch too, so memory stays bounded
        for label, items in self.out.gallery.items():
            self.out.gallery[label] = prune_gallery(items, thr_rel, self.cfg)

    def _restore_threads(self) -> None:
        if self._threads_before is not None:
            apply(self._threads_before)
            self._threads_before = None

    def finish(self) -> Collected:
        """Classify what is left, stop the worker, restore the thread settings, re-raise the
        worker's error if any."""
        self._alone.set()
        if self._thread is None:
            self._restore_threads()  # inline: the tail runs alone in this thread
        self._submit()
        if self._thread is not None:
            assert self._queue is not None
            self._queue.put(None)
            self._thread.join()
        self._restore_threads()
        if self.out.error is not None:
            raise self.out.error
        return self.out

    def abort(self) -> None:
        """Stop the worker without classifying what is left (after a front-end error)."""
        self._pending = []
        if self._thread is not None and self._thread.is_alive():
            assert self._queue is not None
            self.out.error = self.out.error or RuntimeError("aborted")
            self._queue.put(None)
            self._thread.join()
        self._restore_threads()
