"""Atomic writes: a kill at any moment leaves the old file or the new one.

HDF5 files can be corrupted by a killed writer, so an h5 container is never
written in place: :func:`container_transaction` copies it to a temporary file
beside it, lets the caller write there and renames the copy over the original
(a rename is atomic on POSIX file systems). A per-container lock file keeps two
processes, on this host or another sharing the file system, from writing the
same container at once. N5 containers keep every dataset in its own files;
they are written in place and protected by completion stamps written last.
"""
import contextlib
import fcntl
import logging
import os
import shutil
import time
import uuid
from pathlib import Path

from .files import is_h5

__all__ = ["file_lock", "container_transaction", "atomic_write", "temporary_name", "LockTimeout", "BackgroundCommits",
           "remove_stale_temporaries", "link_or_copy"]

TMP_MARK = ".tmp-"


class LockTimeout(TimeoutError):
    """Raised when a container lock could not be taken in time."""


def _lock_path(path):
    path = Path(path)
    return path.parent / f".{path.name}.lock"


def _same_file(handle, path):
    """Return True if the open ``handle`` is still the file at ``path`` (not removed or replaced meanwhile)."""
    try:
        current = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(handle.fileno())
    return (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino)


@contextlib.contextmanager
def file_lock(path, timeout=600.0, poll=0.05):
    """Hold an exclusive lock for ``path`` (a ``.<name>.lock`` file beside it, removed on release).

    The holder deletes the lock file before unlocking it, so no empty lock
    files stay behind. That is safe because every taker checks, once it holds
    the ``flock``, that the file it locked is still the one at the lock path;
    if a holder removed it meanwhile (or another process created a new one),
    it closes it and starts again. So two processes never both hold a lock
    of the same path, one on the removed file and one on a new file.

    Raises
    ------
    LockTimeout
        If another process holds the lock for longer than ``timeout`` seconds.
    """
    lock_path = _lock_path(path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    while True:
        handle = open(lock_path, "a")
        try:
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise LockTimeout(f"{path}: still locked by another process after {timeout:.0f} s") from None
                    time.sleep(poll)
        except BaseException:
            handle.close()
            raise
        if _same_file(handle, lock_path):
            break
        handle.close()  # its holder removed it while we waited: lock the current file instead
    try:
        yield
    finally:
        try:
            lock_path.unlink(missing_ok=True)  # still holding the flock: no one can hold this file now
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()


def temporary_name(path):
    """Return a unique temporary name beside ``path`` with the same extension."""
    path = Path(path)
    return path.parent / f".{path.stem}{TMP_MARK}{uuid.uuid4().hex[:12]}{path.suffix}"


def remove_stale_temporaries(path):
    """Delete temporaries of ``path`` that a killed writer left (hold its lock when calling)."""
    path = Path(path)
    for stale in path.parent.glob(f".{path.stem}{TMP_MARK}*{path.suffix}"):
        _remove(stale)


def _remove(path):
    path = Path(path)
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _fsync_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder):
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def link_or_copy(path, alias):
    """Make ``alias`` another name of ``path``, replacing what it was atomically.

    A hard link (no extra disk space) where the file system allows one, else
    a copy; either is written under a temporary name and renamed over
    ``alias``, so readers of ``alias`` see the old file or the new one.
    """
    alias = Path(alias)
    remove_stale_temporaries(alias)
    tmp = temporary_name(alias)
    try:
        os.link(path, tmp)
    except OSError:  # no hard links here (or across file systems): copy
        shutil.copyfile(path, tmp)
        _fsync_file(tmp)
    os.replace(tmp, alias)


def _commit(tmp, path):
    _fsync_file(tmp)
    os.replace(tmp, path)
    _fsync_dir(Path(path).parent)


def _commit_with_aliases(tmp, path, also_as):
    # the other names first, the main name last: a kill in between leaves the main name uncommitted, so the
    # job is not complete and its rerun makes both names again
    for alias in also_as:
        link_or_copy(tmp, alias)
    _commit(tmp, path)


