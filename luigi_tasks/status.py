"""Status files and the run lock in ``<output>/batchlib/``.

``<Job>.status`` is JSON with the job's ``state``, its ``invalid_inputs`` and
``failed_outputs`` (image name -> reason); several worker processes update it
under a lock. ``<Workflow>.lock`` stops two runs on one output folder when no
central scheduler is used: a ``flock`` held for the whole run, which the kernel
releases when the process ends, however it ends.
"""
import contextlib
import datetime
import fcntl
import json
import os
import resource
import socket
import time
from pathlib import Path

from .errors import WorkflowLockedError
from .io.atomic import _same_file, atomic_write, file_lock, remove_stale_temporaries

__all__ = [
    "UPSTREAM_FAILED", "root_cause", "status_dir", "status_path", "status_names", "read_status", "update_status",
    "record_timing", "pid_alive", "RunLock",
]

STATUS_DIR = "batchlib"
UPSTREAM_FAILED = "upstream failed: "


def root_cause(reason):
    """Return the failure that ``reason`` passes on (``"upstream failed: "`` prefixes removed).

    Examples
    --------
    >>> root_cause("upstream failed: Preprocess: ValueError: bad data")
    'Preprocess: ValueError: bad data'
    """
    while reason.startswith(UPSTREAM_FAILED):
        reason = reason[len(UPSTREAM_FAILED):]
    return reason


def status_dir(output_dir):
    """Return ``<output_dir>/batchlib``."""
    return Path(output_dir) / STATUS_DIR


def status_path(output_dir, name):
    """Return the status file of job or workflow ``name``."""
    return status_dir(output_dir) / f"{name}.status"


def status_names(output_dir):
    """Names of the jobs and workflows that have a status file, sorted.

    Temporaries a killed writer left (``.<name>.tmp-*.status``) are not status files.
    """
    paths = status_dir(output_dir).glob("*.status")
    return sorted(path.stem for path in paths if not path.name.startswith("."))


def _write_status(path, status):
    """Replace a status file atomically; the caller holds its lock."""
    remove_stale_temporaries(path)
    with atomic_write(path) as tmp:
        Path(tmp).write_text(json.dumps(status, indent=2, default=str))


def read_status(output_dir, name):
    """Return the status dict of ``name`` (empty if there is none yet)."""
    path = status_path(output_dir, name)
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def _now():
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def update_status(output_dir, name, state=None, failed=None, succeeded=(), invalid=None, **fields):
    """Merge changes into the status of ``name`` and return the new status.

    Parameters
    ----------
    state : str, optional
        New state (``running``, ``processed``, ``failed``, ``finished``, ``refused``);
        ``processed`` reads ``failed`` while the job itself failed on an image (a
        reason not starting with ``"upstream failed: "``).
    failed : dict, optional
        ``{image: reason}`` to add to ``failed_outputs``; images left out because an
        upstream job failed on them have reasons ``"upstream failed: <root cause>"``.
    succeeded : iterable of str
        Images to remove from ``failed_outputs``.
    invalid : dict, optional
        Replaces ``invalid_inputs``.
    **fields
        Other JSON values to store; a value of None removes the field.
    """
    path = status_path(output_dir, name)
    with file_lock(path):
        status = read_status(output_dir, name)
        status.setdefault("state", "pending")
        status.setdefault("invalid_inputs", {})
        status.setdefault("failed_outputs", {})
        failed_outputs = {k: v for k, v in status["failed_outputs"].items() if k not in set(succeeded)}
        failed_outputs.update(failed or {})
        status["failed_outputs"] = dict(sorted(failed_outputs.items()))
        if invalid is not None:
            status["invalid_inputs"] = dict(sorted(invalid.items()))
        if state is not None:
            own = [reason for reason in failed_outputs.values() if not reason.startswith(UPSTREAM_FAILED)]
            status["state"] = "failed" if state == "processed" and own else state
        status.update({key: value for key, value in fields.items() if value is not None}, updated=_now())
        for key in [key for key, value in fields.items() if value is None]:
            status.pop(key, None)
        _write_status(path, status)
    return status


