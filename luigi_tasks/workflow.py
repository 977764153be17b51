"""The plan step: a WrapperTask that checks a plate and requires its final jobs.

A workflow validates the folders, the configuration and the raw images once,
in the scheduling process, records the plan in ``batchlib/<Workflow>.status``,
takes the run lock when the local scheduler is used, and passes every value
down as task parameters. Subclasses set ``spec_path``, ``planner`` and
``final_jobs``.
"""
import atexit
import logging
import os
import time
from pathlib import Path

import luigi

from .config import load_config, spec_entries, flat_name
from .errors import OutputFolderError
from .job import ImageJob, report_progress
from .log import add_file_handler, get_logger
from .status import RunLock, update_status

__all__ = ["PlateWorkflow", "add_config_parameters", "use_local_lock", "default_output_dir", "release_locks"]

_LOCAL_RUN = {"active": False}
_HELD_LOCKS = {}


def use_local_lock(active=True):
    """Tell workflows that this process schedules locally, so they take the run lock."""
    _LOCAL_RUN["active"] = active


def _local_scheduler():
    if _LOCAL_RUN["active"]:
        return True
    try:
        return bool(luigi.interface.core().local_scheduler)
    except Exception:  # noqa: BLE001 - no command line parsed
        return False


def default_output_dir(plate_dir):
    """Return the documented default output folder: ``./batchlib_output/<plate name>``."""
    return Path.cwd() / "batchlib_output" / Path(plate_dir).name


def add_config_parameters(workflow, spec_path):
    """Give ``workflow`` one optional command-line parameter per configspec entry.

    ``[infection] threshold_factor`` becomes ``--infection-threshold-factor``;
    a value given there overrides the config file.
    """
    for section, key, spec in spec_entries(spec_path):
        name = flat_name(section, key)
        param = luigi.OptionalParameter(default=None, significant=True, description=f"override [{section}] {key}: {spec}")
        setattr(workflow, name, param)
        param.__set_name__(workflow, name)
    workflow.config_names = tuple(flat_name(s, k) for s, k, _ in spec_entries(spec_path))
    return workflow


def _check_writable(output_dir):
    try:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        probe = Path(output_dir) / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise OutputFolderError(
            f"{output_dir}: output folder cannot be written ({error.strerror}); choose another with --output "
            "or fix its permissions"
        ) from error


