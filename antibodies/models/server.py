"""StarDist loaded once per worker, not once per batch: a model server shared by the task processes.

With ``--workers N`` (N > 1) Luigi forks a new process for every task, so a
model cached in the process (:func:`~antibodies.models.load_stardist_model`)
would be loaded again by every NucleusSegmentation batch: a TensorFlow import
and a model load, ~3-4 s each. Instead, a forked task process takes one of N
*slots* of the run (a ``flock``), and sends its images to the slot's server, a
process started once (``python -m antibodies.models.server``, a fresh
interpreter: TensorFlow never runs in a process that forks) that loads each
model a call names when it is first named (the nucleus and the cell model share
one TensorFlow) and answers calls of :data:`FUNCTIONS` over a Unix socket until

* the run that started it (the ``luigi`` process, its *owner*) has ended and no
  task is connected, or
* no task has asked anything for :data:`IDLE_SECONDS`.

A task run in the ``luigi`` process itself (``--workers 1``) keeps the model in
that process, as before. If a server cannot be started or dies, the task loads
the model itself (logged), so segmentation never depends on the server; a server
that leaves a call unanswered for :data:`REPLY_TIMEOUT` is killed first, so the
slot's next task starts a new one. Either
way the model runs with the server's thread settings: TensorFlow's results
differ in the last bits with the number of threads, and the labels must not
depend on where the model ran.
"""
import argparse
import contextlib
import fcntl
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Client, Listener
from pathlib import Path

from luigi_tasks.status import pid_alive

__all__ = ["FUNCTIONS", "IDLE_SECONDS", "SERVER_SLOTS", "model_runner", "remove_ended_runs", "serve"]

logger = logging.getLogger("Workflow.ModelServer")

IDLE_SECONDS = 300.0
"""A server with no request for this long exits (the next batch starts a new one); it keeps ~1 GB meanwhile."""
SERVER_SLOTS = 16
"""At most this many servers per run (one per task running at once, i.e. per worker)."""
START_TIMEOUT = 180.0
MAX_SOCKET_PATH = 107
"""Longest Unix socket path (bytes) Linux accepts; the run folder lies under TMPDIR."""
REPLY_TIMEOUT = 600.0
"""A server that has not answered one call after this many seconds is taken for hung (stopped, deadlocked):
the task kills it (only this task uses its slot's server) and loads the model itself. A 1024x1024 image
takes ~1 s, a full machine a few times that; a new server's first call also waits for TensorFlow's import
and the model load (~5-10 s)."""
SERVER_THREADS = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")
"""Thread settings a model gets (1) unless the environment sets them: with TensorFlow's default (all
cores) a server took 2.1 CPU-s and 2.1 s per 930x1024 image, with one thread 0.5 CPU-s and 0.75 s."""


def _with_model_threads(env):
    """Set the :data:`SERVER_THREADS` that ``env`` (a mapping) does not set to 1; return ``env``.

    One server per worker and about one worker per core: one thread each. The
    model in a task process gets the same, so its results equal the server's.
    """
    for name in SERVER_THREADS:
        env.setdefault(name, "1")
    return env


def _run_dir(owner):
    """Return the folder of run ``owner`` (pid of its luigi process); only this user can enter it.

    Folders of runs that have ended are removed first: a server that left on its idle limit
    while its run went on could not remove its run's folder.
    """
    folder = Path(tempfile.gettempdir()) / f"batchlib-{os.getuid()}" / f"stardist-{owner}"
    folder.parent.mkdir(mode=0o700, exist_ok=True)
    remove_ended_runs(folder.parent)
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def remove_ended_runs(parent):
    """Remove the ``stardist-<pid>`` folders in ``parent`` whose run (process ``pid``) has ended."""
    for folder in parent.glob("stardist-*"):
        pid = folder.name.removeprefix("stardist-")
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _segment_nuclei(model, image, prob_thresh, nms_thresh):
    from ..analysis.nuclei import segment_nuclei

    return segment_nuclei(model, image, prob_thresh, nms_thresh)


