"""Nuisance layer of the synthetic plate renderer: optics, staining and biology ranges, plate families.

Readouts tuned on one renderer broke on plates of an independent renderer
with other optics, staining and cell model.  This module widens what the
plate renderer (:mod:`antibodies.synthetic.plate`) can produce, so readouts
can be tuned on some *families* of plates and reported on others.

Two levels of random draws
--------------------------
Per **well** (:func:`draw_well_params`, the biology shared by all sites of a
well): fraction of infected cells, true serum ratios, serum level (the
"serum baseline" brightness of control cells), cell area, confluence (cell
density) and mean nucleus area.

Per **image** (:func:`draw_image_nuisance`, so one site can be hazier,
brighter or noisier than its well mates), as an :class:`ImageNuisance`:

* per channel: camera offset, smooth additive haze (amplitude and length
  scale) and background autofluorescence;
* per image: vignetting, PSF blur, camera gain and read noise;
* marker: level, per-cell amplitude spread, granule density and size,
  granular vs diffuse fraction, and a weak textured cell-body
  autofluorescence (non-infected cells get some marker signal too);
* nuclei: level, chromatin texture, profile gamma and stain halo;
* a second cell and optics model (all off by default, so the families
  above render exactly as before): cells of unequal size whose borders are
  not midway between the nuclei (``cell_size_spread``, per well), serum
  that fades from the nucleus toward the cell edge (``serum_gradient``) and
  out-of-focus glow, a wide tail of the PSF (``glow``, ``glow_scale``);
* a third cell model (off by default): the whole tiling stretched along one
  direction per well (``cell_elongation``), elongated cells aligned like a
  streaming culture.
* a field of view cut from a larger culture (``field_margin``, per well; off
  by default): nuclei and cells cut by the image border, and fragments of
  cells whose nucleus lies outside the field.  The median ratio is exact over
  the cells of the whole scene, not over those left in the field.

Serum truth stays exact: every additive nuisance in a serum channel is
background (offset, haze and autofluorescence are present under the cells
and outside them alike), so ``median(infected) / median(control)`` of the
noise-free, background-free serum signal is the well's true ratio.  The
renderer records per image the true background level of each channel (the
mean additive background under the cells) and the nuisance values as JSON.
The marker's cell-body autofluorescence is a signal of the cells (present
only under cells), not background, and is not included in that level.

Plate families
--------------
:data:`FAMILIES` names plate families (:class:`PlateFamily`): nuisance
ranges, a base seed, a role and a description.  ``"tune"`` families may be
used to develop readouts and to choose methods, parameters and thresholds.
``"holdout"`` families differ from the tune families in their *ranges* (not
only in the seed) and are used only to report how well a readout holds; they
are never used to choose a method or a number.  Once a holdout figure has
influenced a choice, that family is no longer held out and must be replaced.

Examples
--------
>>> import numpy as np
>>> ranges = FAMILIES["tune_standard"].ranges
>>> nuisance = draw_image_nuisance(np.random.default_rng(0), ranges, n_channels=3)
>>> len(nuisance.offset)
3
>>> ranges.blur[0] <= nuisance.blur <= ranges.blur[1]
True
"""
import dataclasses
import json

import numpy as np

from antibodies.synthetic.nuclei import smooth_noise

__all__ = [
    "NuisanceRanges",
    "ImageNuisance",
    "PlateFamily",
    "check_family_role",
    "FAMILIES",
    "WELL_FIELDS",
    "IMAGE_FIELDS",
    "draw_well_params",
    "draw_image_nuisance",
    "resolve_ranges",
    "haze_field",
    "vignette_field",
    "background_under_cells",
]

WELL_FIELDS = ("fraction_infected", "positive_ratio", "negative_ratio", "serum_level", "cell_area",
               "confluence", "nucleus_area", "cell_size_spread", "cell_elongation", "field_margin")
"""Range fields drawn once per well (biology)."""

CHANNEL_FIELDS = ("offset", "haze_amplitude", "haze_scale", "autofluorescence")
"""Range fields drawn once per image and channel."""

IMAGE_FIELDS = CHANNEL_FIELDS + (
    "vignetting", "blur", "gain", "read_noise", "marker_level", "marker_spread", "marker_autofluorescence",
    "granule_density", "granule_size", "granular_fraction", "nucleus_level", "nucleus_texture",
    "nucleus_gamma", "nucleus_halo", "serum_gradient", "glow", "glow_scale")
