import os
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
import pytest

from luigi_tasks.io import container_transaction, open_file, write_image
from luigi_tasks.provenance import Stamp, write_stamps
from luigi_tasks.targets import DatasetTarget, clear_index_cache


def commit(path, key, fingerprint="fp", value=1.0, failed=False):
    with container_transaction(path) as tmp:
        with open_file(tmp, "a") as f:
            write_image(f, key, np.full((64, 64), value, "float32"))
            write_stamps(f, {key: Stamp.now(fingerprint, failed=failed, error="boom" if failed else "")})


class TargetContract:
    """Every DatasetTarget backend must pass these."""

    extension = ".h5"

    def path(self, tmp_path):
        return tmp_path / f"image{self.extension}"

    def test_missing_container_does_not_exist(self, tmp_path):
        assert not DatasetTarget(self.path(tmp_path), "nuclei").exists()

    def test_committed_key_exists_with_matching_fingerprint(self, tmp_path):
        commit(self.path(tmp_path), "nuclei", "abc")
        assert DatasetTarget(self.path(tmp_path), "nuclei", "abc").exists()
        assert not DatasetTarget(self.path(tmp_path), "nuclei", "other").exists()
        assert not DatasetTarget(self.path(tmp_path), "cells", "abc").exists()

    def test_data_without_stamp_is_not_complete(self, tmp_path):
        with open_file(self.path(tmp_path), "a") as f:
            write_image(f, "nuclei", np.zeros((64, 64)))
        assert not DatasetTarget(self.path(tmp_path), "nuclei").exists()

    def test_failure_record_counts_only_when_accepted(self, tmp_path):
        commit(self.path(tmp_path), "nuclei", "abc", failed=True)
        assert not DatasetTarget(self.path(tmp_path), "nuclei", "abc").exists()
        assert DatasetTarget(self.path(tmp_path), "nuclei", "abc", accept_failed=True).exists()

    def test_not_before_makes_old_outputs_stale(self, tmp_path):
        commit(self.path(tmp_path), "nuclei", "abc")
        assert not DatasetTarget(self.path(tmp_path), "nuclei", "abc", not_before=time.time() + 1).exists()


class TestH5Target(TargetContract):
    extension = ".h5"


class TestN5Target(TargetContract):
    extension = ".n5"


def test_exception_inside_transaction_keeps_old_container(tmp_path):
    path = tmp_path / "image.h5"
    commit(path, "nuclei", value=1.0)
    with pytest.raises(RuntimeError):
        with container_transaction(path) as tmp:
            with open_file(tmp, "a") as f:
                write_image(f, "nuclei", np.full((64, 64), 2.0, "float32"))
            raise RuntimeError("crash between write and move")
    with open_file(path) as f:
        assert f["nuclei/s0"][0, 0] == 1.0
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []


KILLED_WRITER = textwrap.dedent(
    """
    import sys, numpy as np
    from luigi_tasks.io import container_transaction, open_file
    path = sys.argv[1]
    with container_transaction(path) as tmp:
        with open_file(tmp, "a") as f:
            for i in range(10**6):
                f.create_dataset(f"junk{i}", data=np.random.rand(64, 64))
                if i == 5:
                    print("writing", flush=True)
    """
)


def test_kill_9_during_write_leaves_old_container_intact(tmp_path):
    path = tmp_path / "image.h5"
    commit(path, "nuclei", "abc", value=3.0)
    process = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "writing"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    clear_index_cache()
    with h5py.File(path, "r") as f:
        assert f["nuclei/s0"][0, 0] == 3.0 and "junk0" not in f
    assert DatasetTarget(path, "nuclei", "abc").exists()
    commit(path, "cells", "abc")  # the next writer cleans the killed one's temporary file
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []


def test_corrupt_container_reads_as_incomplete(tmp_path):
    path = tmp_path / "image.h5"
    path.write_bytes(b"not an hdf5 file")
    assert not DatasetTarget(path, "nuclei").exists()


def test_corrupt_container_is_moved_aside_and_rebuilt(tmp_path):
    path = tmp_path / "image.h5"
    path.write_bytes(b"truncated garbage")
    commit(path, "nuclei", "abc")
    assert DatasetTarget(path, "nuclei", "abc").exists()
    assert len(list(tmp_path.glob("image.corrupt-*.h5"))) == 1


def test_background_commit_holds_the_lock_until_the_container_is_replaced(tmp_path, monkeypatch):
    import threading

    from luigi_tasks.io import BackgroundCommits, LockTimeout, file_lock
    from luigi_tasks.io import atomic

    path = tmp_path / "image.h5"
    commit(path, "nuclei", value=1.0)
    release, inline_commit = threading.Event(), atomic._commit
    monkeypatch.setattr(atomic, "_commit", lambda tmp, dst: (release.wait(10), inline_commit(tmp, dst)))
    commits = BackgroundCommits()
    with container_transaction(path, commits=commits) as tmp:
        with open_file(tmp, "a") as f:
            write_image(f, "nuclei", np.full((64, 64), 2.0, "float32"))
    with pytest.raises(LockTimeout):  # still committing: nobody else may touch the container
        with file_lock(path, timeout=0.2):
            pass
    with open_file(path) as f:
        assert f["nuclei/s0"][0, 0] == 1.0  # the old container until the rename
    release.set()
    assert commits.close() == {}
    with file_lock(path, timeout=1):
        with open_file(path) as f:
            assert f["nuclei/s0"][0, 0] == 2.0
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []


def test_failed_background_commit_is_reported_and_keeps_old_container(tmp_path, monkeypatch):
    from luigi_tasks.io import BackgroundCommits, file_lock
    from luigi_tasks.io import atomic

    path = tmp_path / "image.h5"
    commit(path, "nuclei", value=1.0)

    def disk_full(tmp, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic, "_commit", disk_full)
    commits = BackgroundCommits()
    with container_transaction(path, commits=commits) as tmp:
        with open_file(tmp, "a") as f:
            write_image(f, "nuclei", np.full((64, 64), 2.0, "float32"))
    failures = commits.close()
    assert list(failures) == [path] and "No space" in str(failures[path])
    with file_lock(path, timeout=1):  # released after the failure
        with open_file(path) as f:
            assert f["nuclei/s0"][0, 0] == 1.0
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []
