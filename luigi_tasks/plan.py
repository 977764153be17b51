"""The plan of a plate: which raw images there are and which are valid.

A planner lists the image files of a plate folder, checks each one (name,
readability, content) and the plate as a whole (e.g. one image shape), and
returns a :class:`PlatePlan`. Files that are clearly not images (``notes.txt``)
are ignored silently. Plans are cached per process and refreshed when the
folder changes, so the thousands of tasks of a plate share one listing.
"""
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InvalidInputError, InvalidInputsError
from .io.naming import is_image_name, parse_image_name, well_sort_key
from .io.tiff import tiff_structure_problem

__all__ = ["PlatePlan", "RawImagePlanner"]

logger = logging.getLogger("Workflow.plan")


@dataclass(frozen=True)
class PlatePlan:
    """Valid images (``{stem: path}``, in plate order) and invalid files (``{file name: reason}``)."""

    plate_dir: str
    images: dict = field(default_factory=dict)
    invalid: dict = field(default_factory=dict)

    @property
    def image_names(self):
        """Stems of the valid images, in plate order."""
        return tuple(self.images)

    def require_valid(self, ignore_invalid_inputs):
        """Raise :class:`InvalidInputsError` listing all problems unless they are to be ignored."""
        if self.invalid and not ignore_invalid_inputs:
            raise InvalidInputsError(self.plate_dir, self.invalid)
        return self


class RawImagePlanner:
    """Plan a plate folder of raw images named by :mod:`luigi_tasks.io.naming`.

    Subclasses check the content with :meth:`check_image` (per file) and
    :meth:`check_plate` (across files); both raise or return problems.
    """

    extensions = (".tif", ".tiff")
    ignored_names = ("channel_mapping.json",)

    def __init__(self):
        self._cache = {}

    def list_image_files(self, plate_dir):
        """Return ``{stem: path}`` of files with an image extension, sorted by name."""
        entries = sorted(os.scandir(plate_dir), key=lambda entry: entry.name)
        files = [Path(entry.path) for entry in entries if entry.is_file()]
        return {path.stem: path for path in files if path.suffix.lower() in self.extensions}

    def check_image(self, path):
        """Return per-file information for :meth:`check_plate`; raise InvalidInputError if bad.

        An empty file and a TIFF whose structure points past its end (a cut
        copy; see :func:`~luigi_tasks.io.tiff.tiff_structure_problem`) are refused.
        """
        if path.stat().st_size == 0:
            raise InvalidInputError(path, "file is empty (0 bytes)", "copy the image again from the microscope")
        if path.suffix.lower() in (".tif", ".tiff"):
            problem = tiff_structure_problem(path)
            if problem is not None:
                raise InvalidInputError(path, problem, "copy the image again from the microscope")
        return {}

    def check_plate(self, plate_dir, infos):
        """Return ``{stem: reason}`` for images inconsistent with the rest of the plate."""
        return {}

    def check_folder(self, plate_dir):
        """Raise if the folder itself cannot be processed."""
        if not Path(plate_dir).is_dir():
            raise InvalidInputError(plate_dir, "plate folder does not exist", "pass an existing folder with --plate")

    def plan(self, plate_dir):
        """Return the :class:`PlatePlan` of ``plate_dir`` (cached until the folder changes)."""
        plate_dir = str(Path(plate_dir).resolve())
        self.check_folder(plate_dir)
        key = (plate_dir, os.stat(plate_dir).st_mtime_ns)
        if key not in self._cache:
            self._cache = {key: self._make_plan(plate_dir)}
        return self._cache[key]

    def _make_plan(self, plate_dir):
        infos, invalid = {}, {}
        for stem, path in self.list_image_files(plate_dir).items():
            if not is_image_name(stem):
                invalid[path.name] = _name_problem(stem)
                continue
            try:
                infos[stem] = (path, self.check_image(path))
            except InvalidInputError as error:
                invalid[path.name] = error.reason + (f" (fix: {error.fix})" if error.fix else "")
        for stem, reason in self.check_plate(plate_dir, {s: info for s, (_, info) in infos.items()}).items():
            invalid[infos.pop(stem)[0].name] = reason
        order = sorted(infos, key=lambda stem: (well_sort_key(parse_image_name(stem).well), stem))
        logger.debug("planned %s: %d valid, %d invalid images", plate_dir, len(order), len(invalid))
        return PlatePlan(plate_dir, {stem: str(infos[stem][0]) for stem in order}, invalid)


def _name_problem(stem):
    try:
        parse_image_name(stem)
    except ValueError as error:
        return f"{error} (fix: rename the file)"
    return "invalid name"
