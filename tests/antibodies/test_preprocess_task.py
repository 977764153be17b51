"""Flat-field correction in Preprocess: correctors of any image shape, chosen by their divisor's shape."""
import json

import h5py
import luigi
import numpy as np
import pytest

from antibodies.settings import SPEC_PATH
from antibodies.tasks import Preprocess
from antibodies.tasks.preprocess import corrector_for_shape
from luigi_tasks import ConfigError
from luigi_tasks.config import load_config
from luigi_tasks.io import open_file, read_image
from luigi_tasks.testing import make_raw_plate, run_local


def write_corrector(path, divisor, offset=0.0):
    with h5py.File(path, "w") as container:
        container["offset"] = offset
        container["divisor"] = np.asarray(divisor, dtype="float32")
    return str(path)


def preprocess(tmp_path, image_name, correctors=()):
    luigi.task_register.Register.clear_instance_cache()
    values = dict(load_config(None, SPEC_PATH), preprocess_barrel_correctors=list(correctors))
    return Preprocess.from_settings(Preprocess.serialize_settings(values), plate_dir=str(tmp_path / "plate"),
                                    output_dir=str(tmp_path / "out"), image_name=image_name)


def test_the_corrector_of_the_images_shape_is_chosen(tmp_path):
    wide = write_corrector(tmp_path / "wide.h5", np.full((4, 6), 0.5), offset=10.0)
    tall = write_corrector(tmp_path / "tall.h5", np.full((6, 4), 0.25))
    offset, divisor = corrector_for_shape([wide, tall], (6, 4), "image.tiff")
    assert offset == 0.0 and divisor.shape == (6, 4) and divisor[0, 0] == 0.25
    assert corrector_for_shape([wide, tall], (4, 6), "image.tiff")[0] == 10.0
    assert corrector_for_shape([], (4, 6), "image.tiff") is None


def test_an_image_of_a_shape_without_corrector_is_refused_with_the_fix(tmp_path):
    wide = write_corrector(tmp_path / "wide.h5", np.ones((4, 6)))
    with pytest.raises(ConfigError) as raised:
        corrector_for_shape([wide], (512, 512), "/plate/WellA01.tiff")
    message = str(raised.value)
    assert "/plate/WellA01.tiff" in message and "(512, 512)" in message and "wide.h5 (4, 6)" in message
    assert "add a corrector of shape (512, 512) to [preprocess] barrel_correctors" in message


def test_a_corrector_file_without_a_divisor_is_named(tmp_path):
    broken = tmp_path / "broken.h5"
    with h5py.File(broken, "w") as container:
        container["offset"] = 0.0
    with pytest.raises(ConfigError, match=r"broken\.h5: not a readable barrel corrector .*'divisor'"):
        corrector_for_shape([str(broken)], (4, 6), "image.tiff")


def test_preprocess_corrects_a_512_plate_and_keeps_the_raw_counts(tmp_path):
    paths = make_raw_plate(tmp_path / "plate", wells=("A01",), sites=1, shape=(512, 512), channels=("DAPI", "GFP"))
    (tmp_path / "plate" / "channel_mapping.json").write_text(json.dumps({"DAPI": "nuclei", "GFP": "marker"}))
    divisor = np.linspace(0.5, 1.0, 512 * 512, dtype="float32").reshape(512, 512)
    corrector = write_corrector(tmp_path / "barrel_512x512.h5", divisor, offset=100.0)
    task = preprocess(tmp_path, paths[0].stem, [corrector])
    assert run_local([task]).status.name == "SUCCESS"
    with open_file(task.container(paths[0].stem), "r") as container:
        raw, corrected = read_image(container, "marker_raw"), read_image(container, "marker")
    np.testing.assert_allclose(corrected, (raw - 100.0) / divisor + 100.0, rtol=1e-5)


def test_no_correctors_keeps_the_fingerprint_of_the_per_shape_settings_before(tmp_path):
    """Finished plates stay complete: the fingerprint of the version with barrel_corrector_1024x1024 and _930x1024."""
    (tmp_path / "plate").mkdir()
    (tmp_path / "plate" / "channel_mapping.json").write_text(json.dumps({"DAPI": "nuclei"}))
    assert preprocess(tmp_path, "a").fingerprint() == "2e6008df1f8df3786430"
    assert preprocess(tmp_path, "a", ["barrel.h5"]).fingerprint() != "2e6008df1f8df3786430"


def test_one_corrector_in_a_config_file_needs_no_comma(tmp_path):
    config = tmp_path / "one.conf"
    config.write_text("[preprocess]\nbarrel_correctors = /data/barrel_512x512.h5\n")
    assert load_config(config, SPEC_PATH)["preprocess_barrel_correctors"] == ["/data/barrel_512x512.h5"]


def test_the_paths_of_a_config_file_are_relative_to_its_folder(tmp_path, monkeypatch):
    (tmp_path / "site").mkdir()
    config = tmp_path / "site" / "plate.conf"
    config.write_text("[preprocess]\nbarrel_correctors = barrel.h5\n[nuclei]\nmodel = models/mine\n"
                      "[cells]\nmodel = vero_cells_v10\n[qc]\nmanual_outliers = outliers.csv\n")
    monkeypatch.chdir(tmp_path)  # cron starts elsewhere: the paths must not depend on the working directory
    values = load_config(config, SPEC_PATH)
    assert values["preprocess_barrel_correctors"] == [str(tmp_path / "site" / "barrel.h5")]
    assert values["nuclei_model"] == str(tmp_path / "site" / "models" / "mine")
    assert values["cells_model"] == "vero_cells_v10"
    assert values["qc_manual_outliers"] == str(config.parent / "outliers.csv")


def test_a_plate_without_a_corrector_of_its_shape_fails_naming_the_image_and_the_fix(tmp_path):
    from luigi_tasks import read_status

    paths = make_raw_plate(tmp_path / "plate", wells=("A01",), sites=1, shape=(64, 64), channels=("DAPI",))
    (tmp_path / "plate" / "channel_mapping.json").write_text(json.dumps({"DAPI": "nuclei"}))
    corrector = write_corrector(tmp_path / "barrel_1024x1024.h5", np.ones((1024, 1024)))
    assert run_local([preprocess(tmp_path, paths[0].stem, [corrector])]).status.name == "FAILED"
    cause = read_status(tmp_path / "out", "Preprocess")["failed_outputs"][paths[0].stem]
    assert f"{paths[0]}: no barrel corrector of its shape (64, 64)" in cause and "barrel_correctors" in cause


def test_a_corrector_that_cannot_be_read_refuses_the_run_before_any_work(tmp_path):
    from luigi_tasks import read_status

    from .conftest import cell_analysis

    make_raw_plate(tmp_path / "plate", wells=("A01",), sites=1, shape=(64, 64), channels=("DAPI",))
    (tmp_path / "plate" / "channel_mapping.json").write_text(json.dumps({"DAPI": "nuclei"}))
    missing = tmp_path / "barrel_64x64.h5"
    workflow = cell_analysis(tmp_path / "plate", tmp_path / "out", preprocess_barrel_correctors=f" {missing} ,")
    assert run_local([workflow]).status.name == "SCHEDULING_FAILED"
    status = read_status(tmp_path / "out", "CellAnalysis")
    assert status["state"] == "refused" and status["reason"].startswith(f"{missing}: not a readable barrel corrector")
    assert not list((tmp_path / "out").glob("*.h5"))
