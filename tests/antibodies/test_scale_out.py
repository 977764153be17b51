"""Scale out with the real assay: two worker processes on one plate, the nightly run and its database."""
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import h5py
import pytest

from luigi_tasks import progress, read_status, scheduler
from luigi_tasks.testing import free_port

from .conftest import TEST_CONFIG

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
KEEP_ALIVE = ("--worker-keep-alive", "--worker-max-keep-alive-idle-duration", "60 seconds")


def render(plate, wells, seed, sites=1, shape=(256, 256)):
    from antibodies.synthetic.plate import render_plate

    render_plate(plate, plate.parent / f".truth-{plate.name}-{seed}", wells=wells, sites_per_well=sites, shape=shape,
                 seed=seed)
    return plate


def luigi_env():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("LOGLEVEL", None)
    return env


def luigi_run(*args, timeout=300):
    command = [sys.executable, "-m", "luigi", "--module", "antibodies", *map(str, args)]
    return subprocess.run(command, cwd=ROOT, env=luigi_env(), capture_output=True, text=True, timeout=timeout)


def image_job_runs(output):
    """``Counter((job, image))`` of the per-image 'done' lines in the workflow log."""
    lines = (Path(output) / "batchlib" / "CellAnalysis.log").read_text().splitlines()
    runs = [line.rsplit(": ", 2)[-2:] for line in lines if " done: " in line]
    return Counter((job.split()[-2], image) for job, image in runs)


def test_two_workers_process_a_cell_analysis_plate_once(tmp_path):
    plate, output = render(tmp_path / "plate", ("A01", "A02", "B01", "B02"), seed=3), tmp_path / "out"
    state, port = tmp_path / "luigid", free_port()
    scheduler.start(state, port=port)
    try:
        command = [sys.executable, "-m", "luigi", "--module", "antibodies", "CellAnalysis", "--plate", str(plate),
                   "--output", str(output), "--config", str(TEST_CONFIG), "--scheduler-host", "127.0.0.1",
                   "--scheduler-port", str(port), "--workers", "1", *KEEP_ALIVE, "--batchlib-max-batch-sizes",
                   json.dumps(dict.fromkeys(("Preprocess", "NucleusSegmentation", "MarkerTophat", "CellSegmentation",
                                             "CellFeatures", "InfectedCells"), 2))]
        logs = [tmp_path / "worker1.log", tmp_path / "worker2.log"]
        first = subprocess.Popen(command, cwd=ROOT, env=luigi_env(), stdout=logs[0].open("w"), stderr=subprocess.STDOUT)
        # the second worker starts once the first runs its first batch, so both find image jobs to run
        log = output / "batchlib" / "CellAnalysis.log"
        deadline = time.monotonic() + 300
        while not (log.exists() and " running   " in log.read_text()) and first.poll() is None:
            assert time.monotonic() < deadline, "the first worker never started a task"
            time.sleep(0.1)
        second = subprocess.Popen(command + ["--no-lock"], cwd=ROOT, env=luigi_env(), stdout=logs[1].open("w"),
                                  stderr=subprocess.STDOUT)
        assert (first.wait(timeout=600), second.wait(timeout=600)) == (0, 0), logs[1].read_text()[-3000:]
    finally:
        scheduler.stop(state)

    plan = json.loads((output / "batchlib" / "plan.json").read_text())
    runs = image_job_runs(output)
    assert set(runs) == {(job, image) for job in plan["image_jobs"] for image in plan["images"]}
    assert set(runs.values()) == {1}  # every image job ran exactly once on every image
    log = (output / "batchlib" / "CellAnalysis.log").read_text().splitlines()  # Luigi's lines of both processes
    ran = [Counter(line.split(" running   ")[1].split("(")[0] for line in log  # by the worker's pid, not the task's
                   if " running   " in line and f" pid={process.pid})" in line) for process in (first, second)]
    assert all(set(plan["image_jobs"]) & set(counts) for counts in ran), ran  # both processes ran image jobs
    assert progress.plate_progress(output).complete
    assert not [p for p in output.rglob("*") if ".tmp-" in p.name]
    for container in output.glob("*.h5"):
        with h5py.File(container, "r"):
            pass
    assert read_status(output, "CellAnalysis")["state"] == "finished"


