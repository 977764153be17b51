"""Open h5 and n5 containers through one API.

A container is chosen by its file extension: ``.h5``/``.hdf5`` open with h5py,
``.n5`` with z5py. Both return objects with the same group/dataset/``attrs``
interface, so the rest of the framework never asks which backend it has.
"""
import os

__all__ = ["H5_EXTENSIONS", "N5_EXTENSIONS", "open_file", "is_h5", "is_n5", "supported_extensions"]

H5_EXTENSIONS = (".h5", ".hdf5", ".hdf")
N5_EXTENSIONS = (".n5",)


def _suffix(path):
    """``Path(path).suffix.lower()`` without building a Path (completeness checks ask thousands of times).

    Examples
    --------
    >>> [_suffix(p) for p in ("a/b.H5", "c.n5/", ".h5", "d.tar.hdf5", "e")]
    ['.h5', '.n5', '', '.hdf5', '']
    """
    return os.path.splitext(os.path.basename(os.path.normpath(os.fspath(path))))[1].lower()


def is_h5(path):
    """Return True if ``path`` names an HDF5 container."""
    return _suffix(path) in H5_EXTENSIONS


def is_n5(path):
    """Return True if ``path`` names an N5 container."""
    return _suffix(path) in N5_EXTENSIONS


def supported_extensions():
    """Return all container extensions :func:`open_file` understands."""
    return H5_EXTENSIONS + N5_EXTENSIONS


def open_file(path, mode="r"):
    """Open the container at ``path``.

    Parameters
    ----------
    path : str or Path
        File (h5) or folder (n5) name; the extension picks the backend.
    mode : {'r', 'a', 'w'}
        Read-only, read/write (create if missing) or truncate.

    Returns
    -------
    file : h5py.File or z5py.File
        Usable as a context manager.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "x.h5")
    >>> with open_file(path, "a") as f:
    ...     _ = f.create_dataset("data", data=np.zeros(3))
    >>> with open_file(path) as f:
    ...     "data" in f
    True
    """
    path = os.fspath(path)
    if is_h5(path):
        import h5py

        return h5py.File(path, mode)
    if is_n5(path):
        import z5py

        return z5py.File(path, mode, use_zarr_format=False)
    raise ValueError(
        f"{path}: unknown container extension; use one of {', '.join(supported_extensions())}"
    )