"""Range fields drawn once per image (the first four once per channel)."""


@dataclasses.dataclass(frozen=True)
class NuisanceRanges:
    """Closed ``(low, high)`` ranges of the renderer's random draws.

    Per-well fields (:data:`WELL_FIELDS`) set the biology; per-image fields
    (:data:`IMAGE_FIELDS`) the optics and staining.  Intensities are in
    camera counts; lengths in pixels.

    Attributes
    ----------
    fraction_infected : tuple of float
        Fraction of infected cells per well.
    positive_ratio, negative_ratio : tuple of float
        True serum ratio of positive and of negative wells (half each).
    serum_level : tuple of float
        Mean serum signal of control cells ("serum baseline").
    cell_area, confluence, nucleus_area : tuple of float
        Mean cell area (px), covered fraction of the field, mean nucleus area (px).
    cell_size_spread : tuple of float
        Standard deviation, as a fraction of the cell spacing, of each cell's
        additive weight in an additively weighted Voronoi tiling: 0 tiles
        midway between neighbouring seeds; larger values make big cells next
        to small ones, with curved borders that are not midway between them.
    cell_elongation : tuple of float
        Aspect ratio of an area-keeping stretch of the whole tiling along one
        direction per well (1: none): elongated cells, aligned like a streaming
        culture, their nuclei stretched along with them.
    field_margin : tuple of float
        Width (px) of the culture beyond each image edge: the field of view
        is cut from a larger scene, so cells and nuclei are cut by the image
        border and some cells show no nucleus (0: every cell's seed lies in
        the field, as in the first families).
    offset, haze_amplitude, haze_scale, autofluorescence : tuple of float
        Per channel: camera offset, peak-to-trough amplitude and correlation
        length of the smooth additive haze, background autofluorescence.
    vignetting, blur, gain, read_noise : tuple of float
        Illumination falloff strength, PSF sigma (px), camera gain (counts
        per electron) and Gaussian read noise (counts).
    marker_level, marker_spread : tuple of float
        Marker brightness of infected cells and sigma of its per-cell log amplitude.
    marker_autofluorescence : tuple of float
        Mean textured cell-body autofluorescence in the marker channel (all cells).
    granule_density, granule_size, granular_fraction : tuple of float
        Fraction of perinuclear pixels seeding a granule, granule blur sigma
        (px), and share of the granular (vs diffuse) marker pattern.
    nucleus_level, nucleus_texture, nucleus_gamma, nucleus_halo : tuple of float
        Nuclear stain level, chromatin texture amplitude, dome profile gamma
        and the upper end of the per-nucleus stain halo ratio.
    serum_gradient : tuple of float
        Decay of the cytoplasmic serum stain with the distance from the
        nucleus, per cell radius (``exp(-g d / r)``; 0: flat).  Each cell's
        mean, hence the true ratio, is unchanged.
    glow, glow_scale : tuple of float
        Fraction of the light spread by a wide Gaussian PSF tail (out-of-focus
        glow) and that tail's sigma (px).
    """

    fraction_infected: tuple = (0.1, 0.6)
    positive_ratio: tuple = (1.5, 3.0)
    negative_ratio: tuple = (1.0, 1.15)
    serum_level: tuple = (600.0, 1800.0)
    cell_area: tuple = (2000.0, 3800.0)
    confluence: tuple = (0.55, 0.9)
    nucleus_area: tuple = (250.0, 450.0)
    offset: tuple = (100.0, 200.0)
    haze_amplitude: tuple = (0.0, 0.0)
    haze_scale: tuple = (80.0, 400.0)
    autofluorescence: tuple = (20.0, 60.0)
    vignetting: tuple = (0.05, 0.15)
    blur: tuple = (0.8, 1.5)
    gain: tuple = (1.0, 3.0)
    read_noise: tuple = (2.0, 6.0)
    marker_level: tuple = (800.0, 3000.0)
    marker_spread: tuple = (0.4, 0.4)
    marker_autofluorescence: tuple = (0.0, 0.0)
    granule_density: tuple = (0.35, 0.35)
    granule_size: tuple = (0.9, 0.9)
    granular_fraction: tuple = (0.85, 0.85)
    nucleus_level: tuple = (1200.0, 4000.0)
    nucleus_texture: tuple = (0.1, 0.35)
    nucleus_gamma: tuple = (0.1, 0.6)
    nucleus_halo: tuple = (1.2, 1.2)
    cell_size_spread: tuple = (0.0, 0.0)
    cell_elongation: tuple = (1.0, 1.0)
    field_margin: tuple = (0.0, 0.0)
    serum_gradient: tuple = (0.0, 0.0)
    glow: tuple = (0.0, 0.0)
    glow_scale: tuple = (10.0, 10.0)

    def __post_init__(self):
        """Check every field is an ordered pair."""
        for field in dataclasses.fields(self):
            low, high = getattr(self, field.name)
            if not low <= high:
                raise ValueError(f"NuisanceRanges.{field.name}: low {low} > high {high}")

    def replace(self, **changes):
        """Return a copy with some ranges changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class ImageNuisance:
    """Nuisance values of one image (drawn by :func:`draw_image_nuisance`).

    The four per-channel fields (:data:`CHANNEL_FIELDS`) are tuples indexed
    by the channel position in the scheme; the other fields are floats with
    the meaning of the :class:`NuisanceRanges` field of the same name.
    """

    offset: tuple
    haze_amplitude: tuple
    haze_scale: tuple
    autofluorescence: tuple
    vignetting: float
    blur: float
    gain: float
    read_noise: float
    marker_level: float
    marker_spread: float
    marker_autofluorescence: float
    granule_density: float
    granule_size: float
    granular_fraction: float
    nucleus_level: float
    nucleus_texture: float
    nucleus_gamma: float
    nucleus_halo: float
    serum_gradient: float = 0.0
    glow: float = 0.0
    glow_scale: float = 10.0

    def to_json(self):
        """Return the values as a JSON string (as stored in the truth npz)."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


