"""Scale out: the central scheduler, several workers on one plate, progress, timeouts, GPU selection.

The runs here are separate ``luigi`` processes against a luigid on 127.0.0.1
and a free port, started by :mod:`luigi_tasks.scheduler` and stopped afterwards.
"""
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import h5py
import pytest

from luigi_tasks import progress, read_status, scheduler
from luigi_tasks.io import open_file
from luigi_tasks.testing import free_port, make_raw_plate, run_local

ROOT = Path(__file__).resolve().parents[2]
TOY_KEYS = ("raw", "smoothed", "mask")


@pytest.fixture(scope="module")
def luigid(tmp_path_factory):
    """A luigid for this module's tests: ``(url, port)``."""
    state = tmp_path_factory.mktemp("luigid")
    port = free_port()
    scheduler.start(state, port=port)
    yield f"http://127.0.0.1:{port}", port
    scheduler.stop(state)


def toy_command(plate, output, port, *extra):
    return [
        sys.executable, "-m", "luigi", "--module", "tests.luigi_tasks.toy_workflow", "ToyWorkflow",
        "--plate", str(plate), "--output", str(output),
        "--scheduler-host", "127.0.0.1", "--scheduler-port", str(port), "--workers", "1", *extra,
    ]


def toy_env(**knobs):
    env = dict(os.environ, PYTHONPATH=str(ROOT), **knobs)
    env.pop("LOGLEVEL", None)
    return env


def run_command(command, timeout=180, **knobs):
    return subprocess.run(command, cwd=ROOT, env=toy_env(**knobs), capture_output=True, text=True, timeout=timeout)


def runs(output):
    """``[(job, image, worker pid)]`` from the toy's runs.log."""
    log = Path(output) / "runs.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [tuple(line.split(" worker=")[0].split()) + (line.split(" worker=")[1],) for line in lines]


def wait_until(condition, timeout=120.0, poll=0.1):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(poll)


def tasks_of(url, status, folder, family=None):
    """Tasks of ``status`` in luigid whose parameters mention ``folder``."""
    listed = scheduler.api(url, "task_list", status=status, search=family or "")
    return {tid: task for tid, task in listed.items() if str(folder) in str(task["params"])}


def check_outputs(output, n_images):
    """Every container opens and holds every key; no temporary copies are left."""
    assert not [p for p in Path(output).rglob("*") if ".tmp-" in p.name]
    containers = sorted(Path(output).glob("*.h5"))
    assert len(containers) == n_images
    for path in containers:
        with h5py.File(path, "r") as container:
            assert all(key in container for key in TOY_KEYS), path


@pytest.mark.slow
def test_scheduler_cli_starts_reports_and_stops_luigid(tmp_path):
    port, state = free_port(), tmp_path / "state"
    cli = [sys.executable, "-m", "luigi_tasks.scheduler"]
    args = ["--state-dir", str(state), "--port", str(port)]
    try:
        assert run_command(cli + ["start"] + args).returncode == 0
        pid = int((state / "luigid.pid").read_text())
        again = run_command(cli + ["start"] + args)  # idempotent: a cron @reboot line may run it twice
        assert again.returncode == 0 and "already runs" in again.stderr
        assert int((state / "luigid.pid").read_text()) == pid
        status = run_command(cli + ["status"] + args)
        assert status.returncode == 0 and f"http://127.0.0.1:{port}" in status.stdout and "0 failed" in status.stdout
    finally:
        stopped = run_command(cli + ["stop"] + args)
    assert stopped.returncode == 0
    assert run_command(cli + ["status"] + args).returncode == 3
    assert (state / "luigi-state.pickle").exists() and (state / "luigid.log").exists()


