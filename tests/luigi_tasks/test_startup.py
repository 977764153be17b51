"""What a run pays before its first job: the shortcuts give the answers of the long way."""
import gc
import json
import os
import shutil

import luigi
import numpy as np
import pytest

from luigi_tasks import index_cache
from luigi_tasks.job import ImageJob, PlateTask, _IMAGE_FINGERPRINTS, fingerprint
from luigi_tasks.targets import DatasetTarget, _INDEX_CACHE, clear_index_cache, container_index
from luigi_tasks.testing import make_raw_plate, run_local
from luigi_tasks.workflow import release_locks, use_local_lock
from tests.luigi_tasks.part_steps import BIG, parts, step
from tests.luigi_tasks.toy_workflow import CountTable, Smooth, Threshold

SETTINGS = {"smooth_sigma": "2.0", "threshold_value": "400.0", "count_min_fraction": "0.5"}


def fresh_process():
    """What a new run starts from: no index read, no task built."""
    clear_index_cache()
    luigi.task_register.Register.clear_instance_cache()


def cached_entry(folder, name):
    return json.loads((folder / "batchlib" / index_cache.CACHE_FILE).read_text())["containers"].get(name)


# ---------------------------------------------------------------- container indexes kept between runs

def test_a_kept_index_answers_as_the_container_does(tmp_path):
    path = tmp_path / "img.h5"
    step(path, "Big", BIG)
    step(path, "Small", np.ones((8, 8)), keys=("tables/x/small",))
    step(path, "Failed", None, keys=("failed",), fail=True)
    read = dict(container_index(path))
    index_cache.save(tmp_path)
    assert cached_entry(tmp_path, "img.h5")["parts"]  # the Big step's part file, with its signature
    fresh_process()
    _INDEX_CACHE.clear()
    assert index_cache.lookup(str(path), list(os.stat(path)[1:2]) + [0, 0]) is None  # another signature: not taken
    kept = container_index(path)
    assert kept == read and set(kept) == {"image", "tables/x/small", "failed"}
    for key in ("image", "tables/x/small", "failed"):
        assert DatasetTarget(path, key, "fp").exists() == (key != "failed")
        assert DatasetTarget(path, key, "fp", accept_failed=True).exists()


def test_a_deleted_part_file_is_seen_through_the_kept_index(tmp_path):
    path = tmp_path / "img.h5"
    step(path, "Big", BIG)
    container_index(path)
    index_cache.save(tmp_path)
    (tmp_path / parts(tmp_path)[0]).unlink()
    fresh_process()
    assert not DatasetTarget(path, "image", "fp").exists()


def test_a_replaced_part_file_is_read_again(tmp_path):
    path = tmp_path / "img.h5"
    step(path, "Big", BIG)
    container_index(path)
    index_cache.save(tmp_path)
    part = tmp_path / parts(tmp_path)[0]
    shutil.copyfile(part, tmp_path / "copy")
    os.replace(tmp_path / "copy", part)  # same name, another file
    fresh_process()
    assert index_cache.lookup(str(path), _signature(path)) is None
    assert DatasetTarget(path, "image", "fp").exists()


def test_a_commit_after_the_cache_was_written_is_seen(tmp_path):
    path = tmp_path / "img.h5"
    step(path, "Big", BIG)
    container_index(path)
    index_cache.save(tmp_path)
    fresh_process()
    step(path, "Small", np.ones((8, 8)), keys=("tables/x/small",))  # another process commits
    assert DatasetTarget(path, "tables/x/small", "fp").exists()
    step(path, "Big", None, fail=True)
    fresh_process()
    assert not DatasetTarget(path, "image", "fp").exists()


def test_containers_that_appear_or_disappear_between_runs(tmp_path):
    first, second = tmp_path / "a.h5", tmp_path / "b.h5"
    step(first, "Big", BIG)
    container_index(first)
    index_cache.save(tmp_path)
    fresh_process()
    step(second, "Big", BIG)
    assert DatasetTarget(second, "image", "fp").exists()
    first.unlink()
    assert not DatasetTarget(first, "image", "fp").exists()
    index_cache.save(tmp_path)
    assert cached_entry(tmp_path, "a.h5") is None and cached_entry(tmp_path, "b.h5") is not None


def test_a_container_with_missing_keys_is_not_kept_and_a_damaged_cache_is_ignored(tmp_path):
    path = tmp_path / "img.h5"
    step(path, "Big", BIG)
    (tmp_path / parts(tmp_path)[0]).unlink()
    assert container_index(path) == {}  # listed, but its part is gone
    index_cache.save(tmp_path)
    assert not (tmp_path / "batchlib" / index_cache.CACHE_FILE).exists()
    (tmp_path / "batchlib").mkdir()
    (tmp_path / "batchlib" / index_cache.CACHE_FILE).write_text("{not json")
    fresh_process()
    assert not DatasetTarget(path, "image", "fp").exists()


def _signature(path):
    stat = os.stat(path)
    return [stat.st_ino, stat.st_mtime_ns, stat.st_size]


# ---------------------------------------------------------------- tasks, fingerprints, completeness

def options(tmp_path, **kwargs):
    return dict(plate_dir=str(tmp_path / "plate"), output_dir=str(tmp_path / "out"), **kwargs)


