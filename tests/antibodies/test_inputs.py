"""Bad input: a clear message naming the file, the reason and the fix; nothing computed."""
import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from antibodies.inputs import AssayPlanner, read_channel_mapping, read_raw_image
from luigi_tasks import InvalidInputError, InvalidInputsError

from .conftest import ROOT, TEST_CONFIG

CHANNELS = "DAPI,WF_GFP,TRITC,WF_Cy5"
MAPPING = {"DAPI": "nuclei", "WF_GFP": "marker", "TRITC": "serum_IgG", "WF_Cy5": None}


def name(well="A01", site=1, channels=CHANNELS, seq=1):
    return f"Well{well}_Point{well}_{site:04d}_Channel{channels}_Seq{seq:04d}.tiff"


@pytest.fixture
def plate(tmp_path):
    folder = tmp_path / "plate"
    folder.mkdir()
    (folder / "channel_mapping.json").write_text(json.dumps(MAPPING))
    rng = np.random.default_rng(0)
    for seq, well in enumerate(["A01", "A02", "B01"], 1):
        tifffile.imwrite(folder / name(well, seq=seq), rng.integers(0, 500, (4, 64, 64), dtype="uint16"))
    return folder


def plan(folder):
    return AssayPlanner().plan(folder)


def test_valid_plate_has_no_problems(plate):
    assert len(plan(plate).images) == 3 and plan(plate).invalid == {}


def test_one_page_of_interleaved_channels_is_read_as_pages(plate):
    """``tifffile.imwrite`` of a channels-last (M, N, C) array writes one page of C samples."""
    pages = np.random.default_rng(1).integers(0, 500, (4, 64, 64), dtype="uint16")
    tifffile.imwrite(plate / name("B02", seq=9), np.moveaxis(pages, 0, -1))
    tifffile.imwrite(plate / name("B03", seq=8), np.moveaxis(pages[:3], 0, -1))  # 3 samples for 4 channel names
    result = plan(plate)
    assert name("B02", seq=9).removesuffix(".tiff") in result.images
    assert list(result.invalid) == [name("B03", seq=8)]
    assert "3 channel page(s)" in next(iter(result.invalid.values()))
    np.testing.assert_array_equal(read_raw_image(plate / name("B02", seq=9)), pages)
    np.testing.assert_array_equal(read_raw_image(plate / name("A01", seq=1)),
                                  tifffile.imread(plate / name("A01", seq=1)))


@pytest.mark.parametrize("options", [dict(compression="lzw"), dict(compression="lzw", predictor=True),
                                     dict(compression="packbits"), dict(compression="zlib", tile=(32, 32))],
                         ids=["lzw", "lzw-predictor", "packbits", "zlib-tiled"])
def test_compressed_and_tiled_tiffs_pass_the_checks_and_read_back(plate, options):
    """Microscopes and image tools write LZW, PackBits and tiled TIFFs (imagecodecs decodes them)."""
    pages = np.random.default_rng(2).integers(0, 500, (4, 64, 64), dtype="uint16")
    tifffile.imwrite(plate / name("B02", seq=9), pages, photometric="minisblack", **options)
    result = plan(plate)
    assert result.invalid == {} and name("B02", seq=9).removesuffix(".tiff") in result.images
    np.testing.assert_array_equal(read_raw_image(plate / name("B02", seq=9)), pages)


