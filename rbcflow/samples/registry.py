"""The patient registry: every analysed sample, in an embedded SQLite database.

One row per (patient, sample): its draw date, fraction, interval, verdict, the rbcflow version,
the models' checksums and the parameters id it was analysed with, and the path of its report.
Analysing a sample again updates its row (an upsert on the key), never adds a second one.
A reanalysis (``rbcflow reanalyze``: the same acquisitions with other models or parameters)
is recorded beside, in the ``reanalysed`` table keyed by (reanalysis, patient, sample): the
samples table is never touched by it, so a patient's timeline stays what was analysed.

Decisions
---------
- *SQLite, not a file through* :mod:`rbcflow.io.outputs`. A database is updated in place by
  many runs over months; SQLite's own transactions give the atomicity the atomic writer gives
  files. Write-ahead logging and a busy timeout let two analyses write at once (each write is
  one ``BEGIN IMMEDIATE`` transaction; the second waits for the first).
- *Versioned schema.* ``PRAGMA user_version`` holds the schema version; :data:`MIGRATIONS`
  brings any older file up to date when it is opened, in one transaction each.
- *Never required.* Only ``analyze`` with ``--samples`` or ``--name-pattern`` records samples.
- *Where.* ``--registry PATH``, else ``$RBCFLOW_REGISTRY``, else ``registry.sqlite`` in the
  user's data directory (:func:`platformdirs.user_data_dir`).
"""

from __future__ import annotations

import math
import os
import sqlite3
from collections.abc import Iterable, Mapping
from contextlib import closing
from pathlib import Path
from typing import Any

from rbcflow.errors import OutputError
from rbcflow.run_settings import SamplesConfig

FIELDS = (
    "patient",
    "sample",
    "drawn_at",
    "tank_treading_fraction",
    "ci_low",
    "ci_high",
    "reliable",
    "verdict",
    "verdict_reason",
    "baseline",
    "shear_rate",
    "rbcflow_version",
    "stage1_model",
    "stage2_model",
    "params_id",
    "report",
    "analysed_at",
)
"""The registry's columns for one sample (``report``: its page, an absolute path)."""

MIGRATIONS = (
    # 1: the samples table
    """CREATE TABLE samples (
        patient TEXT NOT NULL, sample TEXT NOT NULL, drawn_at TEXT,
        tank_treading_fraction REAL, ci_low REAL, ci_high REAL, reliable INTEGER,
        verdict TEXT, verdict_reason TEXT, baseline TEXT,
        rbcflow_version TEXT, stage1_model TEXT, stage2_model TEXT, params_id TEXT,
        report TEXT, analysed_at TEXT,
        PRIMARY KEY (patient, sample))""",
    # 2: the shear rate, and a patient's timeline in date order without a scan
    """ALTER TABLE samples ADD COLUMN shear_rate REAL;
    CREATE INDEX samples_timeline ON samples (patient, drawn_at)""",
    # 3: reanalyses, beside the samples (rbcflow reanalyze); older files gain an empty table
    """CREATE TABLE reanalysed (
        reanalysis TEXT NOT NULL, patient TEXT NOT NULL, sample TEXT NOT NULL, drawn_at TEXT,
        tank_treading_fraction REAL, ci_low REAL, ci_high REAL, reliable INTEGER,
        verdict TEXT, verdict_reason TEXT, baseline TEXT, shear_rate REAL,
        rbcflow_version TEXT, stage1_model TEXT, stage2_model TEXT, params_id TEXT,
        report TEXT, analysed_at TEXT,
        PRIMARY KEY (reanalysis, patient, sample))""",
)
"""Schema migrations in order; the schema version is how many have been applied."""
SCHEMA_VERSION = len(MIGRATIONS)


def default_registry(cfg: SamplesConfig | None = None) -> Path:
    """``$RBCFLOW_REGISTRY``, else ``registry.sqlite`` in the user's data directory."""
    cfg = cfg or SamplesConfig()
    env = os.environ.get(cfg.registry_env)
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("rbcflow", appauthor=False)) / "registry.sqlite"


