"""Reading and writing containers, images, tables and names of plate files."""
from .atomic import BackgroundCommits, LockTimeout, atomic_write, container_transaction, file_lock
from .files import open_file, is_h5, is_n5, supported_extensions
from .images import has_image, image_levels, read_image, viewer_attributes, write_image
from .naming import ImageName, is_image_name, parse_image_name, well_sort_key
from .pyramid import downscale, pyramid_levels
from .tables import has_table, list_tables, read_table, table_key, write_table

__all__ = [
    "BackgroundCommits",
    "LockTimeout",
    "atomic_write",
    "container_transaction",
    "file_lock",
    "open_file",
    "is_h5",
    "is_n5",
    "supported_extensions",
    "has_image",
    "image_levels",
    "read_image",
    "viewer_attributes",
    "write_image",
    "ImageName",
    "is_image_name",
    "parse_image_name",
    "well_sort_key",
    "downscale",
    "pyramid_levels",
    "has_table",
    "list_tables",
    "read_table",
    "table_key",
    "write_table",
]
