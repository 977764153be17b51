"""The StarDist server's run folders."""
import os
import subprocess
import sys

from antibodies.models.server import remove_ended_runs


def test_folders_of_ended_runs_are_removed_and_live_ones_kept(tmp_path):
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone, alive, other = (tmp_path / f"stardist-{int(ended.stdout)}", tmp_path / f"stardist-{os.getpid()}",
                          tmp_path / "stardist-notes")
    for folder in (gone, alive, other):
        folder.mkdir()
        (folder / "slot0.lock").write_text("")
    remove_ended_runs(tmp_path)
    assert not gone.exists() and alive.exists() and other.exists()
