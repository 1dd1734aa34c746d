"""Expand the paths a user gives into acquisitions, deciding file by file.

:func:`discover` is the one place that decides what an input folder holds. Every file with a
video or stack extension becomes an acquisition (or a failed one, with its reason); a folder is
one frame-folder acquisition only when it holds image frames and nothing that is a video or a
stack; everything else it meets is listed with the reason it was skipped (``skipped.csv``).
Special files (FIFOs, devices, sockets) are never opened: they are failed acquisitions.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rbcflow.errors import VideoReadError
from rbcflow.io.folder import FRAME_EXTENSIONS, natural_key

STACK_EXTENSIONS: tuple[str, ...] = (".tif", ".tiff")
"""Extensions that are a video (multi-page stack) or a single frame, depending on the file."""
MOVIE_EXTENSIONS: tuple[str, ...] = (".avi", ".mp4", ".mov", ".mkv")
"""Extensions that are always a video."""
SKIPPED_COLUMNS: tuple[str, ...] = ("path", "reason")
"""Columns of the skipped list (:meth:`Discovery.skipped_rows`, ``OUT/skipped.csv``)."""

SPECIAL_KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}
"""Files that are never opened (a read could block forever or never end), in words."""


@dataclass(frozen=True)
class Acquisition:
    """One acquisition found: a video file, a TIFF stack or a frame folder.

    path : what to open (:func:`rbcflow.io.video.open_video`).
    problem : None, or why it cannot be analysed, known without opening it (special file,
        link loop, damaged TIFF header, single image): the caller makes a failed row of it
        (:meth:`error`) and must not open it.
    """

    path: Path
    problem: str | None = None

    def error(self) -> VideoReadError:
        """The failure of an acquisition with a ``problem``, as rbcflow's one-line error."""
        return VideoReadError(self.problem or "cannot be analysed", self.path)


@dataclass(frozen=True)
class Skipped:
    """Something discovery met and did not take as an acquisition, and why."""

    path: Path
    reason: str


@dataclass
class Discovery:
    """What :func:`discover` found.

    acquisitions : in the order given, each folder's findings in natural order.
    skipped : everything else met inside the folders searched, with its reason.
    """

    acquisitions: list[Acquisition] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def sources(self) -> list[Path]:
        """Paths of the acquisitions without a ``problem`` (the ones to analyse)."""
        return [a.path for a in self.acquisitions if a.problem is None]

    def skipped_rows(self) -> list[dict[str, str]]:
        """The skipped list as rows of :data:`SKIPPED_COLUMNS` (for ``OUT/skipped.csv``)."""
        return [{"path": str(s.path), "reason": s.reason} for s in self.skipped]


