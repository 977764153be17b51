"""Jobs as Luigi tasks: one task per (image, job), plate tasks over all images.

Users write a :class:`BatchJob` (raw images in) or :class:`BatchJobOnContainer`
(container keys in) and implement ``compute(self, input_files, output_files,
**settings)``. Luigi's ``run()`` belongs to the framework (:meth:`ImageJob.run`):
for each image it opens a step transaction
(:func:`~luigi_tasks.io.atomic.step_transaction`), calls the job's ``compute``
with the input file and a new, empty part file of the image's container, checks
the declared output keys, stamps them and commits: the part is renamed into
place and the container, which links to it, is replaced. Whatever the job
writes appears atomically or not at all.

Settings: a task class declares as Luigi parameters only the settings it reads
(:meth:`PlateTask.own_setting_params`). The settings of the tasks above it
travel in one parameter, ``upstream_settings`` (``{name: value string}``), from
which :meth:`PlateTask.upstream_task` rebuilds each required task
(:meth:`PlateTask.from_settings`). The fingerprint of an output hashes the
task's own settings, the upstream ones and the upstream fingerprints.

Plate-level jobs (:class:`PlateJob`) require the image tasks of every valid image
and write tables to ``<output>/<plate>_tables.hdf5`` the same way.
"""
import functools
import json
import logging
import os
import time
from pathlib import Path

import luigi
from luigi.freezing import FrozenOrderedDict
from luigi.parameter import _no_value

from . import options
from .errors import FailedOutputsError
from .io.atomic import BackgroundCommits, container_transaction, remove_stale_temporaries, step_transaction
from .io.files import open_file
from .plan import RawImagePlanner
from .plan_progress import report_progress
from .provenance import Stamp, fingerprint, write_params, write_stamps
from .settings import batchlib
from .status import UPSTREAM_FAILED, record_timing, root_cause, update_status
from .targets import dataset_target, outputs_done

__all__ = [
    "IMAGE_SEPARATOR",
    "join_image_names",
    "plate_tables_path",
    "plate_viewer_tables_path",
    "PlateTask",
    "ImageJob",
    "BatchJob",
    "BatchJobOnContainer",
    "PlateJob",
    "record_killed_task",
    "RUN_OPTIONS",
    "wire",
    "wire_steps",
]

IMAGE_SEPARATOR = ";"
# Process-wide: {class: (key, params)}. Luigi asks a class for its parameters (a classmethod, ~10 times per
# task object) and offers no place to keep the answer; see PlateTask.get_params.
_PARAMS_CACHE = {}
# Process-wide: {class: {name: parameter}} of the settings upstream of a class; emptied by wire(), the one
# place that changes the graph (see PlateTask.upstream_setting_params).
_UPSTREAM_SETTINGS_CACHE = {}
# Process-wide: {(class, parameters but the image, upstream fingerprints): fingerprint} of image jobs. Luigi builds
# one task object per image and job, and their fingerprints are equal (the payload names no image); the cache lets
# a plate's thousands of image tasks hash the payload once per job (see ImageJob.fingerprint). Emptied by wire().
_IMAGE_FINGERPRINTS = {}
# Process-wide: {(class, upstream class, parameters but the image): keyword arguments} shared by the tasks of one
# job on the images of a plate when they build their upstream tasks (see PlateTask.upstream_task). Emptied by wire().
_UPSTREAM_KWARGS = {}
# Process-wide: {(name, value) pairs: frozen mapping}, one object per distinct upstream_settings value; see
# SettingsParameter.freeze. A handful of entries per configuration.
_FROZEN_SETTINGS = {}
STEP_PRIORITY = 100
RUN_OPTIONS = ("plate_dir", "output_dir", "gpu", "ignore_invalid_inputs", "ignore_failed_outputs", "recompute_before")
"""Parameters every task of a plate shares and passes unchanged to the tasks it requires (none changes an output)."""
FRAMEWORK_PARAMS = RUN_OPTIONS + ("image_name", "upstream_settings")
"""Parameters declared by the framework; every other parameter of a task is a setting it reads."""


def plate_tables_path(output_dir, plate_name):
    """Return the plate tables file ``<output_dir>/<plate_name>_tables.hdf5``."""
    return Path(output_dir) / f"{plate_name}_tables.hdf5"


def plate_viewer_tables_path(output_dir, plate_name):
    """Return ``<output_dir>/<plate_name>_table.hdf5``: the plate tables under the name Fiji's plateViewer opens.

    Always the same file as :func:`plate_tables_path` (a hard link, or a copy
    where links fail), replaced in the same transaction.
    """
    return Path(output_dir) / f"{plate_name}_table.hdf5"


