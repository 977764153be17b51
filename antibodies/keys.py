"""Dataset keys and table names: the single place that names them.

Image containers (``<output>/<image stem>.h5``) hold the channels named by
their role, the segmentations, per-cell tables and histograms; the plate
tables file (``<output>/<plate>_tables.hdf5``) holds image and well tables.
"""
from luigi_tasks.io import table_key

__all__ = [
    "NUCLEI", "MARKER", "SERUM_ROLES", "ROLES", "raw_key",
    "NUCLEUS_SEGMENTATION", "CELL_SEGMENTATION", "MARKER_TOPHAT",
    "cell_table", "cell_table_key", "INFECTED_CELLS_TABLE", "histogram_key", "border_exchange_table",
    "IMAGE_TABLE", "WELL_TABLE", "image_table", "well_table",
    "IMAGE_BACKGROUNDS", "WELL_BACKGROUNDS", "PLATE_BACKGROUNDS", "SUBTRACTED_BACKGROUNDS", "CELL_QC_TABLE",
    "INFECTION_DECISION", "MARKER_SCORES", "SPILLOVER_WIDTHS",
    "EXPORTS_RECORD", "REPORT_RECORD", "OME_ZARR_RECORD", "CHANNEL_COLORS",
]

# channels in an image container, named by their role
NUCLEI = "nuclei"
MARKER = "marker"
SERUM_ROLES = ("serum_IgG", "serum_IgA", "serum_IgM")
ROLES = (NUCLEI, MARKER) + SERUM_ROLES
CHANNEL_COLORS = {NUCLEI: "Blue", MARKER: "Red", "serum_IgG": "Green", "serum_IgA": "Green", "serum_IgM": "Green"}


def raw_key(role):
    """Key of the uncorrected copy of a flat-field corrected channel."""
    return f"{role}_raw"


# segmentations and derived images
NUCLEUS_SEGMENTATION = "nucleus_segmentation"
CELL_SEGMENTATION = "cell_segmentation"
MARKER_TOPHAT = "marker_tophat"


def cell_table(channel):
    """Table name of per-cell features of ``channel``, e.g. ``cell_segmentation/serum_IgG``."""
    return f"{CELL_SEGMENTATION}/{channel}"


def cell_table_key(channel):
    """Container key of the per-cell table of ``channel``."""
    return table_key(cell_table(channel))


INFECTED_CELLS_TABLE = f"{CELL_SEGMENTATION}/infected_cells"
CELL_QC_TABLE = f"{CELL_SEGMENTATION}/cell_qc"
# one row: how sharp the nuclei's edges are (antibodies.analysis.focus)
NUCLEUS_SHARPNESS_TABLE = f"{NUCLEUS_SEGMENTATION}/sharpness"


def border_exchange_table(serum):
    """Table name of one image's border exchange sums of ``serum`` (rows: distance from the border)."""
    return f"border_exchange/{serum}"


def histogram_key(channel, which):
    """Key of an intensity histogram (``which`` is ``background`` or ``total``)."""
    return f"histograms/{channel}/{which}"


# plate tables file
IMAGE_TABLE = "images/default"
WELL_TABLE = "wells/default"
IMAGE_BACKGROUNDS = "images/backgrounds"
WELL_BACKGROUNDS = "wells/backgrounds"
PLATE_BACKGROUNDS = "plate/backgrounds"
# the background each image subtracts (the chosen strategy's per-image values)
SUBTRACTED_BACKGROUNDS = "images/subtracted_backgrounds"
# the plate's cut on the marker score and the histogram of marker scores it was fitted on
INFECTION_DECISION = "plate/infection_decision"
MARKER_SCORES = "plate/marker_scores"
# the spillover width each serum's scores were compensated with
SPILLOVER_WIDTHS = "plate/spillover_widths"
EXPORTS_RECORD = "records/exports"
REPORT_RECORD = "records/report"
OME_ZARR_RECORD = "records/ome_zarr"


def image_table(serum):
    """Per-serum image table name."""
    return f"images/{serum}"


def well_table(serum):
    """Per-serum well table name."""
    return f"wells/{serum}"
