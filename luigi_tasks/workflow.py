"""The plan step: a WrapperTask that checks a plate and requires its final jobs.

A workflow validates the folders, the configuration and the raw images once,
in the scheduling process, records the plan in ``batchlib/<Workflow>.status``,
takes the run lock when the local scheduler is used, and builds the final jobs
from the validated settings (each job takes its own settings as parameters and
those of the jobs above it in ``upstream_settings``). Subclasses set ``spec_path``, ``planner`` and
``final_jobs``.

The workflow status ends every run in one of three states, decided from the
same task sets as the exit code (:mod:`~luigi_tasks.luigi_fixes` calls
:meth:`PlateWorkflow.on_run_end`): ``finished`` (plate tables written; with
``--ignore-failed-outputs`` ``failed_outputs`` lists the images left out),
``failed`` (``failed_outputs`` names each failed image with its root cause) or
``refused`` (planning stopped: ``invalid_inputs`` or ``reason`` say why). A run
killed before its end leaves ``running``; the next run on this host finds the
process gone and records ``previous_run: interrupted``.
"""
import atexit
import datetime
import gc
import logging
import os
import socket
import time
from pathlib import Path

import luigi

from . import index_cache, options
from .config import load_config, spec_entries, flat_name
from .errors import OutputFolderError
from .job import ImageJob
from .log import add_file_handler, get_logger
from .plan_progress import images_with_outputs, read_plan, report_progress, write_plan
from .status import RunLock, pid_alive, read_status, root_cause, update_status

__all__ = ["PlateWorkflow", "add_config_parameters", "use_local_lock", "default_output_dir", "release_locks",
           "describe_plan"]

