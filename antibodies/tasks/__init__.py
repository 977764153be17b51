"""Thin Luigi tasks of the antibody assay; each reads, calls :mod:`antibodies.analysis`, writes."""
from .background import PlateBackground
from .exports import PlateExports
from .features import CellFeatures
from .infection import InfectedCells, InfectionDecision
from .omezarr import OmeZarrPlate
from .preprocess import Preprocess
from .report import PlateReport
from .scores import PlateScores
from .segmentation import CellSegmentation, NucleusSegmentation
from .spillover import BorderExchange
from .tophat import MarkerTophat

__all__ = [
    "Preprocess",
    "NucleusSegmentation",
    "CellSegmentation",
    "MarkerTophat",
    "CellFeatures",
    "PlateBackground",
    "InfectionDecision",
    "InfectedCells",
    "BorderExchange",
    "PlateScores",
    "PlateExports",
    "PlateReport",
    "OmeZarrPlate",
]