@dataclasses.dataclass(frozen=True)
class PlateFamily:
    """A named family of synthetic plates.

    Attributes
    ----------
    name : str
        Key in :data:`FAMILIES`.
    ranges : NuisanceRanges
        Ranges of the random draws.
    seed : int
        Base seed of the family's plates (a plate index is added to it).
    role : str
        ``"tune"`` (may be used to choose methods and numbers) or
        ``"holdout"`` (report only; never used to choose anything).
    description : str
        What distinguishes the family.
    """

    name: str
    ranges: NuisanceRanges
    seed: int
    role: str
    description: str

    def __post_init__(self):
        check_family_role(self)


def check_family_role(family):
    """Raise ValueError unless ``family.role`` is ``"tune"`` or ``"holdout"``."""
    if family.role not in ("tune", "holdout"):
        raise ValueError(
            f"{type(family).__name__} {family.name!r}: role must be 'tune' or 'holdout', not {family.role!r}")


def _uniform(rng, bounds):
    """Return one float drawn uniformly from ``bounds = (low, high)``."""
    low, high = bounds
    return float(low) if low == high else float(rng.uniform(low, high))


def draw_well_params(rng, ranges, serum_roles, ratios=None, fraction_infected=None, empty=False, mock=False):
    """Draw the biology of one well within ``ranges``.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random source (the well's generator).
    ranges : NuisanceRanges
        Ranges of the per-well fields (:data:`WELL_FIELDS`).
    serum_roles : sequence of str
        Serum roles to draw ratios for.
    ratios : float or dict, optional
        True serum ratio(s), overriding the draws (one value or ``{role: ratio}``).
    fraction_infected : float, optional
        Infected fraction, overriding the draw.
    empty : bool
        True for a well without cells.
    mock : bool
        True for a mock-infected well: cells but no infected cells
        (``fraction_infected`` 0; ratios are undefined).

    Returns
    -------
    dict
        The well parameters in the format of
        :func:`antibodies.synthetic.plate.random_well_params`, plus ``mock``.
        ``nucleus_level`` and ``marker_level`` are drawn for that format
        only: an image rendered with an :class:`ImageNuisance` takes both
        from the nuisance (they are per-image draws).
    """
    positive = rng.random() < 0.5
    drawn = {role: _uniform(rng, ranges.positive_ratio if positive else ranges.negative_ratio)
             for role in serum_roles}
    if isinstance(ratios, dict):
        drawn.update({role: float(value) for role, value in ratios.items()})
    elif ratios is not None:
        drawn = {role: float(ratios) for role in serum_roles}
    fraction = _uniform(rng, ranges.fraction_infected) if fraction_infected is None else float(fraction_infected)
    serum_level = {role: _uniform(rng, ranges.serum_level) for role in ("serum_IgG", "serum_IgA", "serum_IgM")}
    return {
        "empty": bool(empty),
        "mock": bool(mock),
        "fraction_infected": 0.0 if mock else fraction,
        "ratios": drawn,
        "cell_area": _uniform(rng, ranges.cell_area),
        "confluence": _uniform(rng, ranges.confluence),
        "nucleus_area": _uniform(rng, ranges.nucleus_area),
        "nucleus_level": _uniform(rng, ranges.nucleus_level),
        "marker_level": _uniform(rng, ranges.marker_level),
        "serum_levels": serum_level,
        "cell_size_spread": _uniform(rng, ranges.cell_size_spread),
        **_elongation(rng, ranges.cell_elongation),
        **_field_margin(rng, ranges.field_margin),
    }


