"""Readable column names for people: ``serum_IgG_score`` -> ``IgG score``."""
__all__ = ["SERUM_COLUMNS", "serum_label", "readable_column", "readable_columns"]

_COMMON = {
    "image_name": "Image",
    "site_name": "Site",
    "well_name": "Well",
    "n_images": "Images",
    "n_outlier_images": "Outlier images",
    "is_outlier": "Outlier",
    "outlier_type": "Outlier reason",
    "n_cells": "Cells",
    "n_infected": "Infected cells",
    "n_control": "Control cells",
    "fraction_infected": "Fraction infected",
    "cell_size_median": "Median cell size (px)",
    "cell_size_mean": "Mean cell size (px)",
    "cell_size_min": "Smallest cell (px)",
    "cell_size_max": "Largest cell (px)",
}

_SERUM = {
    "score": "score",
    "is_positive": "positive",
    "score_ci_low": "score interval low",
    "score_ci_high": "score interval high",
    "score_log_se": "score log SE",
    "robust_z_score": "robust z-score",
    "ratio_of_means": "ratio of means",
    "median_infected": "median infected",
    "median_control": "median control",
    "mad_control": "MAD control",
    "clipped_cells": "clipped cells (fraction)",
    "is_outlier": "outlier",
    "outlier_type": "outlier reason",
}

SERUM_COLUMNS = tuple(_SERUM)
"""Columns of a per-serum table that belong to its serum (``score``, ..., ``outlier_type``)."""


def serum_label(serum):
    """Return the short name of a serum channel.

    Examples
    --------
    >>> serum_label("serum_IgG"), serum_label("dapi")
    ('IgG', 'dapi')
    """
    return serum.removeprefix("serum_")


def _capitalized(text):
    return text[:1].upper() + text[1:]


def readable_column(name, serum=None):
    """Return a header people can read for a table column.

    Parameters
    ----------
    name : str
        Column name of an image or well table.
    serum : str, optional
        The serum of a per-serum table whose columns lost their prefix;
        its own columns (:data:`SERUM_COLUMNS`) get the serum label.

    Examples
    --------
    >>> readable_column("serum_IgG_score"), readable_column("serum_IgA_outlier_type")
    ('IgG score', 'IgA outlier reason')
    >>> readable_column("n_cells"), readable_column("score", serum="serum_IgM")
    ('Cells', 'IgM score')
    >>> readable_column("some_new_column")
    'Some new column'
    """
    if serum is not None and name in _SERUM:
        return f"{serum_label(serum)} {_SERUM[name]}"
    if name.startswith("serum_"):
        label, _, rest = name.removeprefix("serum_").partition("_")
        if rest in _SERUM:
            return f"{label} {_SERUM[rest]}"
    return _COMMON.get(name, _capitalized(name.replace("_", " ")))


def readable_columns(frame, serum=None):
    """Return a copy of ``frame`` with :func:`readable_column` headers."""
    return frame.rename(columns={c: readable_column(c, serum) for c in frame.columns})
