"""luigi_tasks: a crash-safe Luigi batch engine for plate folders.

One Luigi task per (image, job) whose target is a dataset in the image's h5
container; plate-level jobs aggregate all images; a workflow task plans the
run. This package never imports an assay.
"""
from . import io, options
from .config import load_config
from .console import install as _install_console
from .errors import (
    BatchlibError,
    ConfigError,
    FailedOutputsError,
    InvalidInputError,
    InvalidInputsError,
    OutputFolderError,
    WorkflowLockedError,
)
from .job import BatchJob, BatchJobOnContainer, ImageJob, PlateJob, PlateTask, wire, wire_steps
from .log import add_file_handler, get_logger
from .luigi_fixes import install as _install_luigi_fixes
from .plan import PlatePlan, RawImagePlanner
from .settings import use_packaged_luigi_config, use_project_luigi_config
from .status import RunLock, read_status, update_status
from .targets import DatasetTarget, H5DatasetTarget, N5DatasetTarget
from .workflow import PlateWorkflow, add_config_parameters, release_locks, use_local_lock

_install_luigi_fixes()  # exit codes and batch reruns with several workers (see luigi_tasks.luigi_fixes)
_install_console()  # a terminal a person reads: step lines, a summary, user errors without tracebacks
use_packaged_luigi_config()  # [retcode], [worker], [resources] defaults, also from a wheel (luigi_tasks.settings)

__all__ = [
    "io",
    "options",
    "load_config",
    "BatchlibError",
    "ConfigError",
    "FailedOutputsError",
    "InvalidInputError",
    "InvalidInputsError",
    "OutputFolderError",
    "WorkflowLockedError",
    "BatchJob",
    "BatchJobOnContainer",
    "ImageJob",
    "PlateJob",
    "PlateTask",
    "wire",
    "wire_steps",
    "add_file_handler",
    "get_logger",
    "PlatePlan",
    "RawImagePlanner",
    "use_packaged_luigi_config",
    "use_project_luigi_config",
    "RunLock",
    "read_status",
    "update_status",
    "DatasetTarget",
    "H5DatasetTarget",
    "N5DatasetTarget",
    "PlateWorkflow",
    "add_config_parameters",
    "release_locks",
    "use_local_lock",
]
