"""A bad image stays one bad image: a compressed TIFF whose pixel data is damaged after an intact header
passes the input checks and fails in Preprocess; the other images are computed and committed, the plate
tables wait (or, with --ignore-failed-outputs, leave it out), and a rerun retries that image only.
"""
import json
import shutil
import subprocess
import sys

import pytest
import tifffile

from luigi_tasks import progress, read_status
from luigi_tasks.io import open_file, read_table
from luigi_tasks.testing import run_local
from tests.fault_injection import ROOT, luigi_env, stamps

from .conftest import TEST_CONFIG, cell_analysis, render_small_plate

pytestmark = pytest.mark.slow

STEPS_BEFORE_PLATE = ("Preprocess", "NucleusSegmentation", "MarkerTophat", "CellSegmentation", "CellFeatures")


def damage_compressed_pixels(path):
    """Rewrite ``path`` zlib-compressed, then flip 64 bytes of pixel data in the middle of the file."""
    tifffile.imwrite(path, tifffile.imread(path), compression="zlib")
    data = bytearray(path.read_bytes())
    middle = len(data) * 6 // 10
    data[middle:middle + 64] = bytes(b ^ 0xFF for b in data[middle:middle + 64])
    path.write_bytes(bytes(data))


def decoding_error(path):
    """The one-line reason the installed decoder (imagecodecs, else zlib) gives for a damaged TIFF."""
    from luigi_tasks.job import _one_line

    with pytest.raises(Exception) as raised:
        tifffile.imread(path)
    return _one_line(raised.value)


def test_damaged_compressed_tiff_fails_only_its_image(tmp_path):
    plate, _ = render_small_plate(tmp_path, shape=(256, 256), sites_per_well=1)
    bad = sorted(plate.glob("*.tiff"))[1]
    pristine = tmp_path / "pristine.tiff"
    shutil.copyfile(bad, pristine)
    damage_compressed_pixels(bad)
    from antibodies.inputs import AssayPlanner

    assert bad.stem in AssayPlanner().plan(plate).images  # the header checks pass it
    output = tmp_path / "out"
    cause = f"Preprocess: {decoding_error(bad)}"

    # 1. without --ignore-failed-outputs: exit 30 naming the image; the others through every image step
    command = [sys.executable, "-m", "luigi", "--module", "antibodies", "CellAnalysis", "--plate", str(plate),
               "--output", str(output), "--config", str(TEST_CONFIG), "--local-scheduler"]
    done = subprocess.run(command, cwd=ROOT, env=luigi_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 30, done.stderr[-3000:]
    message = (f"FailedOutputsError: Preprocess failed on 1 of 4 image(s): {bad.stem} ({decoding_error(bad)}); "
               "the others are committed")
    assert message in done.stderr  # the task's error line (Luigi's traceback, or the step line of a quiet terminal)
    print(f"\n[damaged compressed TIFF] exit {done.returncode}; {message}")
    workflow = read_status(output, "CellAnalysis")
    print(json.dumps(workflow, indent=1))
    assert workflow["state"] == "failed" and workflow["failed_outputs"] == {bad.stem: cause}
    assert read_status(output, "Preprocess")["state"] == "failed"
    now = progress.plate_progress(output)
    assert now.failed == 1 and not any(now.plate_jobs.values())
    assert all(now.per_job[step] == 3 for step in STEPS_BEFORE_PLATE), now.per_job
    assert now.per_job["InfectedCells"] == 0  # it needs the plate background, which waits for every image
    assert not (output / "plate_tables.hdf5").exists()
    first = stamps_by_container(output)
    assert len(first) == 4 and not first[f"{bad.stem}.h5"]  # the bad image holds failure records only

    # 2. with --ignore-failed-outputs: nothing recomputed before the plate step; tables from the 3 others
    result = run_local([cell_analysis(plate, output, ignore_failed_outputs=True)])
    assert result.status.name == "SUCCESS"
    workflow = read_status(output, "CellAnalysis")
    assert workflow["state"] == "finished" and workflow["failed_outputs"] == {bad.stem: cause}
    scores = read_status(output, "PlateScores")
    assert scores["state"] == "processed" and scores["failed_outputs"] == {bad.stem: "upstream failed: " + cause}
    with open_file(output / "plate_tables.hdf5") as f:
        images = read_table(f, "images/default")
    assert sorted(images["image_name"]) == sorted(p.stem for p in plate.glob("*.tiff") if p != bad)
    second = stamps_by_container(output)
    assert all(second[name][key] == created for name, keys in first.items() for key, created in keys.items())
    assert progress.plate_progress(output).complete  # finished, leaving the failed image out
    report = (output / "report" / "index.html").read_text()
    assert "CellAnalysis" not in report.split('id="job-table"')[1].split("</table>")[0]

    # 3. the file is replaced: the rerun computes that image and the plate tables, nothing else
    shutil.copyfile(pristine, bad)
    assert run_local([cell_analysis(plate, output)]).status.name == "SUCCESS"
    third = stamps_by_container(output)
    for name, keys in second.items():
        if name != f"{bad.stem}.h5":
            assert {k: third[name][k] for k in keys} == keys, name
    assert len(third[f"{bad.stem}.h5"]) == len(third[next(n for n in third if n != f"{bad.stem}.h5")])
    workflow = read_status(output, "CellAnalysis")
    assert workflow["state"] == "finished" and workflow["failed_outputs"] == {}
    assert read_status(output, "Preprocess")["state"] == "processed"
    assert progress.plate_progress(output).message() == "4/4 images done; plate tables 5/5"  # 5 plate jobs


def stamps_by_container(output):
    """``{container name: {key: created}}`` of the complete keys of the image containers."""
    found = {path.name: {} for path in output.glob("*.h5")}
    for (name, key), created in stamps(output).items():
        if name in found:
            found[name][key] = created
    return found
