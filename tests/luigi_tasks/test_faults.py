"""Reliability of the framework: kill -9 at random moments, a killed scheduler, concurrent runs,
corrupt or partial outputs of older versions, hostile names and config values, untouched raw folders.

Run with ``pytest -s`` to see the counts of injected faults.
"""
import json
import os
import subprocess
import sys
import time

import h5py
import numpy as np
import psutil
import pytest
from luigi.execution_summary import LuigiStatusCode

from luigi_tasks.provenance import read_index
from luigi_tasks.testing import make_raw_plate, run_local
from tests.fault_injection import (
    KillLoop,
    ROOT,
    check_round,
    kill_rounds,
    luigi_env,
    reference_run,
    runs_log,
    same_data,
    stamps,
    tree_digest,
    validate_outputs,
    workflow_status,
)

TOY_KEYS = ("raw", "smoothed", "mask")
TABLE_KEY = "tables/images/default"


def toy_command(plate, *extra):
    def command(output):
        return [sys.executable, "-m", "luigi", "--module", "tests.luigi_tasks.toy_workflow", "ToyWorkflow",
                "--plate", str(plate), "--output", str(output), *extra]
    return command


def expected_outputs(plate):
    expected = {f"{p.stem}.h5": TOY_KEYS for p in plate.glob("*.tiff")}
    expected[f"{plate.name}_tables.hdf5"] = (TABLE_KEY,)
    return expected


# ---------------------------------------------------------------- 1. kill -9 at random moments


@pytest.mark.slow
def test_random_kill_9_loses_nothing_and_recomputes_nothing_complete(tmp_path):
    """>= 20 SIGKILLs of local-scheduler runs (whole run, scheduler only, task child only), rerun after each."""
    plate = tmp_path / "plate"
    make_raw_plate(plate, wells=("A01", "A02", "A03"), sites=3, shape=(256, 256), seed=1)
    raw_before = tree_digest(plate)
    env = luigi_env(TOY_WRITE_MB=3)
    command = toy_command(plate, "--local-scheduler")

    reference = tmp_path / "reference"
    full_run = reference_run(command, reference, env, timeout=300)

    loop = KillLoop(command, tmp_path / "killed", seed=20240611, delays=(0.2, full_run), aimed=0.5, env=env,
                    modes={"group": 0.5, "main": 0.25, "task": 0.25})
    rounds = kill_rounds(loop, 20, f"toy plate of 9 images, full run {full_run:.1f} s")
    expected = expected_outputs(plate)
    for output in rounds:
        check_round(output, reference, expected)
    # a computation is repeated only if its run was killed after computing it and before committing it
    assert loop.stats.duplicates <= loop.stats.kills["group"] + loop.stats.kills["task"]
    assert tree_digest(plate) == raw_before


