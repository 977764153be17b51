"""The scheduling process imports what planning needs, not the image-analysis libraries the jobs use."""
import subprocess
import sys

HEAVY = ("scipy.ndimage", "scipy.special", "skimage", "tensorflow", "stardist")


def test_importing_the_workflow_leaves_the_analysis_libraries_to_the_jobs():
    probe = f"import sys, antibodies; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == []
