"""A second plate renderer, for held-out figures only.

:mod:`antibodies.synthetic.plate` and the families of
:mod:`antibodies.synthetic.nuisance` share one generative model, so a method
tuned on some of its families may still lean on that model. This module draws
the same kind of plate (same file names, channel schemes and truth files) from
different generative choices; its held-out families never choose a method or a
number:

* **nuclei**: clustered placement (parents with children around them) of
  ellipses whose outline carries low Fourier harmonics; they may touch; a
  tenth carry twice the DNA (G2) and a few are small and bright (mitotic);
* **cells**: a seeded watershed of the nuclei on a noisy distance landscape,
  inside a reach drawn per cell, so the cells have irregular borders, leave
  gaps and never tile the field;
* **the field** is cut out of a scene 40-120 px wider on every side;
* **serum**: cytoplasm with a brighter membrane rim, a dimmer nucleus and
  speckle; in an infected cell the extra signal follows the virus;
* **virus marker**: diffuse plus cytoplasmic puncta, with a wide spread of
  viral load (some infected cells are dim);
* **optics**: a Gaussian point spread with a wide halo, an off-centre
  illumination falloff, a tilted background plane with coarse haze, shot
  noise, read noise and a camera offset per image.

The true ratio of a serum in a well is measured on what was drawn: the median
over the infected cells of their mean noise-free serum signal inside the
field, over the median of the control cells, both sites pooled; a positive
well has a true ratio of at least
:data:`~antibodies.synthetic.plate.POSITIVE_RATIO_THRESHOLD`.
"""
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from antibodies.synthetic.nuisance import check_family_role
from antibodies.synthetic.plate import (
    POSITIVE_RATIO_THRESHOLD, SCHEMES, SERUM_ROLES, _write_image, _write_wells_csv, image_file_name)

__all__ = ["SecondFamily", "SECOND_FAMILIES", "render_second_image", "render_second_plate"]


@dataclass(frozen=True)
class SecondFamily:
    """A named set of ranges of the second renderer.

    Every range is ``(low, high)``, drawn uniformly per well (biology) or per
    image (optics). ``role`` is ``"tune"`` or ``"holdout"``, as for
    :class:`~antibodies.synthetic.nuisance.PlateFamily`.
    """

    name: str
    seed: int
    role: str
    description: str
    confluence: tuple = (0.35, 0.9)
    nucleus_radius: tuple = (8.0, 12.5)
    cell_reach: tuple = (2.0, 3.2)
    fraction_infected: tuple = (0.1, 0.6)
    serum_level: tuple = (300.0, 1500.0)
    marker_level: tuple = (500.0, 2500.0)
    nucleus_level: tuple = (600.0, 1800.0)
    offset: tuple = (90.0, 400.0)
    medium: tuple = (20.0, 120.0)
    haze: tuple = (0.0, 150.0)
    falloff: tuple = (0.0, 0.3)
    blur: tuple = (0.9, 1.7)
    halo: tuple = (0.03, 0.12)
    gain: tuple = (1.0, 4.0)
    read_noise: tuple = (3.0, 10.0)
    margin: tuple = (40.0, 120.0)

    def __post_init__(self):
        check_family_role(self)


