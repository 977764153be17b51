"""The assay's settings: the configspec, and the parameter a task declares for a setting it reads.

``configspec.ini`` is the one place where a setting's type, range, default and help are written;
``configs/*.conf`` give values, and ``--<section>-<key>`` on the command line overrides them
(docs/architecture.md shows the whole path).
"""
from pathlib import Path

from luigi_tasks.config import spec_parameter

__all__ = ["SPEC_PATH", "setting"]

SPEC_PATH = Path(__file__).with_name("configspec.ini")


def setting(section, key, **kwargs):
    """Return the Luigi parameter ``<section>_<key>`` of configspec entry ``[section] key``.

    Examples
    --------
    >>> param = setting("infection", "threshold_factor")
    >>> type(param).__name__, param._default
    ('FloatParameter', 4.8)
    """
    return spec_parameter(SPEC_PATH, section, key, **kwargs)
