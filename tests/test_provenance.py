"""Input fingerprints, run records and the skip key."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from rbcflow import __version__
from rbcflow.config import FrontEndConfig, params_id, to_dict
from rbcflow.errors import VideoReadError
from rbcflow.provenance import (
    input_fingerprint,
    json_safe,
    read_run_json,
    run_record,
    skip_key,
    write_run_json,
)


def test_small_file_full_sha256(tmp_path):
    data = np.random.default_rng(0).bytes(3_000_000)
    p = tmp_path / "a.avi"
    p.write_bytes(data)
    fp = input_fingerprint(p)
    assert fp["hash"] == "sha256:" + hashlib.sha256(data).hexdigest()
    assert fp["hash_method"] == "sha256"
    assert fp["size_bytes"] == len(data) and fp["kind"] == "file" and fp["n_files"] == 1


def test_large_file_sampled_hash_sees_size_and_content(tmp_path):
    rng = np.random.default_rng(1)
    data = bytearray(rng.bytes(40 * 1024**2))
    p = tmp_path / "big.avi"
    p.write_bytes(data)
    fp = input_fingerprint(p, full_limit=8 * 1024**2)
    assert fp["hash_method"] == "sha256-sampled"
    assert fp == input_fingerprint(p, full_limit=8 * 1024**2)  # deterministic
    # a copy with the same bytes is the same input, whatever its name or time
    q = tmp_path / "copy.avi"
    q.write_bytes(data)
    assert input_fingerprint(q, full_limit=8 * 1024**2)["hash"] == fp["hash"]
    # truncation (recording stopped) and a new recording (all frames differ) change it
    p.write_bytes(data[:-1000])
    assert input_fingerprint(p, full_limit=8 * 1024**2)["hash"] != fp["hash"]
    p.write_bytes(rng.bytes(len(data)))
    assert input_fingerprint(p, full_limit=8 * 1024**2)["hash"] != fp["hash"]
    # the last MiB is always read
    data[-5] ^= 0xFF
    p.write_bytes(data)
    assert input_fingerprint(p, full_limit=8 * 1024**2)["hash"] != fp["hash"]


def test_folder_of_frames(tmp_path):
    folder = tmp_path / "acq"
    folder.mkdir()
    for i in range(3):
        (folder / f"f{i:03d}.tif").write_bytes(bytes([i]) * 100)
    (folder / ".DS_Store").write_bytes(b"junk")  # hidden files are not frames
    fp = input_fingerprint(folder)
    assert fp["kind"] == "folder" and fp["n_files"] == 3 and fp["size_bytes"] == 300
    (folder / "f001.tif").rename(folder / "f009.tif")  # frame order is identity
    assert input_fingerprint(folder)["hash"] != fp["hash"]


def test_unreadable_input_is_a_project_error(tmp_path):
    with pytest.raises(VideoReadError, match="missing.avi"):
        input_fingerprint(tmp_path / "missing.avi")


def test_run_record_round_trip_and_skip_key(tmp_path):
    cfg = FrontEndConfig()
    rec = run_record(
        input_info={"hash": "sha256:ab", "size_bytes": 3},
        parameters={"frontend": to_dict(cfg)},
        params_id=params_id(cfg),
        models={"stage1": {"checksum": "s1"}, "stage2": {"checksum": "s2"}},
        started="2026-01-01T00:00:00+00:00",
        finished="2026-01-01T00:00:10+00:00",
        warnings=["truncated"],
        result={"tank_treading_fraction": float("nan"), "frames": np.int64(7)},
        timings={"frontend": 1.5},
        outputs=["tracks.csv"],
    )
    path = write_run_json(tmp_path / "run.json", rec)
    back = read_run_json(path)
    assert back == json.loads(path.read_text())
    assert back["rbcflow_version"] == __version__
    assert back["result"] == {"tank_treading_fraction": None, "frames": 7}
    assert back["parameters"]["frontend"]["crops"]["size"] == 31
    assert back["platform"]["packages"]["numpy"] == np.__version__
    assert skip_key(back) == ("sha256:ab", params_id(cfg), "s1", "s2")
    # a damaged run.json is not trusted
    path.write_text('{"half": ')
    assert read_run_json(path) is None
    assert read_run_json(tmp_path / "none.json") is None


def test_json_safe_is_strict_json():
    obj = json_safe({"a": [np.float32(1.5), np.nan, np.inf], "b": np.arange(2), 3: tmp_path_like()})
    json.dumps(obj, allow_nan=False)
    assert obj == {"a": [1.5, None, None], "b": [0, 1], "3": "p"}


def tmp_path_like():
    from pathlib import PurePosixPath

    return PurePosixPath("p")