# Process-wide state, each forced by how Luigi runs a workflow:
# _LOCAL_RUN: a workflow cannot ask Luigi how it is scheduled. The command line records --local-scheduler
#   in luigi.interface.core(), but luigi.build(..., local_scheduler=True) (tests, the demo) records nothing,
#   so those callers say so here once per process (use_local_lock).
# _HELD_LOCKS: the run lock belongs to the process, not to a task object: Luigi builds the workflow task
#   several times per process (instance cache, requires() of the summary) and the lock must be taken once
#   and held until the process ends ({output folder: lock}).
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
    config = options.config_file()
    force_recompute = luigi.BoolParameter(default=False, significant=False, description="Recompute everything")
    ignore_invalid_inputs = options.ignore_invalid_inputs()
    ignore_failed_outputs = options.ignore_failed_outputs()
    gpu = options.gpu()
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
        if "_image_tasks" not in self.__dict__:
            self._image_tasks = _image_tasks_below(self.final_tasks())
            gc.freeze()  # the task objects live as long as the run (see final_tasks)
        return self.final_tasks() + self._image_tasks

    def final_tasks(self):
        """Plan the run once per process; return the final jobs.

        What the process holds by then (modules, classes, the plan) lives as
        long as it does: :func:`gc.freeze` keeps Python's collector from
        scanning it again on every full collection while thousands of tasks
        are built (0.6 s of an 864-image start-up), and forked task processes
        from touching (copying) those pages. :meth:`on_run_end` unfreezes them.
        """
        if "_final_tasks" not in self.__dict__:
            gc.freeze()
            self._final_tasks = self._plan_run()
        return self._final_tasks

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
        previous = _interrupted_run(read_status(output_dir, self.task_family))
        if previous:
            logger.warning("%s: the previous run was %s", output_dir, previous)
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        update_status(output_dir, self.task_family, state="running", invalid=plan.invalid, n_images=len(plan.images),
                      host=socket.gethostname(), pid=os.getpid(), started=started, reason=None,
                      previous_run=previous or None)
        try:
            plan.require_valid(self.ignore_invalid_inputs)
            self.check_config(values)
        except Exception as error:
            update_status(output_dir, self.task_family, state="refused", reason=str(error).splitlines()[0])
            raise
        logger.info("%s: %d images to process, %d invalid", self.plate, len(plan.images), len(plan.invalid))
        common = dict(
            plate_dir=str(Path(self.plate).resolve()),
            output_dir=str(output_dir),
            gpu=self.gpu,
            ignore_invalid_inputs=self.ignore_invalid_inputs,
            ignore_failed_outputs=self.ignore_failed_outputs,
            recompute_before=time.time() if self.force_recompute else 0.0,
        )
        tasks = [job.from_settings(job.serialize_settings(values), **common) for job in self.jobs_to_run(values)]
        write_plan(output_dir, describe_plan(self.task_id, common["plate_dir"], tasks, plan.image_names))
        self._images = plan.image_names
        return tasks

    def jobs_to_run(self, values):
        """Return the final jobs for this configuration (default: ``final_jobs``)."""
        return self.final_jobs

    def check_config(self, values):
        """Check resources named by the configuration (files, models); raise with the fix."""

    def _take_lock(self, output_dir, logger):
        key = str(output_dir)
        if not _local_scheduler() or _HELD_LOCKS.get(key) is not None:
            return
        lock = RunLock(output_dir, self.task_family).acquire(wait=self.wait_for_lock, logger=logger)
        _HELD_LOCKS[key] = lock
        atexit.register(lock.release)  # the kernel drops the flock anyway; release() also removes the lock file

    def complete(self):
        """Complete when every final job is; then the status reads ``finished``.

        A rerun that finds everything done (e.g. after a run killed between its
        last commit and :meth:`run`) never calls :meth:`run`; without this its
        planning would leave the status at ``running``.
        """
        done = self.all_complete()
        index_cache.save(self.output_dir.resolve())  # what this check read, for the next run
        if done:
            self._record_end("finished")
        return done

    def all_complete(self):
        """Return True if every task :meth:`requires` is complete, building an image task only where needed.

        The same answer as Luigi's (every required task complete), but where
        the tasks of an image job share one fingerprint
        (:meth:`~luigi_tasks.job.ImageJob.shares_fingerprint`) one of them
        checks every image (its output keys are those of any batch of
        images, so of every image), and a finished plate is checked without
        building its thousands of image tasks.
        """
        image_jobs = self._image_job_checkers()
        if image_jobs is None:
            return all(task.complete() for task in self.requires())
        return all(task.complete() for task in self.final_tasks()) and all(
            job.image_complete(image) for image in self._images for job in image_jobs)

    def _image_job_checkers(self):
        """Return one task per image job below the final jobs if each can check every image; else None.

        None when the image tasks are built already, when an image job's
        fingerprint or outputs may depend on the image, or when a plate job
        covers other images than the plan.
        """
        final = self.final_tasks()
        if not self._images or "_image_tasks" in self.__dict__:
            return None
        jobs = _walk(final, self._images[0]).values()
        image_jobs = [job for job in jobs if isinstance(job, ImageJob)]
        plate_jobs = [job for job in jobs if not isinstance(job, ImageJob)]
        if not all(job.shares_fingerprint() and job.outputs_are_keys() for job in image_jobs):
            return None
        if any(tuple(job.images()) != tuple(self._images) for job in plate_jobs):
            return None
        return image_jobs

    def run(self):
        """Record that the plate is finished."""
        progress = report_progress(self, force=True)
        self._record_end("finished")
        if progress is not None:
            self.set_status_message(progress.message())
        get_logger().info("%s finished; results in %s", self.plate, self.output_dir)

    def failed_images(self):
        """Return ``{image: root cause}`` of the planned images some job of this plan failed on.

        Read from the job statuses (``failed_outputs``); each cause is stated once. An image whose
        containers hold every image job's outputs (no failure record) is not failed, whatever a job
        status killed before its update still says.
        """
        try:
            plan = read_plan(self.output_dir)
        except FileNotFoundError:
            return {}
        causes = {}
        for job in list(plan["image_jobs"]) + list(plan["plate_jobs"]):
            for image, reason in read_status(self.output_dir, job).get("failed_outputs", {}).items():
                causes.setdefault(image, []).append(root_cause(reason))
        fine = images_with_outputs(self.output_dir, plan, [image for image in plan["images"] if image in causes])
        return {image: "; ".join(dict.fromkeys(causes[image])) for image in plan["images"]
                if image in causes and image not in fine}

    def _record_end(self, state, reason=None):
        """Write the end state with the failed images (those now fine are removed)."""
        failed = self.failed_images()
        try:
            images = read_plan(self.output_dir)["images"]
        except FileNotFoundError:
            images = []
        return update_status(self.output_dir, self.task_family, state=state, failed=failed,
                             succeeded=[image for image in images if image not in failed], reason=reason)

    def on_run_end(self, task_sets):
        """Record ``finished`` or ``failed`` when the run ends (called with Luigi's summary task sets).

        A run whose planning was refused has already recorded ``refused``.
        The objects frozen for the run (:meth:`final_tasks`) are handed back to
        the collector, so a process that runs several plates frees each one's.
        """
        gc.unfreeze()
        if self.__dict__.get("_final_tasks") is None:
            return
        complete = self.all_complete()
        index_cache.save(self.output_dir.resolve())
        if complete:
            self._record_end("finished")
            return
        failed_tasks = sorted({task.task_family for task in task_sets.get("failed", ())})
        failed = self.failed_images()
        if failed:
            reason = f"{len(failed)} image(s) failed; the plate tables wait for them (rerun to retry them only)"
        elif failed_tasks:
            reason = f"failed: {', '.join(failed_tasks)} (see batchlib/{self.task_family}.log)"
        else:
            reason = f"the run ended before the plate was complete (see batchlib/{self.task_family}.log)"
        status = self._record_end("failed", reason)
        get_logger().error("%s: %s", self.plate, reason)
        for image, cause in status["failed_outputs"].items():
            get_logger().error("  %s: %s", image, cause)