def join_image_names(names):
    """Combine image names of a Luigi batch into one parameter value.

    Examples
    --------
    >>> join_image_names(["b", "a;c"])
    'a;b;c'
    """
    parts = [part for name in names for part in name.split(IMAGE_SEPARATOR)]
    return IMAGE_SEPARATOR.join(sorted(dict.fromkeys(parts)))


def _one_line(error):
    """``"<Type>: <first line>"``; a lower-case type name gets its module (``zlib.error``).

    Examples
    --------
    >>> import zlib
    >>> _one_line(zlib.error("Error -3 while decompressing data")), _one_line(ValueError("a\\nb"))
    ('zlib.error: Error -3 while decompressing data', 'ValueError: a')
    """
    kind = type(error)
    name = kind.__name__ if kind.__name__[:1].isupper() else f"{kind.__module__}.{kind.__name__}"
    text = str(error).strip().splitlines()
    return f"{name}: {text[0] if text else ''}"


def _failure_message(job, failed, n_images, shown=5):
    """One line naming the failed images of a task and their reasons.

    Examples
    --------
    >>> _failure_message("Smooth", {"a": "Smooth: ValueError: bad"}, 3)
    'Smooth failed on 1 of 3 image(s): a (ValueError: bad); the others are committed'
    """
    items = sorted(failed.items())
    named = "; ".join(f"{image} ({reason.removeprefix(job + ': ')})" for image, reason in items[:shown])
    more = f"; and {len(items) - shown} more (batchlib/{job}.status lists all)" if len(items) > shown else ""
    return f"{job} failed on {len(items)} of {n_images} image(s): {named}{more}; the others are committed"


@functools.lru_cache(maxsize=1 << 16)
def _container_path(output_dir, image, extension):
    """``<output_dir>/<image><extension>`` (cached: every completeness check of every image asks)."""
    if Path(image).name != image:  # e.g. --image-name ../../x given by hand: never write outside output_dir
        raise ValueError(f"{image!r} is not an image name: its container would leave {output_dir}")
    return Path(output_dir) / f"{image}{extension}"


def _as_tuple(value):
    """A list or set parameter value as a tuple, as Luigi keeps it (hashable)."""
    return tuple(value) if isinstance(value, (list, set)) else value


@functools.lru_cache(maxsize=256)
def _settings_json(settings):
    return json.dumps(dict(settings))


class BatchSize:
    """``max_batch_size`` of an image job: the declared size unless ``[batchlib] max_batch_sizes`` names the job.

    Luigi reads it once per job and worker (when it tells the scheduler how
    to batch the job), so the configuration is read then and not each time a
    task object is built (~0.2 ms, 5,000 times for a plate of 864 images).
    """

    def __init__(self, size):
        self.size = size

    def __get__(self, task, cls):
        configured = batchlib().max_batch_sizes.get(cls.get_task_family())
        return int(configured) if configured else self.size


class SettingsParameter(luigi.DictParameter):
    """A ``{name: value string}`` parameter; frozen once, so a plate job's many upstream tasks share one value.

    Luigi freezes, hashes and serialises a dict parameter on every task it
    builds; a value that is already frozen is kept (its hash is cached) and
    its JSON is computed once.
    """

    @staticmethod
    def freeze(items):
        """Return the frozen mapping of ``items`` (``(name, value)`` pairs): one object per value and process.

        Luigi compares a new task's parameters with those of the tasks it has
        already built; equal mappings that are one object compare at once
        instead of item by item (a fifth of the time to build a plate's tasks).
        """
        items = tuple(items)
        try:
            return _FROZEN_SETTINGS.setdefault(items, FrozenOrderedDict(items))
        except TypeError:  # an unhashable value (given by hand): not shared
            return FrozenOrderedDict(items)

    def normalize(self, x):
        """Keep a frozen mapping as it is; freeze anything else."""
        return x if isinstance(x, FrozenOrderedDict) else self.freeze(super().normalize(x).items())

    def serialize(self, x):
        """JSON of the mapping (as Luigi's ``DictParameter``), computed once per value."""
        return _settings_json(self.normalize(x))


