"""Lock files are removed by their holder, and removing them never lets two processes hold one lock."""
import multiprocessing
import os
import time

import pytest

from luigi_tasks.io.atomic import LockTimeout, file_lock


def test_lock_file_is_removed_on_release(tmp_path):
    target = tmp_path / "image.h5"
    with file_lock(target):
        assert (tmp_path / ".image.h5.lock").exists()
    assert list(tmp_path.iterdir()) == []


def test_lock_file_is_removed_after_an_error_inside(tmp_path):
    with pytest.raises(RuntimeError), file_lock(tmp_path / "x"):
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def _hammer(path, flag_dir, rounds, queue):
    overlaps = 0
    for _ in range(rounds):
        with file_lock(path, timeout=60, poll=0.001):
            inside = flag_dir / "inside"
            try:
                fd = os.open(inside, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                overlaps += 1
                continue
            time.sleep(0.0005)
            os.close(fd)
            inside.unlink()
    queue.put(overlaps)


def test_no_two_processes_hold_the_lock_while_holders_remove_it(tmp_path):
    """Four processes take and release one lock 150 times each; the holder is always alone.

    Without the check that the locked file is still the one at the lock path,
    a process waiting on a removed lock file and one that created a new file
    hold "the" lock together, and this test sees overlaps.
    """
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    processes = [context.Process(target=_hammer, args=(tmp_path / "c.h5", tmp_path, 150, queue)) for _ in range(4)]
    for process in processes:
        process.start()
    overlaps = [queue.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    assert overlaps == [0, 0, 0, 0]
    assert not (tmp_path / ".c.h5.lock").exists()


def test_a_held_lock_still_times_out(tmp_path):
    context = multiprocessing.get_context("fork")
    started, release = context.Event(), context.Event()

    def hold():
        with file_lock(tmp_path / "x"):
            started.set()
            release.wait(30)

    holder = context.Process(target=hold)
    holder.start()
    try:
        assert started.wait(30)
        with pytest.raises(LockTimeout), file_lock(tmp_path / "x", timeout=0.3):
            pass
    finally:
        release.set()
        holder.join(30)
    with file_lock(tmp_path / "x", timeout=5):
        pass
