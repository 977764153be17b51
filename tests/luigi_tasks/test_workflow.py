import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from luigi.execution_summary import LuigiStatusCode

from luigi_tasks import ConfigError, get_logger, load_config, read_status
from luigi_tasks.io import open_file, read_table
from luigi_tasks.status import RunLock
from luigi_tasks.testing import make_raw_plate, run_local, running_luigid
from tests.luigi_tasks.toy_workflow import SPEC

ROOT = Path(__file__).resolve().parents[2]


def table(toy):
    with open_file(toy.output / "plate_tables.hdf5") as f:
        return read_table(f, "images/default")


def test_end_to_end_writes_outputs_status_and_log(toy):
    result = run_local([toy.workflow()])
    assert result.status == LuigiStatusCode.SUCCESS
    assert toy.runs() == {"Smooth": 4, "Threshold": 4, "CountTable": 1}
    assert len(toy.containers()) == 4
    assert list(table(toy)["image_name"]) == sorted(p.stem for p in toy.plate.glob("*.tiff"))
    assert read_status(toy.output, "ToyWorkflow")["state"] == "finished"
    status = read_status(toy.output, "Threshold")
    assert status | {"updated": 0, "seconds": 0, "job_seconds": 0, "peak_rss_mb": 0} == {
        "state": "processed", "invalid_inputs": {}, "failed_outputs": {}, "updated": 0, "seconds": 0, "job_seconds": 0,
        "peak_rss_mb": 0,
        "images_processed": 4,
    }
    assert 0 < status["seconds"] < 60
    log = (toy.output / "batchlib" / "ToyWorkflow.log").read_text()
    assert "4 images to process" in log and "finished" in log
    assert not (toy.output / "batchlib" / "ToyWorkflow.lock").exists()


def test_n5_containers_through_the_same_api(toy, monkeypatch):
    from tests.luigi_tasks.toy_workflow import CountTable, Smooth, Threshold

    for job in (Smooth, Threshold, CountTable):
        monkeypatch.setattr(job, "container_extension", ".n5")
    assert run_local([toy.workflow()]).status == LuigiStatusCode.SUCCESS
    assert len(list(toy.output.glob("*.n5"))) == 4 and toy.containers() == []
    assert len(table(toy)) == 4
    toy.reset_runs()
    run_local([toy.workflow()])
    assert toy.runs() == {}


def test_noop_rerun_computes_nothing(toy):
    run_local([toy.workflow()])
    toy.reset_runs()
    assert run_local([toy.workflow()]).status == LuigiStatusCode.SUCCESS
    assert toy.runs() == {}


def test_new_images_run_alone_and_refresh_plate_table(toy):
    run_local([toy.workflow()])
    toy.reset_runs()
    make_raw_plate(toy.plate, wells=("A03",), sites=2, seed=5)
    run_local([toy.workflow()])
    assert toy.runs() == {"Smooth": 2, "Threshold": 2, "CountTable": 1}
    assert len(table(toy)) == 6


def test_force_recompute_reruns_everything(toy):
    run_local([toy.workflow()])
    toy.reset_runs()
    run_local([toy.workflow(force_recompute=True)])
    assert toy.runs() == {"Smooth": 4, "Threshold": 4, "CountTable": 1}


def test_changed_parameter_recomputes_exactly_the_affected_outputs(toy):
    run_local([toy.workflow()])
    toy.reset_runs()
    run_local([toy.workflow(threshold_value="400")])
    assert toy.runs() == {"Threshold": 4, "CountTable": 1}
    toy.reset_runs()
    run_local([toy.workflow(threshold_value="400", count_min_fraction="0.5")])
    assert toy.runs() == {"CountTable": 1}
    with open_file(toy.output / "plate_tables.hdf5") as f:
        params = json.loads(f["tables/images/default"].attrs["batchlib_params"])
    assert params["threshold_value"] == "400.0" and params["count_min_fraction"] == "0.5"


def add_invalid_files(plate):
    (plate / "WellA09_PointA09_0001_ChannelDAPI,GFP_Seq0099.tiff").write_bytes(b"")
    (plate / "scan_0001.tiff").write_bytes(b"II*\x00")
    (plate / "notes.txt").write_text("not an image: ignored silently")


