"""What every assay image job shares: reading channels and knowing the sera of the plate."""
from luigi_tasks import BatchJobOnContainer
from luigi_tasks.io import open_file, read_image, read_table, write_image

from ..inputs import channel_roles
from ..keys import CHANNEL_COLORS

__all__ = ["AssayImageJob", "read_images", "write_label_image", "write_intensity_image", "read_tables"]


def read_images(path, keys):
    """Return ``{key: (M, N) array}`` of full-resolution images of a container."""
    with open_file(path, "r") as container:
        return {key: read_image(container, key) for key in keys}


def read_tables(path, names):
    """Return ``{name: DataFrame}`` of tables of a container."""
    with open_file(path, "r") as container:
        return {name: read_table(container, name) for name in names}


def write_label_image(path, key, labels):
    """Write a label image (Glasbey, nearest-neighbour pyramid)."""
    with open_file(path, "a") as container:
        write_image(container, key, labels, is_label=True)


def write_intensity_image(path, key, image):
    """Write an intensity image with the viewer colour of its channel."""
    with open_file(path, "a") as container:
        write_image(container, key, image, color=CHANNEL_COLORS.get(key, "Gray"))


class AssayImageJob(BatchJobOnContainer):
    """An image job of the antibody assay."""

    def sera(self):
        """Serum roles present on this plate (``serum_IgG``, ...)."""
        return [role for role in channel_roles(self.plate_dir) if role.startswith("serum")]
