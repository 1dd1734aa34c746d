"""Readers for acquisition videos and for sequence sets in the authors' format."""

from rbcflow.io.base import VideoReader
from rbcflow.io.sequences import Sequence, read_dataset, write_dataset
from rbcflow.io.video import VIDEO_EXTENSIONS, open_video

__all__ = [
    "VIDEO_EXTENSIONS",
    "Sequence",
    "VideoReader",
    "open_video",
    "read_dataset",
    "write_dataset",
]