def rows(database, table):
    with sqlite3.connect(database) as connection:
        connection.row_factory = sqlite3.Row
        return [dict(row) for row in connection.execute(f"SELECT * FROM {table} ORDER BY plate, well_name" if table == "wells"
                                                        else f"SELECT * FROM {table} ORDER BY plate")]


def log_lines(output_root, plate):
    return len((output_root / plate / "batchlib" / "CellAnalysis.log").read_text().splitlines())


def nightly(raw, out):
    return luigi_run("Nightly", "--root", raw, "--output-root", out, "--config", TEST_CONFIG, "--local-scheduler")


def test_nightly_processes_new_and_changed_plates_and_keeps_one_row_per_well(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    render(raw / "plateA", ("A01", "A02"), seed=1)
    render(raw / "site2" / "plateB", ("B01", "B02"), seed=2)
    (raw / "notes").mkdir()
    (raw / "notes" / "readme.txt").write_text("not a plate")
    database = out / "results.sqlite"

    first = nightly(raw, out)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Nightly summary: 2 plate folder(s)" in first.stderr and "2 processed this run" in first.stderr
    wells = rows(database, "wells")
    assert [(r["plate"], r["well_name"], r["serum"]) for r in wells] == [
        ("plateA", "A01", "IgG"), ("plateA", "A02", "IgG"), ("plateB", "B01", "IgG"), ("plateB", "B02", "IgG")]
    assert {"score", "robust_z_score", "is_positive", "is_outlier", "outlier_type", "n_cells", "n_infected",
            "n_control"} <= set(wells[0])
    assert all(r["processing_seconds"] > 0 and r["software_version"] for r in wells)
    plates = {r["plate"]: r for r in rows(database, "plates")}
    assert plates["plateB"]["raw_dir"] == str((raw / "site2" / "plateB").resolve()) and plates["plateA"]["n_images"] == 2

    before = {name: log_lines(out, name) for name in plates}
    again = nightly(raw, out)  # nothing new: both plates are skipped without being planned
    assert again.returncode == 0 and "2 already up to date" in again.stderr
    assert {name: log_lines(out, name) for name in plates} == before
    assert rows(database, "wells") == wells and rows(database, "plates") == list(plates.values())

    extra = render(tmp_path / "extra" / "plate", ("B03",), seed=5)
    new = next(extra.glob("*.tiff"))
    shutil.copy(new, raw / "site2" / "plateB" / new.name.replace("Seq0000", "Seq0100"))
    third = nightly(raw, out)
    assert third.returncode == 0, third.stderr[-3000:]
    assert "1 processed this run, 1 already up to date" in third.stderr
    wells = rows(database, "wells")
    assert [(r["plate"], r["well_name"]) for r in wells][-3:] == [("plateB", "B01"), ("plateB", "B02"), ("plateB", "B03")]
    assert len(wells) == 5 == len({(r["plate"], r["well_name"], r["serum"]) for r in wells})
    now = {r["plate"]: r for r in rows(database, "plates")}
    assert now["plateA"] == plates["plateA"] and now["plateB"]["processed_time"] > plates["plateB"]["processed_time"]
    assert log_lines(out, "plateA") == before["plateA"]

    render(raw / "plateC", ("C01",), seed=7)
    next((raw / "plateC").glob("*.tiff")).write_bytes(b"")  # a broken copy: the plate cannot be planned
    broken = nightly(raw, out)
    assert broken.returncode == 35, broken.stderr[-3000:]
    assert "1 incomplete (plateC: 1 invalid input file(s))" in broken.stderr
    status = read_status(out, "Nightly")
    assert status["state"] == "incomplete" and sorted(status["up_to_date"]) == ["plateA", "plateB"]
    assert len(rows(database, "wells")) == 5


def test_nucleus_segmentation_declares_the_gpu_only_when_asked(tmp_path):
    from antibodies.tasks import NucleusSegmentation

    def task(gpu):
        return NucleusSegmentation(plate_dir=str(tmp_path), output_dir=str(tmp_path), image_name="x", gpu=gpu)

    assert NucleusSegmentation.uses_gpu and task(True).resources == {"gpu": 1} and task(False).resources == {}
