"""Find the project's ``luigi.cfg`` and read the framework's own ``[batchlib]`` settings."""
import os
from pathlib import Path

import luigi
import luigi.configuration

__all__ = ["PROJECT_LUIGI_CFG", "use_project_luigi_config", "batchlib"]

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


class batchlib(luigi.Config):  # noqa: N801 - the class name is the luigi.cfg section name
    """``[batchlib]`` in luigi.cfg, or ``--batchlib-<name>`` on the command line."""

    progress_interval = luigi.FloatParameter(
        default=30.0,
        description="Seconds between plate progress reports of image jobs (read from disk, sent to the scheduler)",
    )
    wait_for_other_workers = luigi.BoolParameter(
        default=True, parsing=luigi.BoolParameter.EXPLICIT_PARSING,
        description="A worker with nothing to run stays while other workers run tasks it scheduled "
        "(see luigi_tasks.luigi_fixes); false: Luigi's default, leave at once",
    )
    max_batch_sizes = luigi.DictParameter(
        default={},
        description='Images per Luigi batch task by job, e.g. {"NucleusSegmentation": 16}; '
        "default: the job's max_batch_size",
    )