class PlateTask(luigi.Task):
    """Parameters and provenance shared by every task of a plate."""

    plate_dir = luigi.Parameter(description="Folder with the raw images of one plate (never written to)")
    output_dir = luigi.Parameter(description="Folder for containers, plate tables and batchlib/ status")
    gpu = options.gpu()
    ignore_invalid_inputs = options.ignore_invalid_inputs()
    ignore_failed_outputs = options.ignore_failed_outputs()
    recompute_before = luigi.FloatParameter(
        default=0.0, significant=False, description="Outputs made before this time (epoch s) are recomputed"
    )
    upstream_settings = SettingsParameter(
        default={},
        description="Settings of the tasks this one requires, directly or further up ({name: value string}); "
        "the workflow fills it from the validated config, requires() rebuilds the upstream tasks from it",
    )

    upstream = ()
    planner = RawImagePlanner()
    container_extension = ".h5"
    output_format = 1
    """Raise it when what a job writes changes (e.g. a new table column): outputs of the older format go stale."""
    retired_settings = {}
    """``{name: value string}`` of settings the job had and lost, at the value that gives the outputs it makes while
    its replacement is unused (see :meth:`unused_settings`): hashed as before, so finished plates stay complete."""

    @classmethod
    def get_params(cls):
        """Luigi's ``get_params``, cached per class.

        Luigi scans ``dir(cls)`` on every call (~60 us) and calls it about ten
        times per task object; a no-op rerun of an 864-image plate makes ~60,000
        calls. The cache key changes when a parameter is added to the class or a
        base class (e.g. :func:`~luigi_tasks.workflow.add_config_parameters`).
        """
        key = tuple(map(len, map(vars, cls.__mro__)))
        cached = _PARAMS_CACHE.get(cls)
        if cached is None or cached[0] != key:
            cached = _PARAMS_CACHE[cls] = (key, super().get_params())
        return list(cached[1])

    @classmethod
    def get_param_values(cls, params, args, kwargs):
        """Luigi's ``get_param_values``, short when every parameter is given by keyword (as the framework does).

        Luigi's version also formats an error text with the repr of every
        value, and looks up the configuration, on each call (twice per task
        built or looked up; ~20,000 calls for a plate of 864 images). With
        every parameter given, the values are the same: each normalised by
        its parameter, lists as tuples. The first call per class takes
        Luigi's path, which warns about configuration keys the task does not
        consume.
        """
        if args or len(kwargs) != len(params) or not cls.__dict__.get("_batchlib_params_checked"):
            cls._batchlib_params_checked = True
            return super().get_param_values(params, args, kwargs)
        try:
            return [(name, _as_tuple(param.normalize(kwargs[name]))) for name, param in params]
        except KeyError:  # an unknown parameter: Luigi's error
            return super().get_param_values(params, args, kwargs)

    @property
    def logger(self):
        """The ``Workflow.<Job>`` logger."""
        return logging.getLogger(f"Workflow.{self.task_family}")

    @property
    def plate_name(self):
        """Name of the plate folder."""
        return Path(self.plate_dir).name

    @property
    def tables_path(self):
        """Return ``<output_dir>/<plate>_tables.hdf5``."""
        return plate_tables_path(self.output_dir, self.plate_name)

    def container(self, image):
        """Return the output container of ``image``; a name with a path separator is refused."""
        return _container_path(self.output_dir, image, self.container_extension)

    def plan(self):
        """Return the :class:`~luigi_tasks.plan.PlatePlan` of the plate."""
        return self.planner.plan(self.plate_dir).require_valid(self.ignore_invalid_inputs)

    @classmethod
    def own_setting_params(cls):
        """Return ``{name: parameter}`` of the settings this class declares (and reads): all but the framework's."""
        return {name: param for name, param in cls.get_params() if name not in FRAMEWORK_PARAMS}

    @classmethod
    def upstream_setting_params(cls):
        """Return ``{name: parameter}`` of the settings of every class above this one, less its own (sorted)."""
        cached = _UPSTREAM_SETTINGS_CACHE.get(cls)
        if cached is None:
            found = {}
            for upstream in cls.upstream:
                found.update(upstream.upstream_setting_params())
                found.update(upstream.own_setting_params())
            own = cls.own_setting_params()
            cached = _UPSTREAM_SETTINGS_CACHE[cls] = {name: found[name] for name in sorted(found) if name not in own}
        return dict(cached)

    @classmethod
    def unused_settings(cls, values):
        """Return the names of settings that do not shape this class's outputs under ``values``.

        ``values`` maps every setting of the task to its value string. A job whose strategy
        reads a setting only in some configurations names it here for the others, so that
        changing it there leaves this job's outputs, and everything downstream, valid.
        """
        return set()

    @classmethod
    def unused_settings_above(cls, values):
        """Return the names that this class or any class above it leaves unused under ``values``."""
        names = set(cls.unused_settings(values))
        for upstream in cls.upstream:
            names |= upstream.unused_settings_above(values)
        return names

    @classmethod
    def retired_settings_above(cls):
        """Return ``{name: value string}`` of the retired settings of this class and every class above it."""
        retired = {}
        for upstream in cls.upstream:
            retired.update(upstream.retired_settings_above())
        return dict(retired, **cls.retired_settings)

    @classmethod
    def setting_params(cls):
        """Return ``{name: parameter}`` of every setting that shapes this class's outputs: upstream and own."""
        return {**cls.upstream_setting_params(), **cls.own_setting_params()}

    @classmethod
    def serialize_settings(cls, values):
        """Return ``{name: value string}`` of the typed ``values`` (e.g. a validated config) this class needs."""
        return {name: param.serialize(param.normalize(values[name]))
                for name, param in cls.setting_params().items() if name in values}

    @classmethod
    def settings_kwargs(cls, settings):
        """Return the parameters of this class for ``settings`` (``{name: value string}``; extra names are ignored).

        Its own settings (parsed) become its parameters; those of the classes
        above it go into ``upstream_settings``.
        """
        params = cls.own_setting_params()
        own = {name: param.parse(settings[name]) for name, param in params.items() if name in settings}
        names = [name for name in cls.upstream_setting_params() if name in settings]
        upstream = SettingsParameter.freeze((name, settings[name]) for name in names)
        return dict(own, upstream_settings=upstream)

    @classmethod
    def from_settings(cls, settings, **kwargs):
        """Return the task of this class for ``settings``; ``kwargs`` are the run options (and ``image_name``)."""
        return cls(**kwargs, **cls.settings_kwargs(settings))

    def setting_values(self):
        """Return ``{name: value string}`` of every setting of this task's outputs (memoised).

        Its own settings, ``upstream_settings``, and the default of any upstream
        setting that is missing there (a task built by hand).
        """
        if "_setting_values" not in self.__dict__:
            values = {name: param.serialize(param._default) for name, param in self.upstream_setting_params().items()
                      if param._default is not _no_value}
            values.update(self.upstream_settings)
            own = self.own_setting_params()
            values.update({name: param.serialize(getattr(self, name)) for name, param in own.items()})
            self._setting_values = values
        return self._setting_values

    def significant_params(self):
        """Return ``{name: value string}`` of the settings that change this task's outputs: its own and upstream ones.

        This is what the fingerprint hashes and what each output records as its
        parameters. Upstream settings are also covered by the upstream
        fingerprints; listing them here too keeps an output's record complete.
        """
        params, values = self.setting_params(), self.setting_values()
        unused = self.unused_settings_above(values)
        return {name: value for name, value in values.items()
                if name not in unused and (name not in params or params[name].significant)}

    def fingerprint_payload(self):
        """Return what the fingerprint hashes: family, settings, upstream fingerprints (and a raised output format)."""
        params = dict(self.retired_settings_above(), **self.significant_params())
        payload = {"job": self.task_family, "params": params, "upstream": self.upstream_fingerprints()}
        if self.output_format != 1:  # format 1 hashes as before, so earlier outputs stay valid
            payload["format"] = self.output_format
        return payload

    def upstream_fingerprints(self):
        """Return the sorted distinct fingerprints of the tasks this one requires."""
        return sorted({task.fingerprint() for task in luigi.task.flatten(self.requires())})

    def fingerprint(self):
        """Return the fingerprint of this task's outputs (memoised)."""
        if "_fingerprint" not in self.__dict__:
            self._fingerprint = fingerprint(self.fingerprint_payload())
        return self._fingerprint

    def target(self, path, key):
        """Return the dataset target of ``key`` in ``path`` with this task's provenance rules."""
        return dataset_target(
            path, key, fingerprint=self.fingerprint(), accept_failed=self.ignore_failed_outputs,
            not_before=self.recompute_before,
        )

    def upstream_task(self, cls, **kwargs):
        """Return the task of upstream class ``cls`` with this task's run options and settings.

        ``kwargs`` add or replace parameters (``image_name``). The parameters
        common to all tasks of ``cls`` depend on this task's parameters but
        its image only: they are worked out once per process for the tasks
        of one job that differ in their images.
        """
        key = (type(self), cls, self.image_free_params())
        try:
            common = _UPSTREAM_KWARGS.get(key)
        except TypeError:  # an unhashable parameter value: not shared
            key, common = None, None
        if common is None:
            options = {name: getattr(self, name) for name in RUN_OPTIONS}
            common = dict(options, **cls.settings_kwargs(self.setting_values()))
            if key is not None:
                _UPSTREAM_KWARGS[key] = common
        return cls(**dict(common, **kwargs))

    def image_free_params(self):
        """Return ``((name, value), ...)`` of this task's parameters but ``image_name`` (memoised)."""
        if "_image_free_params" not in self.__dict__:
            self._image_free_params = tuple(item for item in self.param_kwargs.items() if item[0] != "image_name")
        return self._image_free_params

    def upstream_tasks(self, cls):
        """Return the tasks of upstream class ``cls`` this task needs (an image job: the same images)."""
        if issubclass(cls, ImageJob):
            return self.upstream_task(cls, image_name=self.image_name)
        return self.upstream_task(cls)

    def requires(self):
        """Require the upstream jobs wired by :func:`wire` (built once per task and :meth:`graph_key`).

        Luigi asks a task for its requirements several times per run (the
        workflow's plan, the worker's traversal, completeness of the
        workflow, the run summary); each answer would build the same task
        objects again.
        """
        key = (self.upstream, self.graph_key())
        cached = self.__dict__.get("_required")
        if cached is None or any(a is not b for a, b in zip(cached[0], key)):
            cached = self._required = (key, [self.upstream_tasks(cls) for cls in self.upstream])
        return cached[1]

    def graph_key(self):
        """Return what this task's requirements depend on besides its parameters and the wiring (None: nothing)."""
        return None

    def on_failure(self, exception):
        """Return a one-line reason for the scheduler and log the full traceback."""
        self.logger.exception("%s failed", self)
        return _one_line(exception)


