"""Truncated TIFFs are refused at planning, whatever their flavour and wherever they were cut.

Realistic files (4 channels x 1024 x 1024 uint16: plain, ImageJ, OME-TIFF, BigTIFF,
big-endian, one planar page, zlib-compressed) are written once per module; the
cuts land in the first IFD, in pixel data, in the IFD chain and in the last bytes.
"""
import json
import shutil

import numpy as np
import pytest
import tifffile

from antibodies.inputs import AssayPlanner
from luigi_tasks import InvalidInputsError
from luigi_tasks.io.tiff import tiff_structure_problem

CHANNELS = "DAPI,WF_GFP,TRITC,WF_Cy5"
MAPPING = {"DAPI": "nuclei", "WF_GFP": "marker", "TRITC": "serum_IgG", "WF_Cy5": None}
KINDS = {
    "plain": dict(photometric="minisblack"),
    "plain_zlib": dict(photometric="minisblack", compression="zlib"),
    "imagej": dict(imagej=True, metadata={"axes": "CYX"}),
    "ome": dict(ome=True, metadata={"axes": "CYX"}),
    "ome_zlib": dict(ome=True, metadata={"axes": "CYX"}, compression="zlib"),
    "bigtiff": dict(photometric="minisblack", bigtiff=True),
    "big_endian": dict(photometric="minisblack", byteorder=">"),
    "planar_one_page": dict(),  # tifffile writes (4, Y, X) as one page of 4 separate sample planes
}


def image_name(number):
    return f"WellA{number:02d}_PointA{number:02d}_0001_Channel{CHANNELS}_Seq{number:04d}.tiff"


def layout(path):
    """Offsets of the IFDs and the (start, end) of every strip of pixel data."""
    with tifffile.TiffFile(path) as tiff:
        ifds = [page.offset for page in tiff.pages]
        strips = [(o, o + n) for page in tiff.pages for o, n in zip(page.dataoffsets, page.databytecounts)]
    return ifds, strips


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    """One intact file per kind: ``{kind: (path, pixels)}``."""
    folder = tmp_path_factory.mktemp("tiffs")
    pixels = np.random.default_rng(1).integers(0, 4000, (4, 1024, 1024), dtype="uint16")
    files = {}
    for kind, options in KINDS.items():
        path = folder / f"{kind}.tiff"
        tifffile.imwrite(path, pixels, **options)
        files[kind] = path
    return files, pixels


def cut_points(path):
    """Named cuts: inside the first IFD, in pixel data, in the IFD chain, in the last bytes."""
    ifds, strips = layout(path)
    size = path.stat().st_size
    cuts = {
        "first IFD": ifds[0] + 20,
        "first pixel block": (strips[0][0] + strips[0][1]) // 2,
        "half the file": size // 2,
        "last pixel byte": max(end for _, end in strips) - 1,
    }
    if len(ifds) > 1:
        cuts["IFD chain"] = ifds[-1] + 5
    return cuts


@pytest.mark.parametrize("kind", KINDS)
def test_intact_files_pass_and_are_checked_cheaply(originals, kind):
    files, pixels = originals
    assert tiff_structure_problem(files[kind]) is None
    assert np.array_equal(tifffile.imread(files[kind]), pixels)


