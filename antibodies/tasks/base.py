"""What every assay job shares: reading channels, knowing the sera of the plate, recording plain files."""
import os
from pathlib import Path

import h5py

from luigi_tasks import BatchJobOnContainer, PlateJob
from luigi_tasks.io import open_file, read_image, read_table, write_image

from ..inputs import sera_present
from ..keys import CHANNEL_COLORS

__all__ = ["AssaySera", "AssayImageJob", "AssayPlateJob", "read_images", "write_label_image", "write_intensity_image", "read_tables",
           "record_files"]


def read_images(path, keys):
    """Return ``{key: (M, N) array}`` of full-resolution images of a container."""
    with open_file(path, "r") as container:
        return {key: read_image(container, key) for key in keys}


def read_tables(path, names, columns=None):
    """Return ``{name: DataFrame}`` of tables of a container.

    Parameters
    ----------
    path : str or Path
    names : sequence of str
    columns : Mapping[str, sequence of str], optional
        Table name -> the only columns to read (see :func:`luigi_tasks.io.read_table`);
        tables not named are read whole.
    """
    columns = columns or {}
    with open_file(path, "r") as container:
        return {name: read_table(container, name, columns.get(name)) for name in names}


def write_label_image(path, key, labels):
    """Write a label image (Glasbey, nearest-neighbour pyramid)."""
    with open_file(path, "a") as container:
        write_image(container, key, labels, is_label=True)


def write_intensity_image(path, key, image):
    """Write an intensity image with the viewer colour of its channel."""
    with open_file(path, "a") as container:
        write_image(container, key, image, color=CHANNEL_COLORS.get(key, "Gray"))


def record_files(tables_file, key, paths, final_path, **attributes):
    """Record the plain files a plate job wrote in ``key`` (``records/...``) of the plate tables file.

    Paths are stored relative to the folder of the plate tables file
    (``final_path``, the committed name; ``tables_file`` may be a temporary
    copy), with ``/`` separators, so an output folder that is moved or copied
    to another machine keeps valid records.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> record_files(folder / "tmp.hdf5", "records/x", [folder / "report" / "index.html"], folder / "p_tables.hdf5")
    ['report/index.html']
    """
    base = Path(final_path).resolve().parent
    files = [Path(os.path.relpath(Path(path).resolve(), base)).as_posix() for path in paths]
    with h5py.File(tables_file, "a") as container:
        group = container.require_group(key)
        group.attrs["files"] = files
        group.attrs["files_relative_to"] = "the folder of this file"
        for name, value in attributes.items():
            group.attrs[name] = value
    return files


class AssaySera:
    """What every assay job knows about its plate: the sera present (:func:`~antibodies.inputs.sera_present`)."""

    def sera(self):
        """Serum roles present on this plate (``serum_IgG``, ...)."""
        return sera_present(self.plate_dir)


class AssayImageJob(AssaySera, BatchJobOnContainer):
    """An image job of the antibody assay."""


class AssayPlateJob(AssaySera, PlateJob):
    """A plate job of the antibody assay."""