SECOND_FAMILIES = {family.name: family for family in (
    SecondFamily("tune_second_standard", 21000, "tune",
                 "The second renderer at moderate settings: confluence 0.35-0.9, serum 300-1500 counts, "
                 "blur 0.9-1.7, halo 3-12 %, 10-60 % infected. Held out (as second_standard) for one run, "
                 "whose compressed scores were analysed on it."),
    SecondFamily("tune_second_dense_dim", 22000, "tune",
                 "The second renderer on dense, dim fields: confluence 0.8-1.0, serum 150-500 counts over "
                 "a medium of 50-150, haze up to 250, blur 1.3-2.2, falloff up to 0.4. Held out (as "
                 "second_dense_dim) for one run, analysed as tune_second_standard.",
                 confluence=(0.8, 1.0), serum_level=(150.0, 500.0), medium=(50.0, 150.0), haze=(50.0, 250.0),
                 blur=(1.3, 2.2), falloff=(0.1, 0.4), marker_level=(400.0, 1500.0)),
    SecondFamily("holdout_second_sparse_bright", 24000, "holdout",
                 "The second renderer on sparse fields with bright serum: confluence 0.2-0.6, serum 600-2500 "
                 "counts, marker 800-3000, blur 1.0-2.0, halo 5-15 %, 5-50 % infected.",
                 confluence=(0.2, 0.6), serum_level=(600.0, 2500.0), marker_level=(800.0, 3000.0),
                 blur=(1.0, 2.0), halo=(0.05, 0.15), fraction_infected=(0.05, 0.5)),
    SecondFamily("holdout_second_confluent_soft", 25000, "holdout",
                 "The second renderer on confluent, soft fields: confluence 0.85-1.0, blur 1.6-2.4, halo "
                 "2-8 %, serum 200-900 counts, marker 600-2000, falloff 0.1-0.3, offsets 150-600.",
                 confluence=(0.85, 1.0), blur=(1.6, 2.4), halo=(0.02, 0.08), serum_level=(200.0, 900.0),
                 marker_level=(600.0, 2000.0), falloff=(0.1, 0.3), offset=(150.0, 600.0)),
)}
"""The second renderer's families. The held-out ones choose nothing; they are reported only."""


def _draw(rng, bounds):
    return float(rng.uniform(*bounds))


# --------------------------------------------------------------------------- layout

