"""A cross-plate results database in one SQLite file (Python's ``sqlite3``).

Rows are dicts; a table is created on first use with a primary key, and
columns a later row brings are added. Writing a plate is one transaction that
upserts its rows (``INSERT ... ON CONFLICT DO UPDATE``, so a rerun never
duplicates a row) and deletes the plate's rows that are gone (a well
dropped from the layout). Writers are serialised by SQLite's own lock and by
a lock file beside the database (:func:`~luigi_tasks.io.file_lock`), which
also holds between machines that share the file system; readers (pandas,
``sqlite3`` on the command line) can open the file at any time.

Examples
--------
>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "results.sqlite")
>>> rows = [{"plate": "p1", "well": "A01", "score": 1.5}, {"plate": "p1", "well": "A02", "score": float("nan")}]
>>> write_rows(path, {"wells": (rows, ("plate", "well"), {"plate": "p1"})})
{'wells': 2}
>>> write_rows(path, {"wells": (rows[:1], ("plate", "well"), {"plate": "p1"})})
{'wells': 1}
>>> read_rows(path, "wells")
[{'plate': 'p1', 'well': 'A01', 'score': 1.5}]
"""
import math
import numbers
import sqlite3
from pathlib import Path

import numpy as np

from .io.atomic import file_lock

__all__ = ["sql_value", "connect", "ensure_table", "upsert_rows", "write_rows", "read_rows", "table_names"]


def _quote(name):
    """Quote an SQL identifier.

    Examples
    --------
    >>> print(_quote('a"b'))
    "a""b"
    """
    return '"' + str(name).replace('"', '""') + '"'


def sql_value(value):
    """Return ``value`` as an SQLite value: None for NaN/NA, int for bools, plain Python numbers.

    Examples
    --------
    >>> [sql_value(v) for v in (True, 2.5, float("nan"), None, "x")]
    [1, 2.5, None, None, 'x']
    """
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return None if math.isnan(float(value)) else float(value)
    if isinstance(value, str):
        return value
    text = str(value)
    return None if text in ("<NA>", "NaT", "nan") else text  # pandas NA / NaT


def _affinity(values):
    kinds = {type(v) for v in values if v is not None}
    if kinds and kinds <= {int}:
        return "INTEGER"
    if kinds and kinds <= {int, float}:
        return "REAL"
    return "TEXT"


def connect(path, timeout=120.0):
    """Open (creating if needed) the database at ``path`` in autocommit mode."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(str(path), timeout=timeout, isolation_level=None)
    connection.row_factory = sqlite3.Row
    return connection


def _columns(connection, table):
    return [row["name"] for row in connection.execute(f"PRAGMA table_info({_quote(table)})")]


def ensure_table(connection, table, rows, key):
    """Create ``table`` with primary key ``key`` if missing and add the columns ``rows`` bring."""
    names = list(dict.fromkeys(name for row in rows for name in row))
    missing_key = [name for name in key if name not in names]
    if missing_key:
        raise KeyError(f"rows for table {table!r} lack key column(s) {missing_key}")
    types = {name: _affinity([row.get(name) for row in rows]) for name in names}
    existing = _columns(connection, table)
    if not existing:
        columns = ", ".join(f"{_quote(name)} {types[name]}" for name in names)
        connection.execute(
            f"CREATE TABLE {_quote(table)} ({columns}, PRIMARY KEY ({', '.join(map(_quote, key))}))"
        )
        return
    for name in names:
        if name not in existing:
            connection.execute(f"ALTER TABLE {_quote(table)} ADD COLUMN {_quote(name)} {types[name]}")


def upsert_rows(connection, table, rows, key):
    """Insert ``rows`` into ``table``; rows whose key exists are updated in place."""
    names = list(dict.fromkeys(name for row in rows for name in row))
    updates = [name for name in names if name not in key]
    action = f"DO UPDATE SET {', '.join(f'{_quote(n)} = excluded.{_quote(n)}' for n in updates)}" if updates else "DO NOTHING"
    statement = (
        f"INSERT INTO {_quote(table)} ({', '.join(map(_quote, names))}) VALUES ({', '.join('?' for _ in names)}) "
        f"ON CONFLICT ({', '.join(map(_quote, key))}) {action}"
    )
    connection.executemany(statement, [[row.get(name) for name in names] for row in rows])


def _delete_others(connection, table, rows, key, where):
    """Delete rows matching ``where`` whose key is not among ``rows``."""
    columns = _columns(connection, table)
    if not where or not columns:
        return
    unknown = [name for name in where if name not in columns]
    if unknown:  # SQLite would read an unknown "name" as a string literal and match nothing
        raise KeyError(f"table {table!r} has no column(s) {unknown} to select the rows to replace")
    condition = " AND ".join(f"{_quote(name)} = ?" for name in where)
    keep = {tuple(row[name] for name in key) for row in rows}
    stale = [
        tuple(found) for found in connection.execute(
            f"SELECT {', '.join(map(_quote, key))} FROM {_quote(table)} WHERE {condition}", list(where.values()))
        if tuple(found) not in keep
    ]
    connection.executemany(
        f"DELETE FROM {_quote(table)} WHERE {' AND '.join(f'{_quote(name)} = ?' for name in key)}", stale
    )


def write_rows(path, tables, timeout=120.0):
    """Write rows to several tables in one transaction; return ``{table: rows written}``.

    Parameters
    ----------
    path : str or Path
        The SQLite file.
    tables : dict
        ``{table: (rows, key, where)}``: ``rows`` a list of dicts, ``key`` the
        primary-key column names, ``where`` ``{column: value}`` selecting the
        rows this write replaces (rows matching it but absent from ``rows``
        are deleted; None or ``{}`` deletes nothing).

    Either every table is written or, on any error, none is.

    Raises
    ------
    ValueError
        If a row has no value for a key column (nothing is written).
    """
    prepared = {
        table: ([{name: sql_value(value) for name, value in row.items()} for row in rows], tuple(key), dict(where or {}))
        for table, (rows, key, where) in tables.items()
    }
    for table, (rows, key, _) in prepared.items():
        incomplete = [row for row in rows if any(row.get(name) is None for name in key)]
        if incomplete:
            raise ValueError(f"table {table!r}: {len(incomplete)} row(s) lack a value for key {key}, e.g. {incomplete[0]}")
    with file_lock(path, timeout=timeout):
        connection = connect(path, timeout)
        try:
            connection.execute("BEGIN IMMEDIATE")
            for table, (rows, key, where) in prepared.items():
                if rows:
                    ensure_table(connection, table, rows, key)
                    upsert_rows(connection, table, rows, key)
                _delete_others(connection, table, rows, key, where)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        finally:
            connection.close()
    return {table: len(rows) for table, (rows, _, _) in prepared.items()}


def table_names(path):
    """Return the table names of the database at ``path`` (empty if it does not exist)."""
    if not Path(path).exists():
        return []
    connection = connect(path)
    try:
        return [row["name"] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    finally:
        connection.close()


def read_rows(path, table, where=None):
    """Return the rows of ``table`` (matching ``where`` ``{column: value}``) as dicts; [] if absent."""
    if table not in table_names(path):
        return []
    where = dict(where or {})
    condition = (" WHERE " + " AND ".join(f"{_quote(name)} = ?" for name in where)) if where else ""
    connection = connect(path)
    try:
        return [dict(row) for row in connection.execute(f"SELECT * FROM {_quote(table)}{condition}", list(where.values()))]
    finally:
        connection.close()
