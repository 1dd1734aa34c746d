"""The project's own exception types.

Everything that can go wrong because of an input (a damaged file, a bad parameter, a model folder
that fails its checksum) raises a subclass of :class:`RbcflowError`, whose message is one line
that names the file and the problem. The CLI prints that line, without a traceback, and carries on
with the next input; anything else is a bug and is shown in full with ``--debug``.
"""

from __future__ import annotations

from pathlib import Path


class RbcflowError(Exception):
    """Base class for errors caused by inputs, parameters or the environment (not bugs).

    Parameters
    ----------
    message : str
        What went wrong, in plain words.
    path : str or Path, optional
        The file or folder concerned; prefixed to the message.
    """

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = None if path is None else Path(path)
        # one line whatever the input held (a sequence name or file name with a line break)
        self.reason = _one_line(message)
        text = f"{self.path}: {message}" if self.path is not None else message
        super().__init__(_one_line(text))


def _one_line(text: str) -> str:
    """``text`` with line breaks shown as spaces, so a message is always one line."""
    return " ".join(str(text).splitlines())


class VideoReadError(RbcflowError):
    """A video, TIFF stack or frame folder cannot be read (or not entirely)."""


class DatasetError(RbcflowError):
    """A sequence set in the authors' format (dataset.csv + img/ strips) is malformed."""


class ModelError(RbcflowError):
    """A model folder is missing, incomplete, damaged (checksum) or of an unknown kind."""


class NoCellsError(RbcflowError):
    """The front end found no usable track in an acquisition."""


class OutputError(RbcflowError):
    """An output folder cannot be written (permissions, full disk, existing results)."""


class ReviewError(RbcflowError):
    """A results folder or a review file cannot be reviewed (``rbcflow review``,
    ``export-labels``): not a results folder, an older report, a bad ``review.csv`` row."""
