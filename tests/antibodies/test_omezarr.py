"""OME-Zarr HCS export: valid OME-Zarr 0.4, same pixels as the h5 containers, switched on by the config."""
import shutil

import h5py
import numpy as np
import pandas as pd
import pytest
import zarr
from ome_zarr_models.v04 import HCS, Image, ImageLabel

from antibodies import CellAnalysis, OmeZarrExport
from antibodies.keys import CHANNEL_COLORS, ROLES
from antibodies.tasks import OmeZarrPlate
from antibodies.tasks.omezarr import fields_by_well
from luigi_tasks.io import parse_image_name
from luigi_tasks.io.omezarr import HEX_COLORS, well_path
from luigi_tasks.testing import run_local

from .conftest import TEST_CONFIG

LABELS = ("nucleus_segmentation", "cell_segmentation")


@pytest.fixture(scope="module")
def exported(processed_plate, tmp_path_factory):
    """OmeZarrExport run on a copy of the processed plate (only the export runs)."""
    root = tmp_path_factory.mktemp("omezarr")
    shutil.copytree(processed_plate["plate"], root / "plate")
    shutil.copytree(processed_plate["output"], root / "out")
    workflow = OmeZarrExport(plate=str(root / "plate"), output=str(root / "out"), config=str(TEST_CONFIG))
    result = run_local([workflow])
    assert result.status.name == "SUCCESS", result.summary_text
    containers = sorted((root / "out").glob("*.h5"))
    return {"root": root, "zarr": root / "out" / "plate.ome.zarr", "containers": containers,
            "group": zarr.open_group(str(root / "out" / "plate.ome.zarr"), mode="r", zarr_format=2),
            "workflow": workflow}


def test_export_is_a_valid_ome_zarr_04_plate(exported):
    hcs = HCS.from_zarr(exported["group"])  # validates plate, wells and their images
    plate = hcs.attributes.plate
    wells = fields_by_well([c.stem for c in exported["containers"]])
    assert plate.version == "0.4" and plate.field_count == 2
    assert sorted(w.path for w in plate.wells) == sorted(well_path(w) for w in wells)
    assert [r.name for r in plate.rows] == list("ABCDEFGH") and len(plate.columns) == 12
    assert [well.n_images for well in hcs.well_groups] == [2, 2, 2, 2]


def level_paths(group):
    """The array paths of a multiscale image, largest first, as a reader finds them (its metadata)."""
    return [dataset["path"] for dataset in group.attrs["multiscales"][0]["datasets"]]


def test_fields_hold_channels_and_labels(exported):
    group = exported["group"]
    for container in exported["containers"]:
        name = parse_image_name(container.stem)
        field = fields_by_well([c.stem for c in exported["containers"]])[name.well].index(container.stem)
        image_group = group[f"{well_path(name.well)}/{field}"]
        image = Image.from_zarr(image_group)
        with h5py.File(container, "r") as h5:
            roles = [role for role in ROLES if role in h5]
            omero = image.attributes.omero
            assert [c.label for c in omero.channels] == roles
            assert [c.color for c in omero.channels] == [HEX_COLORS[CHANNEL_COLORS[r]] for r in roles]
            for channel, role in zip(omero.channels, roles):
                assert [channel.window.start, channel.window.end] == list(h5[role].attrs["ContrastLimits"])
            assert image_group.attrs["multiscales"][0]["axes"][0] == {"name": "c", "type": "channel"}
            n_levels = len([k for k in h5[roles[0]] if k.startswith("s")])
            paths = level_paths(image_group)
            assert len(paths) == n_levels
            for level, path in enumerate(paths):
                expected = (len(roles),) + h5[f"{roles[0]}/s{level}"].shape
                assert image_group[path].shape == expected
            assert np.array_equal(image_group[paths[0]][roles.index("nuclei")], h5["nuclei/s0"][:])
            assert image_group.attrs["multiscales"][0]["name"] == container.stem
            assert list(image_group["labels"].attrs["labels"]) == list(LABELS)
            for label in LABELS:
                label_group = image_group[f"labels/{label}"]
                ImageLabel.from_zarr(label_group)
                label_paths = level_paths(label_group)
                assert len(label_paths) == n_levels
                for level, path in enumerate(label_paths):
                    assert label_group[path].shape == h5[f"{label}/s{level}"].shape
                    assert label_group.attrs["multiscales"][0]["datasets"][level]["coordinateTransformations"] == [
                        {"type": "scale", "scale": [float(2**level)] * 2}]
                assert np.array_equal(label_group[label_paths[0]][:], h5[f"{label}/s0"][:])


def test_tables_are_written_beside_the_images(exported, processed_plate):
    images = pd.read_csv(exported["zarr"] / "tables" / "images.csv")
    wells = pd.read_csv(exported["zarr"] / "tables" / "wells.csv")
    assert sorted(images["image_name"]) == sorted(c.stem for c in exported["containers"])
    assert list(wells["well_name"]) == ["A01", "A02", "B01", "B02"] and "serum_IgG_score" in wells.columns


def test_ome_zarr_reader_sees_a_plate(exported):
    from ome_zarr.format import FormatV04
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Plate, Reader

    node = next(iter(Reader(parse_url(str(exported["zarr"]), fmt=FormatV04()))()))
    assert any(isinstance(spec, Plate) for spec in node.specs)


def test_export_leaves_no_temporaries_and_reruns_nothing(exported):
    out = exported["root"] / "out"
    assert not [p.name for p in out.iterdir() if ".tmp-" in p.name]
    result = run_local([OmeZarrExport(plate=str(exported["root"] / "plate"), output=str(out), config=str(TEST_CONFIG))])
    assert result.status.name == "SUCCESS" and "ran successfully" not in result.summary_text


def _final_jobs(workflow_cls, plate, **overrides):
    workflow = workflow_cls(plate=str(plate), config=str(TEST_CONFIG), **overrides)
    return workflow.jobs_to_run(workflow.config_values())


def test_config_switch_adds_the_export_to_cell_analysis(exported):
    plate = exported["root"] / "plate"
    assert OmeZarrPlate not in _final_jobs(CellAnalysis, plate)
    assert OmeZarrPlate in _final_jobs(CellAnalysis, plate, export_ome_zarr="True")
    assert tuple(_final_jobs(OmeZarrExport, plate)) == (OmeZarrPlate,)
