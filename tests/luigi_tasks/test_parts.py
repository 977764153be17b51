"""Image steps write large outputs once, into part files the container links to (luigi_tasks.io.atomic)."""
import shutil

import h5py
import numpy as np

from luigi_tasks.io import atomic
from luigi_tasks.targets import DatasetTarget, clear_index_cache
from tests.luigi_tasks.part_steps import BIG, parts, step


def test_large_outputs_go_to_a_part_and_the_container_links_to_it(tmp_path):
    path = tmp_path / "img.h5"
    step(path, "Big", BIG)
    step(path, "Small", np.ones((8, 8)), keys=("tables/x/small",))
    assert parts(tmp_path) and parts(tmp_path)[0].startswith(".img.Big-")
    assert path.stat().st_size < 64 * 1024  # links, the small output and the index
    with h5py.File(path, "r") as f:
        assert np.array_equal(f["image/s0"][...], BIG) and f["image"].attrs["Color"] == "Gray"
        assert isinstance(f.get("image", getlink=True), h5py.ExternalLink)
        assert isinstance(f.get("tables/x/small", getlink=True), h5py.HardLink)  # copied in
    clear_index_cache()
    assert DatasetTarget(path, "image", "fp").exists() and DatasetTarget(path, "tables/x/small", "fp").exists()


def test_a_moved_output_folder_keeps_its_links(tmp_path):
    folder = tmp_path / "out"
    step(folder / "img.h5", "Big", BIG)
    moved = shutil.move(folder, tmp_path / "moved")
    with h5py.File(tmp_path / "moved" / "img.h5", "r") as f:
        assert np.array_equal(f["image/s0"][...], BIG)
    assert DatasetTarget(f"{moved}/img.h5", "image", "fp").exists()


def test_a_missing_part_makes_its_keys_incomplete(tmp_path):
    path = tmp_path / "img.h5"
    step(path, "Big", BIG)
    (tmp_path / parts(tmp_path)[0]).unlink()
    clear_index_cache()
    assert not DatasetTarget(path, "image", "fp").exists()


def test_a_recomputed_step_replaces_its_part_and_deletes_the_old_one(tmp_path):
    path = tmp_path / "img.h5"
    step(path, "Big", BIG)
    first = parts(tmp_path)
    step(path, "Big", BIG + 1, fingerprint="other")
    assert len(parts(tmp_path)) == 1 and parts(tmp_path) != first
    with h5py.File(path, "r") as f:
        assert np.array_equal(f["image/s0"][...], BIG + 1)


def test_a_failure_record_unlinks_the_keys(tmp_path):
    path = tmp_path / "img.h5"
    step(path, "Big", BIG)
    step(path, "Big", None, fail=True)
    assert parts(tmp_path) == []
    with h5py.File(path, "r") as f:
        assert "image" not in f
    clear_index_cache()
    assert not DatasetTarget(path, "image", "fp").exists()


def test_parts_and_temporaries_left_by_a_killed_commit_are_removed_next_time(tmp_path):
    path = tmp_path / "img.h5"
    step(path, "Big", BIG)
    orphan = tmp_path / ".img.Other-0123456789ab.h5part"  # renamed into place, the container never committed
    shutil.copyfile(tmp_path / parts(tmp_path)[0], orphan)
    stale = atomic.temporary_name(path)
    stale.write_bytes(b"half written")
    step(path, "Small", np.ones(3), keys=("small",))
    assert not orphan.exists() and not stale.exists() and len(parts(tmp_path)) == 1


def test_a_failed_commit_keeps_the_old_container(tmp_path, monkeypatch):
    path = tmp_path / "img.h5"
    step(path, "Big", BIG)

    def disk_full(tmp, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic, "_commit", disk_full)
    try:
        step(path, "Big", BIG + 1, fingerprint="other")
    except OSError:
        pass
    monkeypatch.undo()
    with h5py.File(path, "r") as f:
        assert np.array_equal(f["image/s0"][...], BIG)
    step(path, "Small", np.ones(3), keys=("small",))  # the next transaction removes the unlinked part
    assert len(parts(tmp_path)) == 1
    assert [p.name for p in tmp_path.iterdir() if atomic.TMP_MARK in p.name] == []