class ImageJob(PlateTask):
    """A job applied to single images; a Luigi batch may hold many of them.

    Subclasses declare ``outputs`` (keys written into each image container) and
    implement :meth:`process_image`.
    """

    image_name = luigi.Parameter(
        batch_method=join_image_names, description="Raw image stem; ';'-joined when Luigi batches tasks"
    )

    max_batch_size = BatchSize(32)
    outputs = ()
    uses_gpu = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        declared = vars(cls).get("max_batch_size")
        if isinstance(declared, int):  # e.g. ``max_batch_size = 64``: still overridden by [batchlib] max_batch_sizes
            cls.max_batch_size = BatchSize(declared)

    @property
    def image_names(self):
        """Stems of the images of this (batch) task."""
        return self.image_name.split(IMAGE_SEPARATOR)

    @property
    def resources(self):
        """Scheduler resources: ``gpu`` for GPU jobs run with ``--gpu``.

        Containers are protected by file locks (:func:`~luigi_tasks.io.container_transaction`),
        not by per-file resources: Luigi batches only tasks with equal resources.
        """
        return {"gpu": 1} if self.gpu and self.uses_gpu else {}

    def output_keys(self):
        """Return the keys this job writes into each container."""
        return list(self.outputs)

    def fingerprint(self):
        """Return the fingerprint of this task's outputs (memoised; shared by the images of a plate).

        The payload of :meth:`PlateTask.fingerprint_payload` names no image:
        tasks of one job that differ only in ``image_name`` and have the same
        upstream fingerprints have the same fingerprint, hashed once per
        process. A job that overrides ``fingerprint_payload`` hashes its own.
        """
        if "_fingerprint" in self.__dict__ or type(self).fingerprint_payload is not PlateTask.fingerprint_payload:
            return super().fingerprint()
        upstream = tuple(self.upstream_fingerprints())
        key = (type(self), self.output_format, self.image_free_params(), upstream)
        try:
            self._fingerprint = _IMAGE_FINGERPRINTS[key]
        except KeyError:
            self._fingerprint = _IMAGE_FINGERPRINTS[key] = super().fingerprint()
        except TypeError:  # an unhashable parameter value: no sharing
            return super().fingerprint()
        return self._fingerprint

    @classmethod
    def shares_fingerprint(cls):
        """Return True if the tasks of this job on the images of a plate all have one fingerprint.

        So they do when neither this job nor an image job above it overrides
        ``fingerprint_payload``: :meth:`PlateTask.fingerprint_payload` names
        no image, and plate jobs above are one task for all images.
        """
        return cls.fingerprint_payload is PlateTask.fingerprint_payload and all(
            up.shares_fingerprint() for up in cls.upstream if issubclass(up, ImageJob))

    def targets_for(self, image):
        """Return the targets of one image."""
        return [self.target(self.container(image), key) for key in self.output_keys()]

    def output(self):
        """Return the targets of all images of this task."""
        return [target for image in self.image_names for target in self.targets_for(image)]

    def complete(self):
        """Return True if every output of every image of this task is complete (what its targets say).

        One look at each container's index instead of a target per key; a job
        that declares other outputs (overrides ``output`` or ``targets_for``)
        gets Luigi's check of its targets.
        """
        if not self.outputs_are_keys(complete=False):
            return super().complete()
        return all(self.image_complete(image) for image in self.image_names)

    @classmethod
    def outputs_are_keys(cls, complete=True):
        """Return True if the outputs of this job are its output keys in each image's container, checked by key.

        False if it overrides ``output``, ``targets_for`` (or ``complete``).
        """
        names = ("output", "targets_for") + (("complete",) if complete else ())
        return all(getattr(cls, name) is getattr(ImageJob, name) for name in names)

    def image_complete(self, image):
        """Return True if all outputs of ``image`` are complete (one look at the container's index)."""
        if not self.outputs_are_keys(complete=False):
            return all(target.exists() for target in self.targets_for(image))
        return outputs_done(self.container(image), self.output_keys(), fingerprint=self.fingerprint(),
                            accept_failed=self.ignore_failed_outputs, not_before=self.recompute_before)

    def failed_inputs(self, image):
        """Return the root causes (``"<Job>: <error>"``, each once) of upstream failure records of ``image``."""
        causes = []
        for task in luigi.task.flatten(self.requires()):
            if isinstance(task, ImageJob):
                causes += [root_cause(t.stamp().error) for t in task.targets_for(image) if t.failed()]
        return list(dict.fromkeys(causes))

    def run(self):
        """Process every image of the task that is not complete yet."""
        self.run_images()

    def run_images(self):
        """Process the images of this task one by one, committing each.

        An image that fails gets a failure record (its reason, stated once) and
        the others go on. At the end the task raises :class:`FailedOutputsError`
        naming every failed image, unless ``ignore_failed_outputs`` lets the
        failure records stand in for the outputs. Luigi then marks the batch
        failed, and :mod:`~luigi_tasks.luigi_fixes` reports its complete images
        done, so their next steps run.
        """
        self._select_device()
        started, self._job_seconds = time.perf_counter(), 0.0
        todo = [image for image in self.image_names if not self.image_complete(image)]
        failed, unrecorded, done = {}, {}, []
        commits = BackgroundCommits()
        for number, image in enumerate(todo, 1):
            self.set_status_message(f"{image} ({number}/{len(todo)})")
            try:
                error = self._run_one(image, commits)
            except Exception as exc:  # noqa: BLE001 - the transaction failed (copy, lock, disk): no record written
                self.logger.error("%s: %s failed outside the job", self.task_family, image, exc_info=True)
                error = unrecorded[image] = f"{self.task_family}: {_one_line(exc)}"
            failed.update({image: error} if error else {})
            done += [] if error else [image]
            self.logger.info("%s %s: %s", self.task_family, "failed" if error else "done", image)
            self.set_progress_percentage(int(100 * number / len(todo)))
            report_progress(self)
        lost = self._failed_commits(commits.close(), done)
        failed.update(lost)
        unrecorded.update(lost)
        done = [image for image in done if image not in lost]
        update_status(self.output_dir, self.task_family, state="processed", failed=failed, succeeded=done)
        record_timing(self.output_dir, self.task_family, time.perf_counter() - started, len(todo), self._job_seconds)
        to_raise = unrecorded if self.ignore_failed_outputs else failed  # a failure record stands in only then
        if to_raise:
            raise FailedOutputsError(_failure_message(self.task_family, to_raise, len(todo)))

    def _failed_commits(self, failures, done):
        """Return ``{image: reason}`` of the background commits that failed."""
        by_container = {str(self.container(image)): image for image in done}
        for path, error in failures.items():
            self.logger.error("%s: committing %s failed: %s", self.task_family, path, _one_line(error))
        return {by_container.get(str(path), str(path)): f"{self.task_family}: committing failed: {_one_line(error)}"
                for path, error in failures.items()}

    def _select_device(self):
        if self.uses_gpu and not self.gpu:
            os.environ["CUDA_VISIBLE_DEVICES"] = "-1"

    def _run_one(self, image, commits=None):
        """Compute ``image`` in one step transaction; return None, or the reason it failed (recorded)."""
        upstream = self.failed_inputs(image)
        with step_transaction(self.container(image), self.task_family, commits=commits) as step:
            if self.image_complete(image):  # committed by another process while we waited for the lock
                step.cancel()  # nothing to commit
                self.logger.info("%s: %s was completed by another process", self.task_family, image)
                return None
            if upstream:
                reason = UPSTREAM_FAILED + "; ".join(upstream)
                self._record_failure(step, reason)
                return reason
            start = time.perf_counter()
            try:
                self.process_image(image, step.part)
                self._job_seconds += time.perf_counter() - start
                self._check_outputs(image, step.part)
            except Exception as error:  # noqa: BLE001 - one image fails, the others go on
                reason = f"{self.task_family}: {_one_line(error)}"
                self.logger.error("%s failed on %s: %s", self.task_family, image, _one_line(error), exc_info=True)
                self._record_failure(step, reason)
                return reason
            self._stamp(step)
        return None

    def process_image(self, image, output_file):
        """Compute the outputs of ``image`` into ``output_file`` (a new, empty part file of its container)."""
        raise NotImplementedError

    def _check_outputs(self, image, output_file):
        with open_file(output_file, "r") as container:
            missing = [key for key in self.output_keys() if key not in container]
        if missing:
            raise RuntimeError(f"{self.task_family} did not write {missing} for {image}")

    def _stamp(self, step):
        with open_file(step.part, "a") as part:
            write_params(part, self.output_keys(), self.significant_params())
        step.record({key: Stamp.now(self.fingerprint()) for key in self.output_keys()})

    def _record_failure(self, step, reason):
        """Replace whatever the job wrote for this image by a failure record of its keys."""
        step.discard_part(self.output_keys())
        step.record({key: Stamp.now(self.fingerprint(), failed=True, error=reason) for key in self.output_keys()})


