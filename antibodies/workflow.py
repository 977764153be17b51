"""The cell-analysis workflow: the only place that knows the order of the steps.

::

    Preprocess -> NucleusSegmentation -> CellSegmentation --+
           \\-> MarkerTophat ----------------------------------+-> CellFeatures
    CellFeatures (all images) -> PlateBackground
    CellFeatures + PlateBackground -> InfectedCells
    InfectedCells (all images) -> PlateScores -> PlateExports
"""
from pathlib import Path

from luigi_tasks import PlateWorkflow, add_config_parameters, wire

from .inputs import AssayPlanner
from .models import resolve_model_folder
from .tasks import (
    CellFeatures,
    CellSegmentation,
    InfectedCells,
    MarkerTophat,
    NucleusSegmentation,
    PlateBackground,
    PlateExports,
    PlateScores,
    Preprocess,
)

__all__ = ["CellAnalysis", "SPEC_PATH", "STEPS"]

SPEC_PATH = Path(__file__).with_name("configspec.ini")
PLANNER = AssayPlanner()

STEPS = (
    (Preprocess,),
    (NucleusSegmentation, Preprocess),
    (MarkerTophat, Preprocess),
    (CellSegmentation, NucleusSegmentation),
    (CellFeatures, CellSegmentation, MarkerTophat),
    (PlateBackground, CellFeatures),
    (InfectedCells, CellFeatures, PlateBackground),
    (PlateScores, InfectedCells),
    (PlateExports, PlateScores),
)

for job, *upstream in STEPS:
    wire(job, *upstream)
    job.planner = PLANNER


class CellAnalysis(PlateWorkflow):
    """Segment, measure, score and export one plate of the antibody assay.

    ``luigi --module antibodies CellAnalysis --plate DIR [--output OUT] [--config FILE]``
    """

    spec_path = SPEC_PATH
    planner = PLANNER
    final_jobs = (PlateExports,)

    def check_config(self, values):
        """Fail before any work if the nucleus model cannot be found."""
        resolve_model_folder(values["nuclei_model"])


add_config_parameters(CellAnalysis, SPEC_PATH)