def _nucleus_centres(scene, count, radius, rng):
    """Clustered centres: parents anywhere, children around them, kept apart by 1.7 radii."""
    parents = rng.uniform((0, 0), scene, size=(max(count // 4, 1), 2))
    centres = []
    for _ in range(count * 6):
        if len(centres) == count:
            break
        point = parents[rng.integers(len(parents))] + rng.normal(0.0, 4.5 * radius, 2)
        if not (0 <= point[0] < scene[0] and 0 <= point[1] < scene[1]):
            continue
        if centres and np.min(np.hypot(*(np.array(centres) - point).T)) < 1.7 * radius:
            continue
        centres.append(point)
    return np.array(centres).reshape(-1, 2)


def _nucleus_outline(centre, radius, rng, points=48):
    """(P, 2) outline of an ellipse with random axes, angle and low harmonics."""
    angle = np.linspace(0.0, 2 * np.pi, points, endpoint=False)
    aspect = rng.uniform(1.0, 1.6)
    major, minor = radius * np.sqrt(aspect), radius / np.sqrt(aspect)
    wobble = 1.0 + sum(rng.normal(0.0, 0.04) * np.cos(k * angle + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 4))
    tilt = rng.uniform(0.0, np.pi)
    x, y = major * np.cos(angle) * wobble, minor * np.sin(angle) * wobble
    return np.stack([centre[0] + x * np.cos(tilt) - y * np.sin(tilt),
                     centre[1] + x * np.sin(tilt) + y * np.cos(tilt)], axis=1)


def _draw_nuclei(scene, centres, radius, rng):
    """(M, N) nucleus labels 1..K; a later nucleus does not overwrite an earlier one."""
    from skimage.draw import polygon

    labels = np.zeros(scene, np.int32)
    for index, centre in enumerate(centres, start=1):
        rows, cols = polygon(*_nucleus_outline(centre, radius * rng.uniform(0.8, 1.2), rng).T, shape=scene)
        free = labels[rows, cols] == 0
        labels[rows[free], cols[free]] = index
    return labels


def _smooth(shape, sigma, rng):
    """Zero-mean, unit-spread Gaussian-filtered noise (drawn on a coarser grid when ``sigma`` > 8)."""
    step = max(int(sigma // 8), 1)
    coarse = tuple(-(-size // step) + (step > 1) for size in shape)
    noise = ndi.gaussian_filter(rng.standard_normal(coarse).astype(np.float32), sigma / step)
    if step > 1:
        noise = ndi.zoom(noise, step, order=1)[:shape[0], :shape[1]]
    return noise / max(float(noise.std()), 1e-6)


def _grow_cells(nuclei, radius, reach, rng):
    """(M, N) cell labels grown from the nuclei on a noisy distance landscape, within a per-cell reach."""
    from skimage.segmentation import watershed

    distance = ndi.distance_transform_edt(nuclei == 0)
    landscape = distance + 0.35 * radius * _smooth(nuclei.shape, 5.0, rng)
    owner = watershed(landscape, nuclei)
    cell_reach = np.concatenate([[0.0], rng.uniform(*reach, int(nuclei.max())) * radius])
    limit = cell_reach[owner] * (1.0 + 0.2 * _smooth(nuclei.shape, 8.0, rng))
    return watershed(landscape, nuclei, mask=(distance < limit) | (nuclei > 0)).astype(np.int32)


def draw_layout(scene, family, well, rng):
    """Nuclei and cells of one scene: ``(nuclei, cells)``, (M, N) int32 with cell id == nucleus id."""
    radius = well["nucleus_radius"]
    area = np.pi * (radius * np.mean(family.cell_reach)) ** 2
    count = int(well["confluence"] * scene[0] * scene[1] / area)
    nuclei = _draw_nuclei(scene, _nucleus_centres(scene, count, radius, rng), radius, rng)
    present = np.unique(nuclei[nuclei > 0])
    lookup = np.zeros(int(nuclei.max()) + 1, np.int32)
    lookup[present] = np.arange(1, len(present) + 1)
    nuclei = lookup[nuclei]
    return nuclei, _grow_cells(nuclei, radius, family.cell_reach, rng)


# --------------------------------------------------------------------------- stains

def _cytoplasm_profile(cells, nuclei, rng):
    """Unit-level serum profile: rim 1.35, cytoplasm 1, nucleus 0.55, times speckle."""
    inner = ndi.grey_erosion(cells, size=5) == cells
    profile = np.where(cells > 0, np.where(inner, 1.0, 1.35), 0.0)
    profile[nuclei > 0] = 0.55
    return (profile * np.clip(1.0 + 0.15 * _smooth(cells.shape, 1.0, rng), 0.3, None)).astype(np.float32)


def _viral_load(infected, level, rng):
    """Per-cell viral load: log-normal around ``level`` in infected cells, 0 elsewhere."""
    return np.where(infected, level * np.exp(rng.normal(0.0, 0.6, infected.size)), 0.0)


def _virus(cells, nuclei, load, rng):
    """Marker signal: diffuse cytoplasm plus puncta, scaled by each cell's viral load."""
    cytoplasm = (cells > 0) & (nuclei == 0)
    puncta = np.zeros(cells.shape, np.float32)
    spots = cytoplasm & (load[cells] > 0) & (rng.random(cells.shape) < 0.015)
    puncta[spots] = 1.0
    puncta = ndi.gaussian_filter(puncta, 1.3) * (2 * np.pi * 1.3 ** 2)
    return (load[cells] * (0.35 * cytoplasm + 0.9 * puncta)).astype(np.float32)


def _serum(cells, nuclei, load, virus, level, ratio, rng):
    """Serum signal: control level per cell times the profile; infected cells gain along the virus.

    The gain grows with the square root of the cell's viral load (antigen to bind).
    """
    infected = load > 0
    n = int(cells.max()) + 1
    control = level * np.exp(rng.normal(0.0, 0.25, n))
    profile = _cytoplasm_profile(cells, nuclei, rng)
    base = control[cells] * profile
    if ratio < 1.0 or not infected.any():
        return np.where(infected[cells], base * ratio, base).astype(np.float32)
    sums = ndi.sum_labels(virus, cells, np.arange(n))
    areas = np.maximum(ndi.sum_labels(np.ones_like(virus), cells, np.arange(n)), 1.0)
    virus_unit = virus / np.maximum(sums / areas, 1e-6)[cells]
    antigen = np.sqrt(load / max(float(np.median(load[infected])), 1e-6))
    gain = (ratio - 1.0) * (control * antigen)[cells] * (0.4 * profile + 0.6 * virus_unit)
    return np.where(infected[cells], base + gain, base).astype(np.float32)


def _dna(nuclei, level, rng):
    """Nuclei signal: per-nucleus DNA content (G1, G2 x2, mitotic x3) times chromatin speckle."""
    n = int(nuclei.max()) + 1
    content = np.exp(rng.normal(0.0, 0.15, n)) * rng.choice([1.0, 2.0, 3.0], n, p=[0.87, 0.1, 0.03])
    speckle = np.clip(1.0 + 0.2 * _smooth(nuclei.shape, 1.5, rng), 0.2, None)
    return np.where(nuclei > 0, level * content[nuclei] * speckle, 0.0).astype(np.float32)


# --------------------------------------------------------------------------- optics

def _optics(signal, blur, halo):
    """Gaussian point spread plus a wide halo carrying ``halo`` of the light."""
    wide = ndi.zoom(ndi.gaussian_filter(signal[::4, ::4], 2.5), 4, order=1)[:signal.shape[0], :signal.shape[1]]
    return (1 - halo) * ndi.gaussian_filter(signal, blur) + halo * wide


def _illumination(shape, falloff, rng):
    """Off-centre quadratic falloff, 1 at its centre."""
    centre = np.array(shape) * (0.5 + rng.uniform(-0.15, 0.15, 2))
    rows, cols = np.ogrid[:shape[0], :shape[1]]
    distance2 = ((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2) / (0.5 * max(shape)) ** 2
    return (1.0 - falloff * np.minimum(distance2, 2.0)).astype(np.float32)


def _background(shape, optics, rng):
    """Medium autofluorescence on a tilted plane plus coarse haze (counts above the camera offset)."""
    rows, cols = np.ogrid[:shape[0], :shape[1]]
    tilt = rng.uniform(-0.2, 0.2, 2)
    plane = 1.0 + tilt[0] * (rows / shape[0] - 0.5) + tilt[1] * (cols / shape[1] - 0.5)
    haze = optics["haze"] * np.clip(0.5 + 0.3 * _smooth(shape, 120.0, rng), 0.0, None)
    return (optics["medium"] * plane + haze).astype(np.float32)


def _camera(light, offset, gain, read_noise, rng):
    electrons = rng.poisson(np.maximum(light, 0.0) / gain)
    counts = offset + gain * electrons + read_noise * rng.standard_normal(light.shape)
    return np.clip(np.round(counts), 0, 65535).astype(np.uint16)


def _draw_optics(family, rng):
    return {key: _draw(rng, getattr(family, key))
            for key in ("offset", "medium", "haze", "falloff", "blur", "halo", "gain", "read_noise")}


# --------------------------------------------------------------------------- image and plate

def draw_well(family, serum_roles, rng, mock=False, ratio=None):
    """Biology of one well: confluence, nucleus radius, infected fraction, levels and target ratios.

    The target ratio of each serum is drawn positive (1.5-4) or negative (0.9-1.2) with equal odds, or is ``ratio``.
    """
    ratios = {role: (_draw(rng, (1.5, 4.0)) if rng.random() < 0.5 else _draw(rng, (0.9, 1.2)))
              for role in serum_roles}
    if ratio is not None:
        ratios = dict.fromkeys(serum_roles, float(ratio))
    return {"confluence": _draw(rng, family.confluence), "nucleus_radius": _draw(rng, family.nucleus_radius),
            "fraction_infected": 0.0 if mock else _draw(rng, family.fraction_infected),
            "serum_level": _draw(rng, family.serum_level), "marker_level": _draw(rng, family.marker_level),
            "nucleus_level": _draw(rng, family.nucleus_level), "ratios": ratios, "mock": mock}


def render_second_image(shape, scheme_roles, family, well, rng):
    """Render one field of view of the second renderer.

    Returns
    -------
    stack : numpy.ndarray
        (C, M, N) uint16, channels in ``scheme_roles`` order.
    truth : dict
        As :func:`antibodies.synthetic.plate.render_image`: ``nuclei``,
        ``cells``, ``cell_ids``, ``infected_ids``, ``serum_means`` (noise-free
        mean signal per cell inside the field), ``background`` (median
        additive background per channel, offset included).
    """
    margin = int(_draw(rng, family.margin))
    scene = (shape[0] + 2 * margin, shape[1] + 2 * margin)
    nuclei, cells = draw_layout(scene, family, well, rng)
    infected = rng.random(int(cells.max()) + 1) < well["fraction_infected"]
    infected[0] = False
    load = _viral_load(infected, well["marker_level"], rng)
    virus = _virus(cells, nuclei, load, rng)
    field_cut = (slice(margin, margin + shape[0]), slice(margin, margin + shape[1]))
    channels, background, serum_means = [], {}, {}
    field_cells = cells[field_cut]
    ids = np.unique(field_cells[field_cells > 0])
    for channel, role in scheme_roles.items():
        optics = _draw_optics(family, rng)
        if role == "nuclei":
            signal = _dna(nuclei, well["nucleus_level"], rng)
        elif role == "marker":
            signal = virus
        elif role in SERUM_ROLES:
            signal = _serum(cells, nuclei, load, virus, well["serum_level"], well["ratios"][role], rng)
            serum_means[role] = ndi.mean(signal[field_cut], field_cells, ids)
        else:
            signal = np.zeros(scene, np.float32)
        light = _optics(signal, optics["blur"], optics["halo"])[field_cut] * _illumination(shape, optics["falloff"], rng)
        additive = _background(shape, optics, rng)
        channels.append(_camera(light + additive, optics["offset"], optics["gain"], optics["read_noise"], rng))
        background[channel] = optics["offset"] + float(np.median(additive))
    lookup = np.zeros(int(cells.max()) + 1, np.int32)
    lookup[ids] = np.arange(1, len(ids) + 1)
    truth = {"nuclei": lookup[nuclei[field_cut]], "cells": lookup[field_cells],
             "cell_ids": np.arange(1, len(ids) + 1, dtype=np.int32),
             "infected_ids": lookup[ids[infected[ids]]].astype(np.int32),
             "serum_means": serum_means, "background": background}
    return np.stack(channels), truth


def _true_ratio(means, infected):
    """Median of the infected cells' means over the control cells' (NaN when a group is empty)."""
    if not infected.any() or infected.all():
        return float("nan")
    return float(np.median(means[infected]) / np.median(means[~infected]))


def render_second_plate(family, scheme, plate_dir, truth_dir, wells, sites=2, shape=(1024, 1024),
                        plate_index=0, mock_wells=(), well_ratios=None):
    """Render a plate of a :data:`SECOND_FAMILIES` family with the layout of :func:`~antibodies.synthetic.plate.render_plate`.

    The truth folder holds one npz per image and ``wells.csv``, whose ratios
    are measured on the drawn cells (module docstring); mock wells have none.
    ``well_ratios`` (``{well: target ratio}``) fixes the target of every serum
    of those wells.
    """
    family = SECOND_FAMILIES[family] if isinstance(family, str) else family
    roles = SCHEMES[scheme]
    serum_roles = [role for role in roles.values() if role in SERUM_ROLES]
    plate_dir, truth_dir = Path(plate_dir), Path(truth_dir)
    plate_dir.mkdir(parents=True, exist_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    (plate_dir / "channel_mapping.json").write_text(json.dumps(roles, indent=2) + "\n")
    rows, seq = [], 0
    for index, well in enumerate(wells):
        rng = np.random.default_rng([family.seed + plate_index, index])
        params = draw_well(family, serum_roles, rng, well in mock_wells, (well_ratios or {}).get(well))
        means, flags = {role: [] for role in serum_roles}, []
        for site in range(sites):
            stack, truth = render_second_image(shape, roles, family, params, rng)
            path = plate_dir / image_file_name(well, site, list(roles), seq)
            _write_image(path, stack, truth, truth_dir / (path.stem + ".npz"))
            flags.append(np.isin(truth["cell_ids"], truth["infected_ids"]))
            for role in serum_roles:
                means[role].append(truth["serum_means"][role])
            seq += 1
        infected = np.concatenate(flags)
        row = {"well_name": well}
        for role in serum_roles:
            row[f"ratio_{role}"] = float("nan") if params["mock"] else _true_ratio(np.concatenate(means[role]), infected)
        ratios = [row[f"ratio_{role}"] for role in serum_roles]
        row.update(is_positive=bool(np.nanmax(ratios + [0.0]) >= POSITIVE_RATIO_THRESHOLD),
                   fraction_infected=params["fraction_infected"], is_empty=False,
                   n_cells=int(infected.size), n_infected=int(infected.sum()))
        rows.append(row)
    _write_wells_csv(truth_dir / "wells.csv", rows, serum_roles)
    return {"plate_dir": plate_dir, "truth_dir": truth_dir, "wells": rows}
