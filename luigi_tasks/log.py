"""The ``Workflow`` logger hierarchy.

Every module and job logs to a child of ``Workflow`` (``Workflow.<Job>``);
``LOGLEVEL`` in the environment (``DEBUG``, ``INFO``, ...) sets the level and a
file handler writes everything to ``<output>/batchlib/<Workflow>.log``.
"""
import contextlib
import io
import logging
import os
import sys
import tempfile
from pathlib import Path

__all__ = ["ROOT_LOGGER", "get_logger", "add_file_handler", "log_level", "native_output_to_log"]

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
    handler.batchlib_log = True  # the terminal names this file for tracebacks (luigi_tasks.console)
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.setLevel(log_level())
    logger.addHandler(handler)
    return path


@contextlib.contextmanager
def native_output_to_log(logger, level=logging.INFO):
    """Send what the block writes to file descriptors 1 and 2 to ``logger``, one record per line.

    Native libraries (TensorFlow's C++ and absl notices, oneDNN) and ``print``
    calls of other packages (StarDist's "Loading thresholds ...") write to the
    process's stdout and stderr directly; inside this block those lines become
    log records (the log file keeps them, the terminal does not show them).
    Anything the process itself writes there meanwhile is captured too, so
    keep the block short (an import, a model load).
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    fds = (1, 2)  # what native code writes to, whatever sys.stdout and sys.stderr are now
    try:
        saved = [os.dup(fd) for fd in fds]
    except OSError:  # no such descriptors (a daemon): nothing to redirect
        yield
        return
    printed = io.StringIO()
    with tempfile.TemporaryFile() as capture:
        try:
            for fd in fds:
                os.dup2(capture.fileno(), fd)
            with contextlib.redirect_stdout(printed):
                yield
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            for fd, copy in zip(fds, saved):
                os.dup2(copy, fd)
                os.close(copy)
            capture.seek(0)
            text = capture.read().decode(errors="replace") + printed.getvalue()
            for line in text.splitlines():
                if line.strip():
                    logger.log(level, "%s", line.rstrip())