class PlateWorkflow(luigi.WrapperTask):
    """Process one plate folder: plan, then require the final jobs."""

    plate = luigi.Parameter(description="Folder with the raw images of one plate (read-only)")
    output = luigi.OptionalParameter(default=None, description="Output folder (default ./batchlib_output/<plate>)")
    config = luigi.OptionalParameter(default=None, description="configobj file; defaults come from the configspec")
    force_recompute = luigi.BoolParameter(default=False, significant=False, description="Recompute everything")
    ignore_invalid_inputs = luigi.BoolParameter(default=False, significant=False, description="Skip invalid raw files")
    ignore_failed_outputs = luigi.BoolParameter(default=False, significant=False, description="Aggregate what succeeded")
    gpu = luigi.BoolParameter(default=False, significant=False, description="Use the GPU for GPU jobs")
    wait_for_lock = luigi.BoolParameter(default=False, significant=False, description="Wait for another local run")

    spec_path = None
    planner = None
    final_jobs = ()
    config_names = ()

    @property
    def output_dir(self):
        """The resolved output folder."""
        return Path(self.output) if self.output else default_output_dir(self.plate)

    def config_values(self):
        """Return the validated, flattened configuration with command-line overrides."""
        overrides = {name: getattr(self, name) for name in self.config_names if getattr(self, name) is not None}
        return load_config(self.config, self.spec_path, overrides)

    def requires(self):
        """Plan the run once per process; return the final jobs and every image job below them.

        Image jobs are required directly so that a rerun repairs an image output
        that was damaged or deleted while the plate tables made from it are
        still complete: Luigi never looks at the requirements of a complete task.
        """
        if "_final_tasks" not in self.__dict__:
            self._final_tasks = self._plan_run()
            self._image_tasks = _image_tasks_below(self._final_tasks)
        return self._final_tasks + self._image_tasks

    def _plan_run(self):
        values = self.config_values()
        plan = self.planner.plan(self.plate)
        output_dir = self.output_dir.resolve()
        if Path(self.plate).resolve() in (output_dir, *output_dir.parents):
            raise OutputFolderError(f"{output_dir}: output must not be inside the raw plate folder {self.plate}")
        _check_writable(output_dir)
        logger = get_logger()
        add_file_handler(logging.getLogger(), output_dir, self.task_family)  # everything logged, luigi's too
        self._take_lock(output_dir, logger)
        update_status(output_dir, self.task_family, state="running", invalid=plan.invalid, n_images=len(plan.images))
        plan.require_valid(self.ignore_invalid_inputs)
        self.check_config(values)
        logger.info("%s: %d images to process, %d invalid", self.plate, len(plan.images), len(plan.invalid))
        common = dict(
            plate_dir=str(Path(self.plate).resolve()),
            output_dir=str(output_dir),
            gpu=self.gpu,
            ignore_invalid_inputs=self.ignore_invalid_inputs,
            ignore_failed_outputs=self.ignore_failed_outputs,
            recompute_before=time.time() if self.force_recompute else 0.0,
        )
        tasks = [job(**common, **self.params_for(job, values)) for job in self.jobs_to_run(values)]
        from .progress import describe_plan, write_plan  # late: ``python -m luigi_tasks.progress`` runs it

        write_plan(output_dir, describe_plan(self.task_id, common["plate_dir"], tasks, plan.image_names))
        return tasks

    def jobs_to_run(self, values):
        """Return the final jobs for this configuration (default: ``final_jobs``)."""
        return self.final_jobs

    def check_config(self, values):
        """Check resources named by the configuration (files, models); raise with the fix."""

    @staticmethod
    def params_for(job, values):
        """Return the config values ``job`` takes as parameters."""
        return {name: values[name] for name, _ in job.get_params() if name in values}

    def _take_lock(self, output_dir, logger):
        key = str(output_dir)
        if not _local_scheduler() or _HELD_LOCKS.get(key) is not None:
            return
        lock = RunLock(output_dir, self.task_family).acquire(wait=self.wait_for_lock, logger=logger)
        _HELD_LOCKS[key] = lock
        atexit.register(lock.release)

    def complete(self):
        """Complete when every final job is; then the status reads ``finished``.

        A rerun that finds everything done (e.g. after a run killed between its
        last commit and :meth:`run`) never calls :meth:`run`; without this its
        planning would leave the status at ``running``.
        """
        done = super().complete()
        if done and self.__dict__.get("_final_tasks") is not None:
            update_status(self.output_dir, self.task_family, state="finished")
        return done

    def run(self):
        """Record that the plate is finished."""
        progress = report_progress(self, force=True)
        update_status(self.output_dir, self.task_family, state="finished")
        if progress is not None:
            self.set_status_message(progress.message())
        get_logger().info("%s finished; results in %s", self.plate, self.output_dir)


def _image_tasks_below(tasks):
    """Return every :class:`~luigi_tasks.job.ImageJob` task in the graph below ``tasks``, each once."""
    found, todo, seen = [], list(tasks), set()
    while todo:
        task = todo.pop()
        if task.task_id not in seen:
            seen.add(task.task_id)
            found += [task] if isinstance(task, ImageJob) else []
            todo += luigi.task.flatten(task.requires())
    return found


def release_locks():
    """Release the run locks this process holds (for tests and long-lived processes)."""
    for key in list(_HELD_LOCKS):
        _HELD_LOCKS.pop(key).release()

