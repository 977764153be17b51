"""Luigi targets that are datasets inside h5/n5 containers.

A :class:`DatasetTarget` exists when its key is listed in the container's
provenance index with the expected fingerprint. The index is the last thing a
transaction writes, so a killed writer never leaves a target that looks done.
Reading the index of a container costs one file open; it is cached per process
and refreshed whenever the file changes (every commit renames a new file in).
A key that is an external link into a part file counts only while that file is there.
What a check of an h5 container found is also kept between runs
(:mod:`luigi_tasks.index_cache`) while the container and its part files are unchanged.
"""
import logging
import os

import luigi

from . import index_cache
from .io.atomic import external_link, linked_part_path
from .io.files import is_h5, is_n5, open_file
from .provenance import read_index, software_version

__all__ = ["DatasetTarget", "is_done", "outputs_done", "container_index", "container_signature", "clear_index_cache"]

logger = logging.getLogger("Workflow.targets")
# Process-wide: {container path: (signature, {key: Stamp})}; an entry counts only while the signature is unchanged.
_INDEX_CACHE = {}
_REPORTED_VERSIONS = set()


def container_signature(path):
    """Return ``(inode, mtime_ns, size)`` of a container (its ``attributes.json`` for n5), or None."""
    probe = os.path.join(path, "attributes.json") if is_n5(path) else path
    try:
        stat = os.stat(probe)
    except FileNotFoundError:
        return None
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


def container_index(path):
    """Return ``{key: Stamp}`` of the container at ``path`` (empty if missing or unreadable)."""
    path = str(path)
    signature = container_signature(path)
    if signature is None:
        return {}
    cached = _INDEX_CACHE.get(path)
    if cached is not None and cached[0] == signature:
        return cached[1]
    index = index_cache.lookup(path, signature) if is_h5(path) else None
    if index is None:
        index = _read_checked_index(path, signature)
    _INDEX_CACHE[path] = (signature, index)
    return index


def _read_checked_index(path, signature):
    """Read the index of the container at ``path`` and drop keys that are not there; keep it if all are (h5)."""
    parts, found = [], {}
    h5 = is_h5(path)
    try:
        with open_file(path, "r") as container:
            index = read_index(container)
            missing = sorted(key for key, stamp in index.items()
                             if not stamp.failed and not _present(container, path, key, parts, h5, found))
    except (OSError, ValueError, KeyError) as error:
        logger.warning("%s is unreadable (%s); its outputs will be recomputed", path, error)
        return {}
    if missing:  # listed as complete but gone (deleted by hand, or an older version's bug): not trusted
        logger.warning("%s lacks %s listed in its index; they will be recomputed", path, ", ".join(missing))
        return {key: stamp for key, stamp in index.items() if key not in missing}
    if h5:
        index_cache.remember(path, signature, index, parts)
    return index


def _present(container, path, key, parts, h5=None, found=None):
    """Return True if ``key`` is in the open container (for an external link: its part file is there too).

    The part file of a present external link is appended to ``parts``. ``found``
    (a dict kept for one container) remembers where each linked file was found,
    so the keys of one part cost one look for the file.
    """
    if key not in container:
        return False
    link = external_link(container, key) if (is_h5(path) if h5 is None else h5) else None
    if link is None:
        return True
    found = {} if found is None else found
    if link.filename not in found:
        found[link.filename] = linked_part_path(path, link)
    part = found[link.filename]
    parts += [str(part)] if part is not None else []
    return part is not None


def clear_index_cache():
    """Forget all cached container indexes, also those read from :mod:`luigi_tasks.index_cache` files."""
    _INDEX_CACHE.clear()
    index_cache.forget()


