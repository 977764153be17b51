"""A task carries the settings it reads; those above it travel in ``upstream_settings``."""
import luigi
import pytest

from luigi_tasks import BatchJob
from luigi_tasks.job import FRAMEWORK_PARAMS
from tests.luigi_tasks.toy_workflow import CountTable, Smooth, Threshold, ToyWorkflow

SETTINGS = {"smooth_sigma": "2.0", "threshold_value": "400.0", "count_min_fraction": "0.5"}


def options(tmp_path, **kwargs):
    return dict(plate_dir=str(tmp_path / "plate"), output_dir=str(tmp_path / "out"), **kwargs)


@pytest.mark.parametrize("job, own", [(Smooth, {"smooth_sigma"}), (Threshold, {"threshold_value"}),
                                      (CountTable, {"count_min_fraction"})])
def test_a_job_carries_only_its_own_settings(job, own):
    names = {name for name, _ in job.get_params()}
    assert names - set(FRAMEWORK_PARAMS) == own
    assert set(job.own_setting_params()) == own


def test_upstream_settings_hold_the_settings_above(tmp_path):
    task = CountTable.from_settings(SETTINGS, **options(tmp_path))
    assert task.count_min_fraction == 0.5
    assert dict(task.upstream_settings) == {"smooth_sigma": "2.0", "threshold_value": "400.0"}
    assert task.significant_params() == SETTINGS


def test_requires_rebuilds_the_upstream_tasks_with_their_settings(tmp_path):
    threshold = Threshold.from_settings(SETTINGS, **options(tmp_path, image_name="a;b", gpu=True))
    (smooth,) = threshold.requires()
    assert type(smooth) is Smooth and smooth.smooth_sigma == 2.0 and smooth.image_name == "a;b" and smooth.gpu
    assert dict(smooth.upstream_settings) == {}
    assert smooth.setting_values() == {"smooth_sigma": "2.0"}


def test_a_task_rebuilt_from_its_string_parameters_is_the_same_task(tmp_path):
    """A worker receives a Luigi batch as string parameters."""
    task = Threshold.from_settings(SETTINGS, **options(tmp_path, image_name="a"))
    again = Threshold.from_str_params(task.to_str_params())
    assert again.task_id == task.task_id and again.fingerprint() == task.fingerprint()
    assert [t.task_id for t in again.requires()] == [t.task_id for t in task.requires()]


def test_an_upstream_setting_changes_the_downstream_fingerprint_and_task_id(tmp_path):
    base = Threshold.from_settings(SETTINGS, **options(tmp_path, image_name="a"))
    changed = Threshold.from_settings(dict(SETTINGS, smooth_sigma="3.0"), **options(tmp_path, image_name="a"))
    unrelated = Threshold.from_settings(dict(SETTINGS, count_min_fraction="0.9"), **options(tmp_path, image_name="a"))
    assert changed.fingerprint() != base.fingerprint() and changed.task_id != base.task_id
    assert unrelated.fingerprint() == base.fingerprint() and unrelated.task_id == base.task_id


def test_a_task_built_by_hand_gets_the_upstream_defaults(tmp_path):
    by_hand = Threshold(**options(tmp_path, image_name="a"))
    planned = Threshold.from_settings({"smooth_sigma": "1.0", "threshold_value": "500.0"}, **options(tmp_path, image_name="a"))
    assert by_hand.fingerprint() == planned.fingerprint()


def test_the_workflow_passes_validated_settings_down(toy):
    (count,) = ToyWorkflow(plate=str(toy.plate), output=str(toy.output), threshold_value="400").requires()[:1]
    assert dict(count.upstream_settings) == {"smooth_sigma": "1.0", "threshold_value": "400.0"}


def test_a_batch_job_that_defines_run_is_refused():
    with pytest.raises(TypeError, match="compute"):
        class Job(BatchJob):  # noqa: F841
            def run(self):
                pass


def test_a_raised_output_format_makes_the_outputs_and_everything_downstream_stale(tmp_path, monkeypatch):
    def fingerprints():
        luigi.task_register.Register.clear_instance_cache()  # Luigi hands out one object per parameter set
        task = Threshold.from_settings(SETTINGS, **options(tmp_path, image_name="a"))
        (smooth,) = task.requires()
        return smooth.fingerprint_payload(), smooth.fingerprint(), task.fingerprint()

    payload, smooth_before, threshold_before = fingerprints()
    assert payload.keys() == {"job", "params", "upstream"}  # format 1 hashes as it always did
    monkeypatch.setattr(Smooth, "output_format", 2)
    payload, smooth_after, threshold_after = fingerprints()
    assert payload["format"] == 2 and smooth_after != smooth_before and threshold_after != threshold_before


def test_a_setting_a_job_leaves_unused_changes_no_fingerprint_downstream(toy, tmp_path, monkeypatch):
    def fingerprints(**changed):
        luigi.task_register.Register.clear_instance_cache()
        settings = dict(SETTINGS, **changed)
        threshold = Threshold.from_settings(settings, **options(tmp_path, image_name="a"))
        count = CountTable.from_settings(settings, **options(tmp_path))
        return threshold.fingerprint(), count.fingerprint(), count.significant_params()

    monkeypatch.setattr(Threshold, "unused_settings", classmethod(
        lambda cls, values: {"threshold_value"} if values["smooth_sigma"] == "0.0" else set()))
    unused = fingerprints(smooth_sigma="0.0"), fingerprints(smooth_sigma="0.0", threshold_value="9.0")
    assert unused[0][:2] == unused[1][:2] and "threshold_value" not in unused[0][2]
    used = fingerprints(), fingerprints(threshold_value="9.0")
    assert used[0][0] != used[1][0] and used[0][1] != used[1][1] and used[0][2] == SETTINGS


def test_a_retired_setting_is_hashed_by_its_job_and_every_job_below(tmp_path, monkeypatch):
    """A setting a job lost still enters the fingerprints at its old value: what was finished stays complete."""
    def payloads():
        luigi.task_register.Register.clear_instance_cache()
        threshold = Threshold.from_settings(SETTINGS, **options(tmp_path, image_name="a"))
        (smooth,) = threshold.requires()
        return [task.fingerprint_payload() for task in (smooth, threshold)], threshold.significant_params()

    before, _ = payloads()
    monkeypatch.setattr(Smooth, "retired_settings", {"smooth_mode": "gauss"})
    after, recorded = payloads()
    assert all(a["params"] == dict(b["params"], smooth_mode="gauss") for a, b in zip(after, before))
    assert "smooth_mode" not in recorded  # the outputs record the settings the tasks have
