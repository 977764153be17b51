"""The configspec is the one home of a setting: tasks take type, default and help from it."""
import pytest

from antibodies.analysis.background import BACKGROUND_STRATEGIES
from antibodies.analysis.infection import INFECTION_METHODS
from antibodies.analysis.scores import MEDIAN_ESTIMATORS
from antibodies.settings import SPEC_PATH, setting
from antibodies.tasks import CellSegmentation, InfectionDecision, PlateBackground
from antibodies.tasks.segmentation import FOREGROUNDS, HEIGHT_MAPS
from luigi_tasks.config import flat_name, load_config, spec_entries


@pytest.mark.parametrize("section, key, registry", [
    ("cells", "height_map", HEIGHT_MAPS), ("cells", "foreground", FOREGROUNDS),
    ("infection", "method", INFECTION_METHODS), ("background", "method", BACKGROUND_STRATEGIES),
    ("scores", "median_estimator", MEDIAN_ESTIMATORS),
])
def test_every_choice_of_the_configspec_has_a_strategy(section, key, registry):
    assert set(setting(section, key)._choices) <= set(registry)


def test_task_parameters_take_their_defaults_from_the_configspec():
    defaults = load_config(None, SPEC_PATH)
    for task in (CellSegmentation, InfectionDecision, PlateBackground):
        own = {name: param for name, param in task.get_params() if name in defaults}
        assert own and all(param._default == defaults[name] or tuple(defaults[name]) == param._default
                           for name, param in own.items()), task
    assert dict(InfectionDecision.get_params())["infection_threshold_factor"]._default == 4.8


def test_every_configspec_entry_is_read_by_a_task_or_the_workflow():
    from antibodies import tasks

    names = {name for cls in map(lambda n: getattr(tasks, n), tasks.__all__) for name, _ in cls.get_params()}
    entries = {flat_name(section, key) for section, key, _ in spec_entries(SPEC_PATH)}
    assert entries - names == {"export_ome_zarr"}  # read by CellAnalysis.jobs_to_run


def test_a_task_carries_only_the_settings_it_declares():
    """No relay: a setting is a parameter of the classes that read it; the others get it in upstream_settings."""
    import inspect
    import re

    from antibodies import tasks
    from luigi_tasks.job import FRAMEWORK_PARAMS

    for cls in map(lambda n: getattr(tasks, n), tasks.__all__):
        own = [k for k in cls.__mro__ if k.__module__.startswith("antibodies.tasks")]  # the class and its assay mixins
        declared = {name for k in own for name in re.findall(r"^    (\w+) = setting\(", inspect.getsource(k), re.M)}
        assert {name for name, _ in cls.get_params()} - set(FRAMEWORK_PARAMS) == declared, cls
    assert tasks.PlateExports.own_setting_params() == {}
    assert "infection_threshold_factor" in tasks.PlateExports.upstream_setting_params()
    assert "infection_threshold_factor" not in tasks.CellFeatures.upstream_setting_params()


def image_task(cls, tmp_path, **changed):
    """A fresh ``cls`` for image "a" under the configspec's defaults with ``changed`` settings."""
    import luigi

    luigi.task_register.Register.clear_instance_cache()
    settings = cls.serialize_settings(dict(load_config(None, SPEC_PATH), **changed))
    return cls.from_settings(settings, plate_dir=str(tmp_path / "plate"), output_dir=str(tmp_path / "out"),
                             image_name="a")


def test_the_cell_model_shapes_the_outputs_only_under_the_learned_split(tmp_path):
    from antibodies.tasks import CellFeatures

    def fingerprints(**changed):
        return [image_task(cls, tmp_path, **changed).fingerprint() for cls in (CellSegmentation, CellFeatures)]

    other_model = {"cells_model": "elsewhere", "cells_distance_weight": 0.5}
    assert fingerprints(cells_height_map="distance") == fingerprints(cells_height_map="distance", **other_model)
    learned = fingerprints(cells_height_map="learned"), fingerprints(cells_height_map="learned", **other_model)
    assert all(a != b for a, b in zip(*learned))


