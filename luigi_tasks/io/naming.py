"""Names of raw plate images: one regex, the single source of plate/well/site.

Raw images are named
``Well<ROW><COL>_Point<ROW><COL>_<SITE>_Channel<ch1>,<ch2>,..._Seq<NNNN>.<ext>``
with rows ``A``-``P`` (384-well plates), two-digit columns and a four-digit
site; channel names may contain ``_`` (``WF_GFP``).
"""
import re
from dataclasses import dataclass

__all__ = ["IMAGE_NAME_PATTERN", "ImageName", "parse_image_name", "is_image_name", "well_sort_key"]

IMAGE_NAME_PATTERN = re.compile(  # ASCII digits only; \Z: "$" would accept a trailing newline
    r"^Well(?P<well>[A-P]\d{2})_Point(?P<point>[A-P]\d{2})_(?P<site>\d{4})"
    r"_Channel(?P<channels>[A-Za-z0-9_]+(?:,[A-Za-z0-9_]+)*)_Seq(?P<seq>\d{4})\Z",
    re.ASCII,
)


@dataclass(frozen=True)
class ImageName:
    """The parts of a raw image name."""

    stem: str
    well: str
    point: str
    site: str
    channels: tuple
    seq: int

    @property
    def well_name(self):
        """Well name such as ``C05``."""
        return self.well

    @property
    def site_name(self):
        """Site name such as ``C05-0002``."""
        return f"{self.well}-{self.site}"

    @property
    def row(self):
        """Row letter ``A``-``P``."""
        return self.well[0]

    @property
    def column(self):
        """Column number starting at 1."""
        return int(self.well[1:])


def parse_image_name(stem):
    """Parse a raw image file stem (no extension).

    Raises
    ------
    ValueError
        If ``stem`` does not follow the naming scheme; the message shows it.

    Examples
    --------
    >>> name = parse_image_name("WellP24_PointP24_0003_ChannelDAPI,WF_GFP,TRITC_Seq0100")
    >>> name.well, name.site_name, name.channels
    ('P24', 'P24-0003', ('DAPI', 'WF_GFP', 'TRITC'))
    """
    match = IMAGE_NAME_PATTERN.match(stem)
    if match is None:
        raise ValueError(
            f"{stem!r} does not follow the naming scheme "
            "Well<ROW><COL>_Point<ROW><COL>_<SITE>_Channel<ch1>,<ch2>,..._Seq<NNNN> "
            "(rows A-P, e.g. WellC05_PointC05_0002_ChannelDAPI,WF_GFP,TRITC_Seq0123)"
        )
    parts = match.groupdict()
    return ImageName(
        stem=stem,
        well=parts["well"],
        point=parts["point"],
        site=parts["site"],
        channels=tuple(parts["channels"].split(",")),
        seq=int(parts["seq"]),
    )


def is_image_name(stem):
    """Return True if ``stem`` follows the naming scheme."""
    return IMAGE_NAME_PATTERN.match(stem) is not None


def well_sort_key(well):
    """Sort key putting wells in plate order (``A01, A02, ..., P24``)."""
    return (well[0], int(well[1:]))