class BatchJob(ImageJob):
    """A batchlib-style job reading raw image files.

    Implement ``compute(self, input_files, output_files, **settings)``:
    ``input_files`` are raw image paths, ``output_files`` new, empty part files
    of the matching containers, and ``settings`` the job's own settings by name.
    Luigi's ``run()`` is the framework's (:meth:`ImageJob.run`); it calls
    ``compute`` once per image. A subclass that defines ``run`` is refused.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "run" in vars(cls):
            raise TypeError(f"{cls.__name__} defines run(): a BatchJob implements compute(input_files, output_files, "
                            "**settings); Luigi's run() belongs to the framework (ImageJob.run)")

    def compute(self, input_files, output_files, **settings):
        """The job's computation: write the outputs of ``input_files`` into ``output_files``."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement compute(input_files, output_files, **settings)")

    def job_kwargs(self):
        """Return the job's own settings as keyword arguments of :meth:`compute`."""
        return {name: getattr(self, name) for name in self.own_setting_params()}

    def input_file(self, image):
        """Return the raw file of ``image``."""
        return self.plan().images[image]

    def process_image(self, image, output_file):
        """Call the job's ``compute`` with one input and one output file."""
        self.compute([self.input_file(image)], [str(output_file)], **self.job_kwargs())


class BatchJobOnContainer(BatchJob):
    """A batchlib-style job reading keys from the image containers.

    Declare ``inputs`` (keys that must exist) and ``outputs``; ``input_files``
    are the committed containers (read them only), ``output_files`` their
    new, empty part files (write there; the container links to them once committed).
    """

    inputs = ()

    def input_file(self, image):
        """Return the committed container of ``image``."""
        return str(self.container(image))

    def process_image(self, image, output_file):
        """Check the input keys, then call the job's ``compute``."""
        with open_file(self.input_file(image), "r") as container:
            missing = [key for key in self.inputs if key not in container]
        if missing:
            raise KeyError(f"{self.input_file(image)} lacks {missing}; run the jobs that write them first")
        super().process_image(image, output_file)


