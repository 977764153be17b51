"""Nightly processing of every plate below a raw root, and the cross-plate results database.

::

    luigi --module antibodies Nightly --root /data/raw --output-root /data/batchlib [--config FILE] [--workers 2]

finds every plate folder below ``--root`` (a folder with ``channel_mapping.json``
and TIFF images), runs :class:`~antibodies.workflow.CellAnalysis` on the new
ones and on those whose files changed (new images) into
``<output-root>/<plate name>/``, and writes one row per plate x well x serum
into the SQLite database ``<output-root>/results.sqlite`` (table ``wells``;
table ``plates`` has one row per plate). A plate whose database row matches
the signature of its raw folder (file names, sizes and times), configuration
and software version is skipped after one folder listing, without planning
it. The process exits non-zero when a task failed or a plate was left
incomplete (``[retcode]`` in luigi.cfg) and ends with a one-paragraph summary
(also in ``<output-root>/batchlib/Nightly.log`` and ``Nightly.status``).
"""
import atexit
import datetime
import hashlib
import json
import logging
import os
import time
from collections import Counter
from pathlib import Path

import luigi

from luigi_tasks import add_file_handler, get_logger, options, read_status, update_status
from luigi_tasks.console import CONSOLE_LOGGER, TerminalHandler
from luigi_tasks.database import read_rows, write_rows
from luigi_tasks.io import list_tables, open_file, read_table
from luigi_tasks.job import plate_tables_path
from luigi_tasks.provenance import software_version
from luigi_tasks.status import status_names

from .inputs import MAPPING_FILE
from .workflow import CellAnalysis

__all__ = [
    "DATABASE_NAME",
    "WELL_KEY",
    "discover_plates",
    "plate_signature",
    "well_rows",
    "processing_seconds",
    "PlateResults",
    "DuplicatePlateName",
    "Nightly",
    "nightly_summary",
]

DATABASE_NAME = "results.sqlite"
WELL_KEY = ("plate", "well_name", "serum")
IMAGE_EXTENSIONS = (".tif", ".tiff")


def _is_plate(files):
    return MAPPING_FILE in files and any(Path(name).suffix.lower() in IMAGE_EXTENSIONS for name in files)


def discover_plates(root, exclude=()):
    """Return the plate folders below ``root`` (sorted); hidden and ``exclude`` folders are skipped.

    A plate folder holds ``channel_mapping.json`` and at least one TIFF; folders
    below a plate folder are not searched.
    """
    excluded = {Path(path).resolve() for path in exclude}
    plates = []
    for folder, dirs, files in os.walk(root):
        if _is_plate(files):
            plates.append(Path(folder))
            dirs[:] = []
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (Path(folder) / d).resolve() not in excluded)
    return sorted(plates)


def plate_signature(plate_dir, config=None, extra=None):
    """Return a hash of what a plate's results depend on, from one listing of its folder.

    Parameters
    ----------
    plate_dir : str or Path
    config : str or Path, optional
        The configuration file (its content counts).
    extra : dict, optional
        Other settings that change the results (e.g. command-line overrides).
    """
    entries = sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in os.scandir(plate_dir) if e.is_file())
    digest = hashlib.sha256(json.dumps([entries, software_version(), extra or {}], sort_keys=True).encode())
    if config:
        digest.update(Path(config).read_bytes())
    return digest.hexdigest()[:24]


def processing_seconds(output_dir):
    """Return the seconds the plate's tasks ran, summed over jobs and runs (``seconds`` in their status)."""
    total = 0.0
    for name in status_names(output_dir):
        total += read_status(output_dir, name).get("seconds", 0.0)
    return round(total, 3)


def well_rows(tables_path, plate, **common):
    """Return one dict per well x serum from the per-serum well tables of a plate.

    Each row has ``plate, well_name, serum`` (``IgG``, ...), every column of
    the table ``wells/serum_<Ig>`` (scores, QC flags, counts) and ``common``.
    """
    rows = []
    with open_file(tables_path, "r") as container:
        for name in list_tables(container, "wells"):
            if not name.startswith("wells/serum_"):
                continue
            serum = name.split("serum_", 1)[1]
            for record in read_table(container, name).to_dict("records"):
                rows.append({"plate": plate, "serum": serum, **record, **common})
    return rows


def _now():
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


