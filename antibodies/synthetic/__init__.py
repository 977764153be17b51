"""Synthetic data: nuclei-only training images and whole immunofluorescence plates with ground truth.

See :mod:`antibodies.synthetic.plate` for the plate renderer (file layout,
channel schemes, ground-truth format) and :mod:`antibodies.synthetic.nuclei`
for the nucleus shapes and the nuclei-only image styles used to train the
bundled StarDist model.
"""
from antibodies.synthetic.nuclei import random_nuclei_style, render_nuclei_image
from antibodies.synthetic.plate import (
    FILENAME_PATTERN,
    POSITIVE_RATIO_THRESHOLD,
    ROLES,
    SCHEMES,
    SERUM_ROLES,
    image_file_name,
    parse_well_list,
    random_well_params,
    render_image,
    render_plate,
)

__all__ = [
    "FILENAME_PATTERN",
    "POSITIVE_RATIO_THRESHOLD",
    "ROLES",
    "SCHEMES",
    "SERUM_ROLES",
    "image_file_name",
    "parse_well_list",
    "random_nuclei_style",
    "random_well_params",
    "render_image",
    "render_nuclei_image",
    "render_plate",
]