@pytest.mark.slow
def test_two_workers_share_one_plate_and_run_each_image_once(tmp_path, luigid):
    url, port = luigid
    plate, output = tmp_path / "plate", tmp_path / "out"
    make_raw_plate(plate, wells=("A01", "A02", "A03", "A04"), sites=4)
    command = toy_command(plate, output, port, "--batchlib-progress-interval", "0",
                          "--batchlib-max-batch-sizes", '{"Smooth": 2, "Threshold": 2}')  # no keep-alive flags
    env = toy_env(TOY_SLEEP_SECONDS="0.4")
    logs = [open(tmp_path / f"worker{n}.log", "w") for n in (1, 2)]
    first = subprocess.Popen(command, cwd=ROOT, env=env, stdout=logs[0], stderr=subprocess.STDOUT)
    wait_until(lambda: runs(output) or first.poll() is not None)
    # a second worker process on this machine (or the same command on another machine) shares the work
    second = subprocess.Popen(command + ["--no-lock"], cwd=ROOT, env=env, stdout=logs[1], stderr=subprocess.STDOUT)
    duplicate = run_command(command)  # the identical command again on this machine: Luigi's process lock refuses it
    assert duplicate.returncode == 10 and "already running" in duplicate.stdout + duplicate.stderr
    seen = set()  # plate progress shown on the waiting plate task while images are processed
    while first.poll() is None or second.poll() is None:
        seen |= {t["status_message"] for t in tasks_of(url, "PENDING", output, "CountTable").values()}
        time.sleep(0.2)
    assert (first.returncode, second.returncode) == (0, 0), (tmp_path / "worker2.log").read_text()[-3000:]

    executions = Counter((job, image) for job, image, _ in runs(output))
    assert set(executions.values()) == {1}  # nothing ran twice
    assert Counter(job for job, _ in executions) == {"Smooth": 16, "Threshold": 16, "CountTable": 1}
    workers = Counter(worker for job, _, worker in runs(output) if job != "CountTable")
    assert len(workers) == 2, workers  # both worker processes ran image jobs
    check_outputs(output, 16)
    assert any(m and m.endswith("plate tables 0/1") and not m.startswith("16/") for m in seen), seen
    done = progress.plate_progress(output)
    assert done.complete and done.message() == "16/16 images done; plate tables 1/1"
    workflow = tasks_of(url, "DONE", output, "ToyWorkflow")
    assert [t["status_message"] for t in workflow.values()] == ["16/16 images done; plate tables 1/1"]

    again = run_command(command)  # the identical command once more: nothing to do
    assert again.returncode == 0 and len(runs(output)) == 33


