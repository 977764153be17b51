"""Channel splitting and flat-field (barrel) correction of raw images."""

import logging

import numpy as np

__all__ = ["as_counts", "split_channels", "correct_flatfield", "NORMALISED_SCALE"]

NORMALISED_SCALE = 65535.0
"""Float images within [0, 1] are normalised 16-bit data (``skimage.img_as_float``): counts = value x this."""

logger = logging.getLogger(__name__)


def as_counts(stack):
    """Return the pages of a raw image on the camera-count scale, and the factor applied.

    The background statistics bin intensities by whole counts (0-65535). Integer
    images and float images beyond [0, 1] are counts already; a float image whose
    values all lie within [0, 1] is normalised 16-bit data, as exported by
    ``skimage.img_as_float`` or Fiji, and is multiplied by :data:`NORMALISED_SCALE` and rounded (so
    the counts of such an export come back exactly).
    Scores (ratios of background-subtracted intensities) do not depend on the factor.

    Parameters
    ----------
    stack : (C, M, N) or (M, N) array

    Returns
    -------
    counts : array of the same shape (float32 when scaled, else ``stack`` itself)
    factor : float

    Examples
    --------
    >>> as_counts(np.array([[0.0, 0.5]], np.float32))[0].tolist(), as_counts(np.array([[3, 9]], np.uint16))[1]
    ([[0.0, 32768.0]], 1.0)
    """
    stack = np.asarray(stack)
    if stack.dtype.kind != "f":
        return stack, 1.0
    finite = stack[np.isfinite(stack)]
    if finite.size == 0 or finite.min() < 0 or finite.max() > 1:
        return stack, 1.0
    return np.rint(stack.astype(np.float32) * np.float32(NORMALISED_SCALE)), NORMALISED_SCALE


def split_channels(stack, channel_names, roles=None):
    """Split a (C, M, N) page stack into one (M, N) image per channel role.

    Parameters
    ----------
    stack : (C, M, N) array or (M, N) array
        The pages of one image, one page per channel; a single (M, N) page is
        read as ``C == 1``.
    channel_names : sequence of str
        Name of each page, in page order (e.g. ``["dapi", "virus", "igg"]``).
    roles : mapping of str to str, optional
        Channel name -> role (e.g. ``{"dapi": "nuclei"}``).  Names that are
        not in the mapping keep their name as role; mapping entries for names
        that are not present are ignored.  ``None`` uses the names as roles.

    Returns
    -------
    dict of str to (M, N) array
        Role -> page, in page order.  The pages are views of ``stack``.

    Raises
    ------
    ValueError
        If the number of pages differs from the number of names, or if two
        channels end up with the same role.

    Examples
    --------
    >>> stack = np.arange(8).reshape(2, 2, 2)
    >>> images = split_channels(stack, ["dapi", "gfp"], {"dapi": "nuclei"})
    >>> sorted(images)
    ['gfp', 'nuclei']
    >>> images["gfp"].tolist()
    [[4, 5], [6, 7]]
    """
    stack = np.asarray(stack)
    if stack.ndim == 2:
        stack = stack[np.newaxis]
    if stack.ndim != 3:
        raise ValueError(f"expected a (C, M, N) stack, got shape {stack.shape}")
    channel_names = list(channel_names)
    if stack.shape[0] != len(channel_names):
        raise ValueError(
            f"the stack has {stack.shape[0]} pages but {len(channel_names)} "
            f"channel names were given: {channel_names}"
        )
    roles = {} if roles is None else dict(roles)
    images = {}
    for name, page in zip(channel_names, stack):
        role = roles.get(name, name)
        if role in images:
            raise ValueError(
                f"two channels map to the role {role!r}: names {channel_names}, "
                f"roles {roles}"
            )
        images[role] = page
    return images


def correct_flatfield(image, offset, divisor):
    """Barrel (flat-field) correction ``(image - offset) / divisor + offset``.

    Parameters
    ----------
    image : (M, N) array
        Raw image.
    offset : float or (M, N) array
        Camera offset (dark level), subtracted before and added back after
        the division.
    divisor : (M, N) array
        Normalised illumination profile (about 1 in the centre, smaller at
        the border); must be positive.

    Returns
    -------
    (M, N) float32 array
        The corrected image.

    Raises
    ------
    ValueError
        If ``divisor`` or an array ``offset`` does not have the shape of
        ``image``, or if ``divisor`` has a non-positive value.

    Examples
    --------
    >>> image = np.array([[110.0, 60.0]])
    >>> correct_flatfield(image, 10.0, np.array([[1.0, 0.5]])).tolist()
    [[110.0, 110.0]]
    """
    image = np.asarray(image, dtype=np.float32)
    divisor = np.asarray(divisor, dtype=np.float32)
    offset = np.asarray(offset, dtype=np.float32)
    if divisor.shape != image.shape:
        raise ValueError(
            f"divisor shape {divisor.shape} differs from image shape {image.shape}"
        )
    if offset.ndim != 0 and offset.shape != image.shape:
        raise ValueError(
            f"offset shape {offset.shape} differs from image shape {image.shape}"
        )
    if not np.all(divisor > 0):
        raise ValueError("divisor must be positive everywhere")
    corrected = image - offset
    corrected /= divisor
    corrected += offset
    return corrected
