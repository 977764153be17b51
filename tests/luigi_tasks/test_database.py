"""The SQLite results database: upserts, replaced rows, one transaction, concurrent writers."""
import math
import multiprocessing

import numpy as np
import pandas as pd
import pytest

from luigi_tasks.database import read_rows, table_names, write_rows

KEY = ("plate", "well_name", "serum")


def wells(plate, names, score=1.0):
    return [{"plate": plate, "well_name": name, "serum": "IgG", "score": score, "is_outlier": np.bool_(False)}
            for name in names]


def write_plate(path, plate, rows):
    return write_rows(path, {"wells": (rows, KEY, {"plate": plate})})


def test_rerun_updates_rows_in_place_and_never_duplicates(tmp_path):
    path = tmp_path / "results.sqlite"
    for _ in range(3):
        assert write_plate(path, "p1", wells("p1", ["A01", "A02"])) == {"wells": 2}
    write_plate(path, "p1", wells("p1", ["A01", "A02"], score=2.5))
    rows = read_rows(path, "wells")
    assert len(rows) == 2 and {row["score"] for row in rows} == {2.5} and rows[0]["is_outlier"] == 0


def test_rows_gone_from_a_plate_are_deleted_and_other_plates_kept(tmp_path):
    path = tmp_path / "results.sqlite"
    write_plate(path, "p1", wells("p1", ["A01", "A02", "A03"]))
    write_plate(path, "p2", wells("p2", ["A01"]))
    write_plate(path, "p1", wells("p1", ["A01", "A03"]))
    assert sorted((r["plate"], r["well_name"]) for r in read_rows(path, "wells")) == [
        ("p1", "A01"), ("p1", "A03"), ("p2", "A01")]
    assert [r["well_name"] for r in read_rows(path, "wells", {"plate": "p2"})] == ["A01"]


def test_new_columns_are_added_and_missing_values_are_null(tmp_path):
    path = tmp_path / "results.sqlite"
    write_plate(path, "p1", wells("p1", ["A01"]))
    later = [dict(row, robust_z_score=float("nan"), is_positive=pd.NA, n_cells=np.int64(12)) for row in wells("p2", ["B01"])]
    write_plate(path, "p2", later)
    rows = {r["plate"]: r for r in read_rows(path, "wells")}
    assert rows["p1"]["n_cells"] is None and rows["p2"]["n_cells"] == 12
    assert rows["p2"]["robust_z_score"] is None and rows["p2"]["is_positive"] is None
    assert not any(isinstance(v, float) and math.isnan(v) for v in rows["p2"].values())


def test_several_tables_are_one_transaction(tmp_path):
    path = tmp_path / "results.sqlite"
    write_plate(path, "p1", wells("p1", ["A01"]))
    fails_late = {"wells": (wells("p1", ["A01", "A02"]), KEY, {"plate": "p1"}),
                  "plates": ([{"plate": "p1", "n_images": 3}], ("plate",), {"no_such_column": "p1"})}
    with pytest.raises(KeyError, match="no_such_column"):  # after 'wells' was written inside the transaction
        write_rows(path, fails_late)
    assert len(read_rows(path, "wells")) == 1 and "plates" not in table_names(path)
    broken = [{"plate": "p1", "n_images": 3}, {"n_images": 4}]  # the second row lacks the key
    with pytest.raises(ValueError, match="lack a value for key"):
        write_rows(path, {"plates": (broken, ("plate",), {"plate": "p1"})})
    assert "plates" not in table_names(path)


def _writer(path, plate):
    for round_ in range(15):
        write_plate(path, plate, wells(plate, [f"A{n:02d}" for n in range(1, 13)], score=float(round_)))


def test_concurrent_writers_from_two_processes(tmp_path):
    path = tmp_path / "results.sqlite"
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_writer, args=(path, plate)) for plate in ("p1", "p2")]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0, 0]
    rows = read_rows(path, "wells")
    assert len(rows) == 24 and {row["score"] for row in rows} == {14.0}
