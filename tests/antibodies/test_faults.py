"""Reliability of CellAnalysis: kill -9 at random moments on a tiny synthetic plate, raw folder untouched.

Run with ``pytest -s`` to see the counts of injected faults.
"""
import sys

import pytest

from tests.fault_injection import (
    KillLoop,
    check_round,
    h5_containers,
    kill_rounds,
    luigi_env,
    reference_run,
    stamps,
    tree_digest,
)

from .conftest import TEST_CONFIG, render_small_plate

pytestmark = pytest.mark.slow


def cell_analysis_command(plate):
    def command(output):
        return [sys.executable, "-m", "luigi", "--module", "antibodies", "CellAnalysis", "--plate", str(plate),
                "--output", str(output), "--config", str(TEST_CONFIG), "--local-scheduler"]
    return command


def test_cell_analysis_survives_random_kill_9(tmp_path):
    """SIGKILL CellAnalysis runs (local scheduler) at random moments, half of them just after a container
    transaction began; rerun after each; the finished plate validates and equals an uninterrupted run."""
    plate, _ = render_small_plate(tmp_path, shape=(256, 256), sites_per_well=1)
    raw_before = tree_digest(plate)
    env, command = luigi_env(), cell_analysis_command(plate)

    reference = tmp_path / "reference"
    full_run = reference_run(command, reference, env, timeout=600)
    expected = {path.name: tuple(stamps_of) for path, stamps_of in _complete_keys(reference).items()}
    assert len(expected) == 6  # 4 images, the plate tables and their plateViewer name (the same file)

    loop = KillLoop(command, tmp_path / "killed", seed=7, delays=(1.0, full_run), env=env, aimed=0.5,
                    modes={"group": 0.5, "main": 0.25, "task": 0.25}, timeout=600)
    rounds = kill_rounds(loop, 6, f"CellAnalysis on 4 images 256x256, full run {full_run:.1f} s")
    for output in rounds:
        check_round(output, reference, expected)
        for csv in reference.glob("*.csv"):
            assert (output / csv.name).read_bytes() == csv.read_bytes(), csv.name
    assert tree_digest(plate) == raw_before


def _complete_keys(output):
    found = {}
    for (name, key) in stamps(output):
        found.setdefault(output / name, []).append(key)
    assert set(found) == set(h5_containers(output))
    return found
