"""Two fixes to Luigi 3.x for several workers and batched tasks, installed when the framework is imported.

1. **Run summary and exit code** (worker side). A Luigi worker learns only about
   the tasks it ran itself, or saw running when it asked for work and got none.
   Tasks that another worker process finished (alone or in a batch) stay
   "pending" in its summary, so Luigi reports them as "not granted run
   permission" (``[retcode] not_run``) or "being run by another worker"
   (``already_running``) although they are done, and a cron job could not trust
   the exit code of any but the last worker. The summary now re-checks those
   tasks: one that is complete when the summary is made counts as already done.
   Tasks still incomplete (failed elsewhere, never run) keep their status, so
   failures and incomplete plates still give a non-zero exit code.

2. **Batch tasks run again** (scheduler side). The scheduler remembers which
   worker ran a task (``worker_running``) after it is done. When the same
   batch (same images of the same step) runs again while the scheduler still
   knows it - a rerun after outputs were deleted or ``--force-recompute``
   within ``[scheduler] remove_delay``, or a batch retried after its worker
   died - the new worker's "done" is ignored because the batch still names the
   old worker, and the new worker is handed the same batch again and again.
   A worker that reports it starts running a batch now becomes its
   ``worker_running``. The central scheduler gets this fix when started with
   ``python -m luigi_tasks.scheduler start``; the local scheduler always has it.
"""
import functools
import logging

import luigi.execution_summary as execution_summary
import luigi.scheduler as luigi_scheduler

__all__ = ["install"]

logger = logging.getLogger("Workflow.luigi_fixes")


def _complete(task, cache):
    if task.task_id not in cache:
        try:
            cache[task.task_id] = bool(task.complete())
        except Exception as error:  # noqa: BLE001 - a broken check leaves the task's status as it was
            logger.warning("%s: completeness check failed (%s)", task, error)
            cache[task.task_id] = False
    return cache[task.task_id]


def _install_summary_recheck():
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


def _install_batch_rerun_fix():
    add_task = luigi_scheduler.Scheduler.add_task

    @functools.wraps(add_task)
    def add_task_claiming_batches(self, *args, **kwargs):
        if kwargs.get("status") == luigi_scheduler.RUNNING and kwargs.get("batch_id") is not None:
            task = self._state.get_task(kwargs.get("task_id"))
            if task is not None and task.worker_running != kwargs.get("worker"):
                task.worker_running = None  # the original then records the worker that runs it now
        return add_task(self, *args, **kwargs)

    luigi_scheduler.Scheduler.add_task = add_task_claiming_batches


def install():
    """Install both fixes once per process (idempotent)."""
    if getattr(luigi_scheduler, "_batchlib_fixes", False):
        return
    _install_summary_recheck()
    _install_batch_rerun_fix()
    luigi_scheduler._batchlib_fixes = True
