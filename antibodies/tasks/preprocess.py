"""Preprocess: raw TIFF -> one pyramid per channel role, optionally flat-field corrected."""
import functools
from pathlib import Path

import numpy as np

from luigi_tasks import BatchJob, ConfigError
from luigi_tasks.io import open_file, parse_image_name, write_image

from ..analysis.preprocess import as_counts, correct_flatfield, split_channels
from ..inputs import channel_roles, read_channel_mapping, read_raw_image
from ..keys import CHANNEL_COLORS, raw_key
from ..settings import setting

__all__ = ["Preprocess", "read_corrector", "corrector_for_shape"]

_CORRECTOR_FIX = ("give [preprocess] barrel_correctors h5 files with datasets 'offset' (a number or an image) and "
                  "'divisor' (an image of the raw images' shape)")


@functools.lru_cache(maxsize=16)
def read_corrector(path):
    """Read a flat-field corrector file (h5 with datasets ``offset`` and ``divisor``), once per process.

    Raises
    ------
    ConfigError
        Naming the file, what is wrong and the fix.
    """
    try:
        with open_file(path, "r") as container:
            offset, divisor = container["offset"][()], container["divisor"][()]
    except (OSError, KeyError) as error:
        raise ConfigError(f"{path}: not a readable barrel corrector ({error}); fix: {_CORRECTOR_FIX}") from error
    if np.ndim(divisor) != 2:
        raise ConfigError(f"{path}: 'divisor' has shape {np.shape(divisor)}, not (M, N); fix: {_CORRECTOR_FIX}")
    return offset, divisor


def corrector_for_shape(paths, shape, image_path):
    """Return ``(offset, divisor)`` of the corrector among ``paths`` whose divisor has ``shape`` (None if no paths).

    Raises
    ------
    ConfigError
        If correctors are given but none has the shape of the image at ``image_path``.
    """
    if not paths:
        return None
    shapes = {path: read_corrector(path)[1].shape for path in paths}
    matching = [path for path, corrector_shape in shapes.items() if corrector_shape == tuple(shape)]
    if not matching:
        known = ", ".join(f"{path} {corrector_shape}" for path, corrector_shape in shapes.items())
        raise ConfigError(
            f"{image_path}: no barrel corrector of its shape {tuple(shape)} (given: {known}); fix: add a corrector "
            f"of shape {tuple(shape)} to [preprocess] barrel_correctors, or run this plate without correction")
    return read_corrector(matching[-1])


class Preprocess(BatchJob):
    """Split the channels of each raw image into its container."""

    preprocess_barrel_correctors = setting("preprocess", "barrel_correctors")
    retired_settings = {"preprocess_barrel_corrector_1024x1024": "", "preprocess_barrel_corrector_930x1024": ""}

    @classmethod
    def unused_settings(cls, values):
        """No correctors (the default) gives the outputs of the per-shape settings left empty, as before."""
        return {"preprocess_barrel_correctors"} if values.get("preprocess_barrel_correctors") == "[]" else set()

    def output_keys(self):
        """One key per mapped channel role."""
        return list(channel_roles(self.plate_dir))

    def compute(self, input_files, output_files, preprocess_barrel_correctors):
        mapping = {name: role for name, role in read_channel_mapping(self.plate_dir).items() if role}
        for input_file, output_file in zip(input_files, output_files):
            stack, factor = as_counts(read_raw_image(input_file))
            if factor != 1:
                self.logger.info("%s: float intensities within [0, 1], read as normalised 16-bit data (x %g)",
                                 input_file, factor)
            corrector = corrector_for_shape(preprocess_barrel_correctors, stack.shape[-2:], input_file)
            channels = split_channels(stack, parse_image_name(Path(input_file).stem).channels)
            with open_file(output_file, "a") as container:
                for name, role in mapping.items():
                    self.write_channel(container, role, channels[name], corrector)

    def write_channel(self, container, role, image, corrector):
        """Write one channel; a corrected channel keeps its raw copy as ``<role>_raw``."""
        color = CHANNEL_COLORS.get(role, "Gray")
        if corrector is not None:
            write_image(container, raw_key(role), image, color=color, visible=False)
            image = correct_flatfield(image, *corrector).astype(np.float32)
        write_image(container, role, image, color=color)
