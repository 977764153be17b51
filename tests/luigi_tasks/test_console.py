"""The terminal a person reads: step lines and a summary; chatter and tracebacks only in the log file."""
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from luigi_tasks.console import TerminalHandler, collapse_task_reprs
from luigi_tasks.errors import InvalidInputError
from luigi_tasks.log import add_file_handler, native_output_to_log

ROOT = Path(__file__).resolve().parents[2]
FAILING = "WellA02_PointA02_0002_ChannelDAPI,GFP_Seq0004"


def toy_run(toy, *extra, env=None):
    command = [sys.executable, "-m", "luigi", "--module", "tests.luigi_tasks.toy_workflow", "ToyWorkflow",
               "--plate", str(toy.plate), "--output", str(toy.output), "--local-scheduler", *extra]
    environment = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_a_successful_run_shows_one_line_per_step_and_a_summary(toy):
    done = toy_run(toy)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stderr.splitlines()
    steps = [line.split()[0] for line in lines if line.startswith("  ") and line.split()[0] in
             ("Smooth", "Threshold", "CountTable")]
    assert sorted(set(steps)) == ["CountTable", "Smooth", "Threshold"]
    assert any(line.split()[:2] == ["Threshold", "4/4"] for line in lines), done.stderr
    assert "ToyWorkflow plate: complete; images: 4 done, 0 failed, 0 skipped (invalid inputs), of 4" in lines
    assert f"  tables:  {toy.output.resolve() / 'plate_tables.hdf5'}" in lines
    assert f"  log:     {toy.output.resolve() / 'batchlib' / 'ToyWorkflow.log'}" in lines
    assert lines[-1] == "exit code 0: everything asked for is complete"
    assert len(lines) <= 12, done.stderr
    assert not [line for line in lines if line.startswith(("DEBUG", "INFO"))]
    log = (toy.output / "batchlib" / "ToyWorkflow.log").read_text()
    assert "===== Luigi Execution Summary =====" in log and "[INFO] luigi-interface" in log
    assert "[DEBUG]" not in log


@pytest.mark.slow
def test_loglevel_debug_puts_luigis_debug_lines_in_the_log_not_on_the_terminal(toy):
    done = toy_run(toy, env={"LOGLEVEL": "DEBUG"})
    assert done.returncode == 0 and "DEBUG" not in done.stderr
    log = (toy.output / "batchlib" / "ToyWorkflow.log").read_text()
    assert "[DEBUG] luigi-interface" in log and "Checking if" in log


@pytest.mark.slow
def test_a_failed_run_names_the_step_and_the_reason_without_a_traceback(toy):
    done = toy_run(toy, "--threshold-value", "666")
    assert done.returncode == 30
    assert "Traceback" not in done.stderr and FAILING in done.stderr
    failed = [line for line in done.stderr.splitlines() if "FAILED" in line]
    assert failed and all(line.lstrip().startswith("Threshold(") for line in failed), done.stderr
    assert "exit code 30: some tasks failed" in done.stderr
    assert "Traceback" in (toy.output / "batchlib" / "ToyWorkflow.log").read_text()


@pytest.mark.slow
def test_a_user_error_prints_message_and_fix_only(toy, tmp_path):
    toy.plate = tmp_path / "nowhere"
    done = toy_run(toy)
    assert done.returncode == 35
    fix = "(fix: pass an existing folder with --plate)"
    assert done.stderr.splitlines()[0] == f"error: {tmp_path / 'nowhere'}: plate folder does not exist {fix}"
    assert "Traceback" not in done.stderr and "exit code 35: the run was refused" in done.stderr
    assert len(done.stderr.splitlines()) <= 4, done.stderr


@pytest.mark.slow
def test_help_lists_workers():
    done = subprocess.run([sys.executable, "-m", "luigi", "--module", "antibodies", "CellAnalysis", "--help"],
                          cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0
    assert "--workers" in done.stdout and "--scheduler-host" in done.stdout and "--plate" in done.stdout


def record(name, level, message, exc_info=None):
    return logging.LogRecord(name, level, __file__, 1, message, None, exc_info)


@pytest.mark.parametrize("name, level, shown", [
    ("Workflow", logging.INFO, True), ("Workflow.console", logging.INFO, True),
    ("Workflow.Threshold", logging.INFO, False), ("Workflow.Threshold", logging.WARNING, True),
    ("luigi-interface", logging.INFO, False), ("luigi-interface", logging.WARNING, True),
    ("tensorflow", logging.WARNING, False), ("tensorflow", logging.ERROR, True),
    ("Workflow.tensorflow", logging.INFO, False),
])
def test_what_the_terminal_shows(name, level, shown):
    assert bool(TerminalHandler().render(record(name, level, "text"))) == shown


def test_user_errors_inside_luigis_formatted_tracebacks_are_shown_without_it():
    try:
        raise InvalidInputError("/p/x.tiff", "TIFF is truncated", "copy it again")
    except InvalidInputError:
        import traceback

        text = "Will not run CellAnalysis(plate=/p, output=) or any dependencies due to error:\n"
        text += traceback.format_exc()
    shown = TerminalHandler().render(record("luigi-interface", logging.WARNING, text))
    assert shown == "error: /p/x.tiff: TIFF is truncated (fix: copy it again)"


def test_other_errors_are_one_line_when_a_log_file_has_the_traceback(tmp_path):
    root = logging.getLogger()
    add_file_handler(root, tmp_path / "earlier", "Run")  # a plate processed before in this process
    earlier = root.handlers[-1]
    path = add_file_handler(root, tmp_path, "Run")
    handler = root.handlers[-1]
    try:
        try:
            {}["missing"]
        except KeyError:
            shown = TerminalHandler().render(record("Workflow.Job", logging.ERROR, "Job(image_name=a, x=1) broke",
                                                    sys.exc_info()))
    finally:
        for added in (earlier, handler):
            root.removeHandler(added)
            added.close()
    assert shown == f"error: Job(...) broke KeyError: 'missing' (traceback in {path.resolve()})"
    assert collapse_task_reprs("Task(a=f(1), b=2) and Other(x=1)") == "Task(...) and Other(...)"


def test_native_output_goes_to_the_log(capfd, caplog):
    logger = logging.getLogger("Workflow.tensorflow")
    with caplog.at_level(logging.INFO, logger="Workflow.tensorflow"), native_output_to_log(logger):
        os.write(2, b"I0000 port.cc:153] oneDNN custom operations are on.\n")
        os.write(1, b"Loading thresholds from 'thresholds.json'.\n")
        print("a print from a library")
    out, err = capfd.readouterr()
    assert "oneDNN" not in err and "Loading thresholds" not in out and "a print" not in out
    assert [r.getMessage() for r in caplog.records] == [
        "I0000 port.cc:153] oneDNN custom operations are on.", "Loading thresholds from 'thresholds.json'.",
        "a print from a library"]
