"""What a finished plate leaves in its output folder: no lock files, relative records, the plateViewer's table name."""
import os

import h5py
import pytest

from antibodies.keys import EXPORTS_RECORD, REPORT_RECORD

pytestmark = pytest.mark.slow


def test_no_lock_files_are_left_behind(processed_plate):
    out = processed_plate["output"]
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.lock")) == []
    assert sorted(p.name for p in out.rglob("*") if ".tmp-" in p.name) == []


def test_records_name_files_relative_to_the_tables_file(processed_plate):
    out, name = processed_plate["output"], processed_plate["name"]
    with h5py.File(out / f"{name}_tables.hdf5", "r") as f:
        records = {key: [str(p) for p in f[key].attrs["files"]] for key in (EXPORTS_RECORD, REPORT_RECORD)}
    assert records[REPORT_RECORD] == ["report/index.html"]
    assert sorted(records[EXPORTS_RECORD]) == sorted([f"{name}_images.csv", f"{name}_wells.csv", f"{name}_tables.xlsx"])
    for files in records.values():
        assert all(not os.path.isabs(p) and (out / p).is_file() for p in files), files


def test_plate_viewer_table_name_is_a_hard_link_of_the_plate_tables(processed_plate):
    out, name = processed_plate["output"], processed_plate["name"]
    main, viewer = os.stat(out / f"{name}_tables.hdf5"), os.stat(out / f"{name}_table.hdf5")
    assert (main.st_ino, main.st_dev) == (viewer.st_ino, viewer.st_dev) and main.st_nlink == 2