def start_second_while_first_runs(tmp_path, url, command, env):
    """Start ``command`` and, once its first batch runs, the same command with ``--no-lock``; return both codes."""
    output = Path(command[command.index("--output") + 1])
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    wait_until(lambda: tasks_of(url, "RUNNING", output, "Smooth") or first.poll() is not None)
    started = time.monotonic()
    second = subprocess.run(command + ["--no-lock"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    first.wait(timeout=180)
    return first.returncode, second, time.monotonic() - started


@pytest.mark.slow
@pytest.mark.parametrize("wait, second_code", [("true", 0), ("false", 25)])
def test_a_process_that_finds_the_rest_held_by_another_waits_and_exits_0(tmp_path, luigid, wait, second_code):
    """The same command twice without keep-alive flags: the second process finds the only batch held by the
    first; it waits for it (default) and both exit 0; with Luigi's behaviour it leaves at once, exit 25."""
    url, port = luigid
    plate, output = tmp_path / "plate", tmp_path / "out"
    make_raw_plate(plate, wells=("A01",), sites=2)
    command = toy_command(plate, output, port, "--batchlib-wait-for-other-workers", wait)
    first, second, seconds = start_second_while_first_runs(tmp_path, url, command, toy_env(TOY_SLEEP_SECONDS="2"))
    assert (first, second.returncode) == (0, second_code), second.stderr[-3000:]
    if wait == "true":
        assert seconds > 2  # it stayed while the first process ran the Smooth batch
        assert "waiting for tasks other workers are running" in (output / "batchlib" / "ToyWorkflow.log").read_text()
    assert Counter(job for job, _, _ in runs(output)) == {"Smooth": 2, "Threshold": 2, "CountTable": 1}
    assert read_status(output, "ToyWorkflow")["state"] == "finished"


@pytest.mark.slow
def test_processes_sharing_a_plate_with_a_failing_image_both_end_non_zero(tmp_path, luigid):
    """Waiting for others never waits for a failed task: both processes end, non-zero, naming the image."""
    url, port = luigid
    plate, output = tmp_path / "plate", tmp_path / "out"
    make_raw_plate(plate, wells=("A01",), sites=2)
    broken = sorted(p.stem for p in plate.glob("*.tiff"))[1]
    env = toy_env(TOY_SLEEP_SECONDS="2", TOY_FAIL_ON=broken)
    first, second, seconds = start_second_while_first_runs(tmp_path, url, toy_command(plate, output, port), env)
    assert first == 30 and second.returncode == 25 and seconds < 60, second.stderr[-3000:]
    assert Counter(job for job, _, _ in runs(output)) == {"Smooth": 1, "Threshold": 1}
    status = read_status(output, "ToyWorkflow")
    assert status["state"] == "failed" and list(status["failed_outputs"]) == [broken]


@pytest.mark.slow
def test_failure_reason_reaches_the_scheduler(tmp_path, luigid):
    url, port = luigid
    make_raw_plate(tmp_path / "plate")
    done = run_command(toy_command(tmp_path / "plate", tmp_path / "out", port, "--threshold-value", "666"))
    assert done.returncode == 30, done.stderr[-2000:]
    failed = tasks_of(url, "FAILED", tmp_path / "out")
    assert failed and {t["name"] for t in failed.values()} == {"Threshold"}
    for task_id in failed:
        error = scheduler.api(url, "fetch_error", task_id=task_id)["error"]
        assert "injected failure" in error and "A02_0002" in error and len(error.strip().splitlines()) == 1


@pytest.mark.slow
def test_stuck_task_is_killed_reported_and_cleaned_up_by_the_rerun(tmp_path, luigid):
    url, port = luigid
    plate, output = tmp_path / "plate", tmp_path / "out"
    make_raw_plate(plate)
    stuck = "A01_PointA01_0001"
    started = time.monotonic()
    done = run_command(toy_command(plate, output, port, "--worker-timeout", "5"), TOY_HANG_ON=stuck)
    assert done.returncode == 30 and time.monotonic() - started < 120, done.stderr[-2000:]
    failed = tasks_of(url, "FAILED", output)
    assert {t["name"] for t in failed.values()} == {"Threshold"}
    errors = [scheduler.api(url, "fetch_error", task_id=task_id)["error"] for task_id in failed]
    assert all("timed out after 5 seconds" in error for error in errors), errors
    status = read_status(output, "Threshold")
    reasons = [reason for image, reason in status["failed_outputs"].items() if stuck in image]
    assert status["state"] == "failed" and reasons and "timed out" in reasons[0]
    assert [p for p in output.iterdir() if ".tmp-" in p.name]  # the killed transaction's copy ...

    rerun = run_command(toy_command(plate, output, port))
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    check_outputs(output, 4)  # ... is removed by the next transaction of that container
    assert read_status(output, "Threshold")["failed_outputs"] == {}


@pytest.mark.slow
def test_rerun_of_the_same_batches_after_deleting_outputs_runs_them_once(tmp_path, luigid):
    """luigid remembers the first run's batches; without luigi_fixes the rerun got the same batch forever."""
    url, port = luigid
    plate, output = tmp_path / "plate", tmp_path / "out"
    make_raw_plate(plate)
    command = toy_command(plate, output, port)
    assert run_command(command).returncode == 0
    shutil.rmtree(output)
    # luigid ignores "pending" for tasks done less than stable_done_cooldown_secs (10 s) ago: wait until every
    # task of the first run is past it (its last update in luigid), so the rerun reaches the code under test
    cooldown = 10
    done = tasks_of(url, "DONE", output)
    assert done
    wait_until(lambda: all(time.time() - task["last_updated"] > cooldown for task in done.values()), timeout=60)
    again = run_command(command, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    assert Counter(job for job, _, _ in runs(output)) == {"Smooth": 4, "Threshold": 4, "CountTable": 1}
    check_outputs(output, 4)


@pytest.mark.slow
def test_progress_command_counts_images_done_from_disk(toy, capsys):
    run_local([toy.workflow(threshold_value="666")])  # one image fails, the plate table is not written
    assert progress.main([str(toy.output)]) == 1
    assert capsys.readouterr().out.strip() == "plate: 3/4 images done, 1 failed; plate tables 0/1"
    run_local([toy.workflow(threshold_value="666", ignore_failed_outputs=True)])
    assert progress.main([str(toy.output), "--verbose"]) == 0  # finished, leaving the failed image out
    out = capsys.readouterr().out
    assert "3/4 images done, 1 failed; plate tables 1/1 (leaving out failed images)" in out
    assert "CountTable done (some leave failed images out)" in out
    run_local([toy.workflow()])
    assert progress.main([str(toy.output.parent)]) == 0  # a folder of plate output folders
    assert capsys.readouterr().out.strip() == "plate: 4/4 images done; plate tables 1/1"


def test_gpu_jobs_see_no_gpu_unless_asked_and_take_the_gpu_resource(toy, monkeypatch):
    from tests.luigi_tasks.toy_workflow import DeviceProbe, Smooth

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    image = sorted(p.stem for p in toy.plate.glob("*.tiff"))[0]
    devices = {}
    for gpu in (False, True):
        output = toy.output.parent / f"out_gpu_{gpu}"
        probe = DeviceProbe(plate_dir=str(toy.plate), output_dir=str(output), image_name=image, gpu=gpu)
        assert probe.resources == ({"gpu": 1} if gpu else {})
        assert Smooth(plate_dir=str(toy.plate), output_dir=str(output), image_name=image, gpu=gpu).resources == {}
        assert run_local([probe]).status.name == "SUCCESS"
        with open_file(output / f"{image}.h5") as container:
            devices[gpu] = container["device"][()].decode()
    assert devices == {False: "-1", True: "0"}
