"""OME-Zarr HCS export of a plate: ``<output>/<plate>.ome.zarr`` with channels, segmentations and tables.

The plate is written into a temporary folder beside the target and renamed
when complete, so readers see the old plate or the new one. Fields are the
sites of a well in image-name order; each holds the channels of
:data:`~antibodies.keys.ROLES` present as ``(c, y, x)`` and the nucleus and
cell segmentations as labels. The default image and well tables go beside
the images as ``tables/images.csv`` and ``tables/wells.csv``.
"""
from collections import defaultdict
from pathlib import Path


from luigi_tasks import PlateJob
from luigi_tasks.io import atomic_write, image_levels, open_file, parse_image_name, read_table
from luigi_tasks.io.atomic import remove_stale_temporaries
from luigi_tasks.io.omezarr import ChannelPyramid, create_plate, write_field, write_well

from ..analysis.layout import ROWS, plate_shape
from ..keys import CELL_SEGMENTATION, IMAGE_TABLE, NUCLEUS_SEGMENTATION, OME_ZARR_RECORD, ROLES, WELL_TABLE
from .base import record_files

__all__ = ["OmeZarrPlate", "LABELS", "OME_ZARR_TABLES"]

LABELS = (NUCLEUS_SEGMENTATION, CELL_SEGMENTATION)
OME_ZARR_TABLES = {"images": IMAGE_TABLE, "wells": WELL_TABLE}
"""CSV name in ``<plate>.ome.zarr/tables/`` -> plate table."""


def _pyramid(container, key):
    return [container[f"{key}/{level}"][:] for level in image_levels(container, key)]


def fields_by_well(images):
    """Return ``{well: [image, ...]}`` with the images of each well in name order.

    Examples
    --------
    >>> fields_by_well(["WellA01_PointA01_0001_ChannelDAPI_Seq0002", "WellA01_PointA01_0000_ChannelDAPI_Seq0001"])
    {'A01': ['WellA01_PointA01_0000_ChannelDAPI_Seq0001', 'WellA01_PointA01_0001_ChannelDAPI_Seq0002']}
    """
    wells = defaultdict(list)
    for image in sorted(images):
        wells[parse_image_name(image).well].append(image)
    return dict(wells)


class OmeZarrPlate(PlateJob):
    """``<output>/<plate>.ome.zarr``: an OME-Zarr 0.4 plate of the processed images."""

    outputs = (OME_ZARR_RECORD,)

    @property
    def zarr_path(self):
        """``<output>/<plate>.ome.zarr``."""
        return Path(self.output_dir) / f"{self.plate_name}.ome.zarr"

    def output_files(self):
        """The plate folder must exist too."""
        return [self.zarr_path]

    def read_field(self, image):
        """Channels and label pyramids of one image container."""
        with open_file(self.container(image), "r") as container:
            channels = [ChannelPyramid(role, _pyramid(container, role), container[role].attrs["Color"],
                                       tuple(container[role].attrs["ContrastLimits"]))
                        for role in ROLES if role in container]
            labels = {key: _pyramid(container, key) for key in LABELS}
        return channels, labels

    def write_plate(self, path, images):
        """Write the plate, its wells and fields into ``path``."""
        wells = fields_by_well(images)
        n_rows, n_cols = plate_shape(list(wells) or ["A01"])
        plate = create_plate(path, self.plate_name, list(ROWS[:n_rows]), list(range(1, n_cols + 1)), list(wells),
                             max((len(v) for v in wells.values()), default=0))
        for well, fields in wells.items():
            write_well(plate, well, len(fields))
            for index, image in enumerate(fields):
                channels, labels = self.read_field(image)
                write_field(plate, well, index, channels, labels, name=image)
        self.write_tables(Path(path) / "tables", images)

    def write_tables(self, folder, images):
        """The default image and well tables as CSV."""
        folder.mkdir(parents=True, exist_ok=True)
        with open_file(self.tables_path, "r") as container:
            for name, table in OME_ZARR_TABLES.items():
                frame = read_table(container, table)
                if name == "images":
                    frame = frame[frame["image_name"].isin(images)]
                frame.to_csv(folder / f"{name}.csv", index=False)

    def run_plate(self, images, tables_file):
        remove_stale_temporaries(self.zarr_path)  # left by a killed export; run_plate holds the plate lock
        with atomic_write(self.zarr_path) as tmp:
            self.write_plate(tmp, images)
        self.logger.info("OME-Zarr plate of %d images written to %s", len(images), self.zarr_path)
        record_files(tables_file, OME_ZARR_RECORD, [self.zarr_path], self.tables_path, n_images=len(images))
