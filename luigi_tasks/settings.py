"""Find the project's ``luigi.cfg`` when the user runs ``luigi`` from elsewhere."""
import os
from pathlib import Path

import luigi.configuration

__all__ = ["PROJECT_LUIGI_CFG", "use_project_luigi_config"]

PROJECT_LUIGI_CFG = Path(__file__).resolve().parents[1] / "luigi.cfg"


def use_project_luigi_config():
    """Add the project's luigi.cfg unless ``LUIGI_CONFIG_PATH`` or ``./luigi.cfg`` is used.

    Luigi reads ``luigi.cfg`` from the working directory; a cron job or a user
    in another folder would otherwise run without the project's retcodes,
    worker timeout and resources.
    """
    if os.environ.get("LUIGI_CONFIG_PATH") or Path("luigi.cfg").exists() or not PROJECT_LUIGI_CFG.exists():
        return False
    luigi.configuration.add_config_path(str(PROJECT_LUIGI_CFG))
    return True
