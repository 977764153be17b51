"""Synthetic immunofluorescence plates of Vero cells with ground truth.

Each image shows confluent islands of polygonal Vero cells (a jittered,
warped hexagonal seed lattice tessellated by a Voronoi diagram inside
blob-shaped islands), one irregular nucleus per cell, and the channels of a
microscope *scheme* (:data:`SCHEMES`):

``nuclei``
    DAPI-like nuclear stain (see :mod:`antibodies.synthetic.nuclei`).
``marker``
    Virus marker: perinuclear granular signal in infected cells only.
``serum_IgG`` / ``serum_IgA`` / ``serum_IgM``
    Patient serum: a cytoplasmic baseline in every cell plus, in infected
    cells, an extra perinuclear signal.  The per-cell mean of the noise-free
    serum signal over the cell mask is constructed so that
    ``median(infected) / median(control)`` equals the well's true ratio
    exactly; on the rendered image (background-subtracted) the ratio is
    reproduced up to blur, vignetting and noise.
``None``
    Unused channel (weak autofluorescence) or transmitted light (``DIA``).

Optics and camera (without a nuisance layer): Gaussian blur (PSF), mild
vignetting, camera offset of 100-200 counts, Poisson shot noise with a
gain, Gaussian read noise.

File layout written by :func:`render_plate`::

    plate_dir/WellC05_PointC05_0002_ChannelDAPI,WF_GFP,TRITC,WF_Cy5_Seq0123.tiff
    plate_dir/channel_mapping.json
    truth_dir/WellC05_PointC05_0002_ChannelDAPI,WF_GFP,TRITC,WF_Cy5_Seq0123.npz
    truth_dir/wells.csv

Command line::

    python -m antibodies.synthetic.plate OUT_DIR --scheme scheme1 --wells A01,A02 --sites 2 \\
        [--shape 930,1024] [--truth DIR] [--seed 0] [--empty A02] [--mock A03] [--ratio A01=2.5]
    python -m antibodies.synthetic.plate OUT_DIR --family tune_density --scheme scheme4 \\
        --wells A01:B06 --sites 4 --seed 0          # plate 0 of a named family

Nuisance layer: ``render_plate(..., nuisance=...)`` (ranges, a family or a
family name; see :mod:`antibodies.synthetic.nuisance`) draws the biology of
each well and the optics and staining of each image within wider ranges
(per-channel offsets and haze, vignetting, blur, gain, read noise, marker
and nucleus appearance); :func:`render_family_plate` renders one plate of a
named family.  Without it the output is bit-identical to earlier versions.
"""
import argparse
import csv
import json
import logging
import math
import re
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from antibodies.synthetic.nuclei import paint_nuclei, shade_nuclei, smooth_noise
from antibodies.synthetic.nuisance import (
    FAMILIES, background_under_cells, draw_image_nuisance, draw_well_params, haze_field, resolve_ranges,
    vignette_field)

__all__ = [
    "SCHEMES",
    "ROLES",
    "SERUM_ROLES",
    "FILENAME_PATTERN",
    "POSITIVE_RATIO_THRESHOLD",
    "image_file_name",
    "parse_well_list",
    "random_well_params",
    "render_cell_layout",
    "render_image",
    "render_plate",
    "render_family_plate",
    "main",
]

logger = logging.getLogger(__name__)

SCHEMES = {
    "scheme1": {"DAPI": "nuclei", "WF_GFP": "marker", "TRITC": "serum_IgG", "WF_Cy5": None},
    "scheme2": {"DAPI": "nuclei", "WF_GFP": "serum_IgG", "TRITC": "marker"},
    "scheme3": {"DAPI": "nuclei", "WF_Cy5": "serum_IgG", "TRITC": "marker"},
    "scheme4": {"DAPI": "nuclei", "WF_GFP": "serum_IgG", "TRITC": "marker", "WF_Cy5": "serum_IgA", "DIA": None},
    "scheme5": {"DAPI": "nuclei", "WF_GFP": "serum_IgG", "TRITC": "marker", "WF_Cy5": "serum_IgM", "DIA": None},
}
"""Microscope channel -> role for the five real channel schemes (channel order = file order)."""

ROLES = ("nuclei", "marker", "serum_IgG", "serum_IgA", "serum_IgM")
"""Roles a channel can play (``None`` for unused channels)."""

SERUM_ROLES = ("serum_IgG", "serum_IgA", "serum_IgM")
"""Roles that carry patient serum."""

FILENAME_PATTERN = re.compile(
    r"^Well(?P<row>[A-P])(?P<col>\d{2})_Point(?P=row)(?P=col)_(?P<site>\d{4})"
    r"_Channel(?P<channels>[A-Za-z0-9_]+(?:,[A-Za-z0-9_]+)*)_Seq(?P<seq>\d{4})\.tiff$")
"""Regular expression matching the image file names written by :func:`render_plate`."""

POSITIVE_RATIO_THRESHOLD = 1.3
"""A well counts as positive in ``wells.csv`` when a serum ratio reaches this value."""

_WELL_PATTERN = re.compile(r"^([A-P])(\d{1,2})$")


def image_file_name(well, site, channels, seq):
    """Return the microscope file name of one image.

    Parameters
    ----------
    well : str
        Well name such as ``"C05"`` (rows A-P, columns 1-24).
    site : int
        Site (field of view) index within the well.
    channels : sequence of str
        Channel names in file order.
    seq : int
        Running sequence number over the plate.

    Returns
    -------
    str
        E.g. ``WellC05_PointC05_0002_ChannelDAPI,WF_GFP,TRITC,WF_Cy5_Seq0123.tiff``.
    """
    row, col = _split_well(well)
    return f"Well{row}{col:02d}_Point{row}{col:02d}_{site:04d}_Channel{','.join(channels)}_Seq{seq:04d}.tiff"


def _split_well(well):
    """Return (row letter, column number) of a well name like ``"P24"``."""
    match = _WELL_PATTERN.match(well.strip().upper())
    if match is None:
        raise ValueError(f"invalid well name {well!r}; expected a row A-P and a column 1-24, e.g. 'C05'")
    return match.group(1), int(match.group(2))


def _well_name(row, col):
    """Return the canonical well name, e.g. ``('C', 5) -> 'C05'``."""
    return f"{row}{col:02d}"


