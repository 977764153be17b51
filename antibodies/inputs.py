"""Raw inputs of the antibody assay: the channel mapping and the TIFF files.

A plate folder holds multi-page TIFFs (C, M, N), or TIFFs of one page of C
interleaved samples (M, N, C), named by the scheme of
:mod:`luigi_tasks.io.naming` and a mandatory ``channel_mapping.json`` mapping
each microscope channel (``DAPI``, ``WF_GFP``, ...) to a role (``nuclei``,
``marker``, ``serum_IgG``, ``serum_IgA``, ``serum_IgM``) or null.
"""
import functools
import json
from collections import Counter
from pathlib import Path
from stat import S_ISREG

import numpy as np
import tifffile

from luigi_tasks import InvalidInputError, RawImagePlanner
from luigi_tasks.io import parse_image_name

from .keys import NUCLEI, ROLES

__all__ = ["MAPPING_FILE", "read_channel_mapping", "channel_roles", "sera_present", "read_raw_image", "AssayPlanner"]

MAPPING_FILE = "channel_mapping.json"
_MAPPING_FIX = (
    'write channel_mapping.json like {"DAPI": "nuclei", "WF_GFP": "marker", "TRITC": "serum_IgG", '
    '"WF_Cy5": null}; roles: ' + ", ".join(ROLES) + " or null"
)


def read_channel_mapping(plate_dir):
    """Read and check ``channel_mapping.json`` of a plate; return ``{channel: role or None}``.

    A valid mapping is read once per process while the file is unchanged (every
    image check and every task's output keys ask).

    Raises
    ------
    InvalidInputError
        Naming the file, what is wrong and how to fix it.
    """
    path = Path(plate_dir) / MAPPING_FILE
    try:
        info = path.stat()
    except OSError:
        info = None
    if info is None or not S_ISREG(info.st_mode):
        raise InvalidInputError(path, "channel mapping is missing", _MAPPING_FIX)
    return dict(_checked_mapping(path, (info.st_ino, info.st_mtime_ns, info.st_size)))


@functools.lru_cache(maxsize=64)
def _checked_mapping(path, signature):
    """The checked mapping of ``path`` as it is with ``signature`` (cached; errors are not)."""
    try:
        mapping = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidInputError(path, f"invalid JSON ({error})", _MAPPING_FIX) from error
    if not isinstance(mapping, dict) or not mapping:
        raise InvalidInputError(path, "must be a non-empty JSON object", _MAPPING_FIX)
    unknown = {channel: role for channel, role in mapping.items() if role is not None and role not in ROLES}
    if unknown:
        raise InvalidInputError(path, f"unknown role(s) {unknown}", _MAPPING_FIX)
    doubles = [role for role, count in Counter(r for r in mapping.values() if r).items() if count > 1]
    if doubles:
        raise InvalidInputError(path, f"role(s) {doubles} mapped to more than one channel", _MAPPING_FIX)
    if NUCLEI not in mapping.values():
        raise InvalidInputError(path, "no channel is mapped to 'nuclei'", _MAPPING_FIX)
    return tuple(mapping.items())


def channel_roles(plate_dir):
    """Return the roles present on the plate, in the order of :data:`~antibodies.keys.ROLES`."""
    present = set(read_channel_mapping(plate_dir).values())
    return tuple(role for role in ROLES if role in present)


def sera_present(plate_dir):
    """Return the serum roles present on the plate (``serum_IgG``, ...), in the order of :data:`~antibodies.keys.ROLES`."""
    return [role for role in channel_roles(plate_dir) if role.startswith("serum")]


def _channels_last(axes, shape):
    """True for one page of interleaved samples, ``(M, N, C)`` (tifffile axes ``YXS``)."""
    return len(shape) == 3 and axes.endswith("S")


def _tiff_layout(path):
    """Return ``(channels, (rows, columns))`` from the TIFF's metadata (no pixels read).

    Channels are pages, or the samples of one interleaved page. Called after
    :meth:`RawImagePlanner.check_image` found every page and pixel block inside
    the file, so the metadata describes data that is there.
    """
    try:
        with tifffile.TiffFile(path) as tiff:
            series = tiff.series[0]
            axes, shape = series.axes, tuple(series.shape)
    except Exception as error:
        fix = "copy the image again from the microscope"
        raise InvalidInputError(path, f"not a readable TIFF ({error})", fix) from error
    if _channels_last(axes, shape):
        return shape[2], shape[:2]
    return (shape[0] if len(shape) == 3 else 1), shape[-2:]


def read_raw_image(path):
    """Return the pixels of a raw TIFF as ``(C, M, N)`` pages (or one ``(M, N)`` page).

    One page per channel is read as it is; one page of interleaved samples
    (``(M, N, C)``, as ``tifffile.imwrite`` writes a channels-last array) is
    turned into pages.
    """
    with tifffile.TiffFile(path) as tiff:
        series = tiff.series[0]
        pixels = series.asarray()
        return np.moveaxis(pixels, -1, 0) if _channels_last(series.axes, pixels.shape) else pixels


class AssayPlanner(RawImagePlanner):
    """Check every raw image against the channel mapping and the rest of the plate."""

    def check_folder(self, plate_dir):
        """The folder must exist and carry a valid channel mapping."""
        super().check_folder(plate_dir)
        read_channel_mapping(plate_dir)

    def check_image(self, path):
        """Check structure (truncation), channel count and mapped channels of one TIFF."""
        super().check_image(path)
        channels = parse_image_name(path.stem).channels
        mapping = read_channel_mapping(path.parent)
        missing = [channel for channel in mapping if channel not in channels]
        if missing:
            raise InvalidInputError(
                path, f"mapped channel(s) {missing} are not in the file name channels {list(channels)}",
                f"fix {MAPPING_FILE} or the file name",
            )
        n_channels, shape = _tiff_layout(path)
        if n_channels != len(channels):
            raise InvalidInputError(
                path, f"has {n_channels} channel page(s) but its name lists {len(channels)} channels {list(channels)}",
                "export one page per channel",
            )
        return {"shape": shape}

    def check_plate(self, plate_dir, infos):
        """Images whose shape differs from the most common one on the plate are invalid."""
        shapes = Counter(info["shape"] for info in infos.values())
        if len(shapes) < 2:
            return {}
        common = shapes.most_common(1)[0][0]
        return {
            stem: f"image shape {info['shape']} differs from the plate's {common} (fix: remove or re-export it)"
            for stem, info in infos.items()
            if info["shape"] != common
        }
