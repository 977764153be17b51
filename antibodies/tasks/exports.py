"""Exports: CSV of the default tables, one XLSX workbook with readable headers, plate heatmaps of each score."""
from pathlib import Path

import pandas as pd

from luigi_tasks.io import atomic_write, open_file, read_table

from ..analysis.scores import sera_in
from ..keys import EXPORTS_RECORD, IMAGE_TABLE, WELL_TABLE, image_table, well_table
from ..plots import plate_heatmap
from ..report.columns import readable_columns, serum_label
from .base import AssayPlateJob, record_files

__all__ = ["PlateExports", "HEATMAP_STATISTICS", "workbook_sheets"]

HEATMAP_STATISTICS = ("score", "robust_z_score")


def workbook_sheets(tables, sera):
    """Sheets of the XLSX workbook: ``images``, ``wells``, then ``<Ig> images`` and ``<Ig> wells`` per serum.

    Parameters
    ----------
    tables : Mapping[str, pandas.DataFrame]
        ``images``, ``wells`` and, per serum ``S``, ``images/S`` and ``wells/S`` (the per-serum tables).
    sera : sequence of str

    Returns
    -------
    dict of str -> pandas.DataFrame
        Sheet name -> table with readable headers (e.g. ``IgG score``).
    """
    sheets = {"images": readable_columns(tables["images"]), "wells": readable_columns(tables["wells"])}
    for serum in sera:
        for kind in ("images", "wells"):
            sheets[f"{serum_label(serum)} {kind}"] = readable_columns(tables[f"{kind}/{serum}"], serum)
    return sheets


def _excel_ready(frame):
    """Nullable columns as plain objects, so missing values become empty cells."""
    return frame.astype(object).where(frame.notna(), None)


class PlateExports(AssayPlateJob):
    """``<plate>_{images,wells}.csv``, ``<plate>_tables.xlsx`` and ``heatmaps/<serum>_<statistic>.png``."""

    outputs = (EXPORTS_RECORD,)

    def tables(self):
        """Return the default image and well tables and the per-serum tables."""
        with open_file(self.tables_path, "r") as container:
            tables = {"images": read_table(container, IMAGE_TABLE), "wells": read_table(container, WELL_TABLE)}
            for serum in sera_in(tables["wells"]):
                tables[f"images/{serum}"] = read_table(container, image_table(serum))
                tables[f"wells/{serum}"] = read_table(container, well_table(serum))
        return tables

    def table_files(self):
        """CSV files of the image and well tables."""
        out = Path(self.output_dir)
        return {kind: out / f"{self.plate_name}_{kind}.csv" for kind in ("images", "wells")}

    @property
    def workbook_path(self):
        """``<output>/<plate>_tables.xlsx``."""
        return Path(self.output_dir) / f"{self.plate_name}_tables.xlsx"

    def heatmap_files(self, sera):
        """Heatmap PNGs, one per serum and statistic."""
        folder = Path(self.output_dir) / "heatmaps"
        return {(s, stat): folder / f"{s}_{stat}.png" for s in sera for stat in HEATMAP_STATISTICS}

    def output_files(self):
        """Tables, workbook and heatmaps must exist too."""
        heatmaps = list(self.heatmap_files(self.sera()).values())
        return list(self.table_files().values()) + [self.workbook_path] + heatmaps

    def write_workbook(self, tables):
        """One workbook, one sheet per table, readable headers."""
        with atomic_write(self.workbook_path) as tmp:
            with pd.ExcelWriter(tmp, engine="openpyxl") as writer:
                for name, sheet in workbook_sheets(tables, sera_in(tables["wells"])).items():
                    _excel_ready(sheet).to_excel(writer, sheet_name=name, index=False)

    def run_plate(self, images, tables_file):
        tables = self.tables()
        for kind, path in self.table_files().items():
            with atomic_write(path) as tmp:
                tables[kind].to_csv(tmp, index=False)
        self.write_workbook(tables)
        wells = tables["wells"].set_index("well_name")
        for (serum, stat), path in self.heatmap_files(sera_in(tables["wells"])).items():
            outliers = wells.index[wells[f"{serum}_is_outlier"].astype(bool)]
            with atomic_write(path) as tmp:
                plate_heatmap(wells[f"{serum}_{stat}"].to_dict(), f"{self.plate_name}: {serum} {stat}", tmp, outliers)
        record_files(tables_file, EXPORTS_RECORD, [*self.table_files().values(), self.workbook_path], self.tables_path)