class PlateResults(luigi.Task):
    """Write a processed plate's rows into the results database (one transaction).

    Complete when the database's ``plates`` row of this plate carries the
    current signature and the plate's tables exist: a finished plate is
    skipped without planning it.
    """

    plate = luigi.Parameter(description="Raw plate folder")
    output = luigi.Parameter(description="Output folder of the plate")
    database = luigi.Parameter(description="SQLite results database")
    config = options.config_file()
    gpu = options.gpu()
    ignore_invalid_inputs = options.ignore_invalid_inputs()
    ignore_failed_outputs = options.ignore_failed_outputs()

    @property
    def plate_name(self):
        """Name of the raw plate folder (the database key)."""
        return Path(self.plate).name

    @property
    def tables_path(self):
        """The plate tables file CellAnalysis writes."""
        return plate_tables_path(self.output, self.plate_name)

    def signature(self):
        """The plate's signature, taken once (before processing) per task object."""
        if "_signature" not in self.__dict__:
            self._signature = plate_signature(self.plate, self.config, {"ignore_failed_outputs": self.ignore_failed_outputs})
        return self._signature

    def requires(self):
        """The plate's CellAnalysis run."""
        return CellAnalysis(plate=self.plate, output=self.output, config=self.config, gpu=self.gpu,
                            ignore_invalid_inputs=self.ignore_invalid_inputs,
                            ignore_failed_outputs=self.ignore_failed_outputs)

    def complete(self):
        """True if the database holds this plate with the current signature."""
        rows = read_rows(self.database, "plates", {"plate": self.plate_name})
        return bool(rows) and rows[0]["signature"] == self.signature() and self.tables_path.exists()

    def plate_row(self, n_rows):
        """The ``plates`` row: where, when, how long, which version, how many images failed."""
        workflow = read_status(self.output, "CellAnalysis")
        failed = set()
        for name in status_names(self.output):
            failed |= set(read_status(self.output, name).get("failed_outputs", {}))
        return {
            "plate": self.plate_name, "raw_dir": str(Path(self.plate).resolve()), "output_dir": str(self.output),
            "signature": self.signature(), "n_images": workflow.get("n_images"),
            "n_invalid_inputs": len(workflow.get("invalid_inputs", {})), "n_failed_images": len(failed),
            "n_well_rows": n_rows, "processing_seconds": processing_seconds(self.output),
            "software_version": software_version(), "config": str(Path(self.config).resolve()) if self.config else "",
            "processed_at": _now(), "processed_time": time.time(),
        }

    def run(self):
        """Upsert the plate's well rows and its plate row in one transaction."""
        common = {"processing_seconds": processing_seconds(self.output), "software_version": software_version(),
                  "processed_at": _now()}
        rows = well_rows(self.tables_path, self.plate_name, **common)
        where = {"plate": self.plate_name}
        written = write_rows(self.database, {"wells": (rows, WELL_KEY, where),
                                             "plates": ([self.plate_row(len(rows))], ("plate",), where)})
        get_logger("Nightly").info("%s: %d well rows written to %s", self.plate_name, written["wells"], self.database)

    def on_failure(self, exception):
        """One line for the scheduler; the traceback goes to the log."""
        get_logger("Nightly").exception("%s failed", self)
        return f"{type(exception).__name__}: {str(exception).strip().splitlines()[0] if str(exception).strip() else ''}"


class DuplicatePlateName(luigi.Task):
    """Fails with a clear message: two raw folders have the same name and would share one output folder."""

    plate = luigi.Parameter()
    other = luigi.Parameter()

    def complete(self):
        return False

    def run(self):
        raise RuntimeError(f"{self.plate}: a plate named {Path(self.plate).name!r} already exists at {self.other}; "
                           "rename one of the folders (outputs go to <output-root>/<plate name>)")


# Process-wide: (root, output root) pairs whose summary is registered with atexit. The summary is logged when
# the process ends, after Luigi's own run summary, and reads every plate's final state from disk; Luigi may
# plan Nightly (call requires()) more than once per process, so each pair registers once.
_SUMMARIES = set()


class Nightly(luigi.WrapperTask):
    """Process every new or changed plate below ``--root`` and update the results database.

    ``luigi --module antibodies Nightly --root RAW_ROOT --output-root OUT_ROOT``
    """

    root = luigi.Parameter(description="Folder holding the raw plate folders (searched recursively)")
    output_root = luigi.Parameter(description="Outputs go to <output-root>/<plate name>/")
    database = luigi.OptionalParameter(default=None, description="SQLite results file (default <output-root>/results.sqlite)")
    config = options.config_file()
    gpu = options.gpu()
    ignore_invalid_inputs = options.ignore_invalid_inputs()
    ignore_failed_outputs = options.ignore_failed_outputs()
    summary = luigi.BoolParameter(default=True, significant=False, parsing=luigi.BoolParameter.EXPLICIT_PARSING,
                                  description="Log a summary when the process ends")

    @property
    def database_path(self):
        """The results database."""
        return Path(self.database) if self.database else Path(self.output_root) / DATABASE_NAME

    def requires(self):
        """One :class:`PlateResults` per plate folder (a failing task per duplicate plate name)."""
        if "_plate_tasks" not in self.__dict__:
            self._plate_tasks = self._plan()
        return self._plate_tasks

    def _plan(self):
        logger = get_logger("Nightly")
        add_file_handler(get_logger(), self.output_root, "Nightly")
        started = time.time()
        plates = discover_plates(self.root, exclude=[self.output_root])
        logger.info("%d plate folder(s) below %s", len(plates), self.root)
        if self.summary and (self.root, self.output_root) not in _SUMMARIES:
            _SUMMARIES.add((self.root, self.output_root))
            atexit.register(_log_summary, self.root, self.output_root, self.database_path, self.config,
                            self.ignore_failed_outputs, started)
        seen, tasks = {}, []
        for plate in plates:
            if plate.name in seen:
                tasks.append(DuplicatePlateName(plate=str(plate), other=str(seen[plate.name])))
                continue
            seen[plate.name] = plate
            tasks.append(PlateResults(
                plate=str(plate), output=str(Path(self.output_root) / plate.name), database=str(self.database_path),
                config=self.config, gpu=self.gpu, ignore_invalid_inputs=self.ignore_invalid_inputs,
                ignore_failed_outputs=self.ignore_failed_outputs,
            ))
        return tasks


