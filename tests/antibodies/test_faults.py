"""Reliability of CellAnalysis: kill -9 at random moments on a tiny synthetic plate, raw folder untouched.

Run with ``pytest -s`` to see the counts of injected faults.
"""
import shutil
import sys

import pytest
import tifffile

from tests.fault_injection import (
    KillLoop,
    check_round,
    h5_containers,
    kill_rounds,
    luigi_env,
    reference_run,
    same_data,
    stamps,
    tree_digest,
    workflow_status,
)

from .conftest import TEST_CONFIG, render_small_plate

pytestmark = pytest.mark.slow


def cell_analysis_command(plate, *extra):
    def command(output):
        return [sys.executable, "-m", "luigi", "--module", "antibodies", "CellAnalysis", "--plate", str(plate),
                "--output", str(output), "--config", str(TEST_CONFIG), "--local-scheduler", *extra]
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


def add_bad_files(plate):
    """Add a file of every kind the assay refuses or fails on; return (their names, the damaged image's stem).

    The damaged one passes the input checks and fails in Preprocess; the others are invalid inputs, but for
    the truncated one, which the header checks of this version let through (it then fails in Preprocess).
    """
    from .test_failures import damage_compressed_pixels

    good = sorted(plate.glob("*.tiff"))
    source = good[0]

    def renamed(well, seq):
        stem = source.stem.replace(source.stem.split("_")[0], f"Well{well}").replace(
            source.stem.split("_")[1], f"Point{well}")
        return plate / (stem.rsplit("_Seq", 1)[0] + f"_Seq{seq:04d}.tiff")

    truncated = renamed("C01", 90)
    truncated.write_bytes(source.read_bytes()[: source.stat().st_size // 2])  # cut in half
    damaged = renamed("C02", 91)
    shutil.copyfile(source, damaged)
    damage_compressed_pixels(damaged)  # zlib pixel data damaged after an intact header: fails in Preprocess
    tifffile.imwrite(renamed("C03", 92), tifffile.imread(source)[:-1])  # one channel page fewer than named
    renamed("C04", 93).write_bytes(b"")  # empty
    shutil.copyfile(source, plate / "scan_0001.tiff")  # a name outside the naming scheme
    tifffile.imwrite(renamed("D01", 94), tifffile.imread(source)[:, :128, :128])  # another image shape
    bad = {p.name for p in plate.glob("*.tiff")} - {p.name for p in good}
    return bad, damaged.stem


def test_cell_analysis_on_a_corrupt_plate_survives_random_kill_9(tmp_path):
    """The kill loop on a plate holding every kind of bad file (truncated, damaged compressed data, wrong channel
    count, empty, bad name, other shape), run with --ignore-invalid-inputs --ignore-failed-outputs: after the
    kills and the reruns each round equals a clean run of the good images."""
    clean, _ = render_small_plate(tmp_path / "clean", shape=(256, 256), sites_per_well=1)
    plate = tmp_path / "corrupt" / "plate"
    shutil.copytree(clean, plate)
    bad, failing = add_bad_files(plate)
    from .test_failures import decoding_error

    raw_before = tree_digest(plate)
    env, flags = luigi_env(), ("--ignore-invalid-inputs", "--ignore-failed-outputs")

    reference = tmp_path / "reference"
    full_run = reference_run(cell_analysis_command(clean, *flags), reference, env, timeout=600)
    expected = {path.name: tuple(keys) for path, keys in _complete_keys(reference).items()}
    # the plate tables (and their plateViewer alias, the same file) leave the failed image out: compared below
    tables = {name: expected.pop(name) for name in list(expected) if name.endswith(("_tables.hdf5", "_table.hdf5"))}
    loop = KillLoop(cell_analysis_command(plate, *flags), tmp_path / "killed", seed=13, delays=(1.0, full_run),
                    env=env, aimed=0.5, modes={"group": 0.5, "main": 0.25, "task": 0.25}, timeout=600)
    rounds = kill_rounds(loop, 4, f"CellAnalysis on a corrupt plate (4 good images, 6 bad files), full run "
                                  f"{full_run:.1f} s")
    for output in rounds:
        check_round(output, reference, expected)
        assert same_data(output, reference, tables) == []  # tables of the good images, the failed one left out
        for csv in reference.glob("*.csv"):
            assert (output / csv.name).read_bytes() == csv.read_bytes(), csv.name
        status = workflow_status(output)
        failed = {f"{stem}.tiff" for stem in status["failed_outputs"]}
        assert status["state"] == "finished" and set(status["invalid_inputs"]) | failed == bad
        assert len(status["invalid_inputs"]) >= 4 and not set(status["invalid_inputs"]) & failed
        assert status["failed_outputs"][failing] == f"Preprocess: {decoding_error(plate / f'{failing}.tiff')}"
    assert tree_digest(plate) == raw_before
