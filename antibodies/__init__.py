"""antibodies: cell analysis of the SARS-CoV-2 immunofluorescence antibody assay.

Run a plate with ``luigi --module antibodies CellAnalysis --plate DIR``.
"""
from luigi_tasks.settings import use_project_luigi_config

use_project_luigi_config()

from .workflow import CellAnalysis  # noqa: E402

__all__ = ["CellAnalysis"]
