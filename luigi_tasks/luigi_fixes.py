"""Fixes to Luigi 3.x for several workers and batched tasks, installed when the framework is imported.

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

3. **A batch that fails on some of its tasks** (worker side). Luigi runs a batch
   as one task and, when it raises, marks every task of the batch failed, so the
   next steps of the tasks that did succeed wait as if they had failed too. After
   a batch fails, the worker now tells the scheduler that each task of the batch
   whose outputs are complete is done (and lists it as done in its summary); only
   the others stay failed. The next steps of the good tasks then run in the same
   run, on any scheduler, and the run still exits with ``[retcode] task_failed``.

4. **Workers wait for the others** (worker side). A worker without
   ``[worker] keep_alive`` leaves as soon as it has nothing to run, even while
   other workers are running tasks it scheduled (``[retcode] not_run`` although the
   plate completes a moment later). It now stays (polling every
   ``[worker] wait_interval``) while any task it scheduled is running or batch
   running on another worker, and leaves when nothing it waits for can progress
   (everything done, or what is left blocked by failed tasks). Before leaving
   with tasks still pending it asks for work once more after a wait: another
   worker may have just finished a task whose next step nobody has claimed yet,
   which is neither running nor handed out in that instant. Set
   ``[batchlib] wait_for_other_workers = false`` to get Luigi's behaviour back.

5. **A hook at the end of a run** (worker side). When the run summary is made,
   every scheduled task with an ``on_run_end(task_sets)`` method gets the
   summary's task sets once (``failed``, ``scheduling_error``, ...): workflows
   record their end state there, from the same sets that decide the exit code.
"""
import functools
import logging

import luigi.execution_summary as execution_summary
import luigi.scheduler as luigi_scheduler
import luigi.worker as luigi_worker

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
        _call_run_end_hooks(worker, set_tasks)
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


def _call_run_end_hooks(worker, set_tasks):
    """Give each scheduled task with ``on_run_end`` the summary's task sets, once per worker."""
    if worker.__dict__.get("_batchlib_run_end_called"):
        return
    worker._batchlib_run_end_called = True
    for task in list(worker._scheduled_tasks.values()):
        hook = getattr(task, "on_run_end", None)
        if task is None or hook is None:
            continue
        try:
            hook(set_tasks)
        except Exception:  # noqa: BLE001 - a hook must not change the exit code
            logger.exception("%s: on_run_end failed", task)


def _install_partial_batch_fix():
    add_task = luigi_worker.Worker._add_task

    @functools.wraps(add_task)
    def add_task_reporting_good_members(self, *args, **kwargs):
        task_id, status = kwargs["task_id"], kwargs["status"]
        members = self._batch_running_tasks.get(task_id)
        if status != luigi_scheduler.FAILED or members is None:
            return add_task(self, *args, **kwargs)
        members = list(members)  # Luigi keeps a one-shot filter here
        self._batch_running_tasks[task_id] = members
        add_task(self, *args, **kwargs)
        cache = {}
        done = [member for member in members if _complete(member, cache)]
        if not done:
            return None
        batch = self._scheduled_tasks.get(task_id)
        failed_entry = (batch, status, kwargs["runnable"])
        if len(done) < len(members) and failed_entry in self._add_task_history:
            self._add_task_history.remove(failed_entry)  # its failed members name the failure in the summary
        for member in done:
            self._add_task_history.append((member, luigi_scheduler.DONE, True))
            self._scheduler.add_task(
                worker=self._id, task_id=member.task_id, status=luigi_scheduler.DONE, runnable=True,
                resources=member.process_resources(), params=member.to_str_params(), family=member.task_family,
                module=member.task_module, assistant=self._assistant, owners=member._owner_list(),
                param_visibilities=member._get_param_visibilities(),
            )
        logger.info("batch %s failed; %d of its %d tasks are complete and reported done", task_id, len(done),
                    len(members))
        return None

    luigi_worker.Worker._add_task = add_task_reporting_good_members


def _waits_at_all(worker):
    """Return True unless this worker is stopping, an assistant, or told not to wait for others."""
    from .settings import batchlib

    return not (worker._stop_requesting_work or worker._assistant or not batchlib().wait_for_other_workers)


def _waits_for_others(worker):
    """Return True if a task this worker scheduled is running on another worker."""
    mine = worker._scheduled_tasks
    for status in (luigi_scheduler.RUNNING, luigi_scheduler.BATCH_RUNNING):
        listed = worker._scheduler.task_list(status=status, limit=False)
        if any(task_id in mine and task_id not in worker._running_tasks for task_id in listed):
            return True
    return False


def _asks_once_more(worker, get_work_response):
    """Return True the first time a wait would end with tasks still pending: look (ask for work) once more."""
    if isinstance(worker._scheduler, luigi_scheduler.Scheduler):  # a local scheduler: no other worker
        return False
    if not get_work_response.n_pending_tasks:
        return False
    if worker.__dict__.get("_batchlib_second_look") == worker._idle_since:
        return False
    worker._batchlib_second_look = worker._idle_since
    return True


def _install_wait_for_others():
    keep_alive = luigi_worker.Worker._keep_alive

    @functools.wraps(keep_alive)
    def keep_alive_while_others_run(self, get_work_response):
        if keep_alive(self, get_work_response):
            return True
        try:
            if not _waits_at_all(self):
                return False
            waiting = _waits_for_others(self)
        except Exception as error:  # noqa: BLE001 - an unreachable scheduler ends the wait, as before
            logger.warning("cannot ask the scheduler what other workers run (%s); leaving", error)
            return False
        if waiting:
            self._batchlib_second_look = None
            if not self.__dict__.get("_batchlib_told_waiting"):
                self._batchlib_told_waiting = True
                logger.info("nothing to run here; waiting for tasks other workers are running")
        return waiting or _asks_once_more(self, get_work_response)

    luigi_worker.Worker._keep_alive = keep_alive_while_others_run


def install():
    """Install the fixes once per process (idempotent)."""
    if getattr(luigi_scheduler, "_batchlib_fixes", False):
        return
    _install_summary_recheck()
    _install_batch_rerun_fix()
    _install_partial_batch_fix()
    _install_wait_for_others()
    luigi_scheduler._batchlib_fixes = True
