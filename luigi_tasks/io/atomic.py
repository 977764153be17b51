"""Atomic writes: a kill at any moment leaves the old file or the new one.

HDF5 files can be corrupted by a killed writer, so an h5 container is never
written in place: :func:`container_transaction` copies it to a temporary file
beside it, lets the caller write there and renames the copy over the original
(a rename is atomic on POSIX file systems). A per-container lock file keeps two
processes, on this host or another sharing the file system, from writing the
same container at once. N5 containers keep every dataset in its own files;
they are written in place and protected by completion stamps written last.

An image job does not copy the whole container: :func:`step_transaction`
lets it write a new, empty *part* file. Outputs of at least
:data:`PART_MIN_BYTES` (image pyramids) stay there: the part is flushed and
renamed into place as ``.<image>.<Job>-<id>.h5part`` beside the container, and
the container gets an HDF5 external link per output key into it. Smaller
outputs (tables, small images) are copied into the container. Either way the
container itself, which then holds links, small outputs and the provenance
index, is committed as above (copy, index written last, rename), so it stays
small and cheap to copy. Parts are written once and never changed; a part
that no committed container links to any more (replaced, or left by a killed
commit) is deleted by the next transaction of that image.
"""
import contextlib
import fcntl
import logging
import os
import re
import shutil
import time
import uuid
from pathlib import Path

from .files import is_h5

__all__ = ["file_lock", "container_transaction", "atomic_write", "temporary_name", "LockTimeout", "BackgroundCommits",
           "remove_stale_temporaries", "link_or_copy", "step_transaction", "StepTransaction", "part_path",
           "linked_part_exists", "linked_part_path", "PART_MIN_BYTES", "external_link"]

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


# ---------------------------------------------------------------- image steps: a part file per step

#: A step whose outputs take fewer bytes than this is copied into the container (as small as they are,
#: so its copy costs little); larger outputs stay in a part file the container links to.
PART_MIN_BYTES = 64 << 10
_PART_ID = re.compile(r"-[0-9a-f]{12}$")


PART_SUFFIX = ".h5part"
"""Parts are HDF5 files, but not ``*.h5``: the plateViewer takes every ``*.h5`` of a folder for an image."""


def part_path(container, job):
    """Return a new part name of ``container`` for ``job``: ``.<image>.<job>-<12 hex>.h5part`` beside it."""
    container = Path(container)
    return container.parent / f".{container.stem}.{job}-{uuid.uuid4().hex[:12]}{PART_SUFFIX}"


def _is_part_of(name, container):
    """Return True if ``name`` is the file name of a (committed) part of ``container``."""
    prefix, suffix = f".{container.stem}.", PART_SUFFIX
    if not (name.startswith(prefix) and name.endswith(suffix)) or TMP_MARK in name:
        return False
    job = name[len(prefix):-len(suffix)]
    return "." not in job and bool(_PART_ID.search(job))


def linked_part_exists(container, link):
    """Return True if HDF5 finds the file of external ``link`` from ``container``.

    The link names the part by its absolute path; where that is missing (the
    output folder was moved or copied) HDF5 opens the part of that name beside
    the container, as checked here.
    """
    return linked_part_path(container, link) is not None


def linked_part_path(container, link):
    """Return the part file HDF5 opens for external ``link`` of ``container``, or None (:func:`linked_part_exists`)."""
    name = Path(link.filename)
    for path in (name, Path(container).parent / name.name):
        if path.exists():
            return path
    return None


def external_link(container, key):
    """Return ``container.get(key, getlink=True)`` if ``key`` is an external link, else None.

    The same lookup as h5py's, without testing that ``key`` resolves (for an
    external link that would open its file).
    """
    from h5py import h5l

    name = container._e(key)
    if container.id.links.get_info(name, lapl=container._lapl).type != h5l.TYPE_EXTERNAL:
        return None
    return _external_link_at(container, name)


