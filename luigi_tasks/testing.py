"""Helpers for tests of jobs and workflows: tiny raw plates and luigi runs."""
import contextlib
import socket
import subprocess
import time
from pathlib import Path

import luigi
import numpy as np

from .workflow import release_locks, use_local_lock

__all__ = ["make_raw_plate", "raw_image_name", "run_local", "free_port", "running_luigid"]


def raw_image_name(well, site, channels, seq):
    """Return a raw image stem that follows the naming scheme.

    Examples
    --------
    >>> raw_image_name("A01", 1, ("DAPI", "WF_GFP"), 7)
    'WellA01_PointA01_0001_ChannelDAPI,WF_GFP_Seq0007'
    """
    return f"Well{well}_Point{well}_{site:04d}_Channel{','.join(channels)}_Seq{seq:04d}"


def make_raw_plate(folder, wells=("A01", "A02"), sites=2, shape=(64, 64), channels=("DAPI", "GFP"), seed=0):
    """Write a tiny plate of multi-page uint16 TIFFs (C, M, N) and return their paths."""
    import tifffile

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for number, (well, site) in enumerate(((w, s) for w in wells for s in range(1, sites + 1)), 1):
        stack = rng.integers(100, 1000, size=(len(channels),) + tuple(shape), dtype="uint16")
        path = folder / f"{raw_image_name(well, site, channels, number)}.tiff"
        tifffile.imwrite(path, stack)
        paths.append(path)
    return paths


def run_local(tasks, workers=1, **kwargs):
    """Run ``tasks`` with the local scheduler; return luigi's run summary."""
    use_local_lock(True)
    luigi.task_register.Register.clear_instance_cache()
    try:
        return luigi.build(list(tasks), local_scheduler=True, workers=workers, detailed_summary=True, **kwargs)
    finally:
        release_locks()


def free_port():
    """Return a free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_luigid(state_dir, port=None):
    """Start ``luigid`` on 127.0.0.1 and a free port; yield the port; stop it afterwards."""
    port = port or free_port()
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    from .scheduler import _environment, luigid_command

    command = luigid_command("127.0.0.1", port, state_dir)  # with luigi_tasks.luigi_fixes, like the real one
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_environment())
    try:
        _wait_for_port(port, process)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_for_port(port, process, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"luigid exited with code {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"luigid did not listen on 127.0.0.1:{port} within {timeout} s")