def _object_probability(model, image, flips="none"):
    from ..analysis.cells import CELL_MODEL_FLIPS, flip_averaged, object_probability

    return flip_averaged(lambda x: object_probability(model, x), image, CELL_MODEL_FLIPS[flips])


def _object_probability_and_instances(model, image, flips="none", nms_thresh=None):
    from ..analysis.cells import CELL_MODEL_FLIPS, INSTANCE_NMS_THRESH, cell_probability_and_instances

    nms_thresh = INSTANCE_NMS_THRESH if nms_thresh is None else nms_thresh
    return cell_probability_and_instances(model, image, CELL_MODEL_FLIPS[flips], nms_thresh)


FUNCTIONS = {"segment_nuclei": _segment_nuclei, "object_probability": _object_probability,
             "object_probability_and_instances": _object_probability_and_instances}
"""What a server (or the model in a process) runs: ``function(model, *args)``."""


class _InProcess:
    """The model in this process (``--workers 1``, or the fallback)."""

    def __init__(self, folder):
        from . import _load_cached

        _with_model_threads(os.environ)  # read by TensorFlow when it starts, before the model's first call
        self.model = _load_cached(str(folder))

    def run(self, function, *args):
        return FUNCTIONS[function](self.model, *args)


class _SlotServer:
    """This task process's connection to the server of its slot, shared by every model it calls."""

    def __init__(self, connection, lock):
        self.connection, self.lock, self.lost = connection, lock, False

    def call(self, folder, function, args):
        """Return ``FUNCTIONS[function](model in folder, *args)`` as the server computed it.

        Raises ``OSError`` or ``EOFError`` (and marks the server lost) if it died or did not answer.
        """
        try:
            self.connection.send((folder, function, args))
            if not self.connection.poll(REPLY_TIMEOUT):
                raise TimeoutError(f"no answer in {REPLY_TIMEOUT:.0f} s")
            status, value = self.connection.recv()
        except (OSError, EOFError) as error:
            self.lost = True
            if isinstance(error, TimeoutError):  # the slot's next task would wait as long: end it
                _kill_peer(self.connection)
            self.connection.close()
            raise
        if status != "ok":
            raise RuntimeError(value)
        return value


class _Remote:
    """One model in the server of this process's slot; the model in this process once the server is lost."""

    def __init__(self, server, folder):
        self.server, self.folder, self.fallback = server, folder, None

    @property
    def connection(self):
        return self.server.connection

    def run(self, function, *args):
        if self.fallback is None and not self.server.lost:
            try:
                return self.server.call(self.folder, function, args)
            except (OSError, EOFError) as error:  # the server died (killed) or hangs: go on without it
                logger.warning("StarDist server lost (%s: %s); loading the model in this process",
                               type(error).__name__, error)
        if self.fallback is None:
            self.fallback = _InProcess(self.folder)
        return self.fallback.run(function, *args)


def _peer_pid(connection):
    """The pid of the process at the other end of a Unix socket ``connection`` (``SO_PEERCRED``)."""
    with socket.socket(fileno=os.dup(connection.fileno())) as peer:
        credentials = peer.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", credentials)[0]


def _kill_peer(connection):
    """Kill the process at the other end of a Unix socket ``connection``."""
    pid = _peer_pid(connection)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    logger.warning("killed the StarDist server pid %d that did not answer", pid)


