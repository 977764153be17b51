"""Checked container indexes kept between runs: ``<folder>/batchlib/container_indexes.json``.

Reading the index of an h5 container means opening it and resolving every
output key, which for an external link opens its part file too: ~2 ms per
image, 1.9 s of a no-op rerun of an 864-image plate. What that check found is
kept here per container, with the signature (inode, mtime, size) of the
container and of every part file its keys live in. A later run takes an entry
only while all of those files are unchanged: a commit renames a new container
in (new inode), and a part file that was deleted or replaced no longer matches,
so the container is read again. Only h5 containers whose keys were all found are
kept (an n5 dataset can disappear without its container's signature changing).

The file is only a cache: a missing, damaged or stale file, or one that
another process replaced meanwhile, costs a full read, never a wrong answer.
:func:`save` writes it atomically when a run has checked containers; a
folder that cannot be written keeps no cache.
"""
import json
import logging
import os
from pathlib import Path

from .io.atomic import atomic_write
from .provenance import Stamp
from .status import status_dir

__all__ = ["CACHE_FILE", "file_signature", "lookup", "remember", "save", "forget"]

CACHE_FILE = "container_indexes.json"
_FORMAT = 1
logger = logging.getLogger("Workflow.targets")
# Process-wide: {folder: {"entries": {container name: entry}, "dirty": bool}}, read once per folder and process.
_FOLDERS = {}


def file_signature(path):
    """Return ``[inode, mtime_ns, size]`` of a file, or None if it is missing."""
    try:
        stat = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return [stat.st_ino, stat.st_mtime_ns, stat.st_size]


def _folder(folder):
    state = _FOLDERS.get(folder)
    if state is None:
        try:
            record = json.loads((status_dir(folder) / CACHE_FILE).read_text())
            entries = record["containers"] if record.get("format") == _FORMAT else {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            entries = {}
        state = _FOLDERS[folder] = {"entries": entries if isinstance(entries, dict) else {}, "dirty": False}
    return state


def lookup(path, signature):
    """Return the kept ``{key: Stamp}`` of the container at ``path``, or None if it is not kept or anything changed.

    Parameters
    ----------
    path : str
        The container.
    signature : sequence
        Its signature now (:func:`~luigi_tasks.targets.container_signature`).
    """
    folder, name = os.path.split(path)
    entry = _folder(folder)["entries"].get(name)
    try:
        if entry is None or entry["signature"] != list(signature):
            return None
        if any(file_signature(part) != part_signature for part, part_signature in entry["parts"]):
            return None
        return {key: Stamp(**fields) for key, fields in entry["index"].items()}
    except (KeyError, TypeError, ValueError):  # an entry of another shape: read the container
        return None


def remember(path, signature, index, parts):
    """Keep the checked ``index`` of the container at ``path`` with its signature and its part files' paths."""
    folder, name = os.path.split(path)
    parts = [[part, file_signature(part)] for part in sorted(set(parts))]
    if any(part_signature is None for _, part_signature in parts):
        return
    state = _folder(folder)
    state["entries"][name] = {"signature": list(signature), "parts": parts,
                              "index": {key: vars(stamp) for key, stamp in index.items()}}
    state["dirty"] = True


def save(folder):
    """Write the kept indexes of ``folder`` if this process checked containers there; never raises.

    Entries of containers that are gone are dropped.
    """
    folder = os.fspath(folder)
    state = _FOLDERS.get(folder)
    if state is None or not state["dirty"]:
        return
    try:
        present = set(os.listdir(folder))
        entries = {name: entry for name, entry in state["entries"].items() if name in present}
        with atomic_write(status_dir(folder) / CACHE_FILE) as tmp:
            Path(tmp).write_text(json.dumps({"format": _FORMAT, "containers": entries}))
        state["entries"], state["dirty"] = entries, False
    except OSError as error:
        logger.debug("container index cache of %s not written: %s", folder, error)


def forget():
    """Forget what this process read or kept (the files stay)."""
    _FOLDERS.clear()
