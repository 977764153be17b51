"""Exports: CSV and XLSX of the default tables, plate heatmaps of each score."""
from pathlib import Path

import h5py

from luigi_tasks import PlateJob
from luigi_tasks.io import atomic_write, open_file, read_table

from ..analysis.scores import sera_in
from ..inputs import channel_roles
from ..keys import EXPORTS_RECORD, IMAGE_TABLE, WELL_TABLE
from ..plots import plate_heatmap

__all__ = ["PlateExports", "HEATMAP_STATISTICS"]

HEATMAP_STATISTICS = ("score", "robust_z_score")


class PlateExports(PlateJob):
    """``<plate>_images.csv/.xlsx``, ``<plate>_wells.csv/.xlsx`` and ``heatmaps/<serum>_<statistic>.png``."""

    outputs = (EXPORTS_RECORD,)

    def tables(self):
        """Return the default image and well tables."""
        with open_file(self.tables_path, "r") as container:
            return {"images": read_table(container, IMAGE_TABLE), "wells": read_table(container, WELL_TABLE)}

    def table_files(self):
        """CSV and XLSX files of the image and well tables."""
        out = Path(self.output_dir)
        return {f"{kind}.{ext}": out / f"{self.plate_name}_{kind}.{ext}" for kind in ("images", "wells") for ext in ("csv", "xlsx")}

    def heatmap_files(self, sera):
        """Heatmap PNGs, one per serum and statistic."""
        return {(s, stat): Path(self.output_dir) / "heatmaps" / f"{s}_{stat}.png" for s in sera for stat in HEATMAP_STATISTICS}

    def output_files(self):
        """Tables and heatmaps must exist too."""
        sera = [role for role in channel_roles(self.plate_dir) if role.startswith("serum")]
        return list(self.table_files().values()) + list(self.heatmap_files(sera).values())

    def run_plate(self, images, tables_file):
        tables = self.tables()
        for name, path in self.table_files().items():
            kind, ext = name.split(".")
            with atomic_write(path) as tmp:
                writer = tables[kind].to_csv if ext == "csv" else tables[kind].to_excel
                writer(tmp, index=False, **({"sheet_name": kind} if ext == "xlsx" else {}))
        wells = tables["wells"].set_index("well_name")
        for (serum, stat), path in self.heatmap_files(sera_in(tables["wells"])).items():
            outliers = wells.index[wells[f"{serum}_is_outlier"].astype(bool)]
            with atomic_write(path) as tmp:
                plate_heatmap(wells[f"{serum}_{stat}"].to_dict(), f"{self.plate_name}: {serum} {stat}", tmp, outliers)
        with h5py.File(tables_file, "a") as container:
            group = container.require_group(EXPORTS_RECORD)
            group.attrs["files"] = [str(p) for p in self.table_files().values()]
