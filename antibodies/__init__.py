"""antibodies: cell analysis of the SARS-CoV-2 immunofluorescence antibody assay.

Run a plate with ``luigi --module antibodies CellAnalysis --plate DIR``; export it as OME-Zarr with
``luigi --module antibodies OmeZarrExport --plate DIR``; process every new or changed plate below a
folder and update the results database with ``luigi --module antibodies Nightly --root RAW --output-root OUT``.
"""
from luigi_tasks import use_packaged_luigi_config

use_packaged_luigi_config()  # exit codes and worker settings also outside the checkout (luigi_tasks.settings)

from .nightly import Nightly  # noqa: E402
from .workflow import CellAnalysis, OmeZarrExport  # noqa: E402

__all__ = ["CellAnalysis", "OmeZarrExport", "Nightly"]