def _field_margin(rng, bounds):
    """``field_margin`` for a cut field; nothing drawn or returned for the default ``(0, 0)``."""
    margin = _uniform(rng, bounds)
    return {"field_margin": margin} if margin > 0 else {}


def _elongation(rng, bounds):
    """``cell_elongation`` and, for a stretch, its ``cell_orientation`` (radians from the column axis).

    Nothing is drawn for the default ``(1, 1)``, so the families without a
    stretch render as before.
    """
    elongation = _uniform(rng, bounds)
    return {"cell_elongation": elongation, "cell_orientation": float(rng.uniform(0.0, np.pi)) if elongation > 1 else 0.0}


def draw_image_nuisance(rng, ranges, n_channels=5):
    """Draw the optics and staining nuisance of one image.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random source (the image's generator).
    ranges : NuisanceRanges
        Ranges of the per-image fields (:data:`IMAGE_FIELDS`).
    n_channels : int
        Number of channels (per-channel fields get one value each).

    Returns
    -------
    ImageNuisance
    """
    values = {name: tuple(_uniform(rng, getattr(ranges, name)) for _ in range(n_channels))
              for name in CHANNEL_FIELDS}
    values.update({name: _uniform(rng, getattr(ranges, name)) for name in IMAGE_FIELDS
                   if name not in CHANNEL_FIELDS})
    return ImageNuisance(**values)


def haze_field(shape, amplitude, scale, rng):
    """Return a smooth, non-negative (M, N) additive haze ranging over [0, amplitude].

    Parameters
    ----------
    shape : tuple of int
        Image shape (M, N).
    amplitude : float
        Peak-to-trough haze in counts (0 gives zeros; no random draw).
    scale : float
        Correlation length in pixels.
    rng : numpy.random.Generator
        Random source.

    Returns
    -------
    numpy.ndarray
        (M, N) float32 field.

    Examples
    --------
    >>> field = haze_field((64, 64), 100.0, 30.0, np.random.default_rng(0))
    >>> float(field.min()), round(float(field.max()), 3)
    (0.0, 100.0)
    """
    if amplitude <= 0:
        return np.zeros(shape, np.float32)
    field = smooth_noise(shape, scale, rng)
    span = float(field.max() - field.min())
    return (amplitude * (field - field.min()) / (span if span > 0 else 1.0)).astype(np.float32)


def vignette_field(shape, strength, rng):
    """Return an (M, N) multiplicative illumination falloff (1 at an off-centre optical axis).

    Parameters
    ----------
    shape : tuple of int
        Image shape (M, N).
    strength : float
        Relative loss at a corner distance of ``0.5 * max(shape)`` from the axis.
    rng : numpy.random.Generator
        Random source for the position of the optical axis.

    Returns
    -------
    numpy.ndarray
        (M, N) float32 field, at most 1 and at least ``1 - 2 * strength``.
    """
    yy = (np.arange(shape[0], dtype=np.float32) - rng.uniform(0.35, 0.65) * shape[0]) / max(shape)
    xx = (np.arange(shape[1], dtype=np.float32) - rng.uniform(0.35, 0.65) * shape[1]) / max(shape)
    r2 = np.minimum(yy[:, None] ** 2 + xx[None, :] ** 2, 0.5)
    return (1.0 - strength * 2.0 * r2).astype(np.float32)


