"""The authors' interchange format: strips <-> (T, 31, 31) stacks, dataset folders."""

from __future__ import annotations

import numpy as np
import pytest

from rbcflow.errors import DatasetError
from rbcflow.io.sequences import (
    Sequence,
    acquisition_of,
    frames_to_strip,
    read_dataset,
    strip_to_frames,
    write_dataset,
)


def test_strip_layout_is_frame_k_at_columns_31k():
    frames = np.stack([np.full((31, 31), k, np.uint8) for k in range(4)])
    strip = frames_to_strip(frames)
    assert strip.shape == (31, 124)
    for k in range(4):
        assert (strip[:, 31 * k : 31 * k + 31] == k).all()
    np.testing.assert_array_equal(strip_to_frames(strip, 4), frames)


def test_strip_with_wrong_width_is_refused():
    with pytest.raises(ValueError, match="31"):
        strip_to_frames(np.zeros((31, 40), np.uint8))
    with pytest.raises(ValueError, match="size 3"):
        strip_to_frames(np.zeros((31, 62), np.uint8), 3)


def test_acquisition_of():
    assert acquisition_of("BG1017_10s01_1118") == "BG1017_10s01"
    assert acquisition_of("single") == "single"


def test_write_then_read_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    seqs = [
        Sequence("A_1", rng.integers(0, 256, (7, 31, 31), dtype=np.uint8), 0),
        Sequence("A_2", rng.integers(0, 256, (1, 31, 31), dtype=np.uint8), None),
    ]
    assert write_dataset(tmp_path, seqs) == 2
    header = (tmp_path / "dataset.csv").read_text().splitlines()[0]
    assert header == ",sequence_name,label,size"
    back = read_dataset(tmp_path)
    assert [s.name for s in back] == ["A_1", "A_2"]
    assert back[0].label == 0 and back[1].label is None
    np.testing.assert_array_equal(back[0].frames, seqs[0].frames)


def test_damaged_sets_raise_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="dataset.csv"):
        read_dataset(tmp_path)
    write_dataset(tmp_path, [Sequence("B_1", np.zeros((2, 31, 31), np.uint8), 1)])
    (tmp_path / "img" / "B_1.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="not a readable PNG"):
        read_dataset(tmp_path)
    (tmp_path / "img" / "B_1.png").unlink()
    with pytest.raises(DatasetError, match="missing"):
        read_dataset(tmp_path)


def test_reads_the_real_sets(shared_data):
    seqs = read_dataset(shared_data / "stage2_train")
    assert len(seqs) == 284
    assert all(s.frames.shape == (20, 31, 31) and s.frames.dtype == np.uint8 for s in seqs)
    assert sorted({s.label for s in seqs}) == [0, 1]
    stage1 = read_dataset(shared_data / "stage1_BG")
    assert len(stage1) == 232
    assert sum(s.label == 2 for s in stage1) == 138


def test_errors_are_one_line_even_when_names_hold_line_breaks(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "dataset.csv").write_text(',sequence_name,label,size\n0,"a\nb_1",7,1\n')
    with pytest.raises(DatasetError) as info:
        read_dataset(tmp_path)
    assert "\n" not in str(info.value) and "label" in str(info.value)