def test_invalid_inputs_refuse_to_start_and_list_every_problem(toy, capsys):
    add_invalid_files(toy.plate)
    result = run_local([toy.workflow()])
    assert result.status == LuigiStatusCode.SCHEDULING_FAILED
    assert toy.containers() == []
    status = read_status(toy.output, "ToyWorkflow")
    assert status["state"] == "refused" and status["reason"].startswith("2 invalid input(s) in ")
    from luigi_tasks import progress

    assert progress.main([str(toy.output)]) == 1
    assert capsys.readouterr().out.startswith("out: last run refused: 2 invalid input(s) in ")
    invalid = status["invalid_inputs"]
    assert set(invalid) == {"WellA09_PointA09_0001_ChannelDAPI,GFP_Seq0099.tiff", "scan_0001.tiff"}
    assert "empty" in invalid["WellA09_PointA09_0001_ChannelDAPI,GFP_Seq0099.tiff"]
    assert "naming scheme" in invalid["scan_0001.tiff"]


def test_ignore_invalid_inputs_processes_the_valid_ones(toy):
    add_invalid_files(toy.plate)
    assert run_local([toy.workflow(ignore_invalid_inputs=True)]).status == LuigiStatusCode.SUCCESS
    assert len(toy.containers()) == 4 and len(table(toy)) == 4
    assert len(read_status(toy.output, "ToyWorkflow")["invalid_inputs"]) == 2


FAILING = "WellA02_PointA02_0002_ChannelDAPI,GFP_Seq0004"


def test_failed_image_stops_the_plate_and_is_named(toy):
    result = run_local([toy.workflow(threshold_value="666")])
    assert result.status == LuigiStatusCode.FAILED
    assert "CountTable" not in toy.runs()
    assert not (toy.output / "plate_tables.hdf5").exists()
    status = read_status(toy.output, "Threshold")
    assert status["state"] == "failed" and FAILING in status["failed_outputs"]
    assert "injected failure" in status["failed_outputs"][FAILING]


def test_failed_commit_fails_the_task_and_names_the_image(toy, monkeypatch):
    from luigi_tasks.io import atomic

    inline_commit = atomic._commit

    def disk_full_for_one_image(tmp, path):
        if FAILING in str(path):
            raise OSError(28, "No space left on device")
        inline_commit(tmp, path)

    monkeypatch.setattr(atomic, "_commit", disk_full_for_one_image)
    result = run_local([toy.workflow()])
    assert result.status == LuigiStatusCode.FAILED
    status = read_status(toy.output, "Smooth")
    assert status["state"] == "failed" and "No space" in status["failed_outputs"][FAILING]
    assert len(toy.containers()) == 3  # the other images are committed
    monkeypatch.setattr(atomic, "_commit", inline_commit)
    toy.reset_runs()
    assert run_local([toy.workflow()]).status == LuigiStatusCode.SUCCESS
    assert toy.runs()["Smooth"] == 1


def test_ignore_failed_outputs_aggregates_what_succeeded(toy):
    result = run_local([toy.workflow(threshold_value="666", ignore_failed_outputs=True)])
    assert result.status == LuigiStatusCode.SUCCESS
    assert FAILING not in set(table(toy)["image_name"]) and len(table(toy)) == 3
    cause = "Threshold: RuntimeError: injected failure"
    workflow = read_status(toy.output, "ToyWorkflow")
    assert workflow["state"] == "finished" and workflow["failed_outputs"] == {FAILING: cause}
    assert read_status(toy.output, "Threshold")["state"] == "failed"  # the job that failed on the image
    count = read_status(toy.output, "CountTable")  # the plate job left it out
    assert count["state"] == "processed" and count["failed_outputs"] == {FAILING: "upstream failed: " + cause}
    toy.reset_runs()
    retry = run_local([toy.workflow(threshold_value="666")])  # without the flag the failed image is retried
    assert retry.status == LuigiStatusCode.FAILED
    assert toy.runs() == {}  # it failed again; nothing else ran
    assert read_status(toy.output, "ToyWorkflow")["state"] == "failed"


