"""A second name of a container (the plateViewer's ``<plate>_table.hdf5``) always holds the committed file."""
import os

import h5py
import pytest

from luigi_tasks.io import atomic
from luigi_tasks.io.atomic import container_transaction


def write(path, value, alias):
    with container_transaction(path, also_as=[alias]) as tmp:
        with h5py.File(tmp, "a") as f:
            if "x" in f:
                del f["x"]
            f["x"] = value


def read(path):
    with h5py.File(path, "r") as f:
        return int(f["x"][()])


def test_alias_is_a_hard_link_replaced_with_every_commit(tmp_path):
    path, alias = tmp_path / "p_tables.hdf5", tmp_path / "p_table.hdf5"
    write(path, 1, alias)
    assert os.stat(path).st_ino == os.stat(alias).st_ino and os.stat(path).st_nlink == 2
    write(path, 2, alias)  # the commit renames a new file over the main name; the alias follows
    assert read(alias) == read(path) == 2
    assert os.stat(path).st_ino == os.stat(alias).st_ino and os.stat(path).st_nlink == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p_table.hdf5", "p_tables.hdf5"]


def test_alias_is_created_for_outputs_written_without_it(tmp_path):
    path, alias = tmp_path / "p_tables.hdf5", tmp_path / "p_table.hdf5"
    write(path, 1, tmp_path / "elsewhere.hdf5")
    with container_transaction(path, also_as=[alias]) as tmp:
        os.unlink(tmp)  # nothing to commit (e.g. done by another process)
    assert read(alias) == 1 and os.stat(path).st_ino == os.stat(alias).st_ino


def test_alias_is_a_copy_where_hard_links_fail(tmp_path, monkeypatch):
    def no_links(*_):
        raise PermissionError("no hard links on this file system")

    monkeypatch.setattr(atomic.os, "link", no_links)
    path, alias = tmp_path / "p_tables.hdf5", tmp_path / "p_table.hdf5"
    write(path, 1, alias)
    write(path, 3, alias)
    assert read(alias) == 3 and os.stat(path).st_ino != os.stat(alias).st_ino
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p_table.hdf5", "p_tables.hdf5"]


def test_a_kill_while_linking_the_second_name_leaves_the_tables_uncommitted(tmp_path, monkeypatch):
    """The second name is made before the commit rename: a kill there leaves the job incomplete, so its
    rerun writes both names (committing first would leave a complete job with a stale second name)."""
    path, alias = tmp_path / "p_tables.hdf5", tmp_path / "p_table.hdf5"
    write(path, 1, alias)
    replace = os.replace

    def killed_at_the_alias(source, target):
        if os.fspath(target) == os.fspath(alias):
            raise KeyboardInterrupt("killed while replacing the second name")
        return replace(source, target)

    monkeypatch.setattr(atomic.os, "replace", killed_at_the_alias)
    with pytest.raises(KeyboardInterrupt):
        write(path, 2, alias)
    monkeypatch.setattr(atomic.os, "replace", replace)
    assert read(path) == 1 and read(alias) == 1  # nothing committed: the job is not complete and runs again
    write(path, 2, alias)
    assert read(alias) == read(path) == 2 and os.stat(path).st_ino == os.stat(alias).st_ino