def test_shared_fingerprints_are_the_ones_each_task_hashes(tmp_path):
    make_raw_plate(tmp_path / "plate")
    fresh_process()
    _IMAGE_FINGERPRINTS.clear()
    table = CountTable.from_settings(SETTINGS, **options(tmp_path))
    tasks = luigi.task.flatten(table.requires())
    assert len(tasks) == 4 and Threshold.shares_fingerprint() and Smooth.shares_fingerprint()
    full = sorted({fingerprint(PlateTask.fingerprint_payload(task)) for task in tasks})
    assert table.upstream_fingerprints() == full
    assert table.fingerprint() == fingerprint(dict(PlateTask.fingerprint_payload(table), images=list(table.images())))
    for task in tasks:
        assert task.fingerprint() == fingerprint(PlateTask.fingerprint_payload(task))


def test_an_image_job_hashing_its_image_gets_its_own_fingerprint(tmp_path):
    class PerImage(Smooth):
        def fingerprint_payload(self):
            return dict(super().fingerprint_payload(), image=self.image_name)

    class After(Threshold):
        upstream = (PerImage,)

    assert not PerImage.shares_fingerprint() and not After.shares_fingerprint()
    one, other = (After.from_settings(SETTINGS, **options(tmp_path, image_name=name)) for name in ("a", "b"))
    assert one.fingerprint() != other.fingerprint()


def test_requires_follows_the_plate_folder(tmp_path):
    make_raw_plate(tmp_path / "plate", wells=("A01",), sites=2)
    fresh_process()
    table = CountTable.from_settings(SETTINGS, **options(tmp_path))
    assert len(table.requires()[0]) == 2 and table.requires() is table.requires()
    make_raw_plate(tmp_path / "more", wells=("B01",), sites=1)
    new = next((tmp_path / "more").glob("*.tiff"))
    os.replace(new, tmp_path / "plate" / new.name)
    assert len(table.requires()[0]) == 3


def test_the_workflow_answers_complete_as_luigi_does(toy, monkeypatch):
    monkeypatch.setenv("TOY_WRITE_MB", "0.1")  # outputs in part files
    assert run_local([toy.workflow()]).status.name == "SUCCESS"
    assert (toy.output / "batchlib" / index_cache.CACHE_FILE).exists()  # written at the end of the run
    assert gc.get_freeze_count() == 0  # what the run froze while it scheduled is collectable again
    use_local_lock(False)
    try:
        for damage in (None, "part", "container"):
            if damage == "part":
                os.unlink(next(p for p in toy.output.iterdir() if p.name.endswith(".h5part")))
            if damage == "container":
                os.unlink(toy.output / toy.containers()[-1])
            fresh_process()
            luigi_answer = all(task.complete() for task in toy.workflow().requires())
            fresh_process()
            assert toy.workflow().all_complete() is luigi_answer is (damage is None)
    finally:
        release_locks()


def test_a_configured_batch_size_is_read_when_luigi_asks(monkeypatch):
    assert Smooth.max_batch_size == 32 and Smooth(plate_dir="p", output_dir="o", image_name="a").max_batch_size == 32
    monkeypatch.setattr(luigi.configuration.get_config(), "get", _config_with({"Smooth": 4}), raising=False)
    assert Smooth.max_batch_size == 4 and Threshold.max_batch_size == 32


def _config_with(sizes):
    real = luigi.configuration.get_config().get

    def get(section, option, *args, **kwargs):
        if (section, option.replace("-", "_")) == ("batchlib", "max_batch_sizes"):
            return json.dumps(sizes)
        return real(section, option, *args, **kwargs)
    return get


def test_a_declared_batch_size_stays_the_default():
    class Big(Smooth):
        max_batch_size = 64

    assert Big.max_batch_size == 64 and isinstance(vars(Big)["max_batch_size"], type(vars(ImageJob)["max_batch_size"]))


def test_tasks_built_by_keyword_have_luigis_parameter_values(tmp_path):
    task = Threshold.from_settings(SETTINGS, **options(tmp_path, image_name="a"))
    params = Threshold.get_params()
    assert Threshold.get_param_values(params, (), dict(task.param_kwargs)) == \
        luigi.Task.get_param_values.__func__(Threshold, params, (), dict(task.param_kwargs))
    wrong = {name: value for name, value in task.param_kwargs.items() if name != "gpu"}
    with pytest.raises(luigi.parameter.UnknownParameterException):  # as many names as parameters, one unknown
        Threshold.get_param_values(params, (), dict(wrong, nonsense=1))


def test_a_job_with_other_outputs_is_checked_by_its_targets(tmp_path):
    class WithFile(Smooth):
        def output(self):
            return super().output() + [luigi.LocalTarget(str(tmp_path / "extra.txt"))]

    task = WithFile.from_settings(SETTINGS, **options(tmp_path, image_name="a"))
    assert Smooth.outputs_are_keys() and not WithFile.outputs_are_keys()
    for key in Smooth.outputs:
        step(tmp_path / "out" / "a.h5", "Smooth", np.ones((8, 8)), keys=(key,), fingerprint=task.fingerprint())
    assert task.image_complete("a") and not task.complete()  # the keys are there, the extra file is not
    (tmp_path / "extra.txt").write_text("")
    assert task.complete()


def test_shared_upstream_parameters_follow_each_tasks_settings(tmp_path):
    built = {}
    for sigma in ("2.0", "3.0"):
        for image in ("a", "b"):
            task = Threshold.from_settings(dict(SETTINGS, smooth_sigma=sigma), **options(tmp_path, image_name=image))
            (smooth,) = task.requires()
            built[sigma, image] = smooth
    assert {(s.smooth_sigma, s.image_name) for s in built.values()} == {(2.0, "a"), (2.0, "b"), (3.0, "a"), (3.0, "b")}
    gpu = Threshold.from_settings(SETTINGS, **options(tmp_path, image_name="a", gpu=True)).requires()[0]
    assert gpu.gpu and not built["2.0", "a"].gpu
