"""The plate's plan record and its progress, read from the outputs on disk.

When a workflow plans a plate it records what "done" means in
``<output>/batchlib/plan.json`` (written by :mod:`luigi_tasks.workflow`): the
valid images, the output keys and fingerprint of every image job and plate
job, and the scheduler ids of the plate-level tasks. Progress is then read
from the containers' provenance indexes, never from the scheduler: an image is
done when every image job's keys are complete by the rule of
:func:`luigi_tasks.targets.is_done`.

Image jobs report the plate's progress to the scheduler at most every
``[batchlib] progress_interval`` seconds, as the status message and progress
bar of the plate-level tasks (visible in the visualizer while those wait);
plate jobs and the workflow report when they run. Container indexes already
read are cached in ``batchlib/progress.json`` by container signature, so a
report opens only the containers changed since the last one.

This module knows no task class (the plan record is plain data), so the
framework's jobs import it and it imports none of them.
:mod:`luigi_tasks.progress` is the command line over it.
"""
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from .io.atomic import atomic_write
from .provenance import fingerprint
from .settings import batchlib
from .status import status_dir
from .targets import container_index, container_signature, is_done

__all__ = [
    "images_with_outputs",
    "PLAN_FILE",
    "PROGRESS_FILE",
    "PlateProgress",
    "write_plan",
    "read_plan",
    "plate_progress",
    "report_progress",
]

PLAN_FILE = "plan.json"
PROGRESS_FILE = "progress.json"
logger = logging.getLogger("Workflow.progress")


@dataclass(frozen=True)
class PlateProgress:
    """Images done of total for one plate output folder.

    Attributes
    ----------
    plate : str
        Plate name.
    total, done, failed : int
        Valid images, images with every image output complete, images with a
        failure record.
    per_job : dict
        ``{image job: images done}``.
    plate_jobs : dict
        ``{plate job: True if its tables are written}``.
    partial : int
        Plate jobs whose tables leave failed images out (``--ignore-failed-outputs``).
    """

    plate: str
    total: int
    done: int
    failed: int
    per_job: dict = field(default_factory=dict)
    plate_jobs: dict = field(default_factory=dict)
    partial: int = 0

    @property
    def percentage(self):
        """Images done as an integer percentage (100 for an empty plate)."""
        return int(100 * self.done / self.total) if self.total else 100

    @property
    def complete(self):
        """True when all plate tables are written, from every image or leaving out the failed ones."""
        if not all(self.plate_jobs.values()):
            return False
        return self.done == self.total or (self.done + self.failed == self.total and self.partial > 0)

    def message(self):
        """One line for the visualizer and the command line.

        Examples
        --------
        >>> PlateProgress("p", 96, 37, 1, {}, {"PlateScores": False}).message()
        '37/96 images done, 1 failed; plate tables 0/1'
        >>> PlateProgress("p", 4, 3, 1, {}, {"PlateScores": True}, partial=1).message()
        '3/4 images done, 1 failed; plate tables 1/1 (leaving out failed images)'
        """
        failed = f", {self.failed} failed" if self.failed else ""
        tables = sum(self.plate_jobs.values())
        partial = " (leaving out failed images)" if self.partial else ""
        return f"{self.done}/{self.total} images done{failed}; plate tables {tables}/{len(self.plate_jobs)}{partial}"


def write_plan(output_dir, record):
    """Write ``batchlib/plan.json`` unless it already holds ``record``."""
    path = status_dir(output_dir) / PLAN_FILE
    text = json.dumps(record, indent=1, sort_keys=True)
    if path.exists() and path.read_text() == text:
        return path
    with atomic_write(path) as tmp:
        Path(tmp).write_text(text)
    return path


def read_plan(output_dir):
    """Return the plan record of a plate output folder.

    Raises
    ------
    FileNotFoundError
        If no workflow has planned this folder yet.
    """
    path = status_dir(output_dir) / PLAN_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no plan recorded; run the workflow on this output folder first")
    return json.loads(path.read_text())


def _complete_jobs(index, jobs, accept_failed=False):
    """Return (jobs whose keys are all complete, True if any key is a failure record).

    With ``accept_failed`` keys recorded as failed (plate tables that leave failed images out) count as complete.
    """
    done, failed = [], False
    for name, job in jobs.items():
        stamps = [index.get(key) for key in job["keys"]]
        failed = failed or any(s is not None and s.failed and s.fingerprint == job["fingerprint"] for s in stamps)
        if all(is_done(s, job["fingerprint"], accept_failed, job["not_before"]) for s in stamps):
            done.append(name)
    return done, failed


