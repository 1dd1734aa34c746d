"""Streaming the frames of the tracking pass: decoding (and the coarse detection) in a
reading thread, a few frames ahead (:func:`prefetch`), and the detections refined by batches
(:func:`detect_stream`). Used by :func:`rbcflow.frontend.run.run_frontend`."""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from rbcflow.config import FrontEndConfig
from rbcflow.frontend.detection import Coarse, FrameDetector

_PROGRESS_EVERY = 8


class _Failed:
    def __init__(self, exc: BaseException):
        self.exc = exc


_END = object()


def prefetch(items: Iterable, depth: int = 8) -> Iterator:
    """Iterate ``items`` in a background thread, up to ``depth`` items ahead.

    Exceptions of the producer are re-raised in the consumer; closing the generator early stops
    the producer.
    """
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_END)
        except BaseException as exc:  # handed to the consumer, who re-raises it
            put(_Failed(exc))

    thread = threading.Thread(target=work, name="rbcflow-decode", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get(timeout=0.05)
            except queue.Empty:
                pass
        thread.join()


def detect_stream(
    frames: Iterable[np.ndarray],
    detector: FrameDetector,
    cfg: FrontEndConfig,
    *,
    clock: dict[str, float] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[tuple[np.ndarray, Coarse, np.ndarray]]:
    """The frames with their detections, in order: ``(frame, coarse, xy)``.

    A reading thread (:func:`prefetch`, ``cfg.queue_frames`` ahead) decodes and also runs the
    first, OpenCV-bound half of the detection (:meth:`FrameDetector.coarse`); this generator
    refines the detections of ``cfg.batch_frames`` frames at once
    (:meth:`FrameDetector.refine_many`: a fixed number of numpy calls per batch). ``clock``
    gets the seconds spent waiting for the reading thread (``wait_decode``) and refining
    (``detection``); ``progress(n)`` is called once a batch's frames have all been taken
    (every :data:`_PROGRESS_EVERY` frames or more) and at the end. Close the generator to stop
    the reading thread early.
    """
    clock = {} if clock is None else clock
    clock.setdefault("wait_decode", 0.0)
    clock.setdefault("detection", 0.0)
    pending = 0
    stream = prefetch(((f, detector.coarse(f)) for f in frames), cfg.queue_frames)
    try:
        while True:
            s0 = time.perf_counter()
            batch = list(itertools.islice(stream, max(1, cfg.batch_frames)))
            s1 = time.perf_counter()
            clock["wait_decode"] += s1 - s0
            if not batch:
                break
            frames_ = [f for f, _ in batch]
            coarses = [c for _, c in batch]
            found = detector.refine_many(frames_, coarses)
            clock["detection"] += time.perf_counter() - s1
            del batch
            yield from zip(frames_, coarses, found, strict=True)
            pending += len(frames_)
            del frames_, coarses, found
            if progress is not None and pending >= _PROGRESS_EVERY:
                progress(pending)
                pending = 0
    finally:
        stream.close()
    if progress is not None and pending:
        progress(pending)
