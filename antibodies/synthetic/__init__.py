"""Synthetic data: nuclei-only training images and whole immunofluorescence plates with ground truth.

See :mod:`antibodies.synthetic.plate` for the plate renderer (file layout,
channel schemes, ground-truth format) and :mod:`antibodies.synthetic.nuclei`
for the nucleus shapes and the nuclei-only image styles used to train the
bundled StarDist model; :mod:`antibodies.synthetic.nuisance` holds the
nuisance ranges (optics, staining, biology) and the named plate families
(tune / holdout).
"""
from antibodies.synthetic.nuclei import random_nuclei_style, render_nuclei_image
from antibodies.synthetic.nuisance import (
    FAMILIES,
    ImageNuisance,
    NuisanceRanges,
    PlateFamily,
    draw_image_nuisance,
    draw_well_params,
)
from antibodies.synthetic.plate import (
    FILENAME_PATTERN,
    POSITIVE_RATIO_THRESHOLD,
    ROLES,
    SCHEMES,
    SERUM_ROLES,
    image_file_name,
    parse_well_list,
    random_well_params,
    render_family_plate,
    render_image,
    render_plate,
)

__all__ = [
    "FAMILIES",
    "FILENAME_PATTERN",
    "ImageNuisance",
    "NuisanceRanges",
    "PlateFamily",
    "POSITIVE_RATIO_THRESHOLD",
    "ROLES",
    "SCHEMES",
    "SERUM_ROLES",
    "draw_image_nuisance",
    "draw_well_params",
    "image_file_name",
    "parse_well_list",
    "random_nuclei_style",
    "random_well_params",
    "render_family_plate",
    "render_image",
    "render_nuclei_image",
    "render_plate",
]
