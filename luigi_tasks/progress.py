"""Plate progress computed from the outputs on disk.

When a workflow plans a plate it records what "done" means in
``<output>/batchlib/plan.json``: the valid images, the output keys and
fingerprint of every image job and plate job, and the scheduler ids of the
plate-level tasks. Progress is then read from the containers' provenance
indexes, never from the scheduler: an image is done when every image job's
keys are stamped with the expected fingerprint and are not failure records.

Image jobs report the plate's progress to the scheduler at most every
``[batchlib] progress_interval`` seconds, as the status message and progress
bar of the plate-level tasks (visible in the visualizer while those wait);
plate jobs and the workflow report when they run. Container indexes already
read are cached in ``batchlib/progress.json`` by container signature, so a
report opens only the containers changed since the last one.

``python -m luigi_tasks.progress OUT_DIR [OUT_DIR ...]`` prints the progress of
plate output folders (or of every plate folder below a folder).
"""
import argparse
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .io.atomic import atomic_write
from .provenance import fingerprint
from .status import status_dir
from .targets import container_index, container_signature

__all__ = [
    "PLAN_FILE",
    "PROGRESS_FILE",
    "PlateProgress",
    "describe_plan",
    "write_plan",
    "read_plan",
    "plate_progress",
    "report_progress",
    "find_plate_outputs",
    "main",
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


def _job_record(task, keys):
    return {"keys": sorted(keys), "fingerprint": task.fingerprint(), "not_before": task.recompute_before}


def _walk(tasks, image):
    """Return one instance per job class reachable from ``tasks`` (image jobs on ``image``)."""
    from .job import ImageJob

    found, todo = {}, list(tasks)
    while todo:
        task = todo.pop()
        if task.task_family in found:
            continue
        found[task.task_family] = task
        for cls in task.upstream:
            if issubclass(cls, ImageJob):
                todo.append(task.clone(cls, image_name=getattr(task, "image_name", image)))
            else:
                todo.append(task.clone(cls))
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
    from .job import ImageJob

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
        current = [s for s in stamps if s is not None and s.fingerprint == job["fingerprint"]]
        failed = failed or any(s.failed for s in current)
        fresh = all((accept_failed or not s.failed) and s.created >= job["not_before"] for s in current)
        if len(current) == len(stamps) and fresh:
            done.append(name)
    return done, failed


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
    from .settings import batchlib

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


def find_plate_outputs(folder):
    """Return ``folder`` if it is a plate output folder, else the plate output folders below it."""
    folder = Path(folder)
    if (status_dir(folder) / PLAN_FILE).exists():
        return [folder]
    return sorted(path.parents[1] for path in folder.glob(f"*/{status_dir('.').name}/{PLAN_FILE}"))


def _refused_runs(folder):
    """Lines for plates in ``folder`` (or its subfolders) whose last run was refused at planning."""
    lines = []
    for path in sorted(Path(folder).glob("batchlib/*.status")) + sorted(Path(folder).glob("*/batchlib/*.status")):
        try:
            status = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if status.get("state") == "refused":
            lines.append(f"{path.parents[1].name}: last run refused: {status.get('reason', '')}")
    return lines


def _describe(progress, verbose):
    line = f"{progress.plate}: {progress.message()}"
    if verbose:
        jobs = ", ".join(f"{name} {count}" for name, count in progress.per_job.items())
        tables = ", ".join(f"{name} {'done' if ok else 'pending'}" for name, ok in progress.plate_jobs.items())
        tables += " (some leave failed images out)" if progress.partial else ""
        line += f"\n  image jobs: {jobs}\n  plate jobs: {tables}"
    return line


def main(argv=None):
    """Print images done of total for plate output folders; exit 0 if all are complete, 1 if not, 2 on error.

    A plate whose tables were written leaving its failed images out (``--ignore-failed-outputs``) is complete;
    one whose last run was refused (invalid inputs, configuration) is not.
    """
    parser = argparse.ArgumentParser(description="Plate progress read from the outputs on disk.")
    parser.add_argument("folders", nargs="+", help="plate output folder(s), or folder(s) holding plate output folders")
    parser.add_argument("-v", "--verbose", action="store_true", help="also list images done per job")
    args = parser.parse_args(argv)
    outputs = [plate for folder in args.folders for plate in find_plate_outputs(folder)]
    refused = [line for folder in args.folders for line in _refused_runs(folder)]
    for line in refused:
        print(line)
    if refused and not outputs:
        return 1
    if not outputs:
        print(f"no planned plate output folder in {', '.join(args.folders)} (no batchlib/{PLAN_FILE})", file=sys.stderr)
        return 2
    complete = True
    for output in outputs:
        progress = plate_progress(output, save=os.access(status_dir(output), os.W_OK))
        print(_describe(progress, args.verbose))
        complete = complete and progress.complete
    return 0 if complete and not refused else 1


if __name__ == "__main__":
    sys.exit(main())
