"""The cell-analysis workflow: the only place that knows the order of the steps.

::

    Preprocess -> NucleusSegmentation -> CellSegmentation --+
           \\-> MarkerTophat ----------------------------------+-> CellFeatures
    CellFeatures (all images) -> PlateBackground -> InfectionDecision
    CellFeatures + InfectionDecision -> InfectedCells -> BorderExchange
    BorderExchange + InfectedCells + NucleusSegmentation (all images) + PlateBackground -> PlateScores -> PlateExports
    PlateScores + PlateBackground + InfectionDecision -> PlateReport    (report/index.html)
    PlateScores -> OmeZarrPlate   (<plate>.ome.zarr; [export] ome_zarr or OmeZarrExport)
"""
from luigi_tasks import PlateWorkflow, add_config_parameters, wire_steps

from .inputs import AssayPlanner
from .models import cell_model_binning, nuclei_model_binning, resolve_model_folder
from .settings import SPEC_PATH
from .tasks import (
    BorderExchange,
    CellFeatures,
    CellSegmentation,
    InfectedCells,
    InfectionDecision,
    MarkerTophat,
    NucleusSegmentation,
    OmeZarrPlate,
    PlateBackground,
    PlateExports,
    PlateReport,
    PlateScores,
    Preprocess,
)
from .tasks.preprocess import read_corrector

__all__ = ["CellAnalysis", "OmeZarrExport", "SPEC_PATH", "STEPS"]

PLANNER = AssayPlanner()

STEPS = (
    (Preprocess,),
    (NucleusSegmentation, Preprocess),
    (MarkerTophat, Preprocess),
    (CellSegmentation, NucleusSegmentation),
    (CellFeatures, CellSegmentation, MarkerTophat),
    (PlateBackground, CellFeatures),
    (InfectionDecision, CellFeatures, PlateBackground),
    (InfectedCells, CellFeatures, InfectionDecision),
    (BorderExchange, InfectedCells, PlateBackground),
    # a plate job names every plate table it reads, so a lost tables file is rebuilt
    (PlateScores, BorderExchange, InfectedCells, NucleusSegmentation, PlateBackground),
    (PlateExports, PlateScores),
    # plate jobs reading image containers also wire InfectedCells, so failed images are left out
    (PlateReport, PlateScores, InfectedCells, PlateBackground, InfectionDecision),
    (OmeZarrPlate, PlateScores, InfectedCells),
)

wire_steps(STEPS, PLANNER)


class CellAnalysis(PlateWorkflow):
    """Segment, measure, score and export one plate of the antibody assay.

    ``luigi --module antibodies CellAnalysis --plate DIR [--output OUT] [--config FILE]``
    """

    spec_path = SPEC_PATH
    planner = PLANNER
    final_jobs = (PlateExports, PlateReport)

    def check_config(self, values):
        """Fail before any work if a barrel corrector cannot be read, or the nucleus model (or the cell model the
        split needs) cannot be found."""
        for path in values["preprocess_barrel_correctors"]:
            read_corrector(path)
        nuclei_model_binning(resolve_model_folder(values["nuclei_model"]))
        if CellSegmentation.uses_cell_model(values["cells_height_map"]):
            cell_model_binning(resolve_model_folder(values["cells_model"]))

    def jobs_to_run(self, values):
        """The final jobs, plus the OME-Zarr export when ``[export] ome_zarr`` is on."""
        return self.final_jobs + ((OmeZarrPlate,) if values["export_ome_zarr"] else ())


add_config_parameters(CellAnalysis, SPEC_PATH)


class OmeZarrExport(CellAnalysis):
    """Process what is missing and export the plate as OME-Zarr (``<output>/<plate>.ome.zarr``).

    ``luigi --module antibodies OmeZarrExport --plate DIR [--output OUT] [--config FILE]``
    """

    final_jobs = (OmeZarrPlate,)

    def jobs_to_run(self, values):
        """Only the export (and whatever it needs)."""
        return self.final_jobs