def _interrupted_run(status):
    """Describe the run of ``status`` if it is still ``running`` but its process on this host is gone, else ''."""
    if status.get("state") != "running" or status.get("host") != socket.gethostname():
        return ""
    pid = status.get("pid")
    if not pid or pid == os.getpid() or pid_alive(pid):
        return ""
    return (f"interrupted: pid {pid} (started {status.get('started', '?')}) ended without finishing; "
            "what it committed is kept")


def _job_record(task, keys):
    return {"keys": sorted(keys), "fingerprint": task.fingerprint(), "not_before": task.recompute_before}


def _walk(tasks, image):
    """Return one instance per job class reachable from ``tasks`` (image jobs on ``image``)."""
    found, todo = {}, list(tasks)
    while todo:
        task = todo.pop()
        if task.task_family in found:
            continue
        found[task.task_family] = task
        for cls in task.upstream:
            if issubclass(cls, ImageJob):
                todo.append(task.upstream_task(cls, image_name=getattr(task, "image_name", image)))
            else:
                todo.append(task.upstream_task(cls))
    return found


def describe_plan(workflow_id, plate_dir, tasks, images):
    """Return the plan record of a plate: images, per-job keys and fingerprints, plate task ids.

    Parameters
    ----------
    workflow_id : str
        Scheduler id of the workflow task.
    plate_dir : str
        Raw plate folder.
    tasks : list of PlateTask
        The workflow's final jobs.
    images : sequence of str
        Valid image names.
    """
    jobs = _walk(tasks, images[0]) if images else {}
    image_jobs = {name: t for name, t in jobs.items() if isinstance(t, ImageJob)}
    plate_jobs = {name: t for name, t in jobs.items() if not isinstance(t, ImageJob)}
    extension = next(iter(jobs.values())).container_extension if jobs else ".h5"
    tables = next(iter(plate_jobs.values())).tables_path.name if plate_jobs else None
    return {
        "plate": Path(plate_dir).name,
        "plate_dir": str(plate_dir),
        "images": list(images),
        "container_extension": extension,
        "tables": tables,
        "image_jobs": {name: _job_record(t, t.output_keys()) for name, t in sorted(image_jobs.items())},
        "plate_jobs": {name: _job_record(t, t.outputs) for name, t in sorted(plate_jobs.items())},
        "plate_tasks": [workflow_id] + sorted(t.task_id for t in plate_jobs.values()),
    }



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