def images_with_outputs(output_dir, plan, images):
    """Return those of ``images`` whose image jobs all have their outputs, none of them a failure record.

    A job status that still names such an image as failed is stale (e.g. a run killed after the image's
    commit but before its status update).
    """
    states = _image_states(output_dir, {**plan, "images": list(images)}, {})
    n_jobs = len(plan["image_jobs"])
    return {image for image, (_, done, failed) in states.items() if len(done) == n_jobs and not failed}


def _load_cache(output_dir, plan_hash):
    try:
        cache = json.loads((status_dir(output_dir) / PROGRESS_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return cache.get("images", {}) if cache.get("plan") == plan_hash else {}


def _image_states(output_dir, plan, cache):
    states = {}
    for image in plan["images"]:
        path = Path(output_dir) / f"{image}{plan['container_extension']}"
        signature = container_signature(path)
        cached = cache.get(image)
        if signature is not None and cached is not None and cached[0] == list(signature):
            states[image] = cached
            continue
        done, failed = _complete_jobs(container_index(path), plan["image_jobs"]) if signature else ([], False)
        states[image] = [list(signature) if signature else None, done, failed]
    return states


def plate_progress(output_dir, save=True, plan=None):
    """Return the :class:`PlateProgress` of a plate output folder, read from disk.

    Parameters
    ----------
    output_dir : str or Path
        A folder a workflow has planned (it has ``batchlib/plan.json``).
    save : bool
        Update the cache ``batchlib/progress.json`` (skipped if not writable).
    plan : dict, optional
        The plan record, if already read.
    """
    plan = plan or read_plan(output_dir)
    plan_hash = fingerprint(plan)
    states = _image_states(output_dir, plan, _load_cache(output_dir, plan_hash))
    n_jobs = len(plan["image_jobs"])
    per_job = {name: sum(name in done for _, done, _ in states.values()) for name in plan["image_jobs"]}
    tables = container_index(Path(output_dir) / plan["tables"]) if plan["tables"] else {}
    plate_done, _ = _complete_jobs(tables, plan["plate_jobs"], accept_failed=True)
    full, _ = _complete_jobs(tables, plan["plate_jobs"])
    progress = PlateProgress(
        plate=plan["plate"],
        total=len(plan["images"]),
        done=sum(len(done) == n_jobs for _, done, _ in states.values()),
        failed=sum(bool(failed) for _, _, failed in states.values()),
        per_job=per_job,
        plate_jobs={name: name in plate_done for name in plan["plate_jobs"]},
        partial=len(set(plate_done) - set(full)),
    )
    if save:
        _save_cache(output_dir, plan_hash, states, progress)
    return progress


def _save_cache(output_dir, plan_hash, states, progress):
    record = {"plan": plan_hash, "time": time.time(), "message": progress.message(), "images": states}
    try:
        with atomic_write(status_dir(output_dir) / PROGRESS_FILE) as tmp:
            Path(tmp).write_text(json.dumps(record))
    except OSError as error:
        logger.debug("progress cache of %s not written: %s", output_dir, error)


def _scheduler_of(task):
    """The scheduler a running task reports to (its status-message callback's), or None."""
    reporter = getattr(task.set_status_message, "__self__", None)
    return None if reporter is None or reporter is task else getattr(reporter, "_scheduler", None)


def _recently_reported(output_dir, interval):
    try:
        age = time.time() - os.stat(status_dir(output_dir) / PROGRESS_FILE).st_mtime
    except FileNotFoundError:
        return False
    return age < interval


def report_progress(task, force=False):
    """Compute the plate progress of ``task``'s output folder and show it on the plate-level tasks.

    Returns the :class:`PlateProgress`, or None if skipped (reported less than
    ``[batchlib] progress_interval`` seconds ago and not ``force``) or
    unavailable. Never raises: progress must not fail a job.
    """
    output_dir = task.output_dir
    if not force and _recently_reported(output_dir, batchlib().progress_interval):
        return None
    try:
        plan = read_plan(output_dir)
        progress = plate_progress(output_dir, plan=plan)
        scheduler = _scheduler_of(task)
        for task_id in plan["plate_tasks"] if scheduler is not None else ():
            scheduler.set_task_status_message(task_id, progress.message())
            scheduler.set_task_progress_percentage(task_id, progress.percentage)
    except Exception as error:  # noqa: BLE001 - reporting is best effort
        logger.warning("plate progress of %s not reported: %s", output_dir, error)
        return None
    logger.debug("%s: %s", progress.plate, progress.message())
    return progress
