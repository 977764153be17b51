"""What a person sees in the terminal: one line per step, a summary, user errors without a traceback.

Luigi's default logging puts every DEBUG line of its worker on stderr (each
task with all its parameters). This module replaces that default (Luigi's
``InterfaceLogging._default``, used unless ``--logging-conf-file``, a TOML
``[logging]`` section or ``[core] no_configure_logging`` says otherwise) by a
terminal handler on the root logger that shows:

- the ``Workflow`` logger's own lines (the plan: images to process, invalid);
- one line each time a step finishes a batch of images (``Workflow.console``),
  with the images of the plate that step has done;
- a summary after the run: images done / failed / skipped, where the results,
  the report and the log are, and what the exit code means;
- warnings and errors as one line each; a user error (a
  :class:`~luigi_tasks.errors.BatchlibError`: missing folder, invalid inputs,
  configuration) as its message and fix, without a traceback.

Everything else (Luigi's INFO lines, TensorFlow, per-image lines, tracebacks)
goes only to ``<output>/batchlib/<Workflow>.log`` (see :mod:`luigi_tasks.log`);
``LOGLEVEL=DEBUG`` adds the DEBUG lines there. The terminal itself never shows
DEBUG or INFO chatter of other libraries.
"""
import logging
import sys
import time
import traceback
from pathlib import Path

import luigi
import luigi.execution_summary as execution_summary
import luigi.setup_logging

from .errors import BatchlibError
from .log import ROOT_LOGGER, log_level

__all__ = ["CONSOLE_LOGGER", "TerminalHandler", "configure_terminal", "short_task", "install"]

CONSOLE_LOGGER = f"{ROOT_LOGGER}.console"
console = logging.getLogger(CONSOLE_LOGGER)
_STARTED = {}
_REPORTED = []  # exceptions already shown as a step line (the latest few, compared by identity)
_LUIGI_TASK_FAILED = "[pid %s] Worker %s failed    %s"


def short_task(task):
    """Return ``Family`` or ``Family(first image +N)`` for a task, for one terminal line."""
    images = str(getattr(task, "image_name", "") or "").split(";")
    if not images[0]:
        return task.task_family
    more = f" +{len(images) - 1}" if len(images) > 1 else ""
    return f"{task.task_family}({images[0]}{more})"


def collapse_task_reprs(text):
    """Replace ``Name(param=..., ...)`` by ``Name(...)`` in one line of text.

    Examples
    --------
    >>> collapse_task_reprs("Will not run CellAnalysis(plate=/a (b), output=) or any dependencies")
    'Will not run CellAnalysis(...) or any dependencies'
    """
    out, i = [], 0
    while i < len(text):
        j = text.find("(", i)
        if j < 0 or j == 0 or not (text[j - 1].isalnum() or text[j - 1] == "_") or "=" not in text[j:j + 80]:
            out.append(text[i:] if j < 0 else text[i:j + 1])
            i = len(text) if j < 0 else j + 1
            continue
        depth, k = 0, j
        while k < len(text):
            depth += {"(": 1, ")": -1}.get(text[k], 0)
            if depth == 0:
                break
            k += 1
        out.append(text[i:j] + "(...)")
        i = k + 1
    return "".join(out)


class _FormattedError(Exception):
    """An exception known only from its formatted traceback; ``user_error`` if its class is a BatchlibError."""

    def __str__(self):
        return self.text

    def __init__(self, type_name, text, traceback_text):
        super().__init__(type_name, text, traceback_text)
        self.type_name, self.text, self.traceback_text = type_name, text, traceback_text
        self.user_error = _is_user_error_class(type_name)


def _is_user_error_class(qualified_name):
    import importlib

    module, _, name = qualified_name.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name) if module else None
    except Exception:  # noqa: BLE001 - an unknown class is not a user error
        return False
    return isinstance(cls, type) and issubclass(cls, BatchlibError)


def _error_from_traceback(text):
    """Return the last exception of a formatted traceback as a :class:`_FormattedError` (None if none)."""
    block = text.rsplit("Traceback (most recent call last):", 1)[-1].splitlines()
    for number, line in enumerate(block):
        if line and not line.startswith(" "):
            type_name, _, message = "\n".join(block[number:]).strip().partition(": ")
            error = _FormattedError(type_name, message, text)
            return error
    return None


def _log_files():
    """Run log files (added by :func:`~luigi_tasks.log.add_file_handler`) that get the records of this process."""
    handlers = logging.getLogger().handlers + logging.getLogger(ROOT_LOGGER).handlers
    return [Path(h.baseFilename) for h in handlers if getattr(h, "batchlib_log", False)]


