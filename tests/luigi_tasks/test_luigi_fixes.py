"""The worker-side wait for other workers (``luigi_tasks.luigi_fixes``, item 4), on a stand-in worker."""
import datetime
from types import SimpleNamespace

import luigi.scheduler
import luigi.worker

import luigi_tasks  # noqa: F401 - installs the fixes


class StandInScheduler:
    def __init__(self):
        self.running = {}

    def task_list(self, status, limit):
        return self.running if status == "RUNNING" else {}


def stand_in_worker():
    return SimpleNamespace(
        _config=SimpleNamespace(keep_alive=False), _assistant=False, _stop_requesting_work=False,
        _scheduled_tasks={"Smooth_a": object(), "Threshold_a": object()}, _running_tasks={},
        _scheduler=StandInScheduler(), _idle_since=datetime.datetime(2026, 1, 1),
    )


def keep_alive(worker, n_pending):
    return luigi.worker.Worker._keep_alive(worker, SimpleNamespace(n_pending_tasks=n_pending))


def test_a_worker_stays_while_another_runs_its_task():
    worker = stand_in_worker()
    worker._scheduler.running = {"Smooth_a": {}}
    assert keep_alive(worker, 1) and keep_alive(worker, 1)


def test_with_tasks_pending_and_none_running_it_looks_once_more_then_leaves():
    """Another worker may have just finished Smooth_a, and nobody has claimed Threshold_a yet."""
    worker = stand_in_worker()
    assert keep_alive(worker, 1)
    assert not keep_alive(worker, 1)
    worker._idle_since = datetime.datetime(2026, 1, 2)  # it ran a task since: a new idle stretch, a new look
    assert keep_alive(worker, 1) and not keep_alive(worker, 1)


def test_a_wait_resets_the_second_look():
    worker = stand_in_worker()
    assert keep_alive(worker, 1)
    worker._scheduler.running = {"Smooth_a": {}}
    assert keep_alive(worker, 1)
    worker._scheduler.running = {}
    assert keep_alive(worker, 1) and not keep_alive(worker, 1)


def test_with_nothing_pending_or_stopping_it_leaves_at_once():
    assert not keep_alive(stand_in_worker(), 0)
    worker = stand_in_worker()
    worker._stop_requesting_work = True
    assert not keep_alive(worker, 1)


def test_with_a_local_scheduler_there_is_no_other_worker_to_wait_for():
    worker = stand_in_worker()
    worker._scheduler = luigi.scheduler.Scheduler()
    assert not keep_alive(worker, 1)