def background_under_cells(background, cells):
    """Return the mean of an additive (M, N) background under the cells (whole field without cells).

    Parameters
    ----------
    background : numpy.ndarray
        (M, N) additive background in counts (offset, haze, autofluorescence).
    cells : numpy.ndarray
        (M, N) int cell labels (0 outside cells).

    Returns
    -------
    float

    Examples
    --------
    >>> background_under_cells(np.array([[1.0, 3.0]]), np.array([[0, 1]]))
    3.0
    """
    inside = cells > 0
    return float(background[inside].mean() if inside.any() else background.mean())


# --------------------------------------------------------------------------- families

_TUNE_STANDARD = NuisanceRanges(
    offset=(80.0, 300.0), haze_amplitude=(0.0, 120.0), haze_scale=(100.0, 400.0),
    autofluorescence=(10.0, 60.0), vignetting=(0.0, 0.2), blur=(0.7, 1.6), gain=(0.8, 3.0),
    read_noise=(2.0, 8.0), marker_level=(800.0, 3000.0), marker_spread=(0.3, 0.5),
    marker_autofluorescence=(0.0, 25.0), granule_density=(0.25, 0.45), granule_size=(0.7, 1.2),
    granular_fraction=(0.6, 0.9), nucleus_texture=(0.1, 0.35), nucleus_gamma=(0.1, 0.6),
    nucleus_halo=(1.05, 1.2))

_TUNE_BROAD = _TUNE_STANDARD.replace(
    fraction_infected=(0.05, 0.7), serum_level=(400.0, 2000.0), cell_area=(1600.0, 4500.0),
    confluence=(0.4, 0.95), nucleus_area=(220.0, 520.0), offset=(80.0, 450.0), haze_amplitude=(0.0, 200.0),
    autofluorescence=(10.0, 90.0), vignetting=(0.0, 0.25), blur=(0.7, 1.8), gain=(0.8, 4.0),
    read_noise=(2.0, 10.0), marker_level=(500.0, 3500.0), marker_spread=(0.3, 0.6),
    marker_autofluorescence=(0.0, 35.0), granule_density=(0.2, 0.5), granule_size=(0.6, 1.5),
    granular_fraction=(0.5, 0.95), nucleus_level=(1000.0, 4500.0), nucleus_texture=(0.05, 0.4),
    nucleus_gamma=(0.08, 0.7), nucleus_halo=(1.0, 1.25))

