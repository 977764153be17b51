"""The run options, declared once: every task and command that takes one declares it with these.

They change how a run treats a plate (which file holds the settings, whether GPU jobs use a GPU, what
happens to invalid inputs and failed outputs), never what a computed output holds, so they are not part of
any fingerprint (``significant=False``; ``config`` is significant only for the scheduler's task id: the
values it holds reach the jobs as their own parameters).
"""
import luigi

__all__ = ["config_file", "gpu", "ignore_invalid_inputs", "ignore_failed_outputs"]


def config_file():
    """``--config FILE``: the configobj file; settings it omits take the configspec's defaults."""
    return luigi.OptionalParameter(default=None, description="configobj file; defaults come from the configspec")


def gpu():
    """``--gpu``: let GPU jobs use a GPU (otherwise they see none)."""
    return luigi.BoolParameter(default=False, significant=False, description="Let GPU jobs use a GPU")


def ignore_invalid_inputs():
    """``--ignore-invalid-inputs``: skip invalid raw files instead of refusing to start."""
    return luigi.BoolParameter(default=False, significant=False,
                               description="Skip invalid raw files instead of refusing to start")


def ignore_failed_outputs():
    """``--ignore-failed-outputs``: let plate tables use the images that succeeded."""
    return luigi.BoolParameter(default=False, significant=False,
                               description="Let plate tables use the images that succeeded")