def _plate_problem(output_dir):
    """A short reason why a plate is not finished, from its status files."""
    workflow = read_status(output_dir, "CellAnalysis")
    if not workflow:
        return "not processed"
    if workflow.get("invalid_inputs"):
        return f"{len(workflow['invalid_inputs'])} invalid input file(s)"
    failed = Counter()
    for name in status_names(output_dir):
        status = read_status(output_dir, name)
        if "n_images" in status:  # the workflow: its failed images are the jobs' ones
            continue
        failed.update({name: len(status.get("failed_outputs", {}))} if status.get("state") == "failed" else {})
    if failed:
        return "failed: " + ", ".join(f"{job} ({n} image(s))" if n else job for job, n in sorted(failed.items()))
    return f"state {workflow.get('state', 'unknown')}"


def nightly_summary(root, output_root, database, config=None, ignore_failed_outputs=False, started=0.0):
    """Return ``(paragraph, record)`` describing every plate below ``root`` after a nightly run.

    ``record`` has ``plates``, ``processed`` (this run), ``up_to_date`` and
    ``incomplete`` (``{plate: reason}``), all read from disk and the database.
    """
    plates = discover_plates(root, exclude=[output_root])
    rows = {row["plate"]: row for row in read_rows(database, "plates")}
    processed, up_to_date, incomplete = [], [], {}
    names = Counter(plate.name for plate in plates)
    for plate in plates:
        row = rows.get(plate.name)
        current = row is not None and row["signature"] == plate_signature(
            plate, config, {"ignore_failed_outputs": ignore_failed_outputs})
        if names[plate.name] > 1 and (row is None or row["raw_dir"] != str(plate.resolve())):
            incomplete[str(plate)] = "duplicate plate name"
        elif not current:
            incomplete[plate.name] = _plate_problem(Path(output_root) / plate.name)
        elif (row.get("processed_time") or 0) >= started:
            processed.append(plate.name)
        else:
            up_to_date.append(plate.name)
    n_rows = len(read_rows(database, "wells"))
    problems = "; ".join(f"{name}: {reason}" for name, reason in incomplete.items())
    paragraph = (
        f"Nightly summary: {len(plates)} plate folder(s) below {root}: {len(processed)} processed this run, "
        f"{len(up_to_date)} already up to date, {len(incomplete)} incomplete"
        + (f" ({problems})" if incomplete else "")
        + f". Results database {database}: {n_rows} well row(s) of {len(rows)} plate(s)."
        + (" Incomplete plates make the exit status non-zero; they are retried on the next run." if incomplete else "")
    )
    record = {"plates": len(plates), "processed": processed, "up_to_date": up_to_date, "incomplete": incomplete}
    return paragraph, record


def _log_summary(root, output_root, database, config, ignore_failed_outputs, started):
    logger = get_logger("Nightly")
    try:
        paragraph, record = nightly_summary(root, output_root, database, config, ignore_failed_outputs, started)
        update_status(output_root, "Nightly", state="incomplete" if record["incomplete"] else "finished",
                      summary=paragraph, **record)
    except Exception:  # noqa: BLE001 - the summary must not hide the run's own exit status
        logger.exception("nightly summary failed")
        return
    level = logging.WARNING if record["incomplete"] else logging.INFO
    if any(isinstance(handler, TerminalHandler) for handler in logging.getLogger().handlers):
        logging.getLogger(CONSOLE_LOGGER).log(level, "%s", paragraph)  # the terminal shows it once, in full
        return
    console = logging.StreamHandler()  # cron mails what the job writes: the summary goes to stderr too
    console.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger.addHandler(console)
    logger.log(level, "%s", paragraph)
