"""The framework's Luigi defaults (``luigi_tasks/luigi.cfg``) and its own ``[batchlib]`` settings.

Luigi reads ``luigi.cfg`` only from ``/etc/luigi/``, the working directory and
``LUIGI_CONFIG_PATH``, never from an installed package. A wheel install, a
cron job or a user in another folder would run with Luigi's own defaults:
exit code 0 for failed tasks, no worker timeout. So the package ships its
``luigi.cfg`` and importing :mod:`luigi_tasks` makes Luigi read it *first*:
every other config file (``/etc/luigi/luigi.cfg``, ``./luigi.cfg``,
``LUIGI_CONFIG_PATH``) still overrides it, key by key.
"""
from pathlib import Path

import luigi
from luigi.configuration import LuigiConfigParser

__all__ = ["PACKAGED_LUIGI_CFG", "PROJECT_LUIGI_CFG", "use_packaged_luigi_config", "use_project_luigi_config",
           "batchlib"]

PACKAGED_LUIGI_CFG = Path(__file__).resolve().with_name("luigi.cfg")
PROJECT_LUIGI_CFG = PACKAGED_LUIGI_CFG  # the name older code imports


def use_packaged_luigi_config():
    """Make Luigi read the packaged ``luigi.cfg`` before any other config file (lowest priority).

    Returns True if it was added now, False if it already was. Luigi's
    ``add_config_path`` appends (highest priority); inserting the path first
    and re-reading keeps ``/etc/luigi/luigi.cfg``, ``./luigi.cfg`` and
    ``LUIGI_CONFIG_PATH`` in charge of every key they set.
    """
    path = str(PACKAGED_LUIGI_CFG)
    paths = LuigiConfigParser._config_paths
    if path in paths:
        return False
    paths.insert(0, path)
    LuigiConfigParser.reload()
    return True


use_project_luigi_config = use_packaged_luigi_config


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