def add_bad_files(plate):
    """Add one file of every kind the toy refuses or fails on; return (invalid file names, failing image)."""
    from luigi_tasks.testing import raw_image_name

    good = sorted(plate.glob("*.tiff"))
    (plate / f"{raw_image_name('B01', 1, ('DAPI', 'GFP'), 90)}.tiff").write_bytes(b"")  # empty
    (plate / "scan_0001.tiff").write_bytes(good[0].read_bytes())  # a name outside the naming scheme
    truncated = plate / f"{raw_image_name('B02', 1, ('DAPI', 'GFP'), 91)}.tiff"
    truncated.write_bytes(good[1].read_bytes()[: good[1].stat().st_size // 2])  # cut in half
    invalid = {p.name for p in plate.glob("*.tiff")} - {p.name for p in good}
    return invalid, good[4].stem  # TOY_FAIL_ON: Smooth fails on it (a decoding error after the checks)


@pytest.mark.slow
def test_random_kill_9_on_a_corrupt_plate_gives_the_clean_result_of_the_good_images(tmp_path):
    """The kill loop on a plate with an empty file, a bad name, a truncated TIFF and an image that fails in
    the first step (run with --ignore-invalid-inputs --ignore-failed-outputs): every round ends equal to a
    clean run of the good images, with the invalid and the failed files listed once."""
    plate, clean = tmp_path / "corrupt" / "plate", tmp_path / "clean" / "plate"
    make_raw_plate(plate, wells=("A01", "A02", "A03"), sites=3, shape=(256, 256), seed=1)
    invalid, failing = add_bad_files(plate)
    make_raw_plate(clean, wells=("A01", "A02", "A03"), sites=3, shape=(256, 256), seed=1)
    (clean / f"{failing}.tiff").unlink()
    raw_before = tree_digest(plate)
    env = luigi_env(TOY_WRITE_MB=3, TOY_FAIL_ON=failing)
    flags = ("--local-scheduler", "--ignore-invalid-inputs", "--ignore-failed-outputs")

    reference = tmp_path / "reference"
    full_run = reference_run(toy_command(clean, *flags), reference, env, timeout=300)
    loop = KillLoop(toy_command(plate, *flags), tmp_path / "killed", seed=11, delays=(0.2, full_run), aimed=0.5,
                    env=env, modes={"group": 0.5, "main": 0.25, "task": 0.25})
    rounds = kill_rounds(loop, 8, f"corrupt toy plate (8 good images, 4 bad files), full run {full_run:.1f} s")
    expected = expected_outputs(clean)
    tables = {"plate_tables.hdf5": expected.pop("plate_tables.hdf5")}  # complete for runs that ignore failures
    cause = f"Smooth: ValueError: injected decoding error in {failing}.tiff"
    for output in rounds:
        check_round(output, reference, expected)
        assert same_data(output, reference, tables) == []
        with h5py.File(output / "plate_tables.hdf5", "r") as f:
            stamp = read_index(f)[TABLE_KEY]
        assert stamp.failed and stamp.error == f"1 failed image(s) left out: {failing}"
        status = workflow_status(output)
        assert status["state"] == "finished" and status["failed_outputs"] == {failing: cause}
        assert set(status["invalid_inputs"]) == invalid
    assert tree_digest(plate) == raw_before


ORPHAN = """
import shutil, sys, time
from luigi_tasks.io.atomic import container_transaction
source, target, hold = sys.argv[1:]
with container_transaction(target) as tmp:
    print("in transaction", flush=True)
    time.sleep(float(hold))
    shutil.copyfile(source, tmp)
"""


@pytest.mark.slow
def test_rerun_does_not_redo_an_image_an_orphaned_task_commits_meanwhile(toy, tmp_path):
    """kill -9 of the scheduling process orphans its task child, which finishes its image while the rerun
    (its run lock released by the kernel) waits for that container: the rerun must find it complete, not compute it again."""
    reference = tmp_path / "reference"
    assert run_local([toy.workflow()]).status == LuigiStatusCode.SUCCESS
    toy.output.rename(reference)
    last = sorted(toy.plate.glob("*.tiff"))[-1].stem
    orphan = subprocess.Popen(
        [sys.executable, "-c", ORPHAN, str(reference / f"{last}.h5"), str(toy.output / f"{last}.h5"), "2.5"],
        cwd=ROOT, env=luigi_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert orphan.stdout.readline().strip() == "in transaction"
        assert run_local([toy.workflow()]).status == LuigiStatusCode.SUCCESS
    finally:
        orphan.wait(timeout=60)
    assert f"Smooth {last}" not in runs_log(toy.output) and f"Threshold {last}" not in runs_log(toy.output)
    assert runs_log(toy.output)["Smooth " + sorted(toy.plate.glob("*.tiff"))[0].stem] == 1
    assert {k: v for k, v in stamps(toy.output).items() if k[0] == f"{last}.h5"} == \
        {k: v for k, v in stamps(reference).items() if k[0] == f"{last}.h5"}
    assert validate_outputs(toy.output, expected_outputs(toy.plate)) == []


@pytest.mark.slow
def test_rerun_does_not_redo_plate_tables_an_orphaned_task_commits_meanwhile(toy, tmp_path):
    """The same for a plate job: the tables file committed while the rerun waited for its lock is kept."""
    import shutil

    reference = tmp_path / "reference"
    assert run_local([toy.workflow()]).status == LuigiStatusCode.SUCCESS
    shutil.copytree(toy.output, reference)
    (toy.output / "plate_tables.hdf5").unlink()
    toy.reset_runs()
    orphan = subprocess.Popen(
        [sys.executable, "-c", ORPHAN, str(reference / "plate_tables.hdf5"), str(toy.output / "plate_tables.hdf5"),
         "2.5"], cwd=ROOT, env=luigi_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert orphan.stdout.readline().strip() == "in transaction"
        assert run_local([toy.workflow()]).status == LuigiStatusCode.SUCCESS
    finally:
        orphan.wait(timeout=60)
    assert toy.runs() == {}
    assert stamps(toy.output) == stamps(reference)
    assert "CountTable was completed by another process" in (toy.output / "batchlib" / "ToyWorkflow.log").read_text()


# ---------------------------------------------------------------- 4. corrupt or partial outputs of older versions


def first_image(toy):
    return sorted(toy.plate.glob("*.tiff"))[0].stem


def test_container_of_an_old_version_without_index_is_recomputed(toy):
    """Data in the old batchlib layout (plain datasets, no batchlib_index) is never trusted."""
    image = first_image(toy)
    toy.output.mkdir()
    with h5py.File(toy.output / f"{image}.h5", "w") as f:
        for key in TOY_KEYS:
            f.create_dataset(key, data=np.full((64, 64), 7, "float32"))
    assert run_local([toy.workflow()]).status == LuigiStatusCode.SUCCESS
    assert toy.runs() == {"Smooth": 4, "Threshold": 4, "CountTable": 1}
    assert validate_outputs(toy.output, expected_outputs(toy.plate)) == []
    import tifffile

    with h5py.File(toy.output / f"{image}.h5", "r") as f:
        assert np.array_equal(f["raw/s0"][...], tifffile.imread(toy.plate / f"{image}.tiff")[0].astype("float32"))


def test_truncated_container_is_moved_aside_and_recomputed(toy):
    run_local([toy.workflow()])
    image, toy_keys = first_image(toy), stamps(toy.output)
    path = toy.output / f"{image}.h5"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    toy.reset_runs()
    assert run_local([toy.workflow()]).status == LuigiStatusCode.SUCCESS
    assert toy.runs() == {"Smooth": 1, "Threshold": 1}
    assert len(list(toy.output.glob(f"{image}.corrupt-*.h5"))) == 1
    assert validate_outputs(toy.output, expected_outputs(toy.plate)) == []
    after = stamps(toy.output)
    others = {k: v for k, v in toy_keys.items() if k[0] != path.name}
    assert {k: v for k, v in after.items() if k[0] != path.name} == others  # other containers untouched
    assert "unreadable" in (toy.output / "batchlib" / "ToyWorkflow.log").read_text()


@pytest.mark.parametrize("deleted, recomputed", [
    ("mask", {"Threshold": 1}),
    ("smoothed", {"Smooth": 1}),
    (TABLE_KEY, {"CountTable": 1}),
])
def test_index_naming_a_missing_key_is_not_trusted(toy, deleted, recomputed):
    """A key listed as complete in the index but absent from the container is recomputed."""
    run_local([toy.workflow()])
    container = toy.output / ("plate_tables.hdf5" if deleted == TABLE_KEY else f"{first_image(toy)}.h5")
    with h5py.File(container, "a") as f:
        del f[deleted]
    toy.reset_runs()
    assert run_local([toy.workflow()]).status == LuigiStatusCode.SUCCESS
    assert toy.runs() == recomputed
    assert validate_outputs(toy.output, expected_outputs(toy.plate)) == []


@pytest.mark.parametrize("index", ["{not json", '{"raw": {"fp": 1}}', "[1, 2]", '{"raw": 3}'])
def test_unreadable_index_is_not_trusted(toy, index):
    """A provenance index that is not valid JSON of stamps makes the container's keys incomplete."""
    run_local([toy.workflow()])
    with h5py.File(toy.output / f"{first_image(toy)}.h5", "a") as f:
        f.attrs["batchlib_index"] = index
    toy.reset_runs()
    assert run_local([toy.workflow()]).status == LuigiStatusCode.SUCCESS
    assert toy.runs() == {"Smooth": 1, "Threshold": 1}
    assert validate_outputs(toy.output, expected_outputs(toy.plate)) == []


# ---------------------------------------------------------------- 3. concurrent runs


def test_two_runs_finding_the_lock_of_a_dead_run_do_not_both_win(tmp_path, monkeypatch):
    """Both find the lock file a dead run left (its flock dropped by the kernel): only one may take the lock."""
    import threading

    from luigi_tasks.errors import WorkflowLockedError
    from luigi_tasks.status import RunLock

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock_file = tmp_path / "batchlib" / "W.lock"
    lock_file.parent.mkdir()
    lock_file.write_text(json.dumps({"host": os.uname().nodename, "pid": dead.pid, "started": "earlier"}))
    barrier, read = threading.Barrier(2, timeout=1.0), RunLock.holder

    def holder_then_meet(self):  # widen the race window: both have read the holder before going on
        found = read(self)
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
        return found

    monkeypatch.setattr(RunLock, "holder", holder_then_meet)
    outcomes, locks = [], []

    def contender():
        try:
            locks.append(RunLock(tmp_path, "W").acquire(wait=False))
            outcomes.append("won")
        except WorkflowLockedError:
            outcomes.append("refused")

    threads = [threading.Thread(target=contender) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["refused", "won"]
    locks[0].release()
    assert not lock_file.exists()


def start_runs(plate, output, tmp_path, *extras):
    """Start local-scheduler runs of one plate at the same moment, one per ``extras`` (extra arguments)."""
    logs = [open(tmp_path / f"run{n}.log", "w+") for n in range(len(extras))]
    processes = [subprocess.Popen(toy_command(plate, "--local-scheduler", *extra)(output), cwd=ROOT,
                                  env=luigi_env(TOY_WRITE_MB=3), stdout=log, stderr=subprocess.STDOUT)
                 for log, extra in zip(logs, extras)]
    for log in logs:
        log.close()
    codes = [process.wait(timeout=300) for process in processes]
    texts = [(tmp_path / f"run{n}.log").read_text() for n in range(len(extras))]
    return codes, texts


@pytest.fixture
def busy_plate(tmp_path):
    plate = tmp_path / "plate"
    make_raw_plate(plate, wells=("A01", "A02", "A03"), sites=3, shape=(256, 256), seed=2)
    return plate


@pytest.mark.slow
@pytest.mark.parametrize("extras, guards", [
    # the identical command twice: Luigi's own process lock refuses it (exit 10), or, when both processes pass
    # that lock at the same moment (it reads the pid file before either writes it), the run lock does
    ([(), ()], ("already running", "another run")),
    ([(), ("--workers", "1")], ("another run",)),  # any other command on the same output folder: the run lock
])
def test_two_simultaneous_local_runs_the_lock_decides(busy_plate, tmp_path, extras, guards):
    raw_before, output = tree_digest(busy_plate), tmp_path / "out"
    codes, texts = start_runs(busy_plate, output, tmp_path, *extras)
    assert sorted(code == 0 for code in codes) == [False, True], codes
    refused = next(text for code, text in zip(codes, texts) if code != 0)
    assert any(guard in refused for guard in guards), refused
    if "another run" in refused:
        assert "--wait-for-lock" in refused and max(codes) == 35  # luigi.cfg [retcode] scheduling_error
    assert set(runs_log(output).values()) == {1} and len(runs_log(output)) == 9 + 9 + 1  # 0 duplicate executions
    assert validate_outputs(output, expected_outputs(busy_plate)) == []
    assert not list(output.glob("*.corrupt-*")) and tree_digest(busy_plate) == raw_before
    line = next(line for line in refused.splitlines() if any(guard in line for guard in guards))
    print(f"\n[two simultaneous local runs] exit codes {codes}; the refused one says: {line[:300]}")


@pytest.mark.slow
def test_wait_for_lock_waits_then_finds_everything_done(busy_plate, tmp_path):
    output = tmp_path / "out"
    codes, texts = start_runs(busy_plate, output, tmp_path, ("--wait-for-lock",), ("--wait-for-lock", "--workers", "1"))
    assert codes == [0, 0], texts
    assert set(runs_log(output).values()) == {1} and len(runs_log(output)) == 9 + 9 + 1
    assert validate_outputs(output, expected_outputs(busy_plate)) == []
    # the run that waited computed nothing: Luigi found the workflow complete (no step line on its terminal)
    steps = [[line for line in text.splitlines() if line.split()[:1] in (["Smooth"], ["Threshold"], ["CountTable"])]
             for text in texts]
    assert sorted(map(len, steps))[0] == 0 and sorted(map(len, steps))[1] >= 3, texts
    assert all("ToyWorkflow plate: complete" in text for text in texts)
    status = json.loads((output / "batchlib" / "ToyWorkflow.status").read_text())
    assert status["state"] == "finished"


# ---------------------------------------------------------------- 2. luigid killed mid-run


def start_luigid(state, port):
    from luigi_tasks.scheduler import luigid_command
    from luigi_tasks.testing import _wait_for_port

    state.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(luigid_command("127.0.0.1", port, state), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    _wait_for_port(port, process)
    return process


@pytest.mark.slow
@pytest.mark.parametrize("down_seconds, retries", [(2.0, 15), (6.0, 2)],
                         ids=["restart-within-retries", "restart-after-retries"])
def test_luigid_killed_mid_run_and_restarted(busy_plate, tmp_path, down_seconds, retries):
    """kill -9 of luigid while a worker runs: the worker reconnects or exits; a rerun completes; nothing lost."""
    from luigi_tasks.testing import free_port

    port, output, state = free_port(), tmp_path / "out", tmp_path / "luigid"
    cfg = tmp_path / "rpc.cfg"  # the worker retries every second (luigi's default: 3 tries 30 s apart)
    cfg.write_text(f"[core]\nrpc-retry-attempts = {retries}\nrpc-retry-wait = 1\n")
    env = luigi_env(TOY_WRITE_MB=3, TOY_SLEEP_SECONDS=0.3, LUIGI_CONFIG_PATH=cfg)
    command = toy_command(busy_plate, "--scheduler-host", "127.0.0.1", "--scheduler-port", str(port))(output)
    luigid = start_luigid(state, port)
    restarted = None
    try:
        with open(tmp_path / "worker.log", "w") as log:
            worker = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while len(runs_log(output)) < 2 and worker.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        luigid.kill()
        luigid.wait()
        killed_at = len(runs_log(output))
        time.sleep(down_seconds)
        restarted = start_luigid(state, port)
        code = worker.wait(timeout=120)  # never hangs
        assert code in (0, 25, 30, 40)  # luigi.cfg [retcode]: done, not run, task failed, RPC error
        before = stamps(output)
        assert validate_outputs(output) == []  # whatever was committed is whole
        rerun = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
    finally:
        for process in (luigid, restarted):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    after = stamps(output)
    assert {k: after.get(k) for k in before} == before  # nothing complete before was lost or recomputed
    assert validate_outputs(output, expected_outputs(busy_plate)) == []
    assert set(runs_log(output).values()) == {1}
    assert json.loads((output / "batchlib" / "ToyWorkflow.status").read_text())["state"] == "finished"
    worker_log = (tmp_path / "worker.log").read_text()
    print(f"\n[luigid kill -9 after {killed_at} image job(s), down {down_seconds:.0f} s, worker retries {retries}] "
          f"worker exit code {code}; {len(before)} keys complete when it ended; rerun exit 0; "
          f"worker log mentions retries: {'Retrying attempt' in worker_log}")


# ---------------------------------------------------------------- 5. security


HOSTILE_NAMES = [
    "..tiff",  # stem "."
    "...tiff",  # stem ".."
    "WellA01_PointA01_0001_Channel..,GFP_Seq0009.tiff",
    "WellA01_PointA01_0001_ChannelDAPI_Seq0009\n.tiff",  # "$" used to accept a trailing newline
    "WellA01_PointA01_0001_ChannelDAPI_Seq0009 .tiff",
    "WellA\u0661\u0662_PointA\u0661\u0662_0001_ChannelDAPI_Seq0009.tiff",  # Arabic-Indic digits match a Unicode \d
    "WellA01_PointA01_0001_ChannelDAPI\u2215x_Seq0009.tiff",  # DIVISION SLASH looks like "/"
    "%2e%2e%2fWellA01_PointA01_0001_ChannelDAPI_Seq0009.tiff",
]


def test_hostile_file_names_are_rejected_and_nothing_leaves_the_output_folder(toy, tmp_path):
    from tests.luigi_tasks.toy_workflow import ToyPlanner

    valid = sorted(p.name for p in toy.plate.glob("*.tiff"))
    data = (toy.plate / valid[0]).read_bytes()
    for name in HOSTILE_NAMES:
        (toy.plate / name).write_bytes(data)
    raw_before = tree_digest(toy.plate)
    plan = ToyPlanner().plan(toy.plate)
    assert set(plan.invalid) == set(HOSTILE_NAMES)
    assert all("naming scheme" in reason for reason in plan.invalid.values())
    before = set(tmp_path.rglob("*"))
    assert run_local([toy.workflow(ignore_invalid_inputs=True)]).status == LuigiStatusCode.SUCCESS
    created = set(tmp_path.rglob("*")) - before
    assert created and all(path == toy.output or toy.output in path.parents for path in created)
    assert toy.containers() == sorted(name.replace(".tiff", ".h5") for name in valid)
    assert tree_digest(toy.plate) == raw_before  # the raw folder is only read


def test_image_name_given_by_hand_cannot_leave_the_output_folder(toy, tmp_path):
    from tests.luigi_tasks.toy_workflow import Threshold

    deep = tmp_path / "a" / "b"
    before = set(tmp_path.rglob("*"))
    task = Threshold(plate_dir=str(toy.plate), output_dir=str(deep), image_name="../../escape")
    assert run_local([task]).status != LuigiStatusCode.SUCCESS
    assert set(tmp_path.rglob("*")) - before <= {tmp_path / "a", deep} | set(deep.rglob("*"))
    assert not list(tmp_path.glob("*escape*"))


def test_config_values_are_parsed_never_executed(tmp_path):
    from luigi_tasks import ConfigError, load_config

    marker = tmp_path / "executed"
    spec = tmp_path / "spec.ini"
    spec.write_text('[job]\nname = string(default="x")\nvalue = float(default=1.0)\n')
    payload = f"__import__('os').system('touch {marker}')"
    config = tmp_path / "evil.conf"
    config.write_text(f'[job]\nname = "{payload}"\n')
    assert load_config(config, spec)["job_name"] == payload  # a string, nothing more
    config.write_text(f"[job]\nvalue = {payload}\n")
    with pytest.raises(ConfigError):
        load_config(config, spec)
    with pytest.raises(ConfigError):
        load_config(None, spec, {"job_value": payload})
    config.write_text(f"[job]\nname = `touch {marker}`\nvalue = $(touch {marker})\n")
    with pytest.raises(ConfigError):
        load_config(config, spec)
    assert not marker.exists()


def _listening(pid):
    process = psutil.Process(pid)
    connections = getattr(process, "net_connections", process.connections)(kind="inet")
    return {(c.laddr.ip, c.laddr.port) for c in connections if c.status == psutil.CONN_LISTEN}


@pytest.mark.slow
def test_luigid_of_the_tests_and_of_the_scheduler_cli_listen_on_127_0_0_1_only(tmp_path):
    from luigi_tasks import scheduler
    from luigi_tasks.testing import free_port, running_luigid

    with running_luigid(tmp_path / "test-luigid") as port:
        [child] = [p for p in psutil.Process().children() if p.status() != psutil.STATUS_ZOMBIE
                   and str(port) in " ".join(p.cmdline())]
        assert _listening(child.pid) == {("127.0.0.1", port)}
    port = free_port()
    pid = scheduler.start(tmp_path / "cli-luigid", port=port)
    try:
        assert _listening(pid) == {("127.0.0.1", port)}
    finally:
        scheduler.stop(tmp_path / "cli-luigid")
