"""Configuration files: configobj validated against a configspec.

A config is read once, at the command line, validated (types, ranges,
defaults filled in) and flattened to ``section_key`` names that become task
parameters. Values given on the command line override the file.

Besides configobj's checks a configspec may use ``path`` (a file or folder),
``path_list`` (a list of them) and ``name_or_path`` (a name, or a path when it
holds a ``/``). A relative path written in a config file is taken relative to
that file's folder, so a config works from any working directory (cron); one
given on the command line stays relative to the working directory.
"""
import os
from pathlib import Path

import luigi
from configobj import ConfigObj, ConfigObjError, flatten_errors, get_extra_values
from validate import Validator

from .errors import ConfigError

__all__ = ["load_config", "flat_name", "spec_entries", "spec_parameter"]


def flat_name(section, key):
    """Return the parameter name of ``key`` in ``section``.

    Examples
    --------
    >>> flat_name("infection", "threshold_factor")
    'infection_threshold_factor'
    """
    return f"{section}_{key}" if section else key


def _check_path(value, *args, **kwargs):
    return VALIDATOR.functions["string"](value, *args, **kwargs)


def _check_path_list(value, *args, **kwargs):
    return VALIDATOR.functions["force_list"](value, *args, **kwargs)


VALIDATOR = Validator({"path": _check_path, "name_or_path": _check_path, "path_list": _check_path_list})
"""configobj's checks and the path checks of this module."""

_PATH_CHECKS = {"path", "name_or_path", "path_list"}


def _relative_to(folder, value, check):
    """Return ``value`` of a path ``check`` with a relative path put under ``folder``.

    Examples
    --------
    >>> _relative_to(Path("/etc/plates"), "correctors/a.h5", "path")
    '/etc/plates/correctors/a.h5'
    >>> _relative_to(Path("/etc/plates"), ["/data/a.h5", "b.h5"], "path_list")
    ['/data/a.h5', '/etc/plates/b.h5']
    >>> _relative_to(Path("/etc/plates"), "vero_nuclei_v8", "name_or_path"), _relative_to(Path("/x"), "", "path")
    ('vero_nuclei_v8', '')
    """
    if isinstance(value, (list, tuple)):
        return [_relative_to(folder, item, check) for item in value]
    text = os.path.expanduser(str(value).strip())
    if not text or os.path.isabs(text) or (check == "name_or_path" and "/" not in text and os.sep not in text):
        return text
    return str(folder / text)


def _resolve_paths(config, spec_path, folder):
    """Put the relative paths a config file gives under the file's ``folder`` (in place)."""
    for section, key, check in spec_entries(spec_path):
        node, name = (config.get(section, {}) if section else config), _check_name(check)
        if key in node and name in _PATH_CHECKS:
            node[key] = _relative_to(folder, node[key], name)


def _check_name(check):
    return VALIDATOR._parse_with_caching(check)[0]


def _read(path, **kwargs):
    try:
        return ConfigObj(str(path) if path is not None else None, **kwargs)
    except (ConfigObjError, OSError) as error:
        raise ConfigError(f"{path}: cannot be read as a config file ({error})") from error


def spec_entries(spec_path):
    """Return ``[(section, key, spec_string)]`` for every value of a configspec."""
    spec = _read(spec_path, list_values=False, _inspec=True)
    entries = []
    for section in spec.sections:
        entries += [(section, key, spec[section][key]) for key in spec[section].scalars]
    entries += [("", key, spec[key]) for key in spec.scalars]
    return entries


def _describe(spec_string):
    """Return a configspec check without its default.

    Examples
    --------
    >>> _describe("float(min=0.0, max=100.0, default=4.8)")
    'float(min=0.0, max=100.0)'
    >>> _describe("option('a', 'b', default='a')")
    "option('a', 'b')"
    >>> _describe("integer(default=3)")
    'integer'
    """
    head, _, tail = spec_string.partition("default=")
    if not tail:
        return spec_string
    head = head.rstrip(", ")
    if head.endswith("("):
        return head[:-1]
    return head + ")" if "(" in head else head


def _raise_errors(config, result, spec_path, source):
    problems = []
    for sections, key, error in flatten_errors(config, result):
        section = ".".join(sections)
        where = f"[{section}] {key}" if section else key
        spec = _read(spec_path, list_values=False, _inspec=True)
        node = spec
        for name in sections:
            node = node[name]
        allowed = _describe(node[key]) if key in node else "see the configspec"
        reason = error if error else "missing"
        problems.append(f"{where} = {config_value(config, sections, key)!r}: {reason}; allowed: {allowed}")
    extras = [".".join(sections + (name,)) for sections, name in get_extra_values(config)]
    problems += [f"{name}: unknown setting (not in {Path(spec_path).name})" for name in extras]
    if problems:
        raise ConfigError(f"{source}: invalid configuration\n  " + "\n  ".join(problems))


