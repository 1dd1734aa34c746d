"""What the AVI readers with fixed-size frame chunks share: read chunk ``i`` into a buffer.

:class:`FixedFrameReader` is the base of :class:`~rbcflow.io.avi.raw.RawAviReader` and
:class:`~rbcflow.io.avi.yuv.YuvAviReader`: every frame is one ``seek`` to its chunk's offset
(:attr:`AviLayout.offsets`) and one ``readinto`` of a whole frame into a reused buffer, then
the subclass's :meth:`_decode` turns the bytes into a grey frame (a new array, since the buffer
is reused). ``get_frame`` and iteration use their own file handles and buffers, so one does not
disturb the other.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

from rbcflow.errors import VideoReadError
from rbcflow.io.base import VideoReader


class FixedFrameReader(VideoReader):
    """Frames read from fixed-size chunks; subclasses set ``source``, ``_lay`` (the
    :class:`~rbcflow.io.avi.riff.AviLayout`), ``_n`` (whole frames), ``_buf`` (one frame's
    bytes) and ``_fh`` (the open file, via :meth:`_open`), and define :meth:`_decode`."""

    _fh: BinaryIO | None = None

    def _open(self, frame_bytes: int) -> None:
        self._fh = open(self.source, "rb")  # noqa: SIM115 - closed in close()
        self._buf = bytearray(frame_bytes)

    def _decode(self, buf: bytearray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __len__(self) -> int:
        return self._n

    def _read_into(self, fh: BinaryIO, i: int, buf: bytearray) -> np.ndarray:
        fh.seek(int(self._lay.offsets[i]))
        if fh.readinto(buf) != len(buf):
            raise VideoReadError(
                f"frame {i} cannot be read (file changed or shortened)", self.source
            )
        return self._decode(buf)

    def get_frame(self, i: int) -> np.ndarray:
        if self._fh is None:
            raise VideoReadError("reader is closed", self.source)
        return self._read_into(self._fh, i, self._buf)

    def __iter__(self) -> Iterator[np.ndarray]:
        # Own file handle and buffer: iterating does not disturb get_frame (and vice versa).
        buf = bytearray(len(self._buf))
        with open(self.source, "rb") as fh:
            for i in range(self._n):
                yield self._read_into(fh, i, buf)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __del__(self) -> None:
        # a reader dropped without close() must not leak its file (nor warn about it)
        self.close()
