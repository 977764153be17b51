"""StarDist nucleus models: the bundled model and how a model spec is resolved.

:func:`load_stardist_model` accepts, in this order of resolution:

1. the name of a model bundled with the package (:data:`BUNDLED_MODEL`,
   living in ``antibodies/models/<name>/``);
2. a path to a model folder (``config.json``, ``thresholds.json``,
   ``weights_best.h5``, and :data:`MODEL_INPUT` if the model sees binned images);
3. the name (or alias) of a StarDist pretrained model already present in the
   local Keras cache (``$KERAS_HOME`` or ``~/.keras``, sub-folder
   ``models/StarDist2D/<name>/``), loaded without any network access.

Anything else raises :class:`ModelNotFoundError`.  stardist and tensorflow
are imported only when a model is actually loaded.
"""
import functools
import json
import logging
import os
from pathlib import Path

from luigi_tasks.config import load_config
from luigi_tasks.errors import BatchlibError
from luigi_tasks.log import native_output_to_log

from antibodies.settings import SPEC_PATH

__all__ = ["BUNDLED_MODEL", "BUNDLED_MODELS_DIR", "MODEL_INPUT", "ModelNotFoundError", "cell_model_binning",
           "load_stardist_model", "nuclei_model_binning", "resolve_model_folder"]

logger = logging.getLogger(__name__)

BUNDLED_MODEL = load_config(None, SPEC_PATH)["nuclei_model"]
"""Name of the nucleus model shipped with the package (the default): the configspec's ``[nuclei] model``."""

BUNDLED_MODELS_DIR = Path(__file__).resolve().parent
"""Folder holding the bundled model folders."""

_MODEL_FILES = ("config.json", "thresholds.json", "weights_best.h5")
MODEL_INPUT = "input.json"
"""File of a model folder that says how its input is made: ``{"bin": <pixels per side>}``.

A cell model always has one; a nucleus model without it sees the image at full resolution."""


class ModelNotFoundError(BatchlibError, FileNotFoundError):
    """Raised when a model spec resolves to no usable StarDist model folder (a user error: message and fix)."""


def _is_model_folder(path):
    """Return True if ``path`` is a folder with a StarDist config and weights."""
    path = Path(path)
    return (path / "config.json").is_file() and any(path.glob("weights*.h5"))


def _keras_cache_roots():
    """Return the Keras cache folders StarDist's ``from_pretrained`` downloads into."""
    roots = []
    if os.environ.get("KERAS_HOME"):
        roots.append(Path(os.environ["KERAS_HOME"]))
    roots.append(Path.home() / ".keras")
    roots.append(Path("/tmp") / ".keras")  # keras' fallback when the home cache is read-only
    return list(dict.fromkeys(roots))


def _pretrained_key(spec):
    """Map a StarDist pretrained alias (e.g. 'Versatile (fluorescent nuclei)') to its key."""
    aliases = {
        "Versatile (fluorescent nuclei)": "2D_versatile_fluo",
        "Versatile (H&E nuclei)": "2D_versatile_he",
        "DSB 2018 (from StarDist 2D paper)": "2D_paper_dsb2018",
    }
    return aliases.get(spec, spec)


def _pretrained_candidates(spec):
    """Return the cache folders where a downloaded pretrained model would live.

    Keras >= 3.6 extracts ``<key>.zip`` into ``<key>/<key>_extracted`` (and
    StarDist adds a ``<key>/<key>`` link); older Keras extracts directly into
    ``<key>/``.
    """
    key = _pretrained_key(spec)
    candidates = []
    for root in _keras_cache_roots():
        base = root / "models" / "StarDist2D" / key
        candidates += [base / key, base / f"{key}_extracted", base]
    return candidates


def resolve_model_folder(spec):
    """Return the model folder a spec refers to, without loading anything.

    Parameters
    ----------
    spec : str or os.PathLike
        Bundled model name, model folder path, or cached pretrained name.

    Returns
    -------
    pathlib.Path
        Folder containing ``config.json`` and weights.

    Raises
    ------
    ModelNotFoundError
        If no folder matches; the message lists the places searched and how
        to provide a model.
    """
    text = str(spec).strip()
    searched = []
    bundled = BUNDLED_MODELS_DIR / text
    if text and "/" not in text and os.sep not in text:
        searched.append(bundled)
        if _is_model_folder(bundled):
            return bundled
    user_path = Path(text).expanduser()
    searched.append(user_path)
    if text and _is_model_folder(user_path):
        return user_path.resolve()
    for candidate in _pretrained_candidates(text):
        searched.append(candidate)
        if _is_model_folder(candidate):
            return candidate
        nested = [p for p in candidate.glob("*") if p.is_dir() and _is_model_folder(p)] if candidate.is_dir() else []
        if len(nested) == 1:
            return nested[0]
    raise ModelNotFoundError(_not_found_message(text, searched))


