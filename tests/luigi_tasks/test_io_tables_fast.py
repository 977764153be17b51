"""Tables written and read column by column give what the row-by-row code gave."""
import json

import h5py
import numpy as np
import pandas as pd
import pytest

from luigi_tasks.io import read_table, write_table
from luigi_tasks.io.tables import _read_cells, _read_columns, _to_strings, _typed, table_key


def _rows_to_strings(frame):
    text = frame.astype(object).where(frame.notna(), "nan")
    return np.array([[str(value) for value in row] for row in text.itertuples(index=False)], dtype=object)


def _read_by_columns_of_text(container, name):
    group = container[table_key(name)]
    columns = _read_columns(group)
    cells = _read_cells(group, len(columns))
    frame = pd.DataFrame(cells, columns=columns) if len(columns) else pd.DataFrame()
    for column, dtype in zip(columns, json.loads(group.attrs.get("dtypes", "[]"))):
        frame[column] = _typed(frame[column].astype(str), dtype)
    return frame


def _frames():
    rng = np.random.default_rng(0)
    yield pd.DataFrame({
        "f": [0.1, np.nan, np.inf, -0.0, 1e16, 1e-5, 123456789012345678.0, 2.5e-320],
        "i": np.arange(8, dtype=np.int64), "b": [True, False] * 4,
        "nb": pd.array([True, None, False, None, True, True, False, None], dtype="boolean"),
        "s": ["a", None, "c", "d", "é", "", "nan", "x"], "u": np.arange(8, dtype=np.uint16),
        "f32": np.array([0.1, 1 / 3, np.nan, 2, 3, 4, 5, 6], dtype=np.float32)})
    yield pd.DataFrame({"x": rng.normal(size=500) * 10.0 ** rng.integers(-30, 30, 500), "n": rng.integers(0, 9, 500)})
    yield pd.DataFrame({"x": np.zeros(0), "s": np.array([], dtype=object)})
    yield pd.DataFrame()


@pytest.mark.parametrize("index", range(4))
def test_tables_are_written_and_read_as_before(tmp_path, index):
    frame = list(_frames())[index]
    assert _to_strings(frame).tolist() == _rows_to_strings(frame).reshape(frame.shape).tolist()
    with h5py.File(tmp_path / "t.h5", "w") as f:
        write_table(f, "x", frame)
        pd.testing.assert_frame_equal(read_table(f, "x"), _read_by_columns_of_text(f, "x"))


@pytest.mark.parametrize("index", range(3))
def test_some_columns_are_read_as_in_the_whole_table(tmp_path, index):
    frame = list(_frames())[index]
    wanted = list(frame.columns)[::-2] + ["no such column"]
    with h5py.File(tmp_path / "t.h5", "w") as f:
        write_table(f, "x", frame)
        whole = read_table(f, "x")
        pd.testing.assert_frame_equal(read_table(f, "x", wanted), whole[wanted[:-1]], check_exact=True)
        assert read_table(f, "x", ["no such column"]).shape == (len(frame), 0)