def test_the_foreground_envelope_reaches_the_guided_foreground_and_only_it(tmp_path):
    from antibodies.analysis.cells import GuidedOtsuForeground

    def task(**changed):
        return image_task(CellSegmentation, tmp_path, **changed)

    assert task().foreground() == GuidedOtsuForeground(envelope_radii=5.0)
    assert task(cells_foreground_envelope=0.0).foreground() == GuidedOtsuForeground(envelope_radii=0.0)
    assert task().fingerprint() != task(cells_foreground_envelope=0.0).fingerprint()
    otsu = task(cells_foreground="otsu").fingerprint()
    assert otsu == task(cells_foreground="otsu", cells_foreground_envelope=0.0).fingerprint()


def test_model_flips_change_the_cells_and_none_keeps_finished_plates_complete(tmp_path):
    def task(**changed):
        return image_task(CellSegmentation, tmp_path, **changed)

    assert "cells_model_flips" not in task().significant_params()  # none, the default: the cells without flips
    assert task(cells_model_flips="flip4").significant_params()["cells_model_flips"] == "flip4"
    assert len({task().fingerprint(), task(cells_model_flips="flip2").fingerprint(),
                task(cells_model_flips="flip4").fingerprint()}) == 3
    distance = task(cells_height_map="distance").fingerprint()
    assert distance == task(cells_height_map="distance", cells_model_flips="flip4").fingerprint()


def test_seeded_cut_cells_change_the_cells_and_absorbed_ones_keep_finished_plates_complete(tmp_path):
    def task(**changed):
        return image_task(CellSegmentation, tmp_path, **changed)

    assert "cells_cut_cells" not in task().significant_params()       # absorbed: the cells before the setting
    assert task(cells_cut_cells="seeded").significant_params()["cells_cut_cells"] == "seeded"
    assert task().fingerprint() != task(cells_cut_cells="seeded").fingerprint()
    assert task(cells_cut_cells="bordered").fingerprint() not in {task().fingerprint(),
                                                                  task(cells_cut_cells="seeded").fingerprint()}
    distance = task(cells_height_map="distance").fingerprint()
    assert distance == task(cells_height_map="distance", cells_cut_cells="seeded").fingerprint()


@pytest.mark.parametrize("choice", setting("cells", "cut_cells")._choices)
def test_each_cut_cells_choice_gives_its_strategy_the_models_instances_and_probability(tmp_path, choice):
    import numpy as np

    from antibodies.analysis.cells import ModelCutCells
    from antibodies.tasks.segmentation import CUT_CELLS

    rng = np.random.default_rng(0)
    nuclei, serum = rng.random((64, 72)).astype(np.float32), rng.random((64, 72)).astype(np.float32)
    task = image_task(CellSegmentation, tmp_path, cells_cut_cells=choice)
    height_map, cut_cells = task.strategies(nuclei, serum)
    assert height_map.probability.shape == (64, 72)
    if choice == "absorbed":
        assert cut_cells is None and choice not in CUT_CELLS
        return
    assert type(cut_cells) is CUT_CELLS[choice] and isinstance(cut_cells, ModelCutCells)
    binning = task.cell_model[1]                                         # 64 and 72 are multiples of 2 and 4
    assert cut_cells.factor == binning and cut_cells.instances.shape == (64 // binning, 72 // binning)
    assert getattr(cut_cells, "probability", height_map.probability) is height_map.probability


def test_the_absolute_sharpness_floor_reaches_the_focus_rule_and_is_off_by_default(tmp_path):
    import luigi

    from antibodies.analysis.qc import OutOfFocusQC
    from antibodies.tasks import PlateScores

    def focus_rule(**changed):
        luigi.task_register.Register.clear_instance_cache()
        settings = PlateScores.serialize_settings(dict(load_config(None, SPEC_PATH), **changed))
        task = PlateScores.from_settings(settings, plate_dir=str(tmp_path / "plate"), output_dir=str(tmp_path / "out"))
        return next(rule for rule in task.image_rules() if isinstance(rule, OutOfFocusQC))

    assert focus_rule() == OutOfFocusQC(min_ratio=0.6, min_sharpness=0.0)
    assert focus_rule(qc_image_min_absolute_sharpness=0.12) == OutOfFocusQC(min_ratio=0.6, min_sharpness=0.12)
