"""Tables in a container: ``/tables/<name>/{cells, columns, visible}`` <-> pandas.

``cells`` is a 2D array of strings (rows x columns), ``columns`` the 1D column
names and ``visible`` a 1D bool per column (shown by default in the viewer).
The group records ``dtypes`` so numbers and booleans read back as such, and a
``format_version``. N5 has no string datasets: there ``cells`` holds the
UTF-8 JSON rows as bytes.
"""
import json

import numpy as np
import pandas as pd

__all__ = [
    "TABLE_FORMAT_VERSION",
    "TABLES_ROOT",
    "table_key",
    "write_table",
    "read_table",
    "has_table",
    "list_tables",
]

TABLE_FORMAT_VERSION = 1
TABLES_ROOT = "tables"


def table_key(name):
    """Return the container key of table ``name``.

    Examples
    --------
    >>> table_key("cell_segmentation/serum_IgG")
    'tables/cell_segmentation/serum_IgG'
    """
    return f"{TABLES_ROOT}/{name}"


def _is_h5(container):
    return type(container).__module__.startswith("h5py")


def _column_strings(column):
    """``str`` of each value of a Series (as an object), ``"nan"`` where it is missing."""
    values = column.astype(object).to_numpy(copy=True)
    values[column.isna().to_numpy()] = "nan"
    return [str(value) for value in values.tolist()]


def _to_strings(frame):
    """(rows, columns) object array of the cells' text, built column by column."""
    columns = [_column_strings(frame.iloc[:, index]) for index in range(frame.shape[1])]
    cells = np.empty((len(frame), len(columns)), dtype=object)
    for index, strings in enumerate(columns):
        cells[:, index] = strings
    return cells


def write_table(container, name, frame, visible=None):
    """Write ``frame`` as table ``name``; an existing table is replaced.

    Parameters
    ----------
    container : h5py.File or z5py.File
    name : str
        Table name below ``/tables``, e.g. ``"images/default"``.
    frame : pandas.DataFrame
    visible : sequence of bool, optional
        Per column; all True by default.
    """
    key = table_key(name)
    if key in container:
        del container[key]
    group = container.create_group(key)
    columns = [str(column) for column in frame.columns]
    visible = np.ones(len(columns), dtype=bool) if visible is None else np.asarray(visible, dtype=bool)
    cells = _to_strings(frame)
    if _is_h5(container):
        import h5py

        string = h5py.string_dtype()
        group.create_dataset("cells", data=cells.reshape(len(frame), len(columns)), dtype=string)
        group.create_dataset("columns", data=np.array(columns, dtype=object), dtype=string)
        group.create_dataset("visible", data=visible)
    else:
        payload = np.frombuffer(json.dumps(cells.tolist()).encode(), dtype="uint8")
        group.create_dataset("cells", data=payload if payload.size else np.zeros(1, "uint8"))
        group.attrs["cells_encoding"] = "json-utf8"
        group.attrs["columns"] = columns
        group.create_dataset("visible", data=visible.astype("uint8"))
    group.attrs["dtypes"] = json.dumps([str(dtype) for dtype in frame.dtypes])
    group.attrs["format_version"] = TABLE_FORMAT_VERSION
    return group


def _read_cells(group, n_columns):
    if group.attrs.get("cells_encoding") == "json-utf8":
        rows = json.loads(group["cells"][:].tobytes().decode() or "[]")
        return np.array(rows, dtype=object).reshape(len(rows), n_columns)
    cells = group["cells"][:]
    text = np.empty(cells.shape, dtype=object)
    text.ravel()[:] = [value.decode() if isinstance(value, bytes) else value for value in cells.ravel().tolist()]
    return text


def _read_columns(group):
    if "columns" in group:
        return [c.decode() if isinstance(c, bytes) else str(c) for c in group["columns"][:]]
    return list(group.attrs["columns"])


def _typed(values, dtype):
    """A column of text cells (Series) as ``dtype``."""
    if dtype == "bool":
        return values == "True"
    if dtype == "boolean":  # nullable: "<NA>" (and "nan") read back as missing
        return values.map({"True": True, "False": False}).astype("boolean")
    if dtype.startswith(("int", "uint")):
        return pd.to_numeric(values).astype(dtype)
    if dtype.startswith("float"):
        return pd.to_numeric(values.replace("nan", np.nan)).astype(dtype)
    return values.replace("nan", np.nan) if dtype != "object" else values


def _typed_fast(texts, dtype):
    """A column of text cells (object array) as a numpy array of a bool, int or float ``dtype``; else None.

    The same values as :func:`_typed`: ``float()`` of each text is what ``pd.to_numeric`` gives ("nan" too).
    """
    if dtype == "bool":
        return texts == "True"
    if dtype.startswith("float"):
        return texts.astype(np.float64).astype(dtype)
    return None


def read_table(container, name):
    """Read table ``name`` into a DataFrame with the column types it was written with."""
    group = container[table_key(name)]
    columns = _read_columns(group)
    cells = _read_cells(group, len(columns))
    dtypes = json.loads(group.attrs.get("dtypes", "[]"))
    if not len(columns):
        return pd.DataFrame()
    if len(set(columns)) < len(columns):  # repeated names: column by column, as pandas assigns them
        frame = pd.DataFrame(cells, columns=columns)
        for column, dtype in zip(columns, dtypes):
            frame[column] = _typed(frame[column].astype(str), dtype)
        return frame
    typed = [_typed_fast(cells[:, index], dtype) for index, dtype in enumerate(dtypes[:len(columns)])]
    fast = [index for index, values in enumerate(typed) if values is not None]
    slow = [index for index in range(len(columns)) if index not in fast]
    frame = pd.DataFrame(cells[:, slow], columns=[columns[index] for index in slow])
    for index, dtype in zip(range(len(columns)), dtypes):
        if index in slow:
            frame[columns[index]] = _typed(frame[columns[index]].astype(str), dtype)
    for index in fast:
        frame.insert(index, columns[index], typed[index], allow_duplicates=True)
    return frame


def has_table(container, name):
    """Return True if table ``name`` exists with its cells."""
    return f"{table_key(name)}/cells" in container


def list_tables(container, prefix=""):
    """Return the names of all tables below ``/tables/<prefix>``."""
    root = table_key(prefix).rstrip("/")
    if root not in container:
        return []
    names = []

    def visit(group, path):
        if "cells" in group:
            names.append(path)
            return
        for child in group.keys():
            visit(group[child], f"{path}/{child}" if path else child)

    visit(container[root], prefix.rstrip("/"))
    return sorted(names)
