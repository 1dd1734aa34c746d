"""Property tests of the authors' sequence-set parser (issue 5): whatever bytes sit in
``dataset.csv`` or in a strip PNG, reading gives a valid set or a :class:`DatasetError`."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from rbcflow.errors import DatasetError
from rbcflow.io.sequences import Sequence, read_dataset, write_dataset
from rbcflow.schema import CROP_SIZE, LABEL_NAMES

FUZZ = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _valid_set(folder: Path) -> Path:
    rng = np.random.default_rng(3)
    seqs = [
        Sequence(f"ACQ_{k}", rng.integers(0, 256, (3 + k, CROP_SIZE, CROP_SIZE), np.uint8), label)
        for k, label in enumerate([0, 1, None])
    ]
    write_dataset(folder, seqs)
    return folder


def _check(folder: Path) -> None:
    try:
        seqs = read_dataset(folder)
    except DatasetError as exc:
        assert "\n" not in str(exc).strip()
        event("DatasetError")
        return
    event("valid set")
    for seq in seqs:
        assert isinstance(seq.name, str) and seq.name
        assert seq.frames.dtype == np.uint8
        assert seq.frames.ndim == 3 and seq.frames.shape[1:] == (CROP_SIZE, CROP_SIZE)
        assert seq.frames.shape[0] >= 1
        assert seq.label is None or seq.label in LABEL_NAMES


_csv_text = st.one_of(
    st.binary(max_size=400),
    # structured: the right header and rows of arbitrary cells
    st.lists(
        st.tuples(st.text(max_size=12), st.text(max_size=6), st.text(max_size=6)), max_size=5
    ).map(
        lambda rows: (
            ",sequence_name,label,size\n"
            + "".join(f"{i},{a},{b},{c}\n" for i, (a, b, c) in enumerate(rows))
        ).encode("utf-8", "surrogatepass")
    ),
)


@FUZZ
@given(data=_csv_text)
def test_arbitrary_dataset_csv(tmp_path_factory, data):
    folder = _valid_set(tmp_path_factory.mktemp("set"))
    (folder / "dataset.csv").write_bytes(data)
    _check(folder)


@FUZZ
@given(
    name=st.sampled_from(["ACQ_0", "ACQ_1", "ACQ_2"]),
    data=st.one_of(
        st.binary(max_size=600), st.tuples(st.integers(0, 400), st.binary(min_size=1, max_size=8))
    ),
)
def test_arbitrary_strip_bytes(tmp_path_factory, name, data):
    folder = _valid_set(tmp_path_factory.mktemp("set"))
    png = folder / "img" / f"{name}.png"
    if isinstance(data, tuple):  # a real strip with a few bytes overwritten
        pos, patch = data
        buf = bytearray(png.read_bytes())
        buf[pos % len(buf) : pos % len(buf) + len(patch)] = patch
        data = bytes(buf)
    png.write_bytes(data)
    _check(folder)


@FUZZ
@given(
    rows=st.just(CROP_SIZE) | st.integers(1, 40),
    cols=st.just(3 * CROP_SIZE) | st.integers(1, 130),
    channels=st.sampled_from([0, 3, 4]),
    sixteen=st.booleans(),
)
def test_strips_of_arbitrary_shape(tmp_path_factory, rows, cols, channels, sixteen):
    """A well-formed PNG of the wrong geometry or type is refused, the right one read."""
    folder = _valid_set(tmp_path_factory.mktemp("set"))
    shape = (rows, cols) if channels == 0 else (rows, cols, channels)
    dtype = np.uint16 if sixteen else np.uint8
    image = np.random.default_rng(rows * cols).integers(0, 256, shape).astype(dtype)
    assert cv2.imwrite(str(folder / "img" / "ACQ_0.png"), image)
    _check(folder)
    geometry_ok = rows == CROP_SIZE and cols == 3 * CROP_SIZE  # ACQ_0 has size 3
    if geometry_ok and not sixteen:
        assert read_dataset(folder)[0].frames.shape == (3, CROP_SIZE, CROP_SIZE)


def test_valid_set_reads_back(tmp_path):
    folder = _valid_set(tmp_path / "set")
    seqs = read_dataset(folder)
    assert [s.label for s in seqs] == [0, 1, None]
    assert [s.frames.shape[0] for s in seqs] == [3, 4, 5]


def test_missing_img_folder(tmp_path):
    folder = _valid_set(tmp_path / "set")
    shutil.rmtree(folder / "img")
    with pytest.raises(DatasetError, match="strip is missing"):
        read_dataset(folder)