class PlateJob(PlateTask):
    """A plate-level job over all valid images; writes ``<plate>_tables.hdf5``.

    Declare ``outputs`` (keys of the plate tables file) and implement
    :meth:`run_plate`. Extra files (CSV, PNG, HTML) go in :meth:`output_files`.
    """

    outputs = ()

    def images(self):
        """Return the names of the valid images of the plate."""
        return self.plan().image_names

    def graph_key(self):
        """The plate's plan: a plate job requires the image tasks of its images."""
        return self.planner.plan(self.plate_dir)

    def upstream_tasks(self, cls):
        """Image jobs: one task per image; plate jobs: the job itself."""
        if issubclass(cls, ImageJob):
            return [self.upstream_task(cls, image_name=image) for image in self.images()]
        return self.upstream_task(cls)

    def fingerprint_payload(self):
        """Include the images covered, so new images make the outputs stale."""
        return dict(super().fingerprint_payload(), images=list(self.images()))

    def upstream_fingerprints(self):
        """The fingerprints of the required tasks, from one image per image job whose images share one.

        The same list as :meth:`PlateTask.upstream_fingerprints` (see
        :meth:`ImageJob.shares_fingerprint`), without building a task per image.
        """
        tasks = []
        for cls in self.upstream:
            if issubclass(cls, ImageJob) and cls.shares_fingerprint():
                tasks += [self.upstream_task(cls, image_name=image) for image in self.images()[:1]]
            else:
                tasks += luigi.task.flatten(self.upstream_tasks(cls))
        return sorted({task.fingerprint() for task in tasks})

    def output_files(self):
        """Return paths of plain files this job writes (besides table keys)."""
        return []

    def output(self):
        """Return the table targets and the plain files."""
        targets = [self.target(self.tables_path, key) for key in self.outputs]
        return targets + [luigi.LocalTarget(path) for path in self.output_files()]

    def failed_images(self):
        """Return ``{image: root cause}`` for images whose upstream outputs are failure records."""
        failed = {}
        for cls in self.upstream:
            if issubclass(cls, ImageJob):
                for task in self.upstream_tasks(cls):
                    causes = [root_cause(t.stamp().error) for t in task.targets_for(task.image_name) if t.failed()]
                    failed.update({task.image_name: "; ".join(dict.fromkeys(causes))} if causes else {})
        return failed

    def succeeded_images(self):
        """Return the images to aggregate: valid and not failed."""
        failed = self.failed_images()
        if failed and not self.ignore_failed_outputs:
            raise FailedOutputsError(
                f"{len(failed)} image(s) failed: {', '.join(sorted(failed))}; "
                "fix them or rerun with --ignore-failed-outputs"
            )
        return [image for image in self.images() if image not in failed]

    def run(self):
        """Compute the plate outputs in one transaction of the tables file."""
        started = time.perf_counter()
        images, failed = self.succeeded_images(), self.failed_images()
        partial = f"{len(failed)} failed image(s) left out: {', '.join(sorted(failed))}" if failed else ""
        report_progress(self, force=True)
        viewer_name = plate_viewer_tables_path(self.output_dir, self.plate_name)
        with container_transaction(self.tables_path, also_as=[viewer_name]) as tmp:
            if self.complete():  # committed by another process while we waited for the lock
                Path(tmp).unlink(missing_ok=True)
                self.logger.info("%s was completed by another process", self.task_family)
                return
            for path in self.output_files():  # written only by this job, under this lock
                remove_stale_temporaries(path)
            job_started = time.perf_counter()
            self.run_plate(images, tmp)
            job_seconds = time.perf_counter() - job_started
            with open_file(tmp, "a") as container:
                # a table that leaves images out is complete only for runs that ignore failed outputs
                stamps = {key: Stamp.now(self.fingerprint(), failed=bool(failed), error=partial) for key in self.outputs}
                write_stamps(container, stamps, params=self.significant_params())
        left_out = {image: UPSTREAM_FAILED + cause for image, cause in failed.items()}
        update_status(self.output_dir, self.task_family, state="processed", failed=left_out, succeeded=images)
        record_timing(self.output_dir, self.task_family, time.perf_counter() - started, len(images), job_seconds)

    def run_plate(self, images, tables_file):
        """Compute the outputs from ``images`` into ``tables_file`` (temporary)."""
        raise NotImplementedError


