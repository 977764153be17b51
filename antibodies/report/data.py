"""What the plate report shows, computed from tables and status records (pandas only).

:func:`cell_intensities` gathers background-subtracted cell means for the
intensity distributions, :func:`qc_table` lists every outlier with its reason,
:func:`pick_wells` chooses the wells shown as thumbnails and
:func:`run_summary` condenses the status records of a run.
"""
import datetime
from typing import NamedTuple

import numpy as np
import pandas as pd

from ..analysis.infection import CLEAR_CALL
from ..analysis.scores import cell_frame, subtract_backgrounds
from .columns import serum_label

__all__ = [
    "INTENSITY_COLUMNS",
    "QC_COLUMNS",
    "WellPick",
    "cell_intensities",
    "qc_table",
    "pick_wells",
    "failed_images",
    "invalid_inputs",
    "job_table",
    "run_summary",
]

INTENSITY_COLUMNS = ("well_name", "image_name", "serum", "infected", "intensity")
"""Columns of :func:`cell_intensities`."""

QC_COLUMNS = ("level", "name", "well_name", "channel", "reason")
"""Columns of :func:`qc_table`."""


def cell_intensities(records, backgrounds, sera, left_out=None):
    """Background-subtracted mean serum intensity of every cell that enters the scores.

    Those are the valid cells with a clear call: with ``[infection] score_margin`` above 1, cells
    whose marker score lies near the cut count for the infected fraction but not here, as in the scores.

    Parameters
    ----------
    records : iterable of antibodies.analysis.scores.ImageCells
    backgrounds : Mapping[str, BackgroundStats]
        Plate background per serum; its median is subtracted from records
        without backgrounds of their own.
    sera : sequence of str
    left_out : Mapping[str, collection of str], optional
        Serum -> the images left out of its well scores (QC outliers; images whose serum is clipped).

    Returns
    -------
    pandas.DataFrame
        :data:`INTENSITY_COLUMNS`; ``infected`` is True for infected and
        False for control cells.
    """
    parts, left_out = [], left_out or {}
    for record in records:
        shown = [serum for serum in sera if record.image_name not in left_out.get(serum, ())]
        if not shown:
            continue
        cells = subtract_backgrounds(cell_frame(record, shown), shown, record.backgrounds or backgrounds)
        cells = cells[cells[CLEAR_CALL].to_numpy(bool)]
        for serum in shown:
            parts.append(pd.DataFrame({
                "well_name": record.well_name, "image_name": record.image_name, "serum": serum,
                "infected": cells["is_infected"].to_numpy(bool),
                "intensity": cells[serum].to_numpy(np.float32),
            }))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=float if c == "intensity" else object) for c in INTENSITY_COLUMNS})
    return pd.concat(parts, ignore_index=True)[list(INTENSITY_COLUMNS)]


def _flag_rows(table, level, name_column, sera):
    rows = []
    for record in table.to_dict("records"):
        base = {"level": level, "name": record[name_column], "well_name": record["well_name"]}
        overall = record["outlier_type"] if record["is_outlier"] else ""
        if overall:
            rows.append({**base, "channel": "all", "reason": overall})
        for serum in sera:
            reason = record[f"{serum}_outlier_type"] if record[f"{serum}_is_outlier"] else ""
            own = reason if not overall else reason.replace(overall, "").strip("; ,")
            if own:
                rows.append({**base, "channel": serum_label(serum), "reason": own})
    return rows


def qc_table(images, wells, sera, invalid=None, failed=None, warnings=None):
    """Every outlier image and well, invalid raw file and failed image, with its reason, then the warnings.

    Parameters
    ----------
    images, wells : pandas.DataFrame
        The default image and well tables.
    sera : sequence of str
    invalid, failed : Mapping[str, str], optional
        Raw file -> reason it is invalid; image -> reason it failed.
    warnings : pandas.DataFrame, optional
        ``image_name, well_name, channel, reason`` (images far from their
        well mates; not outliers).

    Returns
    -------
    pandas.DataFrame
        :data:`QC_COLUMNS`; ``level`` is ``raw file``, ``failed image``,
        ``image``, ``well`` or ``image (warning)``; ``channel`` is ``all``,
        the serum label or the channel of a warning.

    Examples
    --------
    >>> wells = pd.DataFrame({"well_name": ["A01", "A02"], "is_outlier": [True, False],
    ...     "outlier_type": ["too few control cells", ""], "serum_IgG_is_outlier": [True, True],
    ...     "serum_IgG_outlier_type": ["too few control cells", "infected too dim"]})
    >>> images = pd.DataFrame(columns=["image_name", "well_name", "is_outlier", "outlier_type",
    ...     "serum_IgG_is_outlier", "serum_IgG_outlier_type"])
    >>> qc_table(images, wells, ["serum_IgG"])[["name", "channel", "reason"]].values.tolist()
    [['A01', 'all', 'too few control cells'], ['A02', 'IgG', 'infected too dim']]
    """
    rows = [{"level": "raw file", "name": n, "well_name": "", "channel": "all", "reason": r}
            for n, r in (invalid or {}).items()]
    rows += [{"level": "failed image", "name": n, "well_name": "", "channel": "all", "reason": r}
             for n, r in (failed or {}).items()]
    rows += _flag_rows(images, "image", "image_name", sera)
    rows += _flag_rows(wells, "well", "well_name", sera)
    if warnings is not None:
        rows += [{"level": "image (warning)", "name": w["image_name"], "well_name": w["well_name"],
                  "channel": w["channel"], "reason": w["reason"]} for w in warnings.to_dict("records")]
    return pd.DataFrame(rows, columns=list(QC_COLUMNS))