def is_done(stamp, fingerprint=None, accept_failed=False, not_before=0.0):
    """Return True if an output stamped ``stamp`` is complete: the one rule for "done".

    Used by :meth:`DatasetTarget.exists` (Luigi's completeness) and by the plate progress read from disk
    (:mod:`luigi_tasks.plan_progress`).

    Parameters
    ----------
    stamp : Stamp or None
        The key's entry of its container's provenance index (None: not written).
    fingerprint : str, optional
        Expected fingerprint of the producing task; another one means other parameters made it.
    accept_failed : bool
        Whether a failure record counts as complete (``ignore_failed_outputs``).
    not_before : float
        Outputs stamped before this time (seconds since the epoch) are stale (``force_recompute``).

    Examples
    --------
    >>> from luigi_tasks.provenance import Stamp
    >>> stamp = Stamp.now("abc")
    >>> is_done(stamp, "abc"), is_done(stamp, "other"), is_done(None), is_done(stamp, not_before=stamp.created + 1)
    (True, False, False, False)
    """
    if stamp is None or stamp.created < not_before:
        return False
    if fingerprint is not None and stamp.fingerprint != fingerprint:
        return False
    return accept_failed or not stamp.failed


class DatasetTarget(luigi.Target):
    """A dataset (or group, or table) ``key`` in the container at ``path``.

    Parameters
    ----------
    path : str or Path
        The container (``.h5``, ``.hdf5`` or ``.n5``).
    key : str
        The dataset or group inside it.
    fingerprint : str, optional
        Expected fingerprint of the producing task; a different one means the
        output was made with other parameters and is not complete.
    accept_failed : bool
        Whether a recorded failure counts as complete (``ignore_failed_outputs``).
    not_before : float
        Outputs stamped before this time (seconds since the epoch) are stale
        (``force_recompute``).
    """

    def __init__(self, path, key, fingerprint=None, accept_failed=False, not_before=0.0):
        self.path, self.key = str(path), key
        self.fingerprint, self.accept_failed, self.not_before = fingerprint, accept_failed, not_before

    def __repr__(self):
        return f"DatasetTarget({self.path}:{self.key})"

    def stamp(self):
        """Return the :class:`~luigi_tasks.provenance.Stamp` of this key, or None."""
        return container_index(self.path).get(self.key)

    def failed(self):
        """Return True if the key holds a failure record."""
        stamp = self.stamp()
        return stamp is not None and stamp.failed

    def exists(self):
        """Return True if the key is complete and was made with the expected parameters."""
        return _stamp_done(self, self.stamp(), self.fingerprint, self.accept_failed, self.not_before)


def outputs_done(path, keys, fingerprint=None, accept_failed=False, not_before=0.0):
    """Return True if every one of ``keys`` of the container at ``path`` is complete: one look at its index.

    The same answer as :meth:`DatasetTarget.exists` of each key's target
    (parameters as there), without building the targets.
    """
    index = container_index(path)
    return all(_stamp_done((path, key), index.get(key), fingerprint, accept_failed, not_before) for key in keys)


def _stamp_done(what, stamp, fingerprint, accept_failed, not_before):
    """:func:`is_done`, logging a changed fingerprint and reporting outputs of another version (once)."""
    if not is_done(stamp, fingerprint, accept_failed, not_before):
        if stamp is not None and fingerprint is not None and stamp.fingerprint != fingerprint:
            logger.debug("%s: parameters changed, will be recomputed", what)
        return False
    if stamp.version != software_version() and stamp.version not in _REPORTED_VERSIONS:
        _REPORTED_VERSIONS.add(stamp.version)
        logger.info("reusing outputs made by version %s (now %s)", stamp.version, software_version())
    return True


class H5DatasetTarget(DatasetTarget):
    """A :class:`DatasetTarget` in an HDF5 container (``.h5``, ``.hdf5``)."""

    def __init__(self, path, key, **kwargs):
        if not is_h5(path):
            raise ValueError(f"{path}: not an h5 container")
        super().__init__(path, key, **kwargs)


class N5DatasetTarget(DatasetTarget):
    """A :class:`DatasetTarget` in an N5 container (``.n5``)."""

    def __init__(self, path, key, **kwargs):
        if not is_n5(path):
            raise ValueError(f"{path}: not an n5 container")
        super().__init__(path, key, **kwargs)


def dataset_target(path, key, **kwargs):
    """Return the h5 or n5 dataset target for ``path``."""
    return (N5DatasetTarget if is_n5(path) else H5DatasetTarget)(path, key, **kwargs)
