"""Preprocess: raw TIFF -> one pyramid per channel role, optionally flat-field corrected."""
import numpy as np

from luigi_tasks import BatchJob
from luigi_tasks.io import open_file, parse_image_name, write_image

from ..analysis.preprocess import as_counts, correct_flatfield, split_channels
from ..inputs import channel_roles, read_channel_mapping, read_raw_image
from ..keys import CHANNEL_COLORS, raw_key
from ..settings import setting

__all__ = ["Preprocess", "read_corrector"]


def read_corrector(path):
    """Read a flat-field corrector file (h5 with datasets ``offset`` and ``divisor``)."""
    with open_file(path, "r") as container:
        return container["offset"][()], container["divisor"][:]


class Preprocess(BatchJob):
    """Split the channels of each raw image into its container."""

    preprocess_barrel_corrector_1024x1024 = setting("preprocess", "barrel_corrector_1024x1024")
    preprocess_barrel_corrector_930x1024 = setting("preprocess", "barrel_corrector_930x1024")

    def output_keys(self):
        """One key per mapped channel role."""
        return list(channel_roles(self.plate_dir))

    def corrector_for(self, shape):
        """Return the corrector file configured for images of ``shape`` ('' if none)."""
        return getattr(self, f"preprocess_barrel_corrector_{shape[0]}x{shape[1]}", "")

    def compute(self, input_files, output_files, **correctors):
        mapping = {name: role for name, role in read_channel_mapping(self.plate_dir).items() if role}
        for input_file, output_file in zip(input_files, output_files):
            stack, factor = as_counts(read_raw_image(input_file))
            if factor != 1:
                self.logger.info("%s: float intensities within [0, 1], read as normalised 16-bit data (x %g)",
                                 input_file, factor)
            names = parse_image_name(_stem(input_file)).channels
            channels = split_channels(stack, names)
            corrector = self.corrector_for(stack.shape[-2:])
            with open_file(output_file, "a") as container:
                for name, role in mapping.items():
                    self.write_channel(container, role, channels[name], corrector)

    def write_channel(self, container, role, image, corrector):
        """Write one channel; a corrected channel keeps its raw copy as ``<role>_raw``."""
        color = CHANNEL_COLORS.get(role, "Gray")
        if corrector:
            write_image(container, raw_key(role), image, color=color, visible=False)
            offset, divisor = read_corrector(corrector)
            image = correct_flatfield(image, offset, divisor).astype(np.float32)
        write_image(container, role, image, color=color)


def _stem(path):
    from pathlib import Path

    return Path(path).stem