@PlateTask.event_handler(luigi.Event.TIMEOUT)
@PlateTask.event_handler(luigi.Event.PROCESS_FAILURE)
def record_killed_task(task, error_message):
    """Record in the job's status that the worker killed it (timeout) or its process died.

    Luigi calls this in the worker process that started the task; the
    scheduler gets the same message as the task's failure reason.
    """
    images = [name for name in getattr(task, "image_names", ()) if not task.image_complete(name)]
    task.logger.error("%s", error_message)
    update_status(task.output_dir, task.task_family, state="failed", failed={name: error_message for name in images},
                  last_error=error_message)


def wire(job, *upstream):
    """Make ``job`` require ``upstream`` jobs.

    This is the only place where steps learn about each other; a workflow
    module calls it once per step. It adds no parameter to ``job``: the
    settings of the upstream jobs reach it in ``upstream_settings``. A step
    gets a lower scheduler priority than its upstream steps, so Luigi finishes
    a step on all ready images before the next one and can batch them (one
    model load per batch, few scheduler calls).
    """
    job.upstream = tuple(upstream)
    _UPSTREAM_SETTINGS_CACHE.clear()
    _IMAGE_FINGERPRINTS.clear()
    _UPSTREAM_KWARGS.clear()
    job.priority = min((cls.priority for cls in upstream), default=STEP_PRIORITY) - 1
    return job


def wire_steps(steps, planner):
    """Wire a workflow's steps and give them its planner.

    ``steps`` are ``(job, *upstream)`` rows in dependency order (see :func:`wire`).
    """
    for job, *upstream in steps:
        wire(job, *upstream)
        job.planner = planner