def _not_found_message(spec, searched):
    """Return the explanation raised when a model spec cannot be resolved."""
    places = "\n".join(f"  - {path}" for path in dict.fromkeys(searched))
    return (
        f"StarDist model {spec!r} not found. Searched:\n{places}\n"
        f"To fix: set `model` in the config to the bundled model {BUNDLED_MODEL!r}, or to the path of a "
        f"model folder containing {', '.join(_MODEL_FILES)} (e.g. one written by "
        f"`python -m antibodies.training.train_nuclei_model`), or copy a StarDist pretrained model folder "
        f"into the Keras cache (~/.keras/models/StarDist2D/<name>/). Pretrained models cannot be downloaded "
        f"here (no network access)."
    )


@functools.lru_cache(maxsize=8)
def _load_cached(folder):
    """Load (once per process) the StarDist2D model stored in ``folder``.

    TensorFlow's native notices and StarDist's ``print`` lines go to the log
    (logger ``Workflow.tensorflow``), not to the terminal.
    """
    folder = Path(folder)
    logger.info("loading StarDist model from %s", folder)
    with native_output_to_log(logging.getLogger("Workflow.tensorflow")):
        from stardist.models import StarDist2D

        model = StarDist2D(None, name=folder.name, basedir=str(folder.parent))
    model.basedir = None  # read-only: never write thresholds or weights back into the folder
    model.input_binning = nuclei_model_binning(folder)
    _predict_without_loop(model.keras_model)
    return model


def _predict_without_loop(keras_model):
    """Make ``keras_model.predict`` run one batch directly (``predict_on_batch``).

    StarDist predicts one image (or tile) per call; Keras 3's ``predict``
    builds a data iterator and step loop around every call, which costs about
    as much as the network itself on a 1024 x 1024 image on one core.
    """
    def predict(x, **_):
        return keras_model.predict_on_batch(x)

    keras_model.predict = predict


def load_stardist_model(spec=BUNDLED_MODEL):
    """Load a StarDist2D model from a bundled name, a folder, or the local cache.

    The result is cached per process: repeated calls with a spec resolving to
    the same folder return the same model object.

    Parameters
    ----------
    spec : str or os.PathLike
        ``"vero_nuclei_v8"`` (bundled, default; ``"vero_nuclei_v1"`` to ``"vero_nuclei_v7"`` are also
        bundled), a path to a model folder,
        or the name of a StarDist pretrained model present in the local
        Keras cache (e.g. ``"2D_versatile_fluo"``).

    Returns
    -------
    stardist.models.StarDist2D
        The loaded model (its ``thresholds`` come from ``thresholds.json``).

    Raises
    ------
    ModelNotFoundError
        If the spec cannot be resolved (message names the spec, the places
        searched and how to provide a model).
    """
    return _load_cached(str(resolve_model_folder(spec)))


def cell_model_binning(folder):
    """Return how many pixels per side a cell model's input bins (``bin`` of its :data:`MODEL_INPUT`).

    Raises
    ------
    ModelNotFoundError
        If the folder has no readable input description, or its ``config.json`` does not take
        two channels (it is not a cell model).
    """
    path = Path(folder) / MODEL_INPUT
    try:
        channels = json.loads((Path(folder) / "config.json").read_text())["n_channel_in"]
        if channels != 2:
            raise ValueError(f"its config.json takes {channels} channel(s), a cell model 2 (nuclei and serum)")
        return _read_binning(path)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ModelNotFoundError(
            f"{path}: not a cell model ({type(error).__name__}: {error}). To fix: set [cells] model to a bundled "
            f"cell model (a vero_cells_* folder in {BUNDLED_MODELS_DIR}) or to a folder written by "
            f'`python -m antibodies.training.train_cell_model`, which holds {MODEL_INPUT} (e.g. {{"bin": 4}}) '
            "beside config.json and weights_best.h5."
        ) from None


def nuclei_model_binning(folder):
    """Return how many pixels per side a nucleus model's input bins: ``bin`` of its :data:`MODEL_INPUT`, else 1.

    Raises
    ------
    ModelNotFoundError
        If the folder holds a :data:`MODEL_INPUT` that cannot be read.
    """
    path = Path(folder) / MODEL_INPUT
    if not path.exists():
        return 1
    try:
        return _read_binning(path)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ModelNotFoundError(
            f"{path}: unreadable input description ({type(error).__name__}: {error}). To fix: write "
            '{"bin": N} into it (N pixels per side the model\'s input is binned), or remove it for a model '
            "trained on full-resolution images."
        ) from None


def _read_binning(path):
    """``bin`` of the input description ``path``: a positive integer (ValueError otherwise)."""
    factor = int(json.loads(Path(path).read_text())["bin"])
    if factor < 1:
        raise ValueError(f"bin must be a positive integer, got {factor}")
    return factor