def _take_slot(folder):
    """Lock a free slot of this run; return (slot, open lock file)."""
    while True:
        for slot in range(SERVER_SLOTS):
            handle = open(folder / f"slot{slot}.lock", "a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return slot, handle
            except BlockingIOError:
                handle.close()
        time.sleep(0.1)


def _connect(address, server=None, timeout=START_TIMEOUT):
    """Connect to ``address``; wait for a starting ``server`` (Popen) up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return Client(address, family="AF_UNIX")
        except (FileNotFoundError, ConnectionRefusedError):
            if server is None or server.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


_RUNNERS = {}
_SLOT_SERVER = []  # this process's _SlotServer, or None where it has none; empty until asked


def model_runner(folder):
    """Return an object whose ``run(function, *args)`` calls ``FUNCTIONS[function](model, *args)``.

    ``model`` is the StarDist model in ``folder``.
    In a task process forked by Luigi the model lives in the server of a worker
    slot this process takes for the rest of its life (one task); in the luigi
    process itself it is loaded here. Either way it is made once per process.
    """
    folder = str(folder)
    if folder not in _RUNNERS:
        forked = multiprocessing.parent_process() is not None  # a Luigi task process (--workers > 1)
        server = _slot_server() if forked else None
        _RUNNERS[folder] = _Remote(server, folder) if server else _InProcess(folder)
    return _RUNNERS[folder]


def _slot_server():
    """The server of a slot this process takes (and holds until it ends), started if need be; or None."""
    if not _SLOT_SERVER:
        run_dir = _run_dir(os.getppid())
        slot, lock = _take_slot(run_dir)
        address = str(run_dir / f"slot{slot}.sock")
        connection = None
        if len(os.fsencode(address)) > MAX_SOCKET_PATH:
            logger.warning("StarDist server socket %s is longer than the %d bytes a Unix socket allows; loading "
                           "the model in this process (set TMPDIR to a shorter folder to share it)", address,
                           MAX_SOCKET_PATH)
        else:
            try:
                connection = _connect(address, timeout=0)
            except (FileNotFoundError, ConnectionRefusedError):
                connection = _start_and_connect(address, run_dir, slot)
        if connection is None:
            lock.close()
        _SLOT_SERVER.append(_SlotServer(connection, lock) if connection else None)
    return _SLOT_SERVER[0]


def _start_and_connect(address, run_dir, slot):
    with contextlib.suppress(FileNotFoundError):
        os.unlink(address)  # left by a server that was killed
    log = open(run_dir / f"slot{slot}.log", "ab")
    command = [sys.executable, "-m", "antibodies.models.server", "--socket", address, "--owner", str(os.getppid())]
    env = _with_model_threads(dict(os.environ))
    server = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                              close_fds=True, env=env)
    log.close()
    logger.info("started StarDist server pid %d (slot %d)", server.pid, slot)
    try:
        return _connect(address, server)
    except (OSError, EOFError) as error:
        logger.warning("StarDist server did not start (%s); loading the model in this process", error)
        return None


def serve(address, owner, idle_seconds=IDLE_SECONDS):
    """Answer model calls on ``address`` until the owner is gone (and no task is connected) or idle.

    A call is ``(model folder, function name, args)``; each model is loaded when a call first names it.
    """
    from . import _load_cached

    state = {"busy": False, "last": time.monotonic()}

    def watch():
        while True:
            time.sleep(0.5)
            idle, ended = time.monotonic() - state["last"] > idle_seconds, not pid_alive(owner)
            if not state["busy"] and (idle or ended):
                with contextlib.suppress(OSError):
                    os.unlink(address)
                if ended:  # the run is over: its slot locks and logs go too
                    shutil.rmtree(Path(address).parent, ignore_errors=True)
                os._exit(0)

    listener = Listener(address, family="AF_UNIX")
    threading.Thread(target=watch, daemon=True).start()
    while True:
        connection = listener.accept()
        state["busy"] = True
        try:
            while True:
                try:
                    folder, function, args = connection.recv()
                except (EOFError, OSError):
                    break
                try:
                    reply = ("ok", FUNCTIONS[function](_load_cached(folder), *args))
                except Exception as error:  # noqa: BLE001 - reported to the task, which fails that image
                    reply = ("error", f"{type(error).__name__}: {error}")
                try:
                    connection.send(reply)
                except OSError:
                    break
                state["last"] = time.monotonic()
        finally:
            connection.close()
            state["last"], state["busy"] = time.monotonic(), False


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", required=True)
    parser.add_argument("--owner", type=int, required=True, help="pid of the luigi process of the run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    serve(args.socket, args.owner)


if __name__ == "__main__":
    main()
