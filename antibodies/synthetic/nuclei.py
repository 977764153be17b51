"""Synthetic fluorescence nuclei: shapes, placement, shading and whole images.

The same building blocks serve two purposes:

* the plate renderer (:mod:`antibodies.synthetic.plate`) paints one nucleus
  inside each synthetic Vero cell, and
* the nucleus-model training (:mod:`antibodies.training.train_nuclei_model`)
  draws many small nuclei-only images in widely varying *styles* (sizes,
  densities, textures, brightness ranges, blur, background and noise) with
  :func:`render_nuclei_image`.

A nucleus is an ellipse whose boundary radius is perturbed by a few
low-frequency harmonics, so shapes range from clean ellipses to slightly
kidney-like or lumpy outlines.  Nuclei never overlap: a nucleus painted next
to an existing one may only claim free pixels, which produces touching nuclei
with a shared straight-ish border, as in real dense cultures.

Label convention: the stain of a nucleus does not stop at a sharp edge, it
fades out over a few pixels (and is blurred further by the optics).  The
label boundary is placed where the stain is still clearly bright (57-97 % of
the centre before blur, see :func:`shade_nuclei`), with a faint *halo* of
stain outside the label, so labels follow the visible edge of a nucleus as
a human annotator would draw it.
"""
import logging
import math

import numpy as np
from scipy import ndimage as ndi

__all__ = [
    "smooth_noise",
    "nucleus_footprint",
    "paint_nuclei",
    "shade_nuclei",
    "random_nuclei_style",
    "place_nucleus_centers",
    "render_nuclei_image",
]

logger = logging.getLogger(__name__)