def parse_well_list(text):
    """Parse ``"A01,A02"`` or a rectangle ``"A01:B03"`` (or a mix) into well names.

    Parameters
    ----------
    text : str
        Comma separated well names and/or ``FIRST:LAST`` rectangles.

    Returns
    -------
    list of str
        Canonical well names in row-major order of appearance.
    """
    wells = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        if ":" in part:
            first, last = (_split_well(w) for w in part.split(":"))
            for row in range(ord(first[0]), ord(last[0]) + 1):
                for col in range(first[1], last[1] + 1):
                    wells.append(_well_name(chr(row), col))
        else:
            wells.append(_well_name(*_split_well(part)))
    return wells


def random_well_params(rng, ratios=None, fraction_infected=None, empty=False,
                       serum_roles=SERUM_ROLES):
    """Draw the biology of one well.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random source.
    ratios : float or dict, optional
        True serum ratio(s) (infected / control, background subtracted): one
        value for all serum roles or ``{role: ratio}``.  Drawn when omitted:
        positive wells 1.5-3, negative wells 1.0-1.15.
    fraction_infected : float, optional
        Fraction of infected cells; drawn from 0.1-0.6 when omitted.
    empty : bool
        True for a well without cells (background only).
    serum_roles : sequence of str
        Serum roles to draw ratios for.

    Returns
    -------
    dict
        Keys ``empty``, ``fraction_infected``, ``ratios`` ({role: float}),
        ``cell_area`` (mean cell area in px), ``confluence`` (fraction of
        the field covered by cell islands), ``nucleus_area`` (mean nucleus
        area in px), and intensity levels in camera counts above background:
        ``nucleus_level``, ``marker_level``, ``serum_levels`` ({role: counts}).
    """
    positive = rng.random() < 0.5
    drawn = {role: float(rng.uniform(1.5, 3.0) if positive else rng.uniform(1.0, 1.15))
             for role in serum_roles}
    if isinstance(ratios, dict):
        drawn.update({role: float(value) for role, value in ratios.items()})
    elif ratios is not None:
        drawn = {role: float(ratios) for role in serum_roles}
    return {
        "empty": bool(empty),
        "fraction_infected": float(rng.uniform(0.1, 0.6) if fraction_infected is None else fraction_infected),
        "ratios": drawn,
        "cell_area": float(rng.uniform(2000.0, 3800.0)),
        "confluence": float(rng.uniform(0.55, 0.9)),
        "nucleus_area": float(rng.uniform(250.0, 450.0)),
        "nucleus_level": float(rng.uniform(1200.0, 4000.0)),
        "marker_level": float(rng.uniform(800.0, 3000.0)),
        "serum_levels": {role: float(rng.uniform(600.0, 1800.0)) for role in SERUM_ROLES},
    }


# --------------------------------------------------------------------------- layout


def _island_mask(shape, confluence, rng):
    """Return an (M, N) bool mask of blob-shaped cell islands covering ~confluence."""
    if confluence >= 0.98:
        return np.ones(shape, bool)
    field = smooth_noise(shape, rng.uniform(90.0, 180.0), rng)
    threshold = np.quantile(field[::8, ::8], 1.0 - confluence)
    return field > threshold


