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


def _read_h5_text(group, indices):
    """Columns ``indices`` (increasing) of an h5 table's cells as a NumPy ``StringDType`` array, or None.

    HDF5 converts the strings in C (no Python object per cell); None where
    h5py cannot read as ``StringDType`` (h5py < 3.14).
    """
    cells = group["cells"]
    try:
        strings = cells.astype("T")
    except (AttributeError, TypeError, ValueError):
        return None
    every = cells.ndim == 2 and list(indices) == list(range(cells.shape[1]))
    return strings[()] if every else strings[:, list(indices)]


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
    """A column of text cells (object or ``StringDType`` array) as a NumPy array of a bool, int or float ``dtype``.

    The same values as :func:`_typed`: ``float()`` of each text is what ``pd.to_numeric`` gives ("nan" too),
    and so is ``int()`` of the integers :func:`write_table` writes. None for other dtypes, and for integer
    texts ``int()`` refuses (left to :func:`_typed`).
    """
    if dtype == "bool":
        return texts == "True"
    if dtype.startswith("float"):
        return texts.astype(np.float64).astype(dtype)
    if dtype.startswith("int") and texts.dtype != object:
        try:
            return texts.astype(np.int64).astype(dtype)
        except (ValueError, OverflowError):
            return None
    return None


def _text(container, group, indices, n_columns):
    """Columns ``indices`` of a table's cells as text (``StringDType`` from h5py where it can, else objects)."""
    order = sorted(set(indices))
    text = _read_h5_text(group, order) if _is_h5(container) and order else None
    if text is None:
        text = _read_cells(group, n_columns)[:, order]
    return text[:, [order.index(index) for index in indices]] if order != list(indices) else text


def _typed_frame(text, names, dtypes):
    """DataFrame of text columns ``names`` as ``dtypes`` (None: left as text)."""
    typed = [_typed_fast(text[:, index], dtype) if dtype else None for index, dtype in enumerate(dtypes)]
    fast = [index for index, values in enumerate(typed) if values is not None]
    slow = [index for index in range(len(names)) if index not in fast]
    frame = pd.DataFrame(text[:, slow].astype(object), columns=[names[index] for index in slow])
    for index in slow:
        if dtypes[index]:
            frame[names[index]] = _typed(frame[names[index]].astype(str), dtypes[index])
    for index in fast:
        frame.insert(index, names[index], typed[index], allow_duplicates=True)
    return frame


def read_table(container, name, columns=None):
    """Read table ``name`` into a DataFrame with the column types it was written with.

    Parameters
    ----------
    container : h5py.File or z5py.File
    name : str
        Table name below ``/tables``.
    columns : sequence of str, optional
        Only these columns, in this order; all by default. Each column has the
        values it has in the whole table, and only its cells are converted.
        Columns the table lacks are left out: the caller finds them missing
        as it would in the whole table.

    Returns
    -------
    pandas.DataFrame
    """
    group = container[table_key(name)]
    names = _read_columns(group)
    dtypes = json.loads(group.attrs.get("dtypes", "[]"))
    dtypes = (dtypes + [None] * len(names))[:len(names)]
    if not len(names):
        return pd.DataFrame()
    if len(set(names)) < len(names):  # repeated names: column by column, as pandas assigns them
        frame = pd.DataFrame(_read_cells(group, len(names)), columns=names)
        for column, dtype in zip(names, dtypes):
            if dtype:
                frame[column] = _typed(frame[column].astype(str), dtype)
        return frame if columns is None else frame[[column for column in columns if column in names]]
    indices = list(range(len(names))) if columns is None else [names.index(c) for c in columns if c in names]
    text = _text(container, group, indices, len(names))
    return _typed_frame(text, [names[index] for index in indices], [dtypes[index] for index in indices])


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