def smooth_noise(shape, sigma, rng):
    """Return a zero-mean, unit-variance Gaussian random field.

    Parameters
    ----------
    shape : tuple of int
        Output shape (M, N).
    sigma : float
        Correlation length in pixels (Gaussian filter sigma).  Large sigmas
        are computed on a down-sampled grid and interpolated, so the cost
        stays roughly constant.
    rng : numpy.random.Generator
        Random source.

    Returns
    -------
    numpy.ndarray
        (M, N) float32 field.
    """
    factor = max(1, int(sigma // 2))
    small_shape = tuple(int(math.ceil(s / factor)) + 2 for s in shape)
    field = rng.standard_normal(small_shape).astype(np.float32)
    field = ndi.gaussian_filter(field, sigma / factor, mode="wrap")
    if factor > 1:
        field = ndi.zoom(field, factor, order=1, prefilter=False)
    field = field[: shape[0], : shape[1]]
    std = float(field.std())
    return (field - field.mean()) / (std if std > 0 else 1.0)


def nucleus_footprint(semi_major, semi_minor, angle, irregularity, rng, offset=(0.0, 0.0)):
    """Return the normalised radial coordinate of one irregular ellipse.

    Parameters
    ----------
    semi_major, semi_minor : float
        Semi-axes in pixels.
    angle : float
        Orientation of the major axis in radians.
    irregularity : float
        Amplitude of the boundary harmonics (0 gives a clean ellipse, 0.1 a
        visibly lumpy outline).
    rng : numpy.random.Generator
        Random source for the harmonic amplitudes and phases.
    offset : tuple of float
        Sub-pixel offset (dy, dx) of the centre relative to the box centre.

    Returns
    -------
    rho : numpy.ndarray
        (h, w) float32 array, centred on the nucleus: ``rho < 1`` inside
        the nucleus, 0 at its centre and 1 on its boundary.
    half : int
        Half-size of the box, i.e. the box centre is at ``(half, half)``.
    """
    half = int(math.ceil(semi_major * (1.0 + 3.0 * irregularity) + 2))
    coords = np.arange(-half, half + 1, dtype=np.float32)
    yy = coords[:, None] - np.float32(offset[0])
    xx = coords[None, :] - np.float32(offset[1])
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    u = (xx * cos_a + yy * sin_a) / semi_major
    v = (-xx * sin_a + yy * cos_a) / semi_minor
    radius = np.sqrt(u * u + v * v)
    boundary = np.ones_like(radius)
    if irregularity > 0:
        theta = np.arctan2(v, u)
        for order in range(2, 6):
            amplitude = irregularity * rng.normal() / (order - 1)
            boundary = boundary + amplitude * np.cos(order * theta + rng.uniform(0, 2 * np.pi))
        boundary = np.maximum(boundary, 0.5)
    return (radius / boundary).astype(np.float32), half


def paint_nuclei(labels, rho_image, centers, semi_axes, angles, irregularities, rng,
                 ids=None, region=None, min_kept=0.7, min_area=12, halo=1.0, owners=None):
    """Paint irregular elliptic nuclei into a label image, never overlapping.

    Parameters
    ----------
    labels : numpy.ndarray
        (M, N) int32 label image, modified in place; 0 is free.
    rho_image : numpy.ndarray
        (M, N) float32 image receiving the normalised radial coordinate
        ``rho`` (< 1 in the label, up to ``halo`` in the stained halo) of each
        painted pixel, modified in place (used for shading).
    centers : numpy.ndarray
        (K, 2) float centres (row, column).
    semi_axes : numpy.ndarray
        (K, 2) float semi-axes (major, minor).
    angles, irregularities : numpy.ndarray
        (K,) orientation (radians) and boundary irregularity per nucleus.
    rng : numpy.random.Generator
        Random source.
    ids : numpy.ndarray, optional
        (K,) label id of each nucleus; default ``max(labels) + 1 ...``.
    region : numpy.ndarray, optional
        (M, N) int label image (e.g. cells); nucleus ``k`` may only occupy
        pixels where ``region == ids[k]``.
    min_kept : float
        A nucleus losing more than ``1 - min_kept`` of its in-image pixels
        to already painted nuclei (or its region border) is skipped.
    min_area : int
        Nuclei with fewer pixels are skipped.
    halo : float or numpy.ndarray
        Scalar or (K,) ratio (>= 1) of the stained footprint to the labelled
        footprint.  The stain of a real nucleus fades out over a few pixels
        and annotators draw the boundary where it is still clearly bright;
        with ``halo > 1`` the intensity continues beyond the label boundary
        (before blur), so the label sits at the visible edge.
    owners : numpy.ndarray, optional
        (M, N) int32 image receiving the nucleus id of every stained pixel
        (label and halo); required for ``halo > 1`` to have an effect.  Pass
        it to :func:`shade_nuclei` instead of the labels.

    Returns
    -------
    numpy.ndarray
        Ids of the nuclei actually painted.
    """
    height, width = labels.shape
    if ids is None:
        first = int(labels.max()) + 1
        ids = np.arange(first, first + len(centers))
    halos = np.broadcast_to(np.asarray(halo, dtype=np.float32), (len(centers),))
    painted = []
    for center, (major, minor), angle, irregularity, label_id, grow in zip(
            centers, semi_axes, angles, irregularities, ids, halos):
        row, col = int(round(center[0])), int(round(center[1]))
        offset = (center[0] - row, center[1] - col)
        rho, half = nucleus_footprint(grow * major, grow * minor, angle, irregularity, rng, offset)
        rho *= grow  # rho < 1: labelled nucleus, 1 <= rho < grow: stained halo
        r0, c0 = row - half, col - half
        r1, c1 = r0 + rho.shape[0], c0 + rho.shape[1]
        rr0, cc0, rr1, cc1 = max(r0, 0), max(c0, 0), min(r1, height), min(c1, width)
        if rr0 >= rr1 or cc0 >= cc1:
            continue
        window = (slice(rr0, rr1), slice(cc0, cc1))
        rho_box = rho[rr0 - r0:rr1 - r0, cc0 - c0:cc1 - c0]
        inside = rho_box < 1.0
        wanted = int(inside.sum())
        if wanted < min_area:
            continue
        kept = inside & (labels[window] == 0)
        if region is not None:
            kept &= region[window] == label_id
        n_kept = int(kept.sum())
        if n_kept < min_area or n_kept < min_kept * wanted:
            continue
        kept = _largest_component(kept)
        labels[window][kept] = label_id
        if owners is not None:
            stained = kept | ((rho_box < grow) & (owners[window] == 0) & (labels[window] == 0))
            owners[window][stained] = label_id
        else:
            stained = kept
        rho_image[window][stained] = rho_box[stained]
        painted.append(label_id)
    return np.asarray(painted, dtype=np.int64)


def _largest_component(mask):
    """Return the largest 4-connected component of a boolean mask."""
    components, count = ndi.label(mask)
    if count <= 1:
        return mask
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    return components == int(np.argmax(sizes))


def shade_nuclei(owners, rho_image, brightness, rng, profile_gamma=0.3, texture=0.25,
                 texture_scale=2.0, texture_fields=None, halo=None):
    """Turn painted nuclei into a noise-free DAPI-like intensity image.

    Inside the label (``rho < 1``) the intensity follows the dome
    ``(1 - 0.5 rho**2) ** gamma``, so the label boundary sits where the
    stain is still 57-97 % of the centre value (the visible edge); in the
    halo (``1 <= rho < halo``) it fades linearly to zero.

    Parameters
    ----------
    owners : numpy.ndarray
        (M, N) int id of the nucleus staining each pixel (the labels, or the
        ``owners`` image of :func:`paint_nuclei` when a halo was painted).
    rho_image : numpy.ndarray
        (M, N) normalised radial coordinate from :func:`paint_nuclei`.
    brightness : numpy.ndarray
        Brightness per nucleus id, indexed by id (length ``owners.max() + 1``).
    rng : numpy.random.Generator
        Random source for the chromatin texture.
    profile_gamma : float
        Exponent of the dome; small values give flat nuclei with sharp
        edges, larger ones dome-shaped nuclei.
    texture : float
        Relative amplitude of the chromatin texture.
    texture_scale : float
        Correlation length of the fine texture in pixels.
    texture_fields : tuple of numpy.ndarray, optional
        Pre-computed (fine, coarse) noise fields of shape (M, N).
    halo : numpy.ndarray, optional
        Halo ratio per nucleus id (as painted); default 1 (no halo).

    Returns
    -------
    numpy.ndarray
        (M, N) float32 image, zero outside nuclei.
    """
    inside = owners > 0
    image = np.zeros(owners.shape, np.float32)
    if not inside.any():
        return image
    if texture_fields is None:
        texture_fields = (smooth_noise(owners.shape, texture_scale, rng),
                          smooth_noise(owners.shape, 3.0 * texture_scale, rng))
    fine, coarse = texture_fields
    ids = owners[inside]
    rho = rho_image[inside]
    profile = (1.0 - 0.5 * np.clip(rho, 0.0, 1.0) ** 2) ** profile_gamma
    if halo is not None:
        grow = np.maximum(np.asarray(halo, np.float32)[ids], 1.0 + 1e-3)
        profile *= np.clip((grow - rho) / (grow - 1.0), 0.0, 1.0) * (rho >= 1.0) + (rho < 1.0)
    modulation = 1.0 + texture * (0.6 * fine[inside] + 0.8 * coarse[inside])
    image[inside] = np.asarray(brightness, np.float32)[ids] * profile * np.clip(modulation, 0.15, None)
    return image


def random_nuclei_style(rng):
    """Draw a random imaging/biology style for :func:`render_nuclei_image`.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random source.

    Returns
    -------
    dict
        Style parameters (see :func:`render_nuclei_image`).
    """
    diameter = float(np.exp(rng.uniform(np.log(9.0), np.log(38.0))))
    return {
        "diameter": diameter,
        "size_cv": float(rng.uniform(0.08, 0.3)),
        "elongation": float(rng.uniform(1.0, 1.9)),
        "irregularity": float(rng.uniform(0.0, 0.12)),
        "coverage": float(rng.uniform(0.03, 0.5)),
        "clustering": float(rng.uniform(0.0, 1.0)),
        "min_gap": float(rng.uniform(0.7, 1.1)),
        "brightness_sigma": float(rng.uniform(0.1, 0.6)),
        "dim_fraction": float(rng.uniform(0.0, 0.35)),
        "bright_fraction": float(rng.choice([0.0, rng.uniform(0.0, 0.08)])),
        "pair_fraction": float(rng.uniform(0.0, 0.3)),
        "profile_gamma": float(rng.uniform(0.05, 0.8)),
        "halo": float(rng.uniform(0.0, 0.25)),
        "texture": float(rng.uniform(0.0, 0.5)),
        "blur": float(rng.uniform(0.4, 2.0)) * max(1.0, diameter / 30.0),
        "background": float(np.exp(rng.uniform(np.log(0.01), np.log(1.0)))),
        "haze": float(rng.uniform(0.0, 0.3)),
        "vignetting": float(rng.uniform(0.0, 0.4)),
        "photons": float(np.exp(rng.uniform(np.log(15.0), np.log(3000.0)))),
        "read_noise": float(rng.uniform(0.5, 6.0)),
        "offset": float(rng.uniform(0.0, 220.0)),
        "gain": float(rng.uniform(0.3, 4.0)),
        "empty": bool(rng.random() < 0.02),
    }


def place_nucleus_centers(shape, count, radii, rng, clustering=0.0, min_gap=1.0, max_tries=20):
    """Place nucleus centres with a soft minimum distance.

    Parameters
    ----------
    shape : tuple of int
        Image shape (M, N).
    count : int
        Number of nuclei wanted.
    radii : numpy.ndarray
        (count,) mean radius of each nucleus.
    rng : numpy.random.Generator
        Random source.
    clustering : float
        0 places nuclei uniformly, 1 mostly in a few Gaussian clusters.
    min_gap : float
        Centres ``i, j`` keep a distance of at least
        ``min_gap * (radii[i] + radii[j])``; values below 1 allow touching
        and slightly flattened neighbours.
    max_tries : int
        Candidate positions tried per nucleus.

    Returns
    -------
    centers : numpy.ndarray
        (K, 2) accepted centres, K <= count.
    accepted_radii : numpy.ndarray
        (K,) radii of the accepted nuclei.
    """
    height, width = shape
    n_clusters = max(1, int(rng.integers(1, 6)))
    cluster_centers = rng.uniform((0, 0), (height, width), size=(n_clusters, 2))
    cluster_spread = rng.uniform(0.08, 0.3, size=n_clusters) * max(height, width)
    centers = np.empty((0, 2))
    kept_radii = np.empty(0)
    for radius in radii:
        for _ in range(max_tries):
            if rng.random() < clustering:
                k = rng.integers(n_clusters)
                candidate = rng.normal(cluster_centers[k], cluster_spread[k])
            else:
                candidate = rng.uniform((0, 0), (height, width))
            if not (-radius < candidate[0] < height + radius and -radius < candidate[1] < width + radius):
                continue
            if len(centers):
                distance = np.hypot(*(centers - candidate).T)
                if np.any(distance < min_gap * (kept_radii + radius)):
                    continue
            centers = np.vstack([centers, candidate])
            kept_radii = np.append(kept_radii, radius)
            break
    return centers, kept_radii


def render_nuclei_image(shape, rng, style=None):
    """Render a nuclei-only fluorescence image with its label ground truth.

    Parameters
    ----------
    shape : tuple of int
        Image shape (M, N).
    rng : numpy.random.Generator
        Random source.
    style : dict, optional
        Style from :func:`random_nuclei_style` (drawn when omitted).

    Returns
    -------
    image : numpy.ndarray
        (M, N) uint16 camera image.
    labels : numpy.ndarray
        (M, N) int32 nucleus labels (0 background, 1..K nuclei).
    style : dict
        The style used.
    """
    if style is None:
        style = random_nuclei_style(rng)
    height, width = shape
    mean_radius = style["diameter"] / 2.0
    count = 0 if style["empty"] else int(style["coverage"] * height * width / (np.pi * mean_radius ** 2))
    radii = mean_radius * np.exp(rng.normal(0.0, style["size_cv"], size=count))
    centers, radii = place_nucleus_centers(shape, count, radii, rng, style["clustering"], style["min_gap"])
    labels = np.zeros(shape, np.int32)
    owners = np.zeros(shape, np.int32)
    rho_image = np.ones(shape, np.float32)
    brightness = halo_by_id = np.ones(1, np.float32)
    if len(centers):
        centers, semi_axes, angles, brightness = _nucleus_geometry(centers, radii, style, rng)
        irregularities = style["irregularity"] * rng.uniform(0.3, 1.0, size=len(centers))
        halo = 1.0 + style["halo"] * rng.uniform(0.5, 1.0, size=len(centers))
        halo_by_id = np.concatenate([[1.0], halo])
        paint_nuclei(labels, rho_image, centers, semi_axes, angles, irregularities, rng,
                     ids=np.arange(1, len(centers) + 1), min_kept=0.75, halo=halo, owners=owners)
    signal = shade_nuclei(owners, rho_image, brightness, rng, style["profile_gamma"], style["texture"],
                          texture_scale=max(1.0, style["diameter"] / 12.0), halo=halo_by_id)
    labels = _relabel_sequential(labels)
    signal = ndi.gaussian_filter(signal, style["blur"])
    level, vignette = _background(shape, style, rng)
    signal = (signal + level) * vignette
    image = _camera(signal, style, rng)
    return image, labels, style


def _relabel_sequential(labels):
    """Relabel an (M, N) label image to consecutive ids 1..K."""
    present = np.unique(labels)
    present = present[present > 0]
    lookup = np.zeros(int(labels.max()) + 1, np.int32)
    lookup[present] = np.arange(1, len(present) + 1, dtype=np.int32)
    return lookup[labels]


def _nucleus_geometry(centers, radii, style, rng):
    """Return (K, 2) centres, (K, 2) semi-axes, (K,) angles and (K + 1,) brightness by id.

    Nucleus ``k`` (0-based) gets id ``k + 1``; ``brightness[0]`` is unused.

    A ``pair_fraction`` of nuclei is replaced by two touching, side-by-side
    daughter nuclei of similar brightness; a ``bright_fraction`` becomes
    small, bright, compact (mitotic-like) nuclei; a ``dim_fraction`` is dimmed.
    """
    count = len(centers)
    elongation = 1.0 + (style["elongation"] - 1.0) * rng.uniform(0.2, 1.0, size=count)
    semi_axes = np.stack([radii * np.sqrt(elongation), radii / np.sqrt(elongation)], axis=1)
    angles = rng.uniform(0, np.pi, size=count)
    brightness = np.exp(rng.normal(0.0, style["brightness_sigma"], size=count))
    dim = rng.random(count) < style["dim_fraction"]
    brightness[dim] *= rng.uniform(0.25, 0.6, size=int(dim.sum()))
    bright = rng.random(count) < style["bright_fraction"]
    brightness[bright] *= rng.uniform(2.0, 6.0, size=int(bright.sum()))
    semi_axes[bright] *= rng.uniform(0.55, 0.85, size=(int(bright.sum()), 1))
    paired = (rng.random(count) < style["pair_fraction"]) & ~bright
    if paired.any():
        radius = radii[paired] * rng.uniform(0.7, 0.85, size=int(paired.sum()))
        stretch = rng.uniform(1.2, 1.6, size=len(radius))
        daughter_axes = np.stack([radius * np.sqrt(stretch), radius / np.sqrt(stretch)], axis=1)
        # daughters lie side by side: separation along the minor axis, just touching
        step = daughter_axes[:, 1] * rng.uniform(0.85, 1.0, size=len(radius))
        direction = np.stack([np.cos(angles[paired]), -np.sin(angles[paired])], axis=1)
        twin_brightness = brightness[paired] * np.exp(rng.normal(0.0, 0.1, size=len(radius)))
        centers = np.concatenate([centers[~paired], centers[paired] + direction * step[:, None],
                                  centers[paired] - direction * step[:, None]])
        semi_axes = np.concatenate([semi_axes[~paired], daughter_axes, daughter_axes])
        angles = np.concatenate([angles[~paired], angles[paired], angles[paired]])
        brightness = np.concatenate([brightness[~paired], brightness[paired], twin_brightness])
    return centers, semi_axes, angles, np.concatenate([[0.0], brightness]).astype(np.float32)


def _background(shape, style, rng):
    """Return a smooth (M, N) background level (with haze) and a vignetting field."""
    level = style["background"] * (1.0 + style["haze"] * smooth_noise(shape, max(shape) / 6.0, rng))
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    cy, cx = rng.uniform(0.3, 0.7) * shape[0], rng.uniform(0.3, 0.7) * shape[1]
    r2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / float(max(shape) ** 2)
    vignette = 1.0 - style["vignetting"] * np.clip(r2 * 2.0, 0.0, 1.0)
    return np.clip(level, 0.0, None), vignette


def _camera(signal, style, rng):
    """Apply Poisson shot noise, gain, read noise and offset; return uint16."""
    photons = rng.poisson(np.clip(signal, 0.0, None) * style["photons"]).astype(np.float32)
    counts = photons * style["gain"] + style["offset"]
    counts += rng.normal(0.0, style["read_noise"], size=signal.shape).astype(np.float32)
    return np.clip(np.round(counts), 0, 65535).astype(np.uint16)