def _quarantine_if_unreadable(path):
    """Move an unreadable h5 file aside (``.corrupt-<time>``) so it is rebuilt, not trusted or lost."""
    if not path.exists():
        return
    import h5py

    try:
        with h5py.File(path, "r"):
            return
    except OSError:
        aside = path.with_name(f"{path.stem}.corrupt-{int(time.time())}{path.suffix}")
        os.replace(path, aside)
        logging.getLogger("Workflow.io").warning("%s is unreadable; moved to %s and rebuilt", path, aside)


class BackgroundCommits:
    """Finish h5 container transactions on one background thread, in order.

    Flushing a committed copy to disk (``fsync``) mostly waits for the
    device; handed over to this thread, it overlaps the computation of the
    next image.  The container stays locked until its commit is done, so
    other processes never see it half-way, and a kill leaves the old
    container or the new one, as with an inline commit.
    """

    def __init__(self):
        from concurrent.futures import ThreadPoolExecutor

        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batchlib-commit")
        self._pending = []

    def submit(self, path, function):
        """Run ``function()`` (the commit of ``path``) after the earlier ones."""
        self._pending.append((path, self._executor.submit(function)))

    def wait(self):
        """Wait for all submitted commits; return ``{path: exception}`` of those that failed."""
        failures = {}
        for path, future in self._pending:
            try:
                future.result()
            except Exception as error:  # reported to the caller, which fails the task
                failures[path] = error
        self._pending = []
        return failures

    def close(self):
        """Wait for the pending commits and stop the thread; return the failures."""
        failures = self.wait()
        self._executor.shutdown()
        return failures


def _commit_and_unlock(tmp, path, lock, also_as=()):
    def finish():
        with lock:
            try:
                _commit_with_aliases(tmp, path, also_as)
            finally:
                _remove(tmp)

    return finish


@contextlib.contextmanager
def container_transaction(path, lock_timeout=600.0, commits=None, also_as=()):
    """Yield a path to write; on success it replaces ``path`` atomically.

    For h5 the yielded path is a copy of ``path`` (or a new file); it is
    renamed over ``path`` when the block ends without an exception and deleted
    otherwise. Temporary copies left by a killed process are removed the next
    time the lock is taken. For n5 the container itself is yielded.
    With ``commits`` (a :class:`BackgroundCommits`) the flush, rename and
    unlock happen on its thread; call its ``wait`` before relying on ``path``.
    ``also_as`` names other paths that must always hold the committed file
    (hard links, or atomic copies where links fail); they are replaced in the
    same transaction, just before ``path`` (the commit point), and created
    when missing.

    Examples
    --------
    >>> import tempfile, h5py
    >>> path = os.path.join(tempfile.mkdtemp(), "image.h5")
    >>> with container_transaction(path) as tmp:
    ...     with h5py.File(tmp, "a") as f:
    ...         f["x"] = 1
    >>> with h5py.File(path, "r") as f:
    ...     int(f["x"][()])
    1
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as lock:
        lock.enter_context(file_lock(path, timeout=lock_timeout))
        if not is_h5(path):
            yield path
            return
        remove_stale_temporaries(path)
        tmp = temporary_name(path)
        _quarantine_if_unreadable(path)
        for alias in also_as if path.exists() else ():
            if not Path(alias).exists():  # e.g. outputs of a version that did not write it
                link_or_copy(path, alias)
        if path.exists():
            shutil.copyfile(path, tmp)
        handed_over = False
        try:
            yield tmp
            if tmp.exists() and commits is not None:
                commits.submit(path, _commit_and_unlock(tmp, path, lock.pop_all(), also_as))
                handed_over = True
            elif tmp.exists():
                _commit_with_aliases(tmp, path, also_as)
        finally:
            if not handed_over:
                _remove(tmp)


@contextlib.contextmanager
def atomic_write(path):
    """Yield a temporary path; rename it to ``path`` if the block succeeds.

    For plain files (CSV, PNG, HTML): readers see the old file or the new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        if tmp.is_dir():
            _remove(path)
            os.replace(tmp, path)
        else:
            _commit(tmp, path)
    finally:
        if tmp.exists():
            _remove(tmp)
