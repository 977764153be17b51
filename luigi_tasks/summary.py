"""Luigi's run summary and exit code when several worker processes share one scheduler.

A Luigi worker learns only about the tasks it ran itself, or saw running when
it asked for work and got none. Tasks that another worker process finished
(alone or in a batch) stay "pending" in its own summary, so Luigi reports them
as "not granted run permission" (exit code ``[retcode] not_run``) or "being
run by another worker" (``already_running``) although they are done, and a
cron job could not trust the exit code of any but the last worker.

:func:`install` makes the summary re-check those tasks: a task that is
complete when the summary is made counts as already done. Tasks that are
still incomplete (failed elsewhere, never run) keep their status, so failures
and incomplete plates still give a non-zero exit code.
"""
import functools
import logging

import luigi.execution_summary as execution_summary

__all__ = ["install"]

logger = logging.getLogger("Workflow.summary")


def _complete(task, cache):
    if task.task_id not in cache:
        try:
            cache[task.task_id] = bool(task.complete())
        except Exception as error:  # noqa: BLE001 - a broken check leaves the task's status as it was
            logger.warning("%s: completeness check failed (%s)", task, error)
            cache[task.task_id] = False
    return cache[task.task_id]


def install():
    """Patch :mod:`luigi.execution_summary` once per process (idempotent)."""
    if getattr(execution_summary, "_batchlib_rechecks", False):
        return
    partition, by_others = execution_summary._partition_tasks, execution_summary._get_run_by_other_worker

    @functools.wraps(partition)
    def partition_tasks(worker):
        set_tasks = partition(worker)
        cache = worker.__dict__.setdefault("_batchlib_complete", {})
        done = {task for task in set_tasks["still_pending_not_ext"] if _complete(task, cache)}
        if done:
            logger.debug("%d task(s) pending here were completed by other workers", len(done))
        set_tasks["still_pending_not_ext"] -= done
        set_tasks["already_done"] |= done
        return set_tasks

    @functools.wraps(by_others)
    def run_by_other_worker(worker):
        cache = worker.__dict__.setdefault("_batchlib_complete", {})
        return {task for task in by_others(worker) if not _complete(task, cache)}

    execution_summary._partition_tasks = partition_tasks
    execution_summary._get_run_by_other_worker = run_by_other_worker
    execution_summary._batchlib_rechecks = True