@pytest.mark.parametrize("kind", KINDS)
def test_every_cut_is_refused_or_leaves_the_image_whole(originals, kind, tmp_path):
    """Sweep cut points from the end to the start: a cut file is refused, or it still reads exactly.

    (An uncompressed file written by tifffile ends with 16 bytes of resolution
    values no IFD points to; cutting only those leaves a complete image.)
    """
    files, pixels = originals
    copy = tmp_path / "cut.tiff"
    shutil.copyfile(files[kind], copy)
    size = copy.stat().st_size
    ifds, strips = layout(files[kind])
    points = set(range(size - 64, size)) | set(range(1, size, size // 40))
    points |= {p + d for p in ifds + [s for s, _ in strips] + [e for _, e in strips] for d in (-1, 0, 1, 5)}
    accepted = []
    with open(copy, "r+b") as handle:
        for cut in sorted((p for p in points if 0 < p < size), reverse=True):
            handle.truncate(cut)
            handle.flush()
            problem = tiff_structure_problem(copy)
            if problem is None:
                accepted.append(cut)
                assert np.array_equal(tifffile.imread(copy), pixels), f"cut at {cut} of {size} accepted but damaged"
            else:
                assert problem.startswith(("TIFF is truncated", "not a TIFF")), problem
    assert len(accepted) <= 16, f"{kind}: {len(accepted)} cuts accepted"


@pytest.fixture(scope="module")
def cut_plate(originals, tmp_path_factory):
    """A plate holding one intact and every cut file of every kind; planned once."""
    files, _ = originals
    plate = tmp_path_factory.mktemp("cut") / "plate"
    plate.mkdir()
    (plate / "channel_mapping.json").write_text(json.dumps(MAPPING))
    expected, number = {}, 1
    for kind, path in files.items():
        data = path.read_bytes()
        if kind == "plain":
            (plate / image_name(number)).write_bytes(data)
            number += 1
        for cut_name, cut in cut_points(path).items():
            (plate / image_name(number)).write_bytes(data[:cut])
            expected[image_name(number)] = (kind, cut_name)
            number += 1
    return plate, expected, AssayPlanner().plan(plate)


def test_cut_files_are_refused_at_planning_with_reason_and_fix(cut_plate):
    plate, expected, plan = cut_plate
    assert list(plan.images) == [image_name(1).removesuffix(".tiff")]
    assert set(plan.invalid) == set(expected)
    for file_name, (kind, cut_name) in expected.items():
        reason = plan.invalid[file_name]
        assert reason.startswith("TIFF is truncated") and "past the file end" in reason, (kind, cut_name, reason)
        assert reason.endswith("(fix: copy the image again from the microscope)"), (kind, cut_name, reason)
    with pytest.raises(InvalidInputsError) as error:
        plan.require_valid(ignore_invalid_inputs=False)
    assert f"{len(expected)} invalid input(s)" in str(error.value)
    assert len(plan.require_valid(ignore_invalid_inputs=True).images) == 1


def test_the_reason_says_where_the_file_ends(originals, tmp_path):
    files, _ = originals
    path = tmp_path / image_name(1)
    data = files["plain"].read_bytes()
    ifds, _ = layout(files["plain"])
    path.write_bytes(data[: len(data) // 2])  # the case: first IFD intact, the other three gone
    assert tiff_structure_problem(path) == (
        f"TIFF is truncated: IFD 2 at bytes {ifds[1]}-{ifds[1] + 2} lies past the file end ({len(data) // 2} bytes)"
    )


def test_damaged_compressed_pixels_pass_the_structure_check_and_fail_when_decoded(originals, tmp_path):
    """Not a planning error (decoding is what finds it); the check must simply not choke on it."""
    files, _ = originals
    plate = tmp_path / "plate"
    plate.mkdir()
    (plate / "channel_mapping.json").write_text(json.dumps(MAPPING))
    path = plate / image_name(1)
    data = bytearray(files["plain_zlib"].read_bytes())
    _, strips = layout(files["plain_zlib"])
    start, end = strips[len(strips) // 2]
    data[start:end] = bytes(end - start)  # zeros instead of a deflate stream; every pointer still valid
    path.write_bytes(bytes(data))
    plan = AssayPlanner().plan(plate)
    assert plan.invalid == {} and list(plan.images) == [path.stem]
    with pytest.raises(Exception):  # noqa: B017 - whatever the codec raises
        tifffile.imread(path)


@pytest.mark.parametrize("garbage, reason", [(b"GIF89a" + bytes(100), "not a TIFF file"), (b"II*\x00", "truncated")])
def test_not_a_tiff_or_header_only(tmp_path, garbage, reason):
    path = tmp_path / "x.tiff"
    path.write_bytes(garbage)
    assert reason in tiff_structure_problem(path)
