"""Metadata sheets (CSV and XLSX) and name patterns: what they give, and every error as one line
naming the row."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from rbcflow.samples.sheet import (
    SheetError,
    from_name_pattern,
    load_metadata,
    match_sheet,
    parse_date,
    read_sheet,
)

HEADER = ["acquisition", "patient", "sample", "drawn_at", "shear_rate", "baseline", "notes"]


@pytest.fixture
def data(tmp_path) -> Path:
    """A PATH with four acquisitions: two files of one draw, a folder of frames, a subfolder."""
    d = tmp_path / "runs"
    (d / "draw2").mkdir(parents=True)
    for name in ("BG1017_10s01.avi", "BG1017_10s02.avi", "draw2/BG1024_10s01.avi"):
        (d / name).write_bytes(b"RIFF")
    frames = d / "frames_run"
    frames.mkdir()
    for i in range(3):
        (frames / f"f{i:03d}.png").write_bytes(b"\x89PNG")
    return d


def _csv(path: Path, rows, header=HEADER) -> Path:
    lines = [",".join(header)] + [",".join(str(c) for c in r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD = [
    ["BG1017_10s*", "BG", "BG-1017", "2023-10-17", "10", "yes", "glob, two files"],
    ["draw2/", "BG", "BG-1024", "2023-10-24T09:30", "10", "", "a folder"],
    ["frames_run", "XX", "XX-1", "2023-10-20", "", "no", ""],
]


def _key(data: Path, rel: str) -> str:
    return str((data / rel).absolute())


def test_a_csv_sheet_gives_each_acquisition_its_row(data, tmp_path):
    meta = load_metadata([data], sheet=_csv(tmp_path / "s.csv", GOOD))
    assert len(meta) == 4
    one, two = meta[_key(data, "BG1017_10s01.avi")], meta[_key(data, "BG1017_10s02.avi")]
    assert one == two
    assert (one["patient"], one["sample"], one["drawn_at"]) == ("BG", "BG-1017", "2023-10-17")
    assert one["shear_rate"] == 10.0 and one["baseline"] == "yes"
    assert one["medium"] is None  # a missing optional column is fine
    sub = meta[_key(data, "draw2/BG1024_10s01.avi")]
    assert sub["drawn_at"] == "2023-10-24T09:30" and sub["baseline"] is None
    frames = meta[_key(data, "frames_run")]
    assert frames["patient"] == "XX" and frames["shear_rate"] is None


def test_an_xlsx_sheet_with_typed_cells(data, tmp_path):
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(HEADER[:5] + ["temperature_c"])
    ws.append(["BG1017_10s*", "BG", 1017, dt.datetime(2023, 10, 17), 10, 37])
    ws.append(["draw2", "BG", 1024, dt.date(2023, 10, 24), 10.0, None])
    ws.append(["frames_run", "XX", "XX-1", "2023-10-20", None, None])
    wb.save(tmp_path / "s.xlsx")
    meta = load_metadata([data], sheet=tmp_path / "s.xlsx")
    one = meta[_key(data, "BG1017_10s02.avi")]
    # a sample typed as a number is text without ".0"; a date cell is an ISO date
    assert (one["sample"], one["drawn_at"], one["temperature_c"]) == ("1017", "2023-10-17", 37.0)
    assert meta[_key(data, "draw2/BG1024_10s01.avi")]["drawn_at"] == "2023-10-24"


def _problems(exc: SheetError) -> list[str]:
    assert all("\n" not in line for line in exc.lines)
    return exc.lines


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_every_sheet_error_is_one_line_naming_the_row(data, tmp_path, kind):
    rows = [
        ["BG1017_10s01", "BG", "BG-1017", "2023-10-17", "10", "", ""],  # row 2
        ["BG1017_10s01.avi", "BG", "BG-1017", "2023-10-17", "10", "", ""],  # row 3: twice
        ["nothing_*", "BG", "BG-9", "2023-10-18", "", "", ""],  # row 4: matches nothing
        ["draw2", "BG", "BG-1024", "24/10/2023", "fast", "maybe", ""],  # row 5: three bad cells
        ["frames_run", "", "XX-1", "2023-10-20", "", "", ""],  # row 6: no patient
    ]
    if kind == "csv":
        sheet = _csv(tmp_path / "bad.csv", rows)
    else:
        import openpyxl

        wb = openpyxl.Workbook()
        wb.active.append(HEADER)
        for r in rows:
            wb.active.append([c if c != "" else None for c in r])
        sheet = tmp_path / "bad.xlsx"
        wb.save(sheet)
    with pytest.raises(SheetError) as info:
        read_sheet(sheet)
    lines = _problems(info.value)
    assert [line.split(": ", 2)[1] for line in lines] == ["row 5"] * 3 + ["row 6"]
    assert "'24/10/2023' is not an ISO 8601 date" in lines[0]
    assert "shear_rate 'fast' is not a number" in lines[1]
    assert "baseline 'maybe' is neither yes nor no" in lines[2]
    assert lines[3].endswith("row 6: no patient")
    assert all(line.startswith(str(sheet)) for line in lines)
    assert "(and 3 more problems)" in str(info.value)

    rows[3] = ["draw2", "BG", "BG-1024", "2023-10-24", "10", "", ""]
    rows[4][1] = "XX"
    sheet = _csv(tmp_path / "bad2.csv", rows[:3])  # frames_run and draw2 now in no row
    with pytest.raises(SheetError) as info:
        load_metadata([data], sheet=sheet)
    lines = _problems(info.value)
    assert any("rows 2 and 3 both name BG1017_10s01" in line for line in lines)
    assert any(
        "row 4: acquisition 'nothing_*' is none of the acquisitions" in line for line in lines
    )
    assert any("acquisition frames_run is in no row of the sheet" in line for line in lines)
    assert any("acquisition draw2/BG1024_10s01 is in no row" in line for line in lines)
    assert any("acquisition BG1017_10s02 is in no row" in line for line in lines)
    assert len(lines) == 5


def test_a_missing_column_and_a_sample_that_disagrees(data, tmp_path):
    with pytest.raises(SheetError, match="no column drawn_at"):
        read_sheet(
            _csv(tmp_path / "c.csv", [["a", "b", "c"]], ["acquisition", "patient", "sample"])
        )
    rows = [
        ["BG1017_10s01", "BG", "S1", "2023-10-17", "10", "", ""],
        ["BG1017_10s02", "BG", "S1", "2023-10-18", "10", "", ""],
        ["draw2", "BG", "S2", "2023-10-24", "10", "", ""],
        ["frames_run", "XX", "S3", "2023-10-20", "", "", ""],
    ]
    with pytest.raises(SheetError) as info:
        load_metadata([data], sheet=_csv(tmp_path / "d.csv", rows))
    assert _problems(info.value) == [
        f"{tmp_path / 'd.csv'}: sample 'S1': row 2 and row 3 give different drawn_at "
        "(2023-10-17 and 2023-10-18)"
    ]


AUTHORS = r"(?P<year>\d{4})/(?P<patient>[A-Z]+)(?P<month>\d\d)(?P<day>\d\d)_(?P<shear_rate>\d+)s\d+"


def test_the_authors_naming_by_name_pattern(tmp_path):
    d = tmp_path / "2023"
    d.mkdir()
    for name in ("BG1017_10s01.avi", "BG1017_10s02.avi", "BG1017_20s01.avi", "AB0102_10s01.avi"):
        (d / name).write_bytes(b"RIFF")
    meta = from_name_pattern(AUTHORS, [d])
    one = meta[str((d / "BG1017_10s01.avi").absolute())]
    assert one["patient"] == "BG" and one["drawn_at"] == "2023-10-17"
    assert one["shear_rate"] == 10.0 and one["sample"] == "BG-2023-10-17-10s"
    assert meta[str((d / "BG1017_10s02.avi").absolute())]["sample"] == "BG-2023-10-17-10s"
    assert meta[str((d / "BG1017_20s01.avi").absolute())]["sample"] == "BG-2023-10-17-20s"
    assert meta[str((d / "AB0102_10s01.avi").absolute())]["drawn_at"] == "2023-01-02"


def test_name_pattern_errors(tmp_path):
    d = tmp_path / "2023"
    d.mkdir()
    (d / "BG1017_10s01.avi").write_bytes(b"RIFF")
    (d / "BG1399_10s01.avi").write_bytes(b"RIFF")  # month 13
    (d / "notes_run.avi").write_bytes(b"RIFF")
    with pytest.raises(SheetError) as info:
        from_name_pattern(AUTHORS, [d])
    lines = sorted(info.value.lines)
    assert lines[0].endswith("BG1399_10s01.avi: the name gives no valid date")
    assert lines[1].endswith("notes_run.avi: does not match --name-pattern")
    no_year = r"(?P<patient>[A-Z]+)(?P<month>\d\d)(?P<day>\d\d)_"
    with pytest.raises(SheetError, match="no \\(\\?P<year>"):
        from_name_pattern(no_year, [d / "BG1017_10s01.avi"])
    with pytest.raises(SheetError, match="no \\(\\?P<patient>"):
        from_name_pattern(r"(?P<who>\w+)", [d])
    with pytest.raises(SheetError, match="not a regular expression"):
        from_name_pattern("(unclosed", [d])


def test_dates():
    assert parse_date("2023-10-17T08:05:09") == "2023-10-17T08:05:09"
    assert parse_date(dt.datetime(2023, 10, 17, 0, 0)) == "2023-10-17"
    for bad in ("17/10/2023", "2023-13-01", "yesterday", ""):
        with pytest.raises(ValueError):
            parse_date(bad)


def test_match_sheet_with_a_single_file_path(data, tmp_path):
    rows = read_sheet(_csv(tmp_path / "s.csv", [GOOD[0]]))
    meta = match_sheet(rows, [data / "BG1017_10s01.avi"], tmp_path / "s.csv")
    assert list(meta) == [_key(data, "BG1017_10s01.avi")]