def examine(path: str | os.PathLike) -> tuple[str, str | None]:
    """What ``path`` is, without opening it: ``(kind, reason)``.

    ``kind`` is ``"ok"`` (a regular file or a folder; reason None), ``"special"`` (a FIFO,
    device or socket: never to be opened), ``"link"`` (a symbolic link that loops or points
    nowhere), ``"missing"`` or ``"error"`` (cannot be examined); ``reason`` says so in words.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "link", "symbolic link that loops"
        if exc.errno == errno.ENOENT:
            if os.path.islink(path):
                return "link", "broken symbolic link"
            return "missing", "no such file or folder"
        return "error", f"cannot be examined ({exc.strerror or exc})"
    kind = SPECIAL_KINDS.get(stat.S_IFMT(mode))
    if kind is None:
        return "ok", None
    return "special", f"{kind}, not a regular file: not opened"


def special_file(path: str | os.PathLike) -> str | None:
    """Why opening ``path`` would be unsafe (a FIFO, device or socket, or a link that loops),
    or None."""
    kind, reason = examine(path)
    return reason if kind == "special" or (kind == "link" and "loops" in reason) else None


def tiff_kind(path: str | os.PathLike) -> tuple[str, str | None]:
    """``("stack", None)``, ``("frame", None)`` or ``("bad", reason)`` for a TIFF file.

    Reads the header and the first page directory only (no pixel, no library): several pages
    (a link to a second directory) or an ImageJ description with ``images=N > 1`` make a
    stack; one page a frame; a file without a TIFF header or whose first directory lies
    outside the file is ``bad``.
    """
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(16)
            order = {b"II": "<", b"MM": ">"}.get(head[:2])
            if order is None or len(head) < 8:
                return "bad", "not a TIFF file (no TIFF header)"
            magic = struct.unpack(order + "H", head[2:4])[0]
            if magic == 42:
                ifd, cnt, entry, off = struct.unpack(order + "I", head[4:8])[0], "H", 12, "I"
            elif magic == 43 and len(head) == 16:
                ifd, cnt, entry, off = struct.unpack(order + "Q", head[8:16])[0], "Q", 20, "Q"
            else:
                return "bad", "not a TIFF file (no TIFF header)"
            csize, osize = struct.calcsize(cnt), struct.calcsize(off)
            if ifd < 8 or ifd + csize > size:
                return "bad", "damaged TIFF (its first page directory lies outside the file)"
            fh.seek(ifd)
            n = struct.unpack(order + cnt, fh.read(csize))[0]
            if n == 0 or ifd + csize + n * entry + osize > size:
                return "bad", "damaged TIFF (its first page directory is cut short)"
            entries = fh.read(n * entry)
            nxt = struct.unpack(order + off, fh.read(osize))[0]
            if nxt:
                return "stack", None
            for k in range(n):
                e = entries[k * entry : (k + 1) * entry]
                if struct.unpack(order + "H", e[:2])[0] != 270:  # ImageDescription
                    continue
                count = struct.unpack(order + off, e[4 : 4 + osize])[0]
                value = e[4 + osize :]
                if count > len(value):
                    fh.seek(struct.unpack(order + off, value)[0])
                    value = fh.read(min(count, 4096))
                text = value[: min(count, 4096)]
                if text.startswith(b"ImageJ=") and b"\nimages=" in text:
                    digits = text.split(b"\nimages=", 1)[1].split(b"\n", 1)[0]
                    if digits.strip().isdigit() and int(digits) > 1:
                        return "stack", None
            return "frame", None
    except OSError as exc:
        return "bad", f"cannot be read ({exc.strerror or exc})"
    except struct.error:
        return "bad", "damaged TIFF (header cut short)"


def _path_key(path: Path) -> tuple:
    return tuple(natural_key(part) for part in path.parts)


class _Search:
    """One :func:`discover` call: real paths already taken, findings and skips."""

    def __init__(self) -> None:
        self.found = Discovery()
        self.seen: dict[str, Path] = {}  # real path -> the name it was first taken under
        self.visited: set[str] = set()

    def add(self, acq: Acquisition) -> None:
        real = os.path.realpath(acq.path)
        if real in self.seen:
            if os.path.abspath(acq.path) != os.path.abspath(self.seen[real]):
                self.skip(acq.path, f"same input as {self.seen[real]} (taken once)")
            return
        self.seen[real] = acq.path
        self.found.acquisitions.append(acq)

    def skip(self, path: Path, reason: str) -> None:
        self.found.skipped.append(Skipped(Path(path), reason))

    def folder(self, folder: Path, top: bool) -> list[Acquisition]:
        """Acquisitions under ``folder``, natural order; skips recorded on the way."""
        real = os.path.realpath(folder)
        if real in self.visited:
            self.skip(folder, "folder already searched under another name (a link)")
            return []
        self.visited.add(real)
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: natural_key(e.name))
        except OSError as exc:
            return [Acquisition(folder, f"cannot list the folder ({exc.strerror or exc})")]
        names = {e.name for e in entries}
        if "dataset.csv" in names and "img" in names and not top:
            self.skip(folder, "a sequence set (dataset.csv + img/), not an acquisition")
            return []
        videos: list[Acquisition] = []  # movies and stacks
        failed: list[Acquisition] = []  # files with a video name that cannot be one
        frames: list[Path] = []
        tiff_frames: dict[Path, str] = {}  # TIFF frames (or damaged TIFFs) -> failure if alone
        subdirs: list[Path] = []
        for e in entries:
            path = Path(e.path)
            ext = os.path.splitext(e.name)[1].lower()
            video_name = ext in MOVIE_EXTENSIONS + STACK_EXTENSIONS
            if e.name.startswith("."):
                if video_name or ext in FRAME_EXTENSIONS:
                    self.skip(path, "hidden file")
                continue
            kind, reason = examine(path)
            if kind == "special" and video_name:
                failed.append(Acquisition(path, reason))
            elif kind != "ok":
                self.skip(path, reason or "cannot be examined")
            elif os.path.isdir(path):
                subdirs.append(path)
            elif ext in MOVIE_EXTENSIONS:
                videos.append(Acquisition(path))
            elif ext in STACK_EXTENSIONS:
                tiff, why = tiff_kind(path)
                if tiff == "stack":
                    videos.append(Acquisition(path))
                else:  # a frame, or a damaged TIFF: a frame if this is a frame folder
                    frames.append(path)
                    tiff_frames[path] = why or _SINGLE_TIFF
            elif ext in FRAME_EXTENSIONS:
                frames.append(path)
            else:
                self.skip(path, f"not a video, stack or image frame ({ext or 'no extension'})")
        found = videos + failed
        if not videos and len(frames) >= (1 if top else 2):
            found.append(Acquisition(folder))  # a frame folder (its damaged frames fail it)
        else:  # frames beside videos, or a lone frame: each is accounted for
            alone = _BESIDE_VIDEOS if videos else _LONE_IMAGE
            for path in frames:
                if path in tiff_frames:
                    found.append(Acquisition(path, tiff_frames[path]))
                else:
                    self.skip(path, alone)
        for sub in subdirs:
            found.extend(self.folder(sub, top=False))
        return sorted(found, key=lambda a: _path_key(a.path))


_SINGLE_TIFF = "a single-page TIFF: one image, not a stack (put frames in a folder of their own)"
_BESIDE_VIDEOS = "image beside videos or stacks: a frame folder must hold frames only"
_LONE_IMAGE = "one image alone, not a frame folder (2 frames at least)"


def discover(paths: Iterable[str | os.PathLike]) -> Discovery:
    """Expand files and folders into acquisitions, deciding file by file.

    Parameters
    ----------
    paths : iterable of str or Path
        What the user named.

    Returns
    -------
    Discovery
        ``acquisitions`` in the order given, each folder's findings in natural order (``run2``
        before ``run10``); every acquisition once, even when reached through several names or
        symbolic links (real paths are compared). ``skipped``: what was met and not taken.

    Notes
    -----
    - A named file is an acquisition whatever its type (missing, unknown: the reader says
      why); a named FIFO, device, socket or looping link is one with a ``problem``, not opened.
    - A named folder that directly holds image frames and nothing that is a video is one
      frame-folder acquisition (one frame is enough). Otherwise it is searched recursively,
      following symbolic links (each real folder once: links cannot loop). In each folder:
      every AVI/MP4/MOV/MKV file is an acquisition; every TIFF is probed alone
      (:func:`tiff_kind`): a multi-page one is a stack acquisition. A folder that holds at
      least 2 image frames (PNG, JPEG, BMP, single-page TIFF) and no video or stack is one
      acquisition. Beside videos or stacks, a single-page or damaged TIFF is a failed
      acquisition and other images are skipped.
    - Skipped, with the reason: hidden files with a video or image extension, unknown files,
      broken or looping links, lone images, sequence sets (``dataset.csv`` + ``img/``) and
      second names of inputs already taken. Hidden folders are not searched.
    - A named folder where nothing is found is a failed acquisition.
    """
    search = _Search()
    for given in paths:
        given = Path(given)
        kind, reason = examine(given)
        if kind in ("special", "link", "error"):
            search.add(Acquisition(given, reason))
        elif kind == "ok" and os.path.isdir(given):
            again = os.path.realpath(given) in search.visited
            found = search.folder(given, top=True)
            if not found and not again:
                found = [Acquisition(given, _NOTHING)]
            for acq in found:
                search.add(acq)
        else:
            search.add(Acquisition(given))  # a file, or missing: the reader says why
    return search.found


_NOTHING = "no video, TIFF stack or frame folder found in the folder (see skipped.csv)"


def find_acquisitions(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """The paths of :func:`discover`'s acquisitions that are safe to open, in its order.

    Left out: special files and looping links (opening one may hang). Kept: acquisitions
    with another known problem (a damaged or single-page TIFF, a named folder holding
    nothing), so that a caller that only opens paths still reports them when reading fails.
    Callers that make rows should use :func:`discover` (its problems and skipped list).
    """
    return [a.path for a in discover(paths).acquisitions if special_file(a.path) is None]


def acquisition_name(path: str | os.PathLike) -> str:
    """The input's name without extension (a frame folder: its name), as in ``report.csv``.

    The one function that names an acquisition from its input path (output folders, reports).
    Naming one from a sequence name is :func:`rbcflow.io.sequences.acquisition_of`.

    Examples
    --------
    >>> acquisition_name("runs/BG1017_10s01.avi")
    'BG1017_10s01'
    """
    p = Path(path)
    name = p.name if p.is_dir() else p.stem
    return name or p.absolute().name or "acquisition"