def connect(path: str | os.PathLike, timeout: float = 30.0) -> sqlite3.Connection:
    """Open (creating and migrating if needed) the registry at ``path``.

    Raises
    ------
    OutputError
        The file cannot be opened or is not a registry (one line naming it).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise OutputError(f"cannot open the registry: {exc}", path) from exc
    try:
        con.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        con.execute("PRAGMA journal_mode = WAL")
        _migrate(con)
    except sqlite3.DatabaseError as exc:
        con.close()
        raise OutputError(f"not an rbcflow registry ({exc})", path) from exc
    con.row_factory = sqlite3.Row
    return con


def schema_version(con: sqlite3.Connection) -> int:
    """The schema version of an open registry."""
    return int(con.execute("PRAGMA user_version").fetchone()[0])


def _migrate(con: sqlite3.Connection, upto: int = SCHEMA_VERSION) -> None:
    con.execute("BEGIN IMMEDIATE")  # one migrating process at a time; others wait
    try:
        version = schema_version(con)
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"schema version {version} is newer than this rbcflow's")
        for i in range(version, upto):
            for statement in MIGRATIONS[i].split(";"):
                if statement.strip():
                    con.execute(statement)
            con.execute(f"PRAGMA user_version = {i + 1}")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _value(v: Any) -> Any:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if hasattr(v, "item"):  # numpy / pandas scalars
        v = v.item()
    if v is not None and type(v).__name__ == "NAType":
        return None
    return v


def add_samples(
    path: str | os.PathLike, rows: Iterable[Mapping[str, Any]], reanalysis: str | None = None
) -> int:
    """Record (insert or update) samples; returns how many. One transaction for all of them.

    ``reanalysis``: the id of a reanalysis (``rbcflow reanalyze``); its rows go to the
    ``reanalysed`` table, keyed by (reanalysis, patient, sample), and the samples table is not
    touched. None: the samples themselves (``analyze``).
    """
    fields = FIELDS if reanalysis is None else ("reanalysis", *FIELDS)
    key = ("patient", "sample") if reanalysis is None else ("reanalysis", "patient", "sample")
    cols = ", ".join(fields)
    marks = ", ".join("?" for _ in fields)
    update = ", ".join(f"{f} = excluded.{f}" for f in fields if f not in key)
    sql = (
        f"INSERT INTO {'samples' if reanalysis is None else 'reanalysed'} ({cols}) "
        f"VALUES ({marks}) ON CONFLICT ({', '.join(key)}) DO UPDATE SET {update}"
    )
    extra = () if reanalysis is None else (reanalysis,)
    data = [(*extra, *(_value(r.get(f)) for f in FIELDS)) for r in rows]
    data = [d for d in data if d[len(extra)] is not None and d[len(extra) + 1] is not None]
    try:
        with closing(connect(path)) as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                con.executemany(sql, data)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
    except sqlite3.Error as exc:
        raise OutputError(f"cannot record samples in the registry: {exc}", path) from exc
    return len(data)


def patient_history(
    path: str | os.PathLike, patient: str, reanalysis: str | None = None
) -> list[dict[str, Any]]:
    """The patient's samples in draw order (empty when the registry does not know them).

    With ``reanalysis`` (a name :func:`reanalyses` lists), each sample that reanalysis
    recorded is its reanalysed row instead (``reanalysis`` says which; None for a row as first
    analysed), so that a timeline can be read under the new models."""
    with closing(connect(path)) as con:
        cur = con.execute(
            "SELECT * FROM samples WHERE patient = ? ORDER BY drawn_at, sample", (patient,)
        )
        rows = [dict(r) for r in cur]
        if reanalysis is None:
            return rows
        cur = con.execute(
            "SELECT * FROM reanalysed WHERE reanalysis = ? AND patient = ?", (reanalysis, patient)
        )
        new = {r["sample"]: dict(r) for r in cur}
    return [new.get(r["sample"], {**r, "reanalysis": None}) for r in rows]


def reanalyses(path: str | os.PathLike, patient: str | None = None) -> list[dict[str, Any]]:
    """Every reanalysis recorded (of ``patient``'s samples when given): its name, samples,
    patients and when its last row was analysed, oldest first."""
    where, args = ("WHERE patient = ? ", (patient,)) if patient is not None else ("", ())
    with closing(connect(path)) as con:
        cur = con.execute(
            "SELECT reanalysis, COUNT(*) AS samples, COUNT(DISTINCT patient) AS patients, "
            f"MAX(analysed_at) AS analysed_at FROM reanalysed {where}"
            "GROUP BY reanalysis ORDER BY analysed_at, reanalysis",
            args,
        )
        return [dict(r) for r in cur]


def patients(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every patient with their number of samples and last draw, by patient."""
    with closing(connect(path)) as con:
        cur = con.execute(
            "SELECT patient, COUNT(*) AS samples, MAX(drawn_at) AS last_drawn FROM samples "
            "GROUP BY patient ORDER BY patient"
        )
        return [dict(r) for r in cur]


def all_samples(path: str | os.PathLike, patient: str | None = None) -> list[dict[str, Any]]:
    """Every sample (of ``patient`` when given), by patient and draw date."""
    where, args = ("WHERE patient = ? ", (patient,)) if patient is not None else ("", ())
    with closing(connect(path)) as con:
        cur = con.execute(f"SELECT * FROM samples {where}ORDER BY patient, drawn_at, sample", args)
        return [dict(r) for r in cur]


def reanalysed(path: str | os.PathLike, reanalysis: str | None = None) -> list[dict[str, Any]]:
    """The rows reanalyses recorded (of the one ``reanalysis`` when given), by reanalysis,
    patient and draw date."""
    where, args = ("WHERE reanalysis = ? ", (reanalysis,)) if reanalysis is not None else ("", ())
    with closing(connect(path)) as con:
        cur = con.execute(
            f"SELECT * FROM reanalysed {where}ORDER BY reanalysis, patient, drawn_at, sample", args
        )
        return [dict(r) for r in cur]
