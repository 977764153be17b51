"""Exports for spreadsheets: CSV with the table's own column names, one XLSX workbook with readable headers."""
import numpy as np
import pandas as pd
import pytest

from antibodies.report.columns import readable_column
from luigi_tasks.io import open_file, read_table


@pytest.fixture(scope="module")
def tables(processed_plate):
    out, name = processed_plate["output"], processed_plate["name"]
    with open_file(out / f"{name}_tables.hdf5") as f:
        return {table: read_table(f, table) for table in ("images/default", "wells/default", "wells/serum_IgG")}


def test_csv_files_keep_the_table_columns(processed_plate, tables):
    out, name = processed_plate["output"], processed_plate["name"]
    for kind in ("images", "wells"):
        csv = pd.read_csv(out / f"{name}_{kind}.csv")
        assert list(csv.columns) == list(tables[f"{kind}/default"].columns)
        assert len(csv) == len(tables[f"{kind}/default"])


def test_workbook_has_one_sheet_per_table_with_readable_headers(processed_plate, tables):
    out, name = processed_plate["output"], processed_plate["name"]
    sheets = pd.read_excel(out / f"{name}_tables.xlsx", sheet_name=None)
    assert list(sheets) == ["images", "wells", "IgG images", "IgG wells"]
    wells = sheets["wells"]
    assert list(wells.columns[:2]) == ["Well", "Images"]
    expected = {"IgG score", "IgG robust z-score", "IgG positive", "IgG outlier reason", "Fraction infected"}
    assert expected <= set(wells.columns)
    assert list(wells.columns) == [readable_column(c) for c in tables["wells/default"].columns]
    scores = tables["wells/default"]["serum_IgG_score"]
    np.testing.assert_allclose(wells["IgG score"].to_numpy(float), scores, rtol=1e-12)
    igg = sheets["IgG wells"]
    assert "IgG score" in igg.columns and "IgG outlier" in igg.columns and "Well" in igg.columns
    assert len(igg) == len(tables["wells/serum_IgG"])