def _seed_lattice(shape, spacing, rng):
    """Return (K, 2) jittered, warped hexagonal lattice points covering the image."""
    height, width = shape
    row_step = spacing * math.sqrt(3) / 2
    rows = np.arange(-1, height / row_step + 2) * row_step
    cols = np.arange(-1, width / spacing + 2) * spacing
    yy, xx = np.meshgrid(rows, cols, indexing="ij")
    xx = xx + (np.arange(len(rows))[:, None] % 2) * spacing / 2
    points = np.stack([yy.ravel(), xx.ravel()], axis=1)
    points += rng.uniform(-0.3, 0.3, size=points.shape) * spacing
    warp_y = smooth_noise((height // 16 + 4, width // 16 + 4), 4.0, rng)
    warp_x = smooth_noise((height // 16 + 4, width // 16 + 4), 4.0, rng)
    grid = np.clip(points / 16.0, 0, np.array(warp_y.shape) - 1).T
    amplitude = rng.uniform(0.3, 0.9) * spacing
    points[:, 0] += amplitude * ndi.map_coordinates(warp_y, grid, order=1)
    points[:, 1] += amplitude * ndi.map_coordinates(warp_x, grid, order=1)
    inside = (points[:, 0] >= 0) & (points[:, 0] < height) & (points[:, 1] >= 0) & (points[:, 1] < width)
    return points[inside]


def _split_dividing(points, spacing, rng, fraction=0.04):
    """Replace a few seeds by close pairs (daughter cells with touching nuclei)."""
    dividing = rng.random(len(points)) < fraction
    angle = rng.uniform(0, np.pi, size=int(dividing.sum()))
    half_step = 0.22 * spacing * np.stack([np.sin(angle), np.cos(angle)], axis=1)
    pairs = np.concatenate([points[dividing] + half_step, points[dividing] - half_step])
    return np.concatenate([points[~dividing], pairs])


def _voronoi_cells(shape, seeds, islands, max_radius, rng, weights=None):
    """Tessellate islands into cells around seeds; return (M, N) int32 labels (seed k -> k+1).

    With ``weights`` (px, one per seed) the tiling is additively weighted: a
    pixel belongs to the seed with the least ``distance - weight``.
    """
    if weights is None:
        seed_image = np.zeros(shape, np.int32)
        rows = np.clip(np.round(seeds[:, 0]).astype(int), 0, shape[0] - 1)
        cols = np.clip(np.round(seeds[:, 1]).astype(int), 0, shape[1] - 1)
        seed_image[rows, cols] = np.arange(1, len(seeds) + 1)
        distance, (near_r, near_c) = ndi.distance_transform_edt(seed_image == 0, return_indices=True)
        cells = seed_image[near_r, near_c]
        cells[distance > max_radius] = 0
    else:
        cells = _weighted_nearest_seed(shape, seeds, weights, max_radius)
    cells[~islands] = 0
    return _wobble_borders(cells, rng)


def _weighted_nearest_seed(shape, seeds, weights, max_radius):
    """Label each pixel with the seed k (1-based) of least ``|x - seeds[k]| - weights[k]`` up to ``max_radius``."""
    best = np.full(shape, np.inf, np.float32)
    cells = np.zeros(shape, np.int32)
    for label, ((row, col), weight) in enumerate(zip(seeds, weights), start=1):
        reach = max_radius + weight
        r0, r1 = max(int(row - reach), 0), min(int(row + reach) + 2, shape[0])
        c0, c1 = max(int(col - reach), 0), min(int(col + reach) + 2, shape[1])
        if reach <= 0 or r0 >= r1 or c0 >= c1:
            continue
        rows = (np.arange(r0, r1, dtype=np.float32) - row)[:, None]
        cols = (np.arange(c0, c1, dtype=np.float32) - col)[None, :]
        distance = np.sqrt(rows ** 2 + cols ** 2) - weight
        closer = (distance < best[r0:r1, c0:c1]) & (distance <= max_radius)
        best[r0:r1, c0:c1][closer] = distance[closer]
        cells[r0:r1, c0:c1][closer] = label
    return cells


def _wobble_borders(labels, rng, amplitude=2.5, scale=5.0):
    """Make straight Voronoi borders slightly wavy by a smooth sub-pixel warp."""
    shape = labels.shape
    small = (shape[0] // 4 + 2, shape[1] // 4 + 2)
    d_row = ndi.zoom(smooth_noise(small, scale / 4.0, rng), 4, order=1)[: shape[0], : shape[1]]
    d_col = ndi.zoom(smooth_noise(small, scale / 4.0, rng), 4, order=1)[: shape[0], : shape[1]]
    rows = np.clip(np.arange(shape[0])[:, None] + amplitude * d_row, 0, shape[0] - 1)
    cols = np.clip(np.arange(shape[1])[None, :] + amplitude * d_col, 0, shape[1] - 1)
    return labels[np.round(rows).astype(np.intp), np.round(cols).astype(np.intp)]


def render_cell_layout(shape, params, rng):
    """Lay out cells and their nuclei for one field of view.

    Parameters
    ----------
    shape : tuple of int
        Image shape (M, N).
    params : dict
        Well parameters from :func:`random_well_params`; optional keys
        ``dividing_fraction`` (share of seeds split into daughter pairs with
        touching nuclei, default 0.04), ``nucleus_halo`` (upper end of
        the per-nucleus stain halo ratio, default 1.2),
        ``cell_size_spread`` (spread of the cells' additive weights as a
        fraction of the spacing, default 0: borders midway between seeds) and
        ``cell_elongation`` with ``cell_orientation`` (an area-keeping stretch
        of the tiling along that direction, radians from the column axis;
        default 1: none).
    rng : numpy.random.Generator
        Random source.

    Returns
    -------
    cells : numpy.ndarray
        (M, N) int32 cell labels 1..K.
    nuclei : numpy.ndarray
        (M, N) int32 nucleus labels; nucleus id == id of its cell, every
        cell has exactly one nucleus and every nucleus lies in its cell.
    stain : dict
        Shading inputs for :func:`antibodies.synthetic.nuclei.shade_nuclei`:
        ``owners`` (M, N) id of the nucleus staining each pixel (label plus a
        faint halo), ``rho`` (M, N) normalised radial coordinate and
        ``halo`` (K + 1,) halo ratio per id.
    """
    empty = np.zeros(shape, np.int32)
    no_cells = (empty, empty.copy(), {"owners": empty.copy(), "rho": np.ones(shape, np.float32),
                                      "halo": np.ones(1, np.float32)})
    if params["empty"]:
        return no_cells
    spacing = math.sqrt(params["cell_area"] * 2 / math.sqrt(3))
    islands = _island_mask(shape, params["confluence"], rng)
    stretched = params.get("cell_elongation", 1.0) > 1
    if stretched:
        cells, seeds = _stretched_tiling(shape, spacing, islands, params, rng)
    else:
        seeds = _split_dividing(_seed_lattice(shape, spacing, rng), spacing, rng, params.get("dividing_fraction", 0.04))
        if len(seeds) == 0:
            return no_cells
        cells = _voronoi_cells(shape, seeds, islands, 0.85 * spacing, rng, _tiling_weights(params, spacing, seeds, rng))
    areas = np.bincount(cells.ravel(), minlength=len(seeds) + 1)
    ids = np.flatnonzero(areas[1:] >= 500) + 1
    if len(ids) == 0:
        return no_cells
    nuclei = np.zeros(shape, np.int32)
    owners = np.zeros(shape, np.int32)
    rho = np.ones(shape, np.float32)
    nucleus_area = np.minimum(params["nucleus_area"] * np.exp(rng.normal(0, 0.3, len(ids))),
                              0.3 * areas[ids])
    nucleus_area = np.clip(nucleus_area, 120.0, 750.0)
    elongation = np.exp(rng.uniform(0.0, 0.45, len(ids))) * np.sqrt(params.get("cell_elongation", 1.0))
    radius = np.sqrt(nucleus_area / np.pi)
    semi_axes = np.stack([radius * np.sqrt(elongation), radius / np.sqrt(elongation)], axis=1)
    centers = _cell_centroids(cells, ids) + rng.normal(0, 0.06 * spacing, (len(ids), 2))
    halo = rng.uniform(1.0, params.get("nucleus_halo", 1.2), len(ids))
    angles = rng.uniform(0, np.pi, len(ids))
    if stretched:  # along the stretch, within about +-0.3 rad
        angles = params["cell_orientation"] + 0.2 * (angles - np.pi / 2)
    painted = paint_nuclei(nuclei, rho, centers, semi_axes, angles,
                           rng.uniform(0.0, 0.09, len(ids)), rng, ids=ids, region=cells, min_kept=0.6,
                           halo=halo, owners=owners)
    keep = np.zeros(len(seeds) + 1, bool)
    keep[painted] = True
    cells[~keep[cells]] = 0
    halo_by_id = np.ones(len(seeds) + 1, np.float32)
    halo_by_id[ids] = halo
    cells, nuclei, owners, halo_by_id = _relabel(cells, nuclei, owners, halo_by_id)
    return cells, nuclei, {"owners": owners, "rho": rho, "halo": halo_by_id}


def _tiling_weights(params, spacing, seeds, rng):
    """Additive weights of the tiling (``cell_size_spread``), or None for a plain Voronoi tiling."""
    spread = params.get("cell_size_spread", 0.0)
    return rng.normal(0.0, spread * spacing, len(seeds)) if spread > 0 else None


def _stretch(shape, elongation, orientation):
    """The (2, 2) inverse of an area-keeping stretch by ``elongation`` along ``orientation`` and the
    shape of the canvas whose stretch covers an (M, N) image."""
    along = np.array([math.sin(orientation), math.cos(orientation)])  # (row, column) of the stretch axis
    across = np.array([-along[1], along[0]])
    inverse = np.outer(along, along) / math.sqrt(elongation) + np.outer(across, across) * math.sqrt(elongation)
    corners = (np.array([[0, 0], [shape[0], 0], [0, shape[1]], [shape[0], shape[1]]]) - np.array(shape) / 2) @ inverse.T
    return inverse, tuple(int(math.ceil(extent)) + 2 for extent in np.ptp(corners, axis=0))


def _stretched_tiling(shape, spacing, islands, params, rng):
    """Tile a canvas as usual and stretch it onto the (M, N) image: elongated, aligned cells.

    Returns the (M, N) cell labels (0 outside ``islands``) and the canvas seeds (their count sets the ids).
    """
    inverse, canvas = _stretch(shape, params["cell_elongation"], params["cell_orientation"])
    seeds = _split_dividing(_seed_lattice(canvas, spacing, rng), spacing, rng, params.get("dividing_fraction", 0.04))
    tiling = _voronoi_cells(canvas, seeds, np.ones(canvas, bool), 0.85 * spacing, rng,
                            _tiling_weights(params, spacing, seeds, rng))
    offset = np.array(canvas) / 2 - inverse @ (np.array(shape) / 2)
    cells = ndi.affine_transform(tiling, inverse, offset=offset, output_shape=shape, order=0, mode="constant")
    cells[~islands] = 0
    return cells, seeds


def _cell_centroids(cells, ids):
    """Return (K, 2) centroids of the given cell ids."""
    flat = cells.ravel()
    counts = np.maximum(np.bincount(flat, minlength=ids.max() + 1), 1)
    rows, cols = np.divmod(np.arange(flat.size), cells.shape[1])
    centroid_r = np.bincount(flat, weights=rows, minlength=ids.max() + 1) / counts
    centroid_c = np.bincount(flat, weights=cols, minlength=ids.max() + 1) / counts
    return np.stack([centroid_r[ids], centroid_c[ids]], axis=1)


def _relabel(cells, nuclei, owners, halo_by_id):
    """Relabel cells 1..K consecutively; apply the same mapping to nuclei, owners and halo."""
    present = np.unique(cells)
    present = present[present > 0]
    lookup = np.zeros(max(int(cells.max()), int(nuclei.max()), int(owners.max())) + 1, np.int32)
    lookup[present] = np.arange(1, len(present) + 1, dtype=np.int32)
    new_halo = np.ones(len(present) + 1, np.float32)
    new_halo[1:] = halo_by_id[present]
    return lookup[cells], lookup[nuclei], lookup[owners], new_halo


# --------------------------------------------------------------------------- signals


def _per_cell_mean(values, cells, n_cells):
    """Return the (n_cells + 1,) mean of values over each cell (index 0: background)."""
    counts = np.maximum(np.bincount(cells.ravel(), minlength=n_cells + 1), 1)
    return np.bincount(cells.ravel(), weights=values.ravel(), minlength=n_cells + 1) / counts


def _unit_mean_per_cell(values, cells, n_cells):
    """Scale values so that their mean over every cell is 1 (0 outside cells)."""
    means = _per_cell_mean(values, cells, n_cells)
    scale = np.zeros_like(means)
    scale[1:] = 1.0 / np.maximum(means[1:], 1e-6)
    return (values * scale[cells]).astype(np.float32)


def _perinuclear_pattern(cells, nuclei, infected, rng, density=0.35, granule_size=0.9):
    """Return (granular, diffuse) perinuclear patterns of infected cells, unit mean per cell.

    ``density`` is the fraction of perinuclear pixels seeding a granule and
    ``granule_size`` the Gaussian sigma (px) of a granule.
    """
    n_cells = int(cells.max())
    distance = ndi.distance_transform_edt(nuclei == 0).astype(np.float32)
    reach = rng.uniform(4.0, 9.0, n_cells + 1).astype(np.float32)
    inside = np.clip(_distance_to_cell_border(cells) / 4.0, 0.0, 1.0)  # virus stays inside its cell
    weight = np.exp(-((distance / reach[cells]) ** 2)) * inside * (infected[cells] & (nuclei == 0))
    granules = (rng.random(cells.shape, dtype=np.float32) < density * weight).astype(np.float32)
    granules = ndi.gaussian_filter(granules * rng.uniform(0.5, 1.5, cells.shape).astype(np.float32), granule_size)
    granules *= infected[cells]
    return (_unit_mean_per_cell(granules, cells, n_cells),
            _unit_mean_per_cell(weight.astype(np.float32), cells, n_cells))


def _distance_to_cell_border(cells):
    """Return the (M, N) distance of each cell pixel to the nearest pixel of another label."""
    borders = np.zeros(cells.shape, bool)
    borders[:-1] |= cells[:-1] != cells[1:]
    borders[1:] |= cells[:-1] != cells[1:]
    borders[:, :-1] |= cells[:, :-1] != cells[:, 1:]
    borders[:, 1:] |= cells[:, :-1] != cells[:, 1:]
    return ndi.distance_transform_edt(~borders).astype(np.float32)


def _serum_cell_targets(n_cells, infected, ratio, rng):
    """Return per-cell (baseline, total) mean serum levels with an exact median ratio.

    Both arrays have length ``n_cells + 1`` (index 0 unused).  ``total`` is
    the mean serum signal over the cell; ``median(total[infected]) /
    median(total[control]) == ratio`` holds exactly when both groups exist.
    """
    baseline = np.exp(rng.normal(0.0, 0.3, n_cells + 1))
    total = baseline.copy()
    ids = np.arange(n_cells + 1)
    infected_ids = ids[infected & (ids > 0)]
    control_ids = ids[~infected & (ids > 0)]
    if len(infected_ids):
        total[infected_ids] = baseline[infected_ids] * ratio * np.exp(rng.normal(0.0, 0.2, len(infected_ids)))
    if len(infected_ids) and len(control_ids):
        total[infected_ids] *= ratio * np.median(total[control_ids]) / np.median(total[infected_ids])
    baseline = np.minimum(baseline, total)
    baseline[0] = total[0] = 0.0
    return baseline, total


def _fade_from_nucleus(cells, nuclei, gradient):
    """Return the (M, N) factor ``exp(-gradient * d / r)``: d the distance to a nucleus, r the cell's radius."""
    areas = np.bincount(cells.ravel(), minlength=int(cells.max()) + 1)
    radius = np.sqrt(np.maximum(areas, 1) / np.pi).astype(np.float32)
    distance = ndi.distance_transform_edt(nuclei == 0).astype(np.float32)
    return np.exp(-gradient * distance / radius[cells])


def _serum_signal(cells, nuclei, infected, patterns, ratio, level, texture, rng, gradient=0.0):
    """Return the noise-free (M, N) serum signal and the true per-cell means (counts).

    ``gradient`` > 0 fades the cytoplasmic stain away from the nucleus
    (:func:`_fade_from_nucleus`); each cell's mean is unchanged.
    """
    n_cells = int(cells.max())
    granular, diffuse = patterns
    profile = np.where(nuclei > 0, 0.35, 1.0).astype(np.float32) * np.clip(1.0 + 0.25 * texture, 0.2, None)
    if gradient > 0:
        profile = profile * _fade_from_nucleus(cells, nuclei, gradient)
    profile = _unit_mean_per_cell(profile * (cells > 0), cells, n_cells)
    extra = 0.6 * granular + 0.4 * diffuse
    baseline, total = _serum_cell_targets(n_cells, infected, ratio, rng)
    signal = level * (baseline[cells] * profile + (total - baseline)[cells] * extra)
    return signal.astype(np.float32), level * total


def _vignette(shape, strength, rng):
    """Return an (M, N) multiplicative illumination falloff (1 at the centre)."""
    yy = (np.arange(shape[0], dtype=np.float32) - rng.uniform(0.4, 0.6) * shape[0]) / max(shape)
    xx = (np.arange(shape[1], dtype=np.float32) - rng.uniform(0.4, 0.6) * shape[1]) / max(shape)
    return 1.0 - strength * 2.0 * (yy[:, None] ** 2 + xx[None, :] ** 2)


def _camera(signal, offset, gain, read_noise, rng):
    """Return uint16 counts: offset + gain * Poisson(signal / gain) + read noise."""
    electrons = rng.poisson(np.maximum(signal, 0.0) / gain).astype(np.float32)
    counts = offset + gain * electrons + read_noise * rng.standard_normal(signal.shape, dtype=np.float32)
    return np.clip(np.round(counts), 0, 65535).astype(np.uint16)


def render_image(shape, scheme_roles, well_params, rng, nuisance=None):
    """Render one multi-channel field of view and its ground truth.

    Parameters
    ----------
    shape : tuple of int
        Image shape (M, N), e.g. (1024, 1024) or (930, 1024).
    scheme_roles : dict
        Ordered ``{channel name: role}`` (e.g. ``SCHEMES["scheme1"]``).
    well_params : dict
        Biology of the well, from :func:`random_well_params` or
        :func:`antibodies.synthetic.nuisance.draw_well_params`.
    rng : numpy.random.Generator
        Random source (rendering is deterministic for a given state).
    nuisance : antibodies.synthetic.nuisance.ImageNuisance, optional
        Optics and staining of this image (one value per channel for the
        per-channel fields, in ``scheme_roles`` order).  Omitted: today's
        fixed optics, bit-identical to renders without the nuisance layer.

    Returns
    -------
    stack : numpy.ndarray
        (C, M, N) uint16 camera image, channels in ``scheme_roles`` order.
    truth : dict
        ``nuclei`` and ``cells``: (M, N) int32 labels (cell id == nucleus
        id); ``infected_ids``: int32 ids of infected cells; ``cell_ids``:
        all ids 1..K; ``serum_means``: {role: (K,) true mean serum signal per
        cell in counts above background, aligned with ``cell_ids``};
        ``background``: {channel: mean additive background in counts (with
        a nuisance: under the cells)}; ``ratios``: {role: true ratio, NaN in
        mock wells}; with a nuisance also ``nuisance`` (JSON string).
        With ``well_params["field_margin"]`` > 0 the field is cut from a
        scene that much wider on every side (:func:`_cut_field`): cells and
        nuclei are cut by the image edge, and some cells have no nucleus in
        the field.
    """
    shape = tuple(int(s) for s in shape)
    margin = int(round(well_params.get("field_margin", 0.0)))
    if margin > 0:
        scene = (shape[0] + 2 * margin, shape[1] + 2 * margin)
        stack, truth = render_image(scene, scheme_roles, {**well_params, "field_margin": 0.0}, rng, nuisance)
        return _cut_field(stack, truth, (slice(margin, margin + shape[0]), slice(margin, margin + shape[1])))
    if nuisance is not None:
        well_params = {**well_params, "nucleus_halo": nuisance.nucleus_halo,
                       "serum_gradient": nuisance.serum_gradient}
    cells, nuclei, stain = render_cell_layout(shape, well_params, rng)
    n_cells = int(cells.max())
    infected = rng.random(n_cells + 1) < well_params["fraction_infected"]
    infected[0] = False
    cell_ids = np.arange(1, n_cells + 1, dtype=np.int32)
    texture = smooth_noise(shape, 2.0, rng)
    layout = {"cells": cells, "nuclei": nuclei, "stain": stain, "infected": infected, "texture": texture}
    if nuisance is None:
        stack, serum_means, background = _fixed_optics_channels(shape, scheme_roles, layout, well_params, rng)
    else:
        stack, serum_means, background = _nuisance_channels(shape, scheme_roles, layout, well_params,
                                                            nuisance, rng)
    mock = bool(well_params.get("mock", False))
    truth = {
        "nuclei": nuclei,
        "cells": cells,
        "infected_ids": cell_ids[infected[1:]],
        "cell_ids": cell_ids,
        "serum_means": {role: means[1:] for role, means in serum_means.items()},
        "background": background,
        "ratios": {role: float("nan") if mock else well_params["ratios"].get(role, float("nan"))
                   for role in serum_means},
    }
    if nuisance is not None:
        truth["nuisance"] = nuisance.to_json()
    return stack, truth


def _cut_field(stack, truth, cut):
    """Cut the field ``cut`` (two slices) out of a rendered scene and its truth.

    The cells and nuclei are relabelled 1..K over the cells with a pixel in the
    field; per-cell truth keeps each cell's mean over its whole body in the scene.
    The backgrounds are the scene's.
    """
    cells = truth["cells"][cut]
    kept = np.unique(cells[cells > 0])
    lookup = np.zeros(int(truth["cells"].max()) + 1, np.int32)
    lookup[kept] = np.arange(1, len(kept) + 1, dtype=np.int32)
    rows = kept - 1  # the scene's cell_ids are 1..K
    return np.ascontiguousarray(stack[(slice(None),) + cut]), {
        **truth,
        "nuclei": lookup[truth["nuclei"][cut]],
        "cells": lookup[cells],
        "infected_ids": np.sort(lookup[np.intersect1d(truth["infected_ids"], kept)]).astype(np.int32),
        "cell_ids": np.arange(1, len(kept) + 1, dtype=np.int32),
        "serum_means": {role: means[rows] for role, means in truth["serum_means"].items()},
    }


def _fixed_optics_channels(shape, scheme_roles, layout, well_params, rng):
    """Render the channels with the renderer's original fixed optics ranges (no nuisance layer)."""
    cells, infected = layout["cells"], layout["infected"]
    patterns = _perinuclear_pattern(cells, layout["nuclei"], infected, rng) if infected.any() else None
    vignette = _vignette(shape, rng.uniform(0.05, 0.15), rng)
    blur = rng.uniform(0.8, 1.5)
    channels, serum_means, background = [], {}, {}
    for channel, role in scheme_roles.items():
        signal, autofluorescence = _channel_signal(role, channel, cells, layout["nuclei"], layout["stain"],
                                                   infected, patterns, layout["texture"], well_params, rng,
                                                   serum_means)
        signal = (ndi.gaussian_filter(signal, blur) + autofluorescence) * vignette
        offset = rng.uniform(100.0, 200.0)
        channels.append(_camera(signal, offset, gain=rng.uniform(1.0, 3.0), read_noise=rng.uniform(2.0, 6.0), rng=rng))
        background[channel] = float(offset + autofluorescence * vignette.mean())
    return np.stack(channels), serum_means, background


def _nuisance_channels(shape, scheme_roles, layout, well_params, nuisance, rng):
    """Render the channels with the optics and staining of an ``ImageNuisance``.

    Offset, haze and background autofluorescence are additive background,
    equal under and outside the cells; the recorded background of a channel
    is their mean under the cells.
    """
    if len(nuisance.offset) < len(scheme_roles):
        raise ValueError(f"the image nuisance has {len(nuisance.offset)} channel values but the scheme has "
                         f"{len(scheme_roles)} channels; draw it with n_channels=len(scheme_roles)")
    cells, infected = layout["cells"], layout["infected"]
    patterns = None
    if infected.any():
        patterns = _perinuclear_pattern(cells, layout["nuclei"], infected, rng,
                                        nuisance.granule_density, nuisance.granule_size)
    vignette = vignette_field(shape, nuisance.vignetting, rng)
    channels, serum_means, background = [], {}, {}
    for index, (channel, role) in enumerate(scheme_roles.items()):
        signal = _nuisance_signal(role, channel, layout, patterns, well_params, nuisance, rng, serum_means)
        additive = (nuisance.autofluorescence[index] * vignette
                    + haze_field(shape, nuisance.haze_amplitude[index], nuisance.haze_scale[index], rng))
        signal = _point_spread(signal, nuisance) * vignette + additive
        channels.append(_camera(signal, nuisance.offset[index], nuisance.gain, nuisance.read_noise, rng))
        background[channel] = float(nuisance.offset[index] + background_under_cells(additive, cells))
    return np.stack(channels), serum_means, background


def _point_spread(signal, nuisance):
    """Blur by the PSF: a Gaussian core (``blur``) and, with ``glow``, a wide Gaussian tail (``glow_scale``)."""
    blurred = ndi.gaussian_filter(signal, nuisance.blur)
    if nuisance.glow > 0:
        blurred = (1.0 - nuisance.glow) * blurred + nuisance.glow * ndi.gaussian_filter(signal, nuisance.glow_scale)
    return blurred


def _nuisance_signal(role, channel, layout, patterns, params, nuisance, rng, serum_means):
    """Return the noise-free, background-free (M, N) signal of one channel under a nuisance."""
    cells, nuclei, infected = layout["cells"], layout["nuclei"], layout["infected"]
    n_cells = int(cells.max())
    if role == "nuclei":
        brightness = np.exp(rng.normal(0.0, 0.25, n_cells + 1)).astype(np.float32)
        brightness[rng.random(n_cells + 1) < 0.02] *= 2.5
        signal = nuisance.nucleus_level * shade_nuclei(
            layout["stain"]["owners"], layout["stain"]["rho"], brightness, rng,
            profile_gamma=nuisance.nucleus_gamma, texture=nuisance.nucleus_texture, halo=layout["stain"]["halo"])
        return signal + 0.03 * nuisance.nucleus_level * (cells > 0)
    if role == "marker":
        body = np.clip(1.0 + 0.5 * smooth_noise(cells.shape, 3.0, rng), 0.0, None) * (cells > 0)
        signal = (nuisance.marker_autofluorescence * body).astype(np.float32)
        if patterns is not None:
            amplitude = np.exp(rng.normal(0.0, nuisance.marker_spread, n_cells + 1)).astype(np.float32) * infected
            mix = nuisance.granular_fraction * patterns[0] + (1.0 - nuisance.granular_fraction) * patterns[1]
            signal = signal + nuisance.marker_level * amplitude[cells] * mix
        return signal
    signal, _ = _channel_signal(role, channel, cells, nuclei, layout["stain"], infected, patterns,
                                layout["texture"], params, rng, serum_means)
    return signal


def _channel_signal(role, channel, cells, nuclei, stain, infected, patterns, texture, params, rng, serum_means):
    """Return (noise-free (M, N) signal in counts, background autofluorescence) of one channel."""
    n_cells = int(cells.max())
    if role == "nuclei":
        brightness = np.exp(rng.normal(0.0, 0.25, n_cells + 1)).astype(np.float32)
        bright = rng.random(n_cells + 1) < 0.02
        brightness[bright] *= 2.5
        signal = params["nucleus_level"] * shade_nuclei(stain["owners"], stain["rho"], brightness, rng,
                                                        profile_gamma=rng.uniform(0.1, 0.6),
                                                        texture=rng.uniform(0.1, 0.35), halo=stain["halo"])
        return signal + 0.03 * params["nucleus_level"] * (cells > 0), rng.uniform(20.0, 60.0)
    if role == "marker":
        signal = np.zeros(cells.shape, np.float32)
        if patterns is not None:
            amplitude = np.exp(rng.normal(0.0, 0.4, n_cells + 1)).astype(np.float32) * infected
            signal = params["marker_level"] * amplitude[cells] * (0.85 * patterns[0] + 0.15 * patterns[1])
        return signal, rng.uniform(20.0, 60.0)
    if role in SERUM_ROLES:
        empty_patterns = (np.zeros(cells.shape, np.float32),) * 2
        signal, means = _serum_signal(cells, nuclei, infected, patterns or empty_patterns,
                                      params["ratios"].get(role, 1.0), params["serum_levels"][role],
                                      texture, rng, params.get("serum_gradient", 0.0))
        serum_means[role] = means
        return signal, rng.uniform(30.0, 80.0)
    if channel == "DIA":
        relief = 0.04 * texture * (cells > 0) - 0.05 * (nuclei > 0)
        return 2500.0 * (1.0 + relief).astype(np.float32), 300.0
    return 15.0 * (cells > 0).astype(np.float32), rng.uniform(10.0, 30.0)


# --------------------------------------------------------------------------- plate


def _well_rng(seed, well, site=None):
    """Return the random generator of a well (and site), independent of the well list."""
    row, col = _split_well(well)
    key = [int(seed), ord(row) - ord("A"), col] + ([] if site is None else [int(site) + 1])
    return np.random.default_rng(key)


def _lookup(mapping, well, default=None):
    """Return ``mapping[well]`` accepting any spelling of the well name."""
    if mapping is None:
        return default
    if not isinstance(mapping, dict):
        return mapping
    canonical = {_well_name(*_split_well(key)): value for key, value in mapping.items()}
    return canonical.get(_well_name(*_split_well(well)), default)


def render_plate(plate_dir, truth_dir, scheme="scheme1", wells=("A01", "A02"), sites_per_well=2,
                 shape=(1024, 1024), seed=0, well_ratios=None, empty_wells=(), fraction_infected=None,
                 nuisance=None, mock_wells=()):
    """Render a synthetic plate folder and its ground truth.

    Parameters
    ----------
    plate_dir : str or pathlib.Path
        Output folder for the TIFFs and ``channel_mapping.json``.
    truth_dir : str or pathlib.Path
        Output folder for ``<stem>.npz`` truth per image and ``wells.csv``
        (must differ from ``plate_dir``).
    scheme : str
        Key of :data:`SCHEMES`.
    wells : sequence of str
        Well names (rows A-P, columns 1-24).
    sites_per_well : int
        Images per well.
    shape : tuple of int
        Image shape (M, N).
    seed : int
        Master seed; each well/site has its own generator derived from it,
        so a well renders identically whatever other wells are requested.
    well_ratios : dict, optional
        ``{well: ratio}`` or ``{well: {serum role: ratio}}``; other wells
        get random ratios (see :func:`random_well_params`).
    empty_wells : sequence of str
        Wells rendered without cells (background only).
    fraction_infected : float or dict, optional
        Infected fraction for all wells or ``{well: fraction}``.
    nuisance : str or PlateFamily or NuisanceRanges, optional
        Nuisance ranges (or a family, or a key of
        :data:`antibodies.synthetic.nuisance.FAMILIES`): the biology of each
        well is drawn within them (:func:`~antibodies.synthetic.nuisance.draw_well_params`)
        and the optics and staining of each image
        (:func:`~antibodies.synthetic.nuisance.draw_image_nuisance`); each
        truth npz then also holds ``nuisance`` (JSON).  Omitted: the
        renderer's original draws, bit-identical to earlier versions.
    mock_wells : sequence of str
        Mock-infected wells: cells but no infected cells (``fraction_infected``
        0, ratios NaN in ``wells.csv``).

    Returns
    -------
    dict
        ``plate_dir``, ``truth_dir``, ``scheme``, ``files`` (image paths in
        sequence order) and ``wells`` (list of per-well dicts as in
        ``wells.csv``).
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; choose one of {sorted(SCHEMES)}")
    plate_dir, truth_dir = Path(plate_dir), Path(truth_dir)
    if plate_dir.resolve() == truth_dir.resolve():
        raise ValueError("truth_dir must differ from plate_dir (the truth must not be read as plate data)")
    plate_dir.mkdir(parents=True, exist_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    roles = SCHEMES[scheme]
    serum_roles = [role for role in roles.values() if role in SERUM_ROLES]
    (plate_dir / "channel_mapping.json").write_text(json.dumps(roles, indent=2) + "\n")
    empty = {_well_name(*_split_well(w)) for w in empty_wells}
    mock = {_well_name(*_split_well(w)) for w in mock_wells}
    ranges = None if nuisance is None else resolve_ranges(nuisance)
    files, well_rows, seq = [], [], 0
    for well in (_well_name(*_split_well(w)) for w in wells):
        params = _draw_well(_well_rng(seed, well), ranges, serum_roles, _lookup(well_ratios, well),
                            _lookup(fraction_infected, well), well in empty, well in mock)
        n_cells = n_infected = 0
        for site in range(sites_per_well):
            rng = _well_rng(seed, well, site)
            image_nuisance = None if ranges is None else draw_image_nuisance(rng, ranges, len(roles))
            stack, truth = render_image(shape, roles, params, rng, image_nuisance)
            path = plate_dir / image_file_name(well, site, list(roles), seq)
            _write_image(path, stack, truth, truth_dir / (path.stem + ".npz"))
            files.append(path)
            n_cells += len(truth["cell_ids"])
            n_infected += len(truth["infected_ids"])
            seq += 1
        well_rows.append(_well_row(well, params, serum_roles, n_cells, n_infected))
    _write_wells_csv(truth_dir / "wells.csv", well_rows, serum_roles)
    logger.info("rendered %d images of %d wells into %s", len(files), len(well_rows), plate_dir)
    return {"plate_dir": plate_dir, "truth_dir": truth_dir, "scheme": scheme, "files": files, "wells": well_rows}


def _draw_well(rng, ranges, serum_roles, ratios, fraction_infected, empty, mock):
    """Return the biology of one well: original draws without ranges, else within the ranges."""
    if ranges is not None:
        return draw_well_params(rng, ranges, serum_roles, ratios, fraction_infected, empty, mock)
    params = random_well_params(rng, ratios, 0.0 if mock else fraction_infected, empty, serum_roles)
    return {**params, "mock": True} if mock else params


def render_family_plate(family, scheme, out_dir, truth_dir=None, wells=("A01", "A02"), sites=2,
                        shape=(1024, 1024), plate_index=0, **options):
    """Render one plate of a named plate family.

    Parameters
    ----------
    family : str or PlateFamily
        Key of :data:`antibodies.synthetic.nuisance.FAMILIES` or a family.
    scheme : str
        Key of :data:`SCHEMES`.
    out_dir : str or pathlib.Path
        Plate folder (TIFFs and ``channel_mapping.json``).
    truth_dir : str or pathlib.Path, optional
        Truth folder (default: ``out_dir`` + ``"_truth"``).
    wells : sequence of str
        Well names.
    sites : int
        Images per well.
    shape : tuple of int
        Image shape (M, N).
    plate_index : int
        Plate number within the family; the seed is ``family.seed + plate_index``.
    **options
        Further :func:`render_plate` arguments (``well_ratios``,
        ``empty_wells``, ``mock_wells``, ``fraction_infected``).

    Returns
    -------
    dict
        The :func:`render_plate` summary plus ``family`` (name) and ``seed``.
    """
    family = FAMILIES[family] if isinstance(family, str) and family in FAMILIES else family
    if isinstance(family, str):
        resolve_ranges(family)  # raises the unknown-family error
    out_dir = Path(out_dir)
    truth_dir = Path(truth_dir) if truth_dir is not None else out_dir.with_name(out_dir.name + "_truth")
    seed = family.seed + int(plate_index)
    summary = render_plate(out_dir, truth_dir, scheme, wells, sites, shape, seed, nuisance=family, **options)
    return {**summary, "family": family.name, "seed": seed}


def _write_image(path, stack, truth, truth_path):
    """Write the (C, M, N) TIFF and its truth npz."""
    import tifffile

    tifffile.imwrite(path, stack, photometric="minisblack")
    arrays = {"nuclei": truth["nuclei"], "cells": truth["cells"],
              "infected_ids": truth["infected_ids"], "cell_ids": truth["cell_ids"]}
    arrays.update({f"{role}_cell_means": means for role, means in truth["serum_means"].items()})
    arrays.update({f"background_{channel}": np.float64(level) for channel, level in truth["background"].items()})
    if "nuisance" in truth:
        arrays["nuisance"] = np.array(truth["nuisance"])
    np.savez_compressed(truth_path, **arrays)


def _well_row(well, params, serum_roles, n_cells, n_infected):
    """Return the wells.csv record of one well."""
    row = {"well_name": well}
    no_ratio = params["empty"] or params.get("mock", False)
    for role in serum_roles:
        row[f"ratio_{role}"] = float("nan") if no_ratio else params["ratios"][role]
    ratios = [row[f"ratio_{role}"] for role in serum_roles]
    row["is_positive"] = bool(not no_ratio and max(ratios, default=0.0) >= POSITIVE_RATIO_THRESHOLD)
    row["fraction_infected"] = 0.0 if params["empty"] else params["fraction_infected"]
    row["is_empty"] = params["empty"]
    row["n_cells"] = n_cells
    row["n_infected"] = n_infected
    return row


def _write_wells_csv(path, rows, serum_roles):
    """Write the per-well truth table."""
    fields = (["well_name"] + [f"ratio_{role}" for role in serum_roles]
              + ["is_positive", "fraction_infected", "is_empty", "n_cells", "n_infected"])
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def main(argv=None):
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description="Render a synthetic immunofluorescence plate with ground truth.")
    parser.add_argument("out_dir", help="plate folder to write (TIFFs + channel_mapping.json)")
    parser.add_argument("--scheme", default="scheme1", choices=sorted(SCHEMES))
    parser.add_argument("--wells", default="A01,A02", help="e.g. 'A01,A02' or a rectangle 'A01:B12'")
    parser.add_argument("--sites", type=int, default=2, help="images per well")
    parser.add_argument("--shape", default="1024,1024", help="image shape 'H,W', e.g. 930,1024")
    parser.add_argument("--truth", default=None, help="truth folder (default: OUT_DIR + '_truth')")
    parser.add_argument("--seed", type=int, default=0,
                        help="master seed (with --family: the plate index added to the family's seed)")
    parser.add_argument("--family", default=None, choices=sorted(FAMILIES),
                        help="render with the nuisance ranges of a plate family")
    parser.add_argument("--empty", default="", help="comma separated wells without cells")
    parser.add_argument("--mock", default="", help="comma separated mock-infected wells (no infected cells)")
    parser.add_argument("--ratio", action="append", default=[], metavar="WELL=R",
                        help="true serum ratio of a well (repeatable)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    shape = tuple(int(s) for s in args.shape.split(","))
    ratios = {w: float(r) for w, r in (item.split("=") for item in args.ratio)}
    truth_dir = args.truth or str(Path(args.out_dir).with_name(Path(args.out_dir).name + "_truth"))
    options = {"well_ratios": ratios or None, "empty_wells": parse_well_list(args.empty),
               "mock_wells": parse_well_list(args.mock)}
    if args.family:
        summary = render_family_plate(args.family, args.scheme, args.out_dir, truth_dir,
                                      parse_well_list(args.wells), args.sites, shape, args.seed, **options)
    else:
        summary = render_plate(args.out_dir, truth_dir, args.scheme, parse_well_list(args.wells), args.sites,
                               shape, args.seed, **options)
    print(f"wrote {len(summary['files'])} images to {summary['plate_dir']} and truth to {summary['truth_dir']}")


if __name__ == "__main__":
    main()