def _external_link_at(container, name):
    """Return the ``h5py.ExternalLink`` at the low-level ``name`` of an external link."""
    import h5py
    from h5py._hl.compat import filename_decode

    filename, target = container.id.links.get_val(name, lapl=container._lapl)
    return h5py.ExternalLink(filename_decode(filename), container._d(target))


def _external_links(container):
    """Return ``{key: h5py.ExternalLink}`` of every external link in an open h5 container.

    One pass over the links with their types (h5py's low-level visit): only
    external links are looked up, as ``container.get(key, getlink=True)``
    would return them (5-6x less CPU than building a link object per key).
    """
    from h5py import h5l

    links = {}

    def visit(name, info):
        if info.type == h5l.TYPE_EXTERNAL:
            links[container._d(name)] = _external_link_at(container, name)

    container.id.links.visit(visit, info=True)
    return links


def _link_units(part, declared):
    """Keys of ``part`` to link from the container: the declared outputs and whatever else the job wrote.

    Besides the declared keys, a dataset, or a group holding datasets or attributes
    (an image pyramid, a table), is linked as one unit; groups that only hold such
    units (``tables/``, ``histograms/``) are shared with other steps and are not.
    """
    import h5py

    keys = []

    def walk(group, prefix):
        for name in group:
            key = prefix + name
            if key in declared:
                keys.append(key)
                continue
            node = group.get(name)
            below = any(d.startswith(key + "/") for d in declared)
            if isinstance(node, h5py.Group) and (below or not (len(node.attrs) or any(
                    isinstance(child, h5py.Dataset) for child in node.values()))):
                walk(node, key + "/")
            elif node is not None:
                keys.append(key)

    walk(part, "")
    return keys


def _replace_link(container, key, target):
    """Make ``key`` of the open ``container`` an external link to ``target`` (``(file, path)``), or remove it.

    ``target`` may also be an open h5py object, copied to ``key`` with its attributes.
    """
    import h5py

    parts = key.split("/")
    for depth in range(1, len(parts)):  # writing below a link would write into another (committed) part
        above = "/".join(parts[:depth])
        if not isinstance(container.get(above, getlink=True), (h5py.HardLink, type(None))):
            del container[above]
    if container.get(key, getlink=True) is not None:
        del container[key]
    if target is None:
        return
    parent = container.require_group("/".join(parts[:-1]) or "/")
    if isinstance(target, tuple):
        container[key] = h5py.ExternalLink(*target)
    else:
        target.file.copy(target, parent, name=parts[-1])


class StepTransaction:
    """One image step: a temporary part to write (``part``) and the stamps to record (:meth:`record`).

    Made by :func:`step_transaction`; the caller writes its outputs into
    ``part`` (a new, empty h5 file) and records a stamp per output key. A
    failed stamp removes the key's link instead (a failure record).
    """

    def __init__(self, container, job):
        self.container, self.job = Path(container), job
        self.in_place = not is_h5(container)  # n5: datasets are files of their own, written in place
        self.part = self.container if self.in_place else temporary_name(container)
        self.stamps = {}
        self.cancelled = False

    def record(self, stamps):
        """Record ``{key: Stamp}`` in the container's index when the transaction commits."""
        self.stamps.update(stamps)

    def discard_part(self, keys):
        """Forget what was written for ``keys`` (they get failure records instead)."""
        if not self.in_place:
            _remove(self.part)
            return
        from .files import open_file

        with open_file(self.container, "a") as container:
            for key in keys:
                if key in container:
                    del container[key]

    def cancel(self):
        """Commit nothing."""
        self.cancelled = True

    def commit(self):
        """Link the part's keys and record the stamps; the container is replaced atomically."""
        from ..provenance import write_stamps
        from .files import open_file

        if self.cancelled or not (self.stamps or (not self.in_place and self.part.exists())):
            return
        if self.in_place:
            with open_file(self.container, "a") as container:
                write_stamps(container, self.stamps)
            return
        import h5py

        final = inline = None
        if self.part.exists() and self.part.stat().st_size < PART_MIN_BYTES:
            inline = self.part
        elif self.part.exists():
            _fsync_file(self.part)
            final = part_path(self.container, self.job)
            os.replace(self.part, final)
        tmp = temporary_name(self.container)
        try:
            if self.container.exists():
                shutil.copyfile(self.container, tmp)
            with h5py.File(tmp, "a") as container:
                before = {Path(link.filename).name for link in _external_links(container).values()}
                failed = [key for key, stamp in self.stamps.items() if stamp.failed]
                declared = {key for key in self.stamps if key not in failed}
                if final is not None:
                    with h5py.File(final, "r") as part:
                        keys = _link_units(part, declared)
                    target = str(final.resolve())
                    for key in keys:
                        _replace_link(container, key, (target, "/" + key))
                if inline is not None:
                    with h5py.File(inline, "r") as part:
                        for key in _link_units(part, declared):
                            _replace_link(container, key, part[key])
                for key in failed:
                    _replace_link(container, key, None)
                write_stamps(container, self.stamps)
                after = {Path(link.filename).name for link in _external_links(container).values()}
            _commit(tmp, self.container)
        finally:
            _remove(tmp)
        for name in before - after:  # parts no committed container links to any more
            if _is_part_of(name, self.container):
                (self.container.parent / name).unlink(missing_ok=True)