def add_every_bad_file(plate):
    data = np.zeros((4, 64, 64), "uint16")
    tifffile.imwrite(plate / name("C01", seq=10), data)
    full = (plate / name("C01", seq=10)).read_bytes()
    (plate / name("C01", seq=10)).write_bytes(full[: len(full) // 2])  # truncated
    tifffile.imwrite(plate / name("C05", seq=14), np.ones((4, 1024, 1024), "uint16"), photometric="minisblack")
    full = (plate / name("C05", seq=14)).read_bytes()
    (plate / name("C05", seq=14)).write_bytes(full[: len(full) // 2])  # the case: 3 of 4 IFDs cut off
    (plate / name("C02", seq=11)).write_bytes(b"")  # zero bytes
    tifffile.imwrite(plate / name("C03", seq=12), data[:3])  # 3 pages for 4 channel names
    tifffile.imwrite(plate / name("C04", seq=13), np.zeros((4, 32, 64), "uint16"))  # other shape
    tifffile.imwrite(plate / "scan_0001.tiff", data)  # name outside the scheme
    (plate / "notes.txt").write_text("not an image: ignored silently")
    return {
        name("C01", seq=10): "truncated",
        name("C05", seq=14): "TIFF is truncated: IFD 2",
        name("C02", seq=11): "empty",
        name("C03", seq=12): "3 channel page(s)",
        name("C04", seq=13): "shape",
        "scan_0001.tiff": "naming scheme",
    }


def test_every_problem_is_listed_at_once(plate):
    expected = add_every_bad_file(plate)
    result = plan(plate)
    assert set(result.invalid) == set(expected)
    for file_name, reason in expected.items():
        assert reason in result.invalid[file_name]
    assert len(result.images) == 3
    with pytest.raises(InvalidInputsError) as error:
        result.require_valid(ignore_invalid_inputs=False)
    assert all(file_name in str(error.value) for file_name in expected)
    assert "--ignore-invalid-inputs" in str(error.value)


@pytest.mark.parametrize(
    "content, reason",
    [
        (None, "channel mapping is missing"),
        ("{not json", "invalid JSON"),
        (json.dumps({"DAPI": "nuclei", "WF_GFP": "virus"}), "unknown role"),
        (json.dumps({"DAPI": "nuclei", "WF_GFP": "nuclei"}), "more than one channel"),
        (json.dumps({"DAPI": "marker"}), "no channel is mapped to 'nuclei'"),
    ],
)
def test_channel_mapping_problems_name_the_file_and_the_fix(plate, content, reason):
    mapping = plate / "channel_mapping.json"
    mapping.unlink()
    if content is not None:
        mapping.write_text(content)
    with pytest.raises(InvalidInputError) as error:
        plan(plate)
    assert reason in str(error.value) and str(mapping) in str(error.value) and "fix:" in str(error.value)


def test_mapped_channel_missing_from_file_names(plate):
    (plate / "channel_mapping.json").write_text(json.dumps(dict(MAPPING, DIA=None)))
    invalid = plan(plate).invalid
    assert len(invalid) == 3 and all("['DIA']" in reason for reason in invalid.values())
    assert read_channel_mapping(plate)["DIA"] is None


def test_missing_plate_folder(tmp_path):
    with pytest.raises(InvalidInputError, match="plate folder does not exist"):
        plan(tmp_path / "nowhere")


def luigi_run(plate, output, *extra):  # a luigi process (imports TensorFlow): tests using it are marked slow
    command = [sys.executable, "-m", "luigi", "--module", "antibodies", "CellAnalysis", "--local-scheduler",
               "--plate", str(plate), "--output", str(output), "--config", str(TEST_CONFIG), *extra]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_command_refuses_invalid_plate_listing_all_files_and_computes_nothing(plate, tmp_path):
    expected = add_every_bad_file(plate)
    done = luigi_run(plate, tmp_path / "out")
    assert done.returncode != 0
    assert all(file_name in done.stderr for file_name in expected)
    assert list((tmp_path / "out").glob("*.h5")) == []
    status = json.loads((tmp_path / "out" / "batchlib" / "CellAnalysis.status").read_text())
    assert set(status["invalid_inputs"]) == set(expected)




@pytest.mark.slow
def test_unwritable_output_folder_is_named(plate, tmp_path):
    blocker = tmp_path / "file_not_folder"
    blocker.write_text("")
    done = luigi_run(plate, blocker / "out")
    assert done.returncode != 0 and "output folder cannot be written" in done.stderr
    assert str(blocker / "out") in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "override, expected",
    [(("--infection-threshold-factor", "lots"), "[infection] threshold_factor = 'lots'"),
     (("--cells-height-map", "magic"), "[cells] height_map = 'magic'")],
)
def test_invalid_config_values_name_key_and_allowed_values(plate, tmp_path, override, expected):
    done = luigi_run(plate, tmp_path / "out", *override)
    assert done.returncode != 0 and expected in done.stderr and "allowed" in done.stderr


@pytest.mark.slow
def test_missing_model_says_how_to_provide_one(plate, tmp_path):
    done = luigi_run(plate, tmp_path / "out", "--nuclei-model", str(tmp_path / "no_model"))
    assert done.returncode != 0 and "no_model" in done.stderr and "config.json" in done.stderr


@pytest.mark.slow
def test_a_nucleus_model_given_as_the_cell_model_is_refused_before_any_work(plate, tmp_path):
    from antibodies.models import BUNDLED_MODEL, BUNDLED_MODELS_DIR

    done = luigi_run(plate, tmp_path / "out", "--cells-model", str(BUNDLED_MODELS_DIR / BUNDLED_MODEL))
    assert done.returncode == 35, done.stderr[-2000:]
    assert "not a cell model" in done.stderr and "To fix" in done.stderr and "input.json" in done.stderr
    assert not list((tmp_path / "out").glob("*.h5"))