BROKEN = "WellA01_PointA01_0002_ChannelDAPI,GFP_Seq0002"


@pytest.mark.parametrize("batch_size", [32, 2])
def test_failing_image_fails_only_its_own_tasks(toy, monkeypatch, batch_size):
    """The first step fails on one image of a batch: every other image goes through every image step and is
    committed; the plate table waits; statuses, progress and the result agree; a rerun retries that image only."""
    from luigi_tasks import progress
    from tests.luigi_tasks.toy_workflow import Smooth, Threshold

    for job in (Smooth, Threshold):
        monkeypatch.setattr(job, "max_batch_size", batch_size)
    monkeypatch.setenv("TOY_FAIL_ON", BROKEN)
    result = run_local([toy.workflow()])
    assert result.status == LuigiStatusCode.FAILED
    assert toy.runs() == {"Smooth": 3, "Threshold": 3}  # the 3 good images through both steps, no plate table
    assert not (toy.output / "plate_tables.hdf5").exists()
    failed_part = result.summary_text.split("* 1 failed:")[1].split("*")[0]
    assert failed_part.split() == ["-", "1", "Smooth(...)"]  # the broken image's task, not its whole batch
    cause = f"Smooth: ValueError: injected decoding error in {BROKEN}.tiff"
    workflow = read_status(toy.output, "ToyWorkflow")
    assert workflow["state"] == "failed" and workflow["failed_outputs"] == {BROKEN: cause}
    assert read_status(toy.output, "Smooth")["state"] == "failed"
    assert read_status(toy.output, "Smooth")["failed_outputs"] == {BROKEN: cause}
    assert read_status(toy.output, "Threshold")["state"] == "processed"
    with open_file(toy.output / f"{BROKEN}.h5") as f:  # a failure record, not half an output
        index = json.loads(f.attrs["batchlib_index"])
        assert index["raw"]["failed"] and index["raw"]["error"] == cause and "raw" not in f
    assert progress.plate_progress(toy.output).message() == "3/4 images done, 1 failed; plate tables 0/1"

    monkeypatch.delenv("TOY_FAIL_ON")  # the file is fixed: the rerun computes that image only
    toy.reset_runs()
    assert run_local([toy.workflow()]).status == LuigiStatusCode.SUCCESS
    assert toy.runs() == {"Smooth": 1, "Threshold": 1, "CountTable": 1}
    workflow = read_status(toy.output, "ToyWorkflow")
    assert workflow["state"] == "finished" and workflow["failed_outputs"] == {}
    assert read_status(toy.output, "Smooth") | {"failed_outputs": 0} == read_status(toy.output, "Smooth") | {
        "failed_outputs": 0, "state": "processed"}
    assert progress.plate_progress(toy.output).complete


def test_root_cause_is_stated_once_downstream(toy, monkeypatch):
    """With --ignore-failed-outputs every step after the failing one records the same root cause, once."""
    from luigi_tasks import progress

    monkeypatch.setenv("TOY_FAIL_ON", BROKEN)
    assert run_local([toy.workflow(ignore_failed_outputs=True)]).status == LuigiStatusCode.SUCCESS
    cause = f"Smooth: ValueError: injected decoding error in {BROKEN}.tiff"
    assert read_status(toy.output, "Threshold")["failed_outputs"] == {BROKEN: "upstream failed: " + cause}
    assert read_status(toy.output, "CountTable")["failed_outputs"] == {BROKEN: "upstream failed: " + cause}
    assert read_status(toy.output, "ToyWorkflow")["failed_outputs"] == {BROKEN: cause}
    with open_file(toy.output / f"{BROKEN}.h5") as f:
        assert json.loads(f.attrs["batchlib_index"])["mask"]["error"] == "upstream failed: " + cause
    done = progress.plate_progress(toy.output)
    assert done.complete and done.message() == "3/4 images done, 1 failed; plate tables 1/1 (leaving out failed images)"