def _tidy_image(container):
    """Before a step of ``container`` (its lock held): remove what killed writers left.

    One listing of the folder finds the temporaries of the container and its
    parts; temporaries go, an unreadable container is moved aside
    (:func:`_quarantine_if_unreadable`), and parts it does not link to go.
    The folder is listed here, with the lock held, so the leftovers of a writer
    killed at any time before are found.
    """
    import h5py

    prefix, temporary = f".{container.stem}.", f".{container.stem}{TMP_MARK}"
    names = [entry.name for entry in os.scandir(container.parent) if entry.name.startswith(prefix)]
    for name in names:
        if name.startswith(temporary) and name.endswith(container.suffix):
            _remove(container.parent / name)
    parts = [name for name in names if _is_part_of(name, container)]
    linked = set()
    if container.exists():
        try:
            with h5py.File(container, "r") as opened:
                linked = {Path(link.filename).name for link in _external_links(opened).values()} if parts else set()
        except OSError:
            _quarantine_if_unreadable(container)
    for name in parts:
        if name not in linked:
            (container.parent / name).unlink(missing_ok=True)


def _commit_step_and_unlock(step, lock):
    def finish():
        with lock:
            try:
                step.commit()
            finally:
                if not step.in_place:
                    _remove(step.part)

    return finish


@contextlib.contextmanager
def step_transaction(path, job, lock_timeout=600.0, commits=None):
    """Yield a :class:`StepTransaction` for ``job`` on the container ``path``; commit it if the block succeeds.

    The container's lock is held from the start to the end of the commit.
    Whatever a job writes into ``step.part`` appears in the container
    atomically or not at all: the part is flushed and renamed first, the
    container (links and index) is replaced after it. With ``commits`` (a
    :class:`BackgroundCommits`) the commit and unlock happen on its thread.

    Examples
    --------
    >>> import tempfile, h5py
    >>> from luigi_tasks.provenance import Stamp
    >>> path = Path(tempfile.mkdtemp()) / "image.h5"
    >>> with step_transaction(path, "Smooth") as step:
    ...     with h5py.File(step.part, "a") as f:
    ...         f["x"] = 1
    ...     step.record({"x": Stamp.now("abc")})
    >>> with h5py.File(path, "r") as f:
    ...     int(f["x"][()])
    1
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as lock:
        lock.enter_context(file_lock(path, timeout=lock_timeout))
        if is_h5(path):
            _tidy_image(path)
        step = StepTransaction(path, job)
        if not step.in_place:
            import h5py

            h5py.File(step.part, "w").close()  # the transaction's file exists from its start, as with a copy
        handed_over = False
        try:
            yield step
            if commits is not None and not step.cancelled:
                commits.submit(path, _commit_step_and_unlock(step, lock.pop_all()))
                handed_over = True
            else:
                step.commit()
        finally:
            if not handed_over and not step.in_place:
                _remove(step.part)