class WellPick(NamedTuple):
    """A well chosen for a thumbnail and why."""

    well_name: str
    why: str


def _is_outlier(wells, serum):
    flags = wells["is_outlier"].astype(bool)
    return flags | wells[f"{serum}_is_outlier"].astype(bool) if serum else flags


def pick_wells(wells, serum=None, n_outliers=2):
    """Choose the wells shown as thumbnails: best and worst score, some outliers.

    Parameters
    ----------
    wells : pandas.DataFrame
        The default well table.
    serum : str, optional
        Serum whose score ranks the wells; without one the first well is shown.
    n_outliers : int
        At most this many outlier wells.

    Returns
    -------
    list of WellPick
        Each well at most once, best first.

    Examples
    --------
    >>> wells = pd.DataFrame({"well_name": ["A01", "A02", "A03"], "is_outlier": [False, False, True],
    ...     "serum_IgG_score": [2.0, 0.9, np.nan], "serum_IgG_is_outlier": [False, False, True]})
    >>> [(p.well_name, p.why) for p in pick_wells(wells, "serum_IgG")]
    [('A01', 'highest IgG score'), ('A02', 'lowest IgG score'), ('A03', 'outlier')]
    """
    outlier = _is_outlier(wells, serum)
    picks = []
    if serum is not None:
        scored = wells[~outlier & wells[f"{serum}_score"].notna()].sort_values(f"{serum}_score")
        if len(scored):
            picks.append(WellPick(scored["well_name"].iloc[-1], f"highest {serum_label(serum)} score"))
            picks.append(WellPick(scored["well_name"].iloc[0], f"lowest {serum_label(serum)} score"))
    elif len(wells):
        picks.append(WellPick(wells["well_name"].iloc[0], "first well"))
    picks += [WellPick(name, "outlier") for name in wells.loc[outlier, "well_name"].iloc[:n_outliers]]
    seen, unique = set(), []
    for pick in picks:
        if pick.well_name not in seen:
            seen.add(pick.well_name)
            unique.append(pick)
    return unique


_UPSTREAM_FAILED = "upstream failed: "  # luigi_tasks.status.UPSTREAM_FAILED: the image was left out downstream


def failed_images(statuses):
    """Return ``{image: root cause}`` of every failed output in the status records, each cause once.

    Examples
    --------
    >>> failed_images({"Preprocess": {"failed_outputs": {"a": "Preprocess: error: bad data"}},
    ...                "PlateScores": {"failed_outputs": {"a": "upstream failed: Preprocess: error: bad data"}}})
    {'a': 'Preprocess: error: bad data'}
    """
    causes = {}
    for job, status in sorted(statuses.items()):
        for image, reason in status.get("failed_outputs", {}).items():
            cause = reason.removeprefix(_UPSTREAM_FAILED)
            causes.setdefault(image, []).append(cause if ": " in cause else f"{job}: {cause}")
    return {image: "; ".join(dict.fromkeys(found)) for image, found in sorted(causes.items())}


def invalid_inputs(statuses):
    """Return ``{raw file: reason}`` of every invalid input in the status records."""
    invalid = {}
    for status in statuses.values():
        invalid.update(status.get("invalid_inputs", {}))
    return dict(sorted(invalid.items()))


def job_table(statuses):
    """One row per job: state, failed outputs, seconds and images of its code.

    Workflows (records with ``n_images``) are left out: the report is written
    before the run ends, so their state would always read ``running``.

    Examples
    --------
    >>> job_table({"Preprocess": {"state": "processed", "seconds": 1.5, "images_processed": 8},
    ...            "CellAnalysis": {"state": "running", "n_images": 8}}).to_dict("records")
    [{'job': 'Preprocess', 'state': 'processed', 'failed': 0, 'seconds': 1.5, 'images': 8}]
    """
    rows = [{"job": job, "state": status.get("state", ""), "failed": len(status.get("failed_outputs", {})),
             "seconds": float(status.get("seconds", np.nan)), "images": status.get("images_processed", pd.NA)}
            for job, status in sorted(statuses.items()) if "n_images" not in status]
    return pd.DataFrame(rows, columns=["job", "state", "failed", "seconds", "images"])


def _started(statuses):
    """Planning time of a running workflow (workflows record ``n_images`` when they plan)."""
    times = [status["updated"] for status in statuses.values()
             if "n_images" in status and status.get("state") == "running" and "updated" in status]
    return min(times) if times else None


def run_summary(statuses, n_images, version, now=None):
    """Condense the status records of a run into ``{label: text}``.

    Parameters
    ----------
    statuses : Mapping[str, dict]
        Job or workflow name -> its status record (``batchlib/<name>.status``).
    n_images : int
        Images in the plate tables.
    version : str
        Software version.
    now : datetime.datetime, optional
        Time of the report (default: now).

    Returns
    -------
    dict of str -> str
    """
    now = now or datetime.datetime.now().astimezone()
    summary = {
        "Images processed": str(n_images),
        "Invalid raw files": str(len(invalid_inputs(statuses))),
        "Failed images": str(len(failed_images(statuses))),
        "Software version": version,
        "Report made": now.isoformat(timespec="seconds"),
    }
    seconds = sum(float(s.get("seconds", 0.0)) for s in statuses.values())
    if seconds:
        summary["Job time (sum over jobs)"] = f"{seconds:.1f} s"
    started = _started(statuses)
    if started:
        elapsed = (now - datetime.datetime.fromisoformat(started)).total_seconds()
        summary["Run started"] = started
        summary["Time taken (run start to report)"] = f"{elapsed:.1f} s"
    return summary