def record_timing(output_dir, name, seconds, n_images, job_seconds=None):
    """Add ``seconds`` of job code time spent on ``n_images`` images to the status of ``name``.

    ``seconds`` is the time of the task's run (job code, container copies,
    commits and stamps); ``job_seconds``, if given, the part spent inside the
    job's own ``run``/``run_plate`` (the rest is framework overhead).
    ``peak_rss_mb`` keeps the largest peak resident memory of the processes
    that ran the job.
    """
    path = status_path(output_dir, name)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    with file_lock(path):
        status = read_status(output_dir, name)
        status["seconds"] = round(status.get("seconds", 0.0) + seconds, 3)
        if job_seconds is not None:
            status["job_seconds"] = round(status.get("job_seconds", 0.0) + job_seconds, 3)
        status["peak_rss_mb"] = round(max(status.get("peak_rss_mb", 0.0), peak), 1)
        status["images_processed"] = status.get("images_processed", 0) + n_images
        _write_status(path, status)


def pid_alive(pid):
    """Return True if process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """Exclusive lock of an output folder for runs without a central scheduler: a ``flock`` held for the run.

    The lock is an ``fcntl.flock`` on ``<output_dir>/batchlib/<name>.lock``, held from :meth:`acquire` to
    :meth:`release` or the end of the process: the kernel drops the ``flock`` of a process that dies (``kill
    -9`` included), so a dead run never blocks the next one and there is nothing stale to recover. The file
    holds the holder's host, pid and start time, for the message of a refused run. :meth:`release` deletes it
    before unlocking, as :func:`~luigi_tasks.io.file_lock` does: a taker checks, once it holds the ``flock``,
    that the file it locked is still the one at the lock path. Child processes forked by Luigi's workers do
    not keep the lock (see :func:`_drop_inherited_run_locks`).

    Parameters
    ----------
    output_dir : str or Path
    name : str
        Workflow name; the lock file is ``<output_dir>/batchlib/<name>.lock``.
    """

    def __init__(self, output_dir, name):
        self.path = status_dir(output_dir) / f"{name}.lock"
        self.owner = {"host": socket.gethostname(), "pid": os.getpid(), "started": _now()}
        self._handle = None

    def holder(self):
        """Return the JSON record of the current (or last) holder, or None."""
        try:
            return json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def _try_acquire(self, logger):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            handle = open(self.path, "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                return False
            if _same_file(handle, self.path):
                break
            handle.close()  # its holder removed it while we waited: lock the current file instead
        handle.seek(0)
        left = handle.read().strip()
        if left and logger is not None:  # a run that ended without release(): killed, its flock dropped
            logger.warning("taking the run lock %s left by %s, a run that ended without releasing it", self.path, left)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(self.owner))
        handle.flush()
        self._handle = handle
        _HELD_RUN_LOCKS.add(handle)
        return True

    def acquire(self, wait=False, poll=0.5, logger=None):
        """Take the lock; wait for it if ``wait``, else raise :class:`WorkflowLockedError`."""
        while not self._try_acquire(logger):
            if not wait:
                holder = self.holder() or {}
                raise WorkflowLockedError(
                    f"{self.path}: another run (host {holder.get('host', '?')}, pid {holder.get('pid', '?')}, "
                    f"started {holder.get('started', '?')}) is processing this output folder. Wait for it to "
                    "finish, rerun with --wait-for-lock, or use the central scheduler (luigid) to let "
                    "several runs share the work."
                )
            time.sleep(poll)
        return self

    def release(self):
        """Delete the lock file and drop the ``flock``, if this object holds it."""
        handle, self._handle = self._handle, None
        if handle is None:
            return
        _HELD_RUN_LOCKS.discard(handle)
        try:
            if _same_file(handle, self.path):
                self.path.unlink(missing_ok=True)  # still holding the flock: no one can hold this file now
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()


# Process-wide: the open run-lock files of this process. A worker child forked by Luigi (--workers > 1, task
# timeouts) shares their open file descriptions, and a flock lasts until every descriptor of it is closed; the
# child closes its copies at once, so the lock ends with the process that took it (an orphaned task child of
# a killed run must not block the rerun).
_HELD_RUN_LOCKS = set()


def _drop_inherited_run_locks():
    """In a forked child: close the copies of the parent's run-lock files (the parent keeps its lock)."""
    for handle in list(_HELD_RUN_LOCKS):
        with contextlib.suppress(OSError):
            handle.close()
    _HELD_RUN_LOCKS.clear()


os.register_at_fork(after_in_child=_drop_inherited_run_locks)