def test_next_run_reports_a_killed_run_as_interrupted(toy):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    status = toy.output / "batchlib" / "ToyWorkflow.status"
    status.parent.mkdir(parents=True)
    status.write_text(json.dumps({"state": "running", "host": os.uname().nodename, "pid": dead.pid,
                                  "started": "2026-01-01T00:00:00+0000"}))
    assert run_local([toy.workflow()]).status == LuigiStatusCode.SUCCESS
    record = read_status(toy.output, "ToyWorkflow")
    assert record["state"] == "finished"
    assert record["previous_run"].startswith(f"interrupted: pid {dead.pid} (started 2026-01-01T00:00:00+0000)")
    assert "the previous run was interrupted" in (toy.output / "batchlib" / "ToyWorkflow.log").read_text()
    assert run_local([toy.workflow()]).status == LuigiStatusCode.SUCCESS  # a finished run is not "interrupted"
    assert "previous_run" not in read_status(toy.output, "ToyWorkflow")


def hold_run_lock(output, name="ToyWorkflow"):
    """A process that takes the run lock of ``output`` and sleeps; returned once it holds the lock."""
    code = ("import sys, time; from luigi_tasks.status import RunLock; "
            f"RunLock({str(output)!r}, {name!r}).acquire(); print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_second_local_run_is_refused_while_the_lock_is_held(toy):
    holder = hold_run_lock(toy.output)
    try:
        lock = toy.output / "batchlib" / "ToyWorkflow.lock"
        assert run_local([toy.workflow()]).status == LuigiStatusCode.SCHEDULING_FAILED
        assert toy.containers() == [] and lock.exists()
        assert f"pid {holder.pid}," in (toy.output / "batchlib" / "ToyWorkflow.log").read_text()
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holder_releases_the_lock(toy):
    """kill -9 of the holder: the kernel drops its flock; the next run takes the lock and says whose file it was."""
    holder = hold_run_lock(toy.output)
    holder.kill()
    holder.wait()
    lock = toy.output / "batchlib" / "ToyWorkflow.lock"
    assert json.loads(lock.read_text())["pid"] == holder.pid  # the file stays; the lock does not
    assert run_local([toy.workflow()]).status == LuigiStatusCode.SUCCESS
    log = (toy.output / "batchlib" / "ToyWorkflow.log").read_text()
    assert f'"pid": {holder.pid}' in log and "a run that ended without releasing it" in log
    assert not lock.exists()


def test_a_lock_file_without_a_flock_does_not_lock(toy):
    """A record whose process is alive but holds no flock (e.g. written by an older version) does not refuse."""
    lock = toy.output / "batchlib" / "ToyWorkflow.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"host": os.uname().nodename, "pid": os.getpid(), "started": "earlier"}))
    assert run_local([toy.workflow()]).status == LuigiStatusCode.SUCCESS
    assert not lock.exists()


def test_lock_records_host_pid_and_start(tmp_path):
    lock = RunLock(tmp_path, "W").acquire()
    record = json.loads((tmp_path / "batchlib" / "W.lock").read_text())
    assert record["pid"] == os.getpid() and record["host"] and record["started"]
    lock.release()
    assert not (tmp_path / "batchlib" / "W.lock").exists()


def test_loglevel_environment(monkeypatch):
    monkeypatch.setenv("LOGLEVEL", "DEBUG")
    assert get_logger("Job").getEffectiveLevel() == 10 and get_logger("Job").name == "Workflow.Job"
    monkeypatch.setenv("LOGLEVEL", "CHATTY")
    with pytest.raises(ValueError, match="LOGLEVEL"):
        get_logger()


def test_config_validation_names_key_and_allowed_values(tmp_path):
    config = tmp_path / "bad.conf"
    config.write_text("[smooth]\nsigma = 50\n[threshold]\nvalue = high\n[extra]\nx = 1\n")
    with pytest.raises(ConfigError) as error:
        load_config(config, SPEC)
    message = str(error.value)
    assert "[smooth] sigma = '50'" in message and "max=10.0" in message
    assert "[threshold] value = 'high'" in message and "extra" in message


def test_config_defaults_and_overrides(tmp_path):
    values = load_config(None, SPEC, {"smooth_sigma": "2.5"})
    assert values == {"smooth_sigma": 2.5, "threshold_value": 500.0, "count_min_fraction": 0.0}
    with pytest.raises(ConfigError, match="--nope: unknown"):
        load_config(None, SPEC, {"nope": "1"})


def test_a_list_setting_takes_commas_on_the_command_line_as_in_the_file(tmp_path):
    spec = tmp_path / "spec.ini"
    spec.write_text("[files]\npaths = force_list(default=list())\nwells = string_list(default=list())\n")
    config = tmp_path / "one.conf"
    config.write_text("[files]\npaths = /data/a.h5\nwells = A01, B02\n")
    assert load_config(config, spec) == {"files_paths": ["/data/a.h5"], "files_wells": ["A01", "B02"]}
    overrides = {"files_paths": "/data/a.h5, /data/b.h5", "files_wells": "C03"}
    assert load_config(config, spec, overrides) == {"files_paths": ["/data/a.h5", "/data/b.h5"], "files_wells": ["C03"]}
    assert load_config(None, spec, {"files_paths": ""})["files_paths"] == []


def test_relative_paths_in_a_config_file_are_relative_to_its_folder(tmp_path, monkeypatch):
    spec = tmp_path / "spec.ini"
    spec.write_text("[files]\nfixes = path_list(default=list())\ntable = path(default='')\n"
                    "model = name_or_path(default='builtin')\nother = path(default='')\n")
    folder = tmp_path / "configs"
    folder.mkdir()
    config = folder / "plate.conf"
    config.write_text("[files]\nfixes = a.h5, /data/b.h5\ntable = ../outliers.csv\nmodel = ./mine\n")
    monkeypatch.chdir(tmp_path)
    values = load_config(config.relative_to(tmp_path), spec)
    assert values == {"files_fixes": [str(folder / "a.h5"), "/data/b.h5"],
                      "files_table": str(folder / "../outliers.csv"), "files_model": str(folder / "mine"),
                      "files_other": ""}
    config.write_text("[files]\nmodel = vero_v2\n")
    assert load_config(config, spec)["files_model"] == "vero_v2"  # a name, not a path
    overrides = {"files_table": "here.csv", "files_fixes": "x.h5,y.h5"}  # the command line: the working directory
    assert load_config(config, spec, overrides)["files_table"] == "here.csv"
    assert load_config(config, spec, overrides)["files_fixes"] == ["x.h5", "y.h5"]


def luigi_command(toy, *extra):
    return [
        sys.executable, "-m", "luigi", "--module", "tests.luigi_tasks.toy_workflow", "ToyWorkflow",
        "--plate", str(toy.plate), "--output", str(toy.output), *extra,
    ]


@pytest.mark.slow
def test_against_a_real_luigid(toy, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with running_luigid(tmp_path / "luigid") as port:
        command = luigi_command(toy, "--scheduler-host", "127.0.0.1", "--scheduler-port", str(port), "--workers", "2")
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert toy.runs() == {"Smooth": 4, "Threshold": 4, "CountTable": 1}
    assert read_status(toy.output, "ToyWorkflow")["state"] == "finished"


@pytest.mark.slow
def test_command_line_exit_code_is_nonzero_on_failure(toy):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        luigi_command(toy, "--local-scheduler", "--threshold-value", "666"),
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 30, done.stderr[-2000:]
    assert FAILING in done.stderr


def test_a_stale_failure_entry_of_an_image_with_outputs_is_not_reported(toy):
    """A run killed after an image's commit but before its job status update leaves the image named as failed
    there; the workflow's end state reads the containers too and does not list it."""
    from luigi_tasks.status import update_status

    assert run_local([toy.workflow()]).status == LuigiStatusCode.SUCCESS
    image = sorted(p.stem for p in toy.plate.glob("*.tiff"))[0]
    update_status(toy.output, "Smooth", failed={image: "Smooth: OSError: killed mid-commit"})
    assert run_local([toy.workflow()]).status == LuigiStatusCode.SUCCESS  # nothing to do
    workflow = read_status(toy.output, "ToyWorkflow")
    assert workflow["state"] == "finished" and workflow["failed_outputs"] == {}
