"""The ``Workflow`` logger hierarchy.

Every module and job logs to a child of ``Workflow`` (``Workflow.<Job>``);
``LOGLEVEL`` in the environment (``DEBUG``, ``INFO``, ...) sets the level and a
file handler writes everything to ``<output>/batchlib/<Workflow>.log``.
"""
import logging
import os
from pathlib import Path

__all__ = ["ROOT_LOGGER", "get_logger", "add_file_handler", "log_level"]

ROOT_LOGGER = "Workflow"
_FORMAT = "%(asctime)s [%(levelname)s] %(name)s (pid %(process)d): %(message)s"


def log_level():
    """Return the level named by ``LOGLEVEL`` (INFO when unset).

    Raises
    ------
    ValueError
        If ``LOGLEVEL`` names no logging level.
    """
    name = os.environ.get("LOGLEVEL", "INFO").upper()
    level = logging.getLevelName(name)
    if not isinstance(level, int):
        raise ValueError(f"LOGLEVEL={name!r} is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    return level


def get_logger(name=None):
    """Return ``Workflow`` or its child ``Workflow.<name>``, with the level from ``LOGLEVEL``."""
    root = logging.getLogger(ROOT_LOGGER)
    root.setLevel(log_level())
    return root if not name else root.getChild(name)


def add_file_handler(logger, work_dir, workflow_name):
    """Write ``logger``'s records to ``<work_dir>/batchlib/<workflow_name>.log``.

    Records of level ``LOGLEVEL`` and above are written; adding the same file
    twice is a no-op. Returns the log file path.
    """
    path = Path(work_dir) / "batchlib" / f"{workflow_name}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    for handler in logger.handlers:
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename) == path.resolve():
            return path
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.setLevel(log_level())
    logger.addHandler(handler)
    return path