class TerminalHandler(logging.Handler):
    """Write the lines a person reads to the current ``sys.stderr`` (see the module docstring)."""

    def __init__(self, level=logging.NOTSET):
        super().__init__(level)
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record):
        """Write the terminal text of ``record``, if it has one."""
        try:
            text = self.render(record)
            if text:
                sys.stderr.write(text + "\n")
                sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging must never fail the run
            self.handleError(record)

    @staticmethod
    def shown(record):
        """Return True if ``record`` belongs on the terminal."""
        if record.name in (ROOT_LOGGER, CONSOLE_LOGGER):
            return record.levelno >= logging.INFO
        if record.name.startswith(("luigi", ROOT_LOGGER)):
            return record.levelno >= logging.WARNING and record.msg != _LUIGI_TASK_FAILED
        return record.levelno >= logging.ERROR

    def render(self, record):
        """Return the terminal text of ``record``, or '' if it is not shown."""
        if not self.shown(record):
            return ""
        if record.name == CONSOLE_LOGGER or (record.name == ROOT_LOGGER and record.levelno < logging.WARNING):
            return record.getMessage()
        error = record.exc_info[1] if record.exc_info else None
        message = record.getMessage()
        if error is None and "Traceback (most recent call last)" in message:
            error = _error_from_traceback(message)  # Luigi formats some tracebacks into the message text
        if error is not None and any(error is shown for shown in _REPORTED):
            return ""
        if isinstance(error, BatchlibError) or getattr(error, "user_error", False):
            return f"error: {error}"
        level = record.levelname.lower()
        line = f"{level}: {collapse_task_reprs(message.splitlines()[0] if message else '')}"
        if error is None:
            return line
        name = getattr(error, "type_name", type(error).__name__).rpartition(".")[2]
        line += f" {name}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
        logs = _log_files()
        if logs:
            return f"{line} (traceback in {logs[-1]})"  # the latest run log; every one of them has it
        full = getattr(error, "traceback_text", None) or "".join(traceback.format_exception(error))
        return line + "\n" + full.rstrip()


def configure_terminal(opts=None):
    """Install the terminal handler on the root logger (once); set the root level from ``LOGLEVEL``."""
    root = logging.getLogger()
    root.setLevel(min(log_level(), logging.INFO))
    if not any(isinstance(handler, TerminalHandler) for handler in root.handlers):
        root.addHandler(TerminalHandler())
    return True


def _step_line(task, error=None):
    elapsed = time.perf_counter() - _STARTED.pop(task.task_id, time.perf_counter())
    from .job import ImageJob

    if error is not None:
        _REPORTED[:] = [*_REPORTED[-99:], error]
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return f"  {short_task(task):<36} FAILED after {elapsed:.1f} s: {type(error).__name__}: {reason}"
    if not isinstance(task, ImageJob):
        return f"  {task.task_family:<36} done ({elapsed:.1f} s)"
    try:
        from .plan_progress import plate_progress

        progress = plate_progress(task.output_dir, save=False)
        done, total, failed = progress.per_job.get(task.task_family, 0), progress.total, progress.failed
    except Exception:  # noqa: BLE001 - progress is best effort
        done, total, failed = len(task.image_names), len(task.image_names), 0
    failed_text = f", {failed} failed" if failed else ""
    return f"  {task.task_family:<36} {done}/{total} images{failed_text} ({elapsed:.1f} s)"


@luigi.Task.event_handler(luigi.Event.START)
def _started(task):
    _STARTED[task.task_id] = time.perf_counter()


@luigi.Task.event_handler(luigi.Event.SUCCESS)
def _succeeded(task):
    if _is_plate_task(task):
        console.info(_step_line(task))


@luigi.Task.event_handler(luigi.Event.FAILURE)
def _failed(task, error):
    if _is_plate_task(task):
        console.error(_step_line(task, error))


def _is_plate_task(task):
    from .job import PlateTask

    return isinstance(task, PlateTask)


_EXIT_MEANINGS = {
    "already_running": "another process runs this command (Luigi's pid lock); wait for it or pass --no-lock",
    "missing_data": "input data of a task is missing",
    "task_failed": "some tasks failed (reasons above and in the log); rerun the same command to retry them",
    "scheduling_error": "the run was refused before any work (see the error above)",
    "not_run": "some tasks were not run (held by other workers, or waiting for failed ones); rerun the same command",
}


