"""Errors the framework raises; each message names the file, the problem and the fix."""

__all__ = [
    "BatchlibError",
    "InvalidInputError",
    "InvalidInputsError",
    "ConfigError",
    "WorkflowLockedError",
    "FailedOutputsError",
    "OutputFolderError",
]


class BatchlibError(Exception):
    """Base class of all framework errors."""


class InvalidInputError(BatchlibError, ValueError):
    """One raw input file cannot be processed.

    Parameters
    ----------
    path : str
        The offending file.
    reason : str
        What is wrong with it.
    fix : str
        What the user can do about it.
    """

    def __init__(self, path, reason, fix=""):
        self.path, self.reason, self.fix = str(path), reason, fix
        super().__init__(f"{self.path}: {reason}" + (f" (fix: {fix})" if fix else ""))


class InvalidInputsError(BatchlibError):
    """The plate has invalid inputs and ``ignore_invalid_inputs`` is off; lists all of them."""

    def __init__(self, plate_dir, problems):
        self.plate_dir, self.problems = str(plate_dir), dict(problems)
        lines = [f"  {name}: {reason}" for name, reason in sorted(self.problems.items())]
        super().__init__(
            f"{len(self.problems)} invalid input(s) in {self.plate_dir}; nothing was computed.\n"
            + "\n".join(lines)
            + "\nFix or remove these files, or rerun with --ignore-invalid-inputs to process the rest."
        )


class ConfigError(BatchlibError, ValueError):
    """A configuration file or value is invalid."""


class WorkflowLockedError(BatchlibError):
    """Another run holds the lock of this output folder."""


class FailedOutputsError(BatchlibError):
    """Some images failed and ``ignore_failed_outputs`` is off."""


class OutputFolderError(BatchlibError, OSError):
    """The output folder cannot be created or written."""
