import shutil
from pathlib import Path

import pytest

from luigi_tasks.testing import run_local

ROOT = Path(__file__).resolve().parents[2]
TEST_CONFIG = ROOT / "configs" / "test_cell_analysis.conf"
SMALL_PLATE = dict(scheme="scheme1", wells=("A01", "A02", "B01", "B02"), sites_per_well=2, shape=(512, 512), seed=3,
                   well_ratios={"A01": 2.5, "A02": 1.0, "B01": 1.8, "B02": 1.05})


def render_small_plate(root, **overrides):
    from antibodies.synthetic.plate import render_plate

    settings = dict(SMALL_PLATE, **overrides)
    render_plate(root / "plate", root / "truth", **settings)
    return root / "plate", root / "truth"


def cell_analysis(plate, output, **kwargs):
    from antibodies import CellAnalysis

    return CellAnalysis(plate=str(plate), output=str(output), config=str(TEST_CONFIG), **kwargs)


def pytest_collection_modifyitems(items):
    """A test that needs the processed plate runs the whole workflow once per session: it is slow."""
    for item in items:
        if {"processed_plate", "plate_copy"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def processed_plate(tmp_path_factory):
    """A small synthetic plate (4 wells x 2 sites, 512x512) processed by CellAnalysis once per session."""
    root = tmp_path_factory.mktemp("processed")
    plate, truth = render_small_plate(root)
    result = run_local([cell_analysis(plate, root / "out")])
    assert result.status.name == "SUCCESS", result.summary_text
    return {"plate": plate, "truth": truth, "output": root / "out", "name": plate.name}


@pytest.fixture
def plate_copy(processed_plate, tmp_path):
    """A private copy of the processed plate's raw folder and outputs, to change freely."""
    plate = tmp_path / "plate"
    shutil.copytree(processed_plate["plate"], plate)
    shutil.copytree(processed_plate["output"], tmp_path / "out")
    return {"plate": plate, "truth": processed_plate["truth"], "output": tmp_path / "out", "name": "plate"}