def exit_code(worker):
    """Return ``(code, name)`` as ``luigi.retcodes.run_with_retcodes`` will for ``worker``'s run."""
    from luigi.retcodes import retcode

    codes = retcode()
    sets = {name for name, tasks in execution_summary._summary_dict(worker).items() if tasks}
    conditions = (("missing_data", "still_pending_ext"), ("task_failed", "failed"),
                  ("already_running", "run_by_other_worker"), ("scheduling_error", "scheduling_error"),
                  ("not_run", "not_run"))
    found = [(getattr(codes, name), name) for name, category in conditions if category in sets]
    code, name = max(found, default=(0, ""))
    if code == 0:
        root = execution_summary._root_task(worker)
        summary = execution_summary._summary_dict(worker)
        if root not in summary["completed"] and root not in summary["already_done"]:
            return codes.not_run, "not_run"
    return code, name


def _failed_images(output_dir):
    """Images that a job of the plan records as failed and whose outputs are not all complete now."""
    from .plan_progress import read_plan
    from .status import read_status
    from .targets import container_index

    plan = read_plan(output_dir)
    keys = [key for job in plan["image_jobs"].values() for key in job["keys"]]
    failed = set()
    for job in plan["image_jobs"]:
        failed |= set(read_status(output_dir, job).get("failed_outputs", {})) & set(plan["images"])

    def complete(image):
        index = container_index(Path(output_dir) / f"{image}{plan['container_extension']}")
        return all(key in index and not index[key].failed for key in keys)

    return {image for image in failed if not complete(image)}


def workflow_summary(workflow):
    """Return the summary lines of one plate workflow of this run, read from its outputs on disk."""
    from .plan_progress import plate_progress
    from .status import read_status, status_path

    output_dir = Path(workflow.output_dir).resolve()
    planned = workflow.__dict__.get("_final_tasks") is not None
    lines = []
    if not planned:  # the error above says why; a status file may be an earlier run's
        lines.append(f"{workflow.task_family} {workflow.plate}: refused, nothing was computed")
    else:
        skipped = len(read_status(output_dir, workflow.task_family).get("invalid_inputs", {}))
        try:
            progress = plate_progress(output_dir, save=False)
            failed = max(progress.failed, len(_failed_images(output_dir)))
            not_run = progress.total - progress.done - failed
            state = "complete" if progress.complete else "incomplete"
            lines.append(
                f"{workflow.task_family} {progress.plate}: {state}; images: {progress.done} done, {failed} failed, "
                f"{skipped} skipped (invalid inputs)" + (f", {not_run} not run" if not_run > 0 else "")
                + f", of {progress.total + skipped}"
            )
        except Exception as error:  # noqa: BLE001 - a summary must not fail the run
            lines.append(f"{workflow.task_family} {workflow.plate}: progress unavailable ({error})")
        lines.append(f"  results: {output_dir}")
        for task in workflow._final_tasks:
            tables = Path(task.tables_path)
            reports = [Path(p) for p in task.output_files() if str(p).endswith(".html")]
            for label, path in [("tables", tables)] + [("report", p) for p in reports]:
                line = f"  {label}: {' ' * (7 - len(label))}{path}"
                if path.exists() and line not in lines:
                    lines.append(line)
    log = status_path(output_dir, workflow.task_family).with_suffix(".log")
    if log.exists():
        lines.append(f"  log:     {log}")
    return lines


def run_summary(worker):
    """Return the terminal summary of ``worker``'s run (every plate workflow, then the exit code)."""
    from .workflow import PlateWorkflow

    tasks = getattr(worker, "_scheduled_tasks", {}).values()
    lines = [line for task in tasks if isinstance(task, PlateWorkflow) for line in workflow_summary(task)]
    if luigi.cmdline_parser.CmdlineParser.get_instance() is not None:
        code, name = exit_code(worker)
        meaning = _EXIT_MEANINGS.get(name, "everything asked for is complete")
        lines.append(f"exit code {code}: {meaning}" + (f" ([retcode] {name})" if name else ""))
    return "\n".join(lines)


def _install_summary():
    result_class = execution_summary.LuigiRunResult
    original = result_class.__init__

    def __init__(self, worker, *args, **kwargs):
        original(self, worker, *args, **kwargs)
        try:
            lines = run_summary(worker)
            if lines:
                console.info("\n%s", lines)
        except Exception as error:  # noqa: BLE001 - never fail a run because of its summary
            logging.getLogger(ROOT_LOGGER).warning("no run summary: %s", error, exc_info=True)

    __init__.__wrapped__ = original
    result_class.__init__ = __init__


def _show_in_help():
    for name in ("workers", "scheduler_host", "scheduler_port", "no_lock"):
        getattr(luigi.interface.core, name).always_in_help = True


def install():
    """Make this terminal Luigi's default logging, add the run summary, list ``--workers`` in ``--help``."""
    if getattr(execution_summary, "_batchlib_console", False):
        return
    luigi.setup_logging.InterfaceLogging._default = classmethod(lambda cls, opts: configure_terminal(opts))
    _install_summary()
    _show_in_help()
    execution_summary._batchlib_console = True