FAMILIES = {family.name: family for family in (
    PlateFamily("tune_standard", _TUNE_STANDARD, 1000, "tune",
                "Today's biology with moderate optics: offsets 80-300, haze up to 120 counts, mild vignetting, "
                "blur 0.7-1.6, marker 800-3000 counts."),
    PlateFamily("tune_broad", _TUNE_BROAD, 2000, "tune",
                "Broader biology and optics: offsets up to 450, haze up to 200, gain up to 4, read noise up to 10, "
                "marker 500-3500, confluence 0.4-0.95."),
    PlateFamily("holdout_hazy_dim", _TUNE_BROAD.replace(
        haze_amplitude=(150.0, 300.0), haze_scale=(80.0, 250.0), vignetting=(0.2, 0.35), blur=(1.6, 2.2),
        gain=(3.0, 6.0), read_noise=(8.0, 15.0), marker_level=(250.0, 800.0), marker_spread=(0.5, 0.7),
        marker_autofluorescence=(30.0, 60.0), granule_density=(0.1, 0.25), granule_size=(1.2, 2.0),
        granular_fraction=(0.3, 0.6)), 3000, "holdout",
                "Beyond the tune ranges in optics: strong haze (150-300 counts) and vignetting, blur 1.6-2.2, "
                "gain 3-6 and read noise 8-15, dim and spread marker (250-800) over cell-body "
                "autofluorescence of 30-60 counts, coarse diffuse granules."),
    PlateFamily("tune_density", _TUNE_BROAD.replace(
        cell_area=(1200.0, 6000.0), confluence=(0.15, 1.0), nucleus_area=(150.0, 700.0),
        nucleus_level=(300.0, 8000.0), nucleus_texture=(0.3, 0.5), nucleus_gamma=(0.6, 0.9),
        nucleus_halo=(1.2, 1.35)), 4000, "tune",
                "Extreme cell density from sparse (confluence 0.15) to fully confluent, cells 1200-6000 px, "
                "nuclei 150-700 px with levels 300-8000, strong texture and domed profiles with wide halos. "
                "Held out (as holdout_density) until its sparse wells chose the score intervals and the "
                "control-cell minimum."),
    PlateFamily("tune_offsets_dim_serum", _TUNE_BROAD.replace(
        offset=(80.0, 600.0), autofluorescence=(60.0, 150.0), haze_amplitude=(50.0, 250.0),
        serum_level=(120.0, 400.0)), 5000, "tune",
                "Wide per-image camera offsets (80-600, backgrounds differ by hundreds of counts between "
                "sites of a well), high background autofluorescence (60-150) and dim serum (120-400 counts). "
                "Held out until its figures chose the guided foreground and the local background."),
    PlateFamily("holdout_uneven_dim", _TUNE_BROAD.replace(
        offset=(100.0, 700.0), autofluorescence=(40.0, 120.0), haze_amplitude=(100.0, 300.0),
        haze_scale=(60.0, 150.0), vignetting=(0.15, 0.3), serum_level=(150.0, 500.0),
        marker_level=(400.0, 2500.0)), 6000, "holdout",
                "Uneven and dim: offsets 100-700, fine-grained haze (scale 60-150 px, 100-300 counts), "
                "vignetting 0.15-0.3, serum 150-500 counts, marker 400-2500."),
    PlateFamily("holdout_bright_confluent", _TUNE_BROAD.replace(
        serum_level=(1800.0, 4000.0), confluence=(0.85, 1.0), cell_area=(1500.0, 3000.0),
        offset=(50.0, 400.0), autofluorescence=(10.0, 80.0), marker_level=(600.0, 2000.0),
        fraction_infected=(0.05, 0.7)), 7000, "holdout",
                "Bright serum (1800-4000 counts) on confluent fields (0.85-1.0) of small cells, offsets 50-400, "
                "infected fractions 0.05-0.7."),
    PlateFamily("tune_sparse_few_infected", _TUNE_BROAD.replace(
        confluence=(0.1, 0.55), cell_area=(1400.0, 5200.0), nucleus_area=(180.0, 620.0),
        fraction_infected=(0.02, 0.3), positive_ratio=(1.4, 2.6), negative_ratio=(0.95, 1.2),
        serum_level=(300.0, 1500.0), offset=(60.0, 500.0)), 8000, "tune",
                "Sparse islands (confluence 0.1-0.55) with few infected cells (2-30 %), positives 1.4-2.6 and "
                "negatives 0.95-1.2, serum 300-1500 counts, offsets 60-500. Held out (as "
                "holdout_sparse_few_infected) until wells of 3-6 infected cells chose the interval's minimum "
                "of cells."),
    PlateFamily("holdout_soft_focus", _TUNE_BROAD.replace(
        blur=(1.8, 2.6), read_noise=(4.0, 12.0), gain=(1.5, 5.0), confluence=(0.5, 1.0),
        cell_area=(1800.0, 4200.0), nucleus_texture=(0.02, 0.15), nucleus_gamma=(0.3, 0.8),
        granule_size=(1.0, 1.8), granular_fraction=(0.4, 0.8), marker_level=(600.0, 2500.0),
        haze_amplitude=(20.0, 160.0), haze_scale=(150.0, 500.0)), 9000, "holdout",
                "Soft focus: blur 1.8-2.6 px, read noise 4-12 and gain 1.5-5, smooth nuclei, coarse granules, "
                "broad haze, confluence 0.5-1.0."),
    PlateFamily("holdout_scattered_dim", _TUNE_BROAD.replace(
        confluence=(0.08, 0.45), cell_area=(1800.0, 6500.0), nucleus_area=(200.0, 560.0),
        fraction_infected=(0.01, 0.25), positive_ratio=(1.35, 2.2), negative_ratio=(0.9, 1.25),
        serum_level=(180.0, 700.0), offset=(100.0, 350.0), autofluorescence=(30.0, 100.0),
        blur=(0.9, 2.0), marker_level=(400.0, 2000.0)), 10000, "holdout",
                "Scattered large cells (confluence 0.08-0.45), 1-25 % infected, dim serum (180-700 counts) over "
                "autofluorescence 30-100, positives 1.35-2.2 and negatives 0.9-1.25, marker 400-2000."),
    PlateFamily("tune_grown_cells", _TUNE_STANDARD.replace(
        cell_size_spread=(0.05, 0.2), serum_gradient=(0.0, 0.8), glow=(0.0, 0.12), glow_scale=(5.0, 10.0)),
                12000, "tune",
                "The second cell and optics model on tune_standard's optics: unequal cells (weight spread "
                "0.05-0.2 of the spacing), serum fading 0-0.8 per radius, glow 0-12 % in a 5-10 px tail."),
    PlateFamily("holdout_grown_cells", _TUNE_BROAD.replace(
        cell_size_spread=(0.1, 0.25), serum_gradient=(0.3, 1.2), glow=(0.05, 0.2), glow_scale=(6.0, 14.0),
        confluence=(0.6, 1.0), cell_area=(1600.0, 4200.0)), 11000, "holdout",
                "A second cell and optics model: cells of unequal size (additively weighted tiling, weight "
                "spread 0.1-0.25 of the spacing) whose borders are not midway between the nuclei, serum fading "
                "from the nucleus to the cell edge (0.3-1.2 per radius), out-of-focus glow (5-20 % of the light "
                "in a 6-14 px tail), confluence 0.6-1.0."),
    PlateFamily("tune_elongated_cells", _TUNE_BROAD.replace(
        cell_elongation=(1.8, 3.0), confluence=(0.6, 1.0), cell_area=(1800.0, 4200.0)), 13000, "tune",
                "A third cell model: the tiling stretched 1.8-3x along one direction per well (cell areas "
                "kept), nuclei aligned with their cells and up to 2.7x as long as wide, confluence 0.6-1.0. "
                "Held out (as holdout_elongated_cells) for one run, whose nuclei F1 of 0.92-0.94 chose the "
                "training data of vero_nuclei_v5."),
    PlateFamily("holdout_streaming_cells", _TUNE_STANDARD.replace(
        cell_elongation=(1.4, 2.4), cell_size_spread=(0.05, 0.2), confluence=(0.5, 1.0),
        cell_area=(2200.0, 5000.0), nucleus_area=(200.0, 520.0), blur=(1.0, 1.9), serum_level=(300.0, 1200.0),
        fraction_infected=(0.05, 0.5)), 14000, "holdout",
                "Stretched (1.4-2.4x) and unequal cells together (weight spread 0.05-0.2), which no tune "
                "family combines, on tune_standard's optics with blur 1.0-1.9, serum 300-1200 counts, cells "
                "2200-5000 px, 5-50 % infected."),
    PlateFamily("tune_cut_field", _TUNE_STANDARD.replace(
        field_margin=(60.0, 150.0), confluence=(0.7, 1.0)), 15000, "tune",
                "tune_standard's biology and optics on a field cut from a larger culture (60-150 px of it "
                "beyond each edge), confluence 0.7-1.0: nuclei and cells cut by the image border, cell "
                "fragments whose nucleus lies outside the field."),
    PlateFamily("holdout_cut_field", _TUNE_BROAD.replace(
        field_margin=(40.0, 200.0), confluence=(0.8, 1.0), cell_size_spread=(0.0, 0.15),
        fraction_infected=(0.1, 0.6)), 16000, "holdout",
                "tune_broad's ranges on a field cut from a larger culture (40-200 px beyond each edge), "
                "confluence 0.8-1.0, cells of somewhat unequal size (weight spread 0-0.15), 10-60 % infected."),
)}
"""Named plate families; see the module docstring for the tune/holdout rule."""


def resolve_ranges(nuisance):
    """Return the :class:`NuisanceRanges` of a family name, a family or ranges.

    Parameters
    ----------
    nuisance : str or PlateFamily or NuisanceRanges
        A key of :data:`FAMILIES`, a family, or ranges.

    Returns
    -------
    NuisanceRanges

    Raises
    ------
    ValueError
        For an unknown family name.
    """
    if isinstance(nuisance, NuisanceRanges):
        return nuisance
    if isinstance(nuisance, PlateFamily):
        return nuisance.ranges
    if nuisance in FAMILIES:
        return FAMILIES[nuisance].ranges
    raise ValueError(f"unknown plate family {nuisance!r}; choose one of {sorted(FAMILIES)}")