def config_value(config, sections, key):
    """Return the raw value at ``sections``/``key`` of a ConfigObj (None if absent)."""
    node = config
    for name in sections:
        node = node.get(name, {})
    return node.get(key) if hasattr(node, "get") else None


def load_config(config_path, spec_path, overrides=None):
    """Load, validate and flatten a config file.

    Parameters
    ----------
    config_path : str or Path or None
        The configobj file; None uses the defaults of the spec.
    spec_path : str or Path
        The configspec giving types, ranges and defaults.
    overrides : dict, optional
        ``{flat_name: string}`` from the command line; they win over the file.

    Returns
    -------
    values : dict
        ``{flat_name: typed value}`` for every entry of the spec.

    Raises
    ------
    ConfigError
        Naming the file, each wrong key, its value and the allowed values.
    """
    if config_path is not None and not Path(config_path).is_file():
        raise ConfigError(f"{config_path}: config file not found (give an existing file with --config)")
    config = _read(config_path, configspec=str(spec_path), file_error=False)
    if config_path is not None:
        _resolve_paths(config, spec_path, Path(config_path).resolve().parent)
    by_name = {flat_name(section, key): (section, key) for section, key, _ in spec_entries(spec_path)}
    lists = {flat_name(section, key) for section, key, check in spec_entries(spec_path) if _is_list(check)}
    for name, value in (overrides or {}).items():
        if name not in by_name:
            raise ConfigError(f"--{name.replace('_', '-')}: unknown setting")
        section, key = by_name[name]
        if name in lists and isinstance(value, str):  # a,b on the command line, as in the file
            value = [item.strip() for item in value.split(",") if item.strip()]
        (config.setdefault(section, {}) if section else config)[key] = value
    result = config.validate(VALIDATOR, preserve_errors=True)
    _raise_errors(config, result, spec_path, config_path or "command line")
    return {name: (config[section][key] if section else config[key]) for name, (section, key) in by_name.items()}


def _is_list(check):
    """Return True if a configspec check takes a list.

    Examples
    --------
    >>> _is_list("force_list(default=list())"), _is_list("string(default='')")
    (True, False)
    """
    return _check_name(check) in ("string_list", "force_list", "path_list")


_PARAMETER_TYPES = {
    "integer": luigi.IntParameter,
    "float": luigi.FloatParameter,
    "boolean": luigi.BoolParameter,
    "string": luigi.Parameter,
    "string_list": luigi.ListParameter,
    "force_list": luigi.ListParameter,
    "path": luigi.Parameter,
    "name_or_path": luigi.Parameter,
    "path_list": luigi.ListParameter,
}
"""Luigi parameter class of each configspec check (``option`` is a ChoiceParameter)."""


def _spec_comment(spec_path, section, key):
    spec = _read(spec_path, list_values=False, _inspec=True)
    node = spec[section] if section else spec
    lines = [line.lstrip("# ").rstrip() for line in node.comments.get(key, []) if line.strip()]
    return " ".join(lines)


def spec_parameter(spec_path, section, key, **kwargs):
    """Return the Luigi parameter of configspec entry ``[section] key``: type, default and help from the spec.

    A task declares the settings it reads with this, so the configspec stays the only place where a
    setting's type, default, range and help are written. ``kwargs`` go to the parameter (e.g.
    ``significant=False``).

    Examples
    --------
    >>> from pathlib import Path
    >>> import tempfile
    >>> spec = Path(tempfile.mkdtemp()) / "spec.ini"
    >>> _ = spec.write_text("[smooth]\\n# Gaussian sigma (px)\\nsigma = float(min=0.0, default=2.0)\\n")
    >>> param = spec_parameter(spec, "smooth", "sigma")
    >>> type(param).__name__, param._default, param.description
    ('FloatParameter', 2.0, 'Gaussian sigma (px) [smooth] sigma = float(min=0.0)')
    """
    entries = {(s, k): check for s, k, check in spec_entries(spec_path)}
    check = entries[(section, key)]
    name, args, _, _ = VALIDATOR._parse_with_caching(check)
    default = VALIDATOR.get_default_value(check)
    where = f"[{section}] {key}" if section else key
    description = " ".join(filter(None, [_spec_comment(spec_path, section, key), f"{where} = {_describe(check)}"]))
    kwargs.setdefault("description", description)
    if name == "option":
        return luigi.ChoiceParameter(choices=list(args), default=default, **kwargs)
    if _is_list(check):
        default = tuple(default)
    return _PARAMETER_TYPES[name](default=default, **kwargs)
