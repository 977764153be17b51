"""Status files survive a writer killed half-way (its temporary is not a status)."""
from luigi_tasks.io.atomic import temporary_name
from luigi_tasks.status import read_status, status_dir, status_names, status_path, update_status


def test_temporary_left_by_a_killed_writer_is_ignored_then_removed(tmp_path):
    update_status(tmp_path, "Preprocess", state="processed")
    leftover = temporary_name(status_path(tmp_path, "Preprocess"))
    leftover.write_text("")  # what kill -9 between open and write leaves
    assert leftover.name.endswith(".status")
    assert status_names(tmp_path) == ["Preprocess"]
    assert read_status(tmp_path, "Preprocess")["state"] == "processed"
    update_status(tmp_path, "Preprocess", state="failed")
    assert sorted(p.name for p in status_dir(tmp_path).iterdir() if p.suffix == ".status") == ["Preprocess.status"]
