"""Discovery decides file by file (issue 14): every file with a video or stack name is an
acquisition or a failed one with its reason, a frame folder holds frames and nothing else,
links that loop are skipped, special files are never opened, and the rest is listed."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from rbcflow.errors import VideoReadError
from rbcflow.io.avi import write_avi
from rbcflow.io.discover import SKIPPED_COLUMNS, discover, find_acquisitions, tiff_kind
from rbcflow.io.video import open_video


def frame(i: int, h: int = 24, w: int = 32) -> np.ndarray:
    r, c = np.mgrid[0:h, 0:w]
    return (40 + 10 * i + r + c).astype(np.uint8)


def stack(path: Path, pages: int = 3) -> Path:
    with tifffile.TiffWriter(path) as tw:
        for i in range(pages):
            tw.write(frame(i), photometric="minisblack")
    return path


def pngs(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"f{i}.png" for i in range(n)]
    for i, p in enumerate(paths):
        cv2.imwrite(str(p), frame(i))
    return paths


def by_name(found) -> dict[str, str | None]:
    return {a.path.name: a.problem for a in found.acquisitions}


@pytest.fixture
def alarm():
    """Fail instead of hanging if something opens a FIFO."""
    signal.signal(signal.SIGALRM, lambda *_: pytest.fail("blocked on a special file"))
    signal.alarm(10)
    yield
    signal.alarm(0)


@pytest.mark.parametrize("bad", ["damaged", "text", "one-page"])
def test_bad_first_tiff_beside_two_stacks(tmp_path, bad):
    """Finding: a damaged, text or one-page run1.tif beside run2.tif and run10.tif gave one
    failed "frame folder" row and no row for the two good stacks."""
    stack(tmp_path / "run2.tif")
    stack(tmp_path / "run10.tif")
    run1 = tmp_path / "run1.tif"
    if bad == "damaged":
        run1.write_bytes(b"II*\0" + (10**6).to_bytes(4, "little") + b"\0" * 40)
    elif bad == "text":
        run1.write_text("notes, not an image\n")
    else:
        tifffile.imwrite(run1, frame(0))
    found = discover([tmp_path])
    assert [a.path.name for a in found.acquisitions] == ["run1.tif", "run2.tif", "run10.tif"]
    problems = by_name(found)
    assert problems["run2.tif"] is None and problems["run10.tif"] is None
    expected = {"damaged": "damaged TIFF", "text": "not a TIFF", "one-page": "single-page"}[bad]
    assert expected in problems["run1.tif"]
    err = found.acquisitions[0].error()
    assert isinstance(err, VideoReadError) and str(run1) in str(err)
    assert find_acquisitions([tmp_path])[1:] == [tmp_path / "run2.tif", tmp_path / "run10.tif"]


def test_text_tif_beside_avis_and_a_stack(tmp_path):
    """Finding: a text notes.tif beside x.avi and y.avi vanished, and so did a valid stack."""
    for name in ("x.avi", "y.avi"):
        write_avi(tmp_path / name, [frame(i) for i in range(3)])
    (tmp_path / "notes.tif").write_text("this is a note\n")
    stack(tmp_path / "stack.tif")
    problems = by_name(discover([tmp_path]))
    assert set(problems) == {"x.avi", "y.avi", "notes.tif", "stack.tif"}
    assert problems["x.avi"] is problems["y.avi"] is problems["stack.tif"] is None
    assert "not a TIFF file" in problems["notes.tif"]


def test_stack_among_frames_hides_nothing(tmp_path):
    """Finding: a 5-page TIFF among 40 PNG frames hid the frames without a word; now the stack
    is an acquisition and each frame is listed as skipped, with the reason."""
    frames = pngs(tmp_path, 12)
    stack(tmp_path / "movie.tif", pages=5)
    found = discover([tmp_path])
    assert [a.path.name for a in found.acquisitions] == ["movie.tif"]
    skipped = {s.path: s.reason for s in found.skipped}
    assert set(skipped) == set(frames)
    assert all("frame folder must hold frames only" in r for r in skipped.values())
    assert list(found.skipped_rows()[0]) == list(SKIPPED_COLUMNS)


def test_self_looping_link_in_frame_folder(tmp_path):
    """Finding: a self-looping symlink inside a frame folder failed the whole folder."""
    folder = tmp_path / "frames"
    pngs(folder, 4)
    os.symlink(folder / "f9.png", folder / "f9.png")  # points at itself
    found = discover([tmp_path])
    assert [a.path for a in found.acquisitions] == [folder]
    assert [(s.path.name, s.reason) for s in found.skipped] == [
        ("f9.png", "symbolic link that loops")
    ]
    with open_video(folder) as video:
        assert len(video) == 4
        np.testing.assert_array_equal(video[3], frame(3))


def test_fifo_and_device_are_failed_never_opened(tmp_path, alarm):
    """A FIFO or a link to /dev/zero with a video name: a failed acquisition, not opened."""
    write_avi(tmp_path / "a.avi", [frame(i) for i in range(3)])
    os.mkfifo(tmp_path / "p.avi")
    os.symlink("/dev/zero", tmp_path / "z.avi")
    os.mkfifo(tmp_path / "q.png")
    found = discover([tmp_path])
    problems = by_name(found)
    assert problems["a.avi"] is None
    assert problems["p.avi"].startswith("a FIFO (named pipe)")
    assert problems["z.avi"].startswith("a character device")
    assert [s.path.name for s in found.skipped] == ["q.png"]
    assert find_acquisitions([tmp_path]) == [tmp_path / "a.avi"]  # never handed to a reader
    for name in ("p.avi", "z.avi"):
        with pytest.raises(VideoReadError, match="not a regular file: not opened"):
            open_video(tmp_path / name)
    named = discover([tmp_path / "p.avi"])
    assert "FIFO" in named.acquisitions[0].problem


def test_mixed_folder_every_input_accounted_for(tmp_path, alarm):
    """Videos, stacks, damaged stacks, text files with video names, frames, links, FIFOs:
    each is an acquisition or a skipped line, with its reason."""
    write_avi(tmp_path / "a.avi", [frame(i) for i in range(3)])
    (tmp_path / "text.avi").write_text("not a video")
    stack(tmp_path / "s.tif")
    (tmp_path / "broken.tif").write_bytes(b"MM\0*\0\0\0\x08")
    pngs(tmp_path, 2)
    (tmp_path / "readme.txt").write_text("hello")
    os.symlink(tmp_path / "missing.avi", tmp_path / "dangling.avi")
    os.symlink(tmp_path / "a.avi", tmp_path / "alias.avi")
    os.mkfifo(tmp_path / "pipe.tif")
    (tmp_path / ".hidden.avi").write_bytes(b"x")
    pngs(tmp_path / "frames", 3)
    found = discover([tmp_path])
    taken = {a.path.name for a in found.acquisitions}
    listed = {s.path.name for s in found.skipped}
    everything = {p.name for p in tmp_path.iterdir()}
    assert taken | listed == everything and not taken & listed
    assert taken == {"a.avi", "text.avi", "s.tif", "broken.tif", "pipe.tif", "frames"}
    reasons = {s.path.name: s.reason for s in found.skipped}
    assert reasons["alias.avi"].startswith("same input as")
    assert reasons["dangling.avi"] == "broken symbolic link"
    assert reasons["readme.txt"].startswith("not a video, stack or image frame")
    assert reasons[".hidden.avi"] == "hidden file"


def test_named_folder_with_nothing(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    found = discover([tmp_path])
    assert len(found.acquisitions) == 1 and "no video" in found.acquisitions[0].problem
    assert found.skipped[0].path.name == "notes.txt"


def test_tiff_kind_reads_headers_only(tmp_path):
    assert tiff_kind(stack(tmp_path / "s.tif"))[0] == "stack"
    tifffile.imwrite(tmp_path / "one.tif", frame(0))
    assert tiff_kind(tmp_path / "one.tif") == ("frame", None)
    tifffile.imwrite(tmp_path / "ij.tif", np.stack([frame(i) for i in range(3)]), imagej=True)
    assert tiff_kind(tmp_path / "ij.tif")[0] == "stack"
    tifffile.imwrite(tmp_path / "big.tif", np.stack([frame(0)] * 2), bigtiff=True)
    assert tiff_kind(tmp_path / "big.tif")[0] == "stack"
    (tmp_path / "cut.tif").write_bytes(b"II*\0")
    assert tiff_kind(tmp_path / "cut.tif")[0] == "bad"
