"""Cheap structural check of a TIFF file: every byte its structure points to must be inside the file.

A TIFF is a header, a chain of IFDs (one per page) and the blocks each IFD
points to: tag values stored out of line, strips or tiles of pixel data, and
SubIFDs. A file cut anywhere (a copy interrupted, a full disk) loses bytes that
some pointer still names. tifffile tolerates that: it logs ``invalid page
offset`` and returns the pages it could parse, while the series shape still
comes from the metadata. :func:`tiff_structure_problem` walks the chain itself
and compares every pointer with the file size, reading only the IFDs and the
strip/tile offset tables, never pixel data (a few kB for a 4-page 8 MB image).

Compressed pixel data that is damaged inside the file is not found here; it
fails when the image is decoded.
"""
import os
import struct

__all__ = ["tiff_structure_problem"]

# TIFF field type -> bytes per value (TIFF 6, BigTIFF)
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}
_INT_FORMATS = {3: "H", 4: "I", 13: "I", 16: "Q", 18: "Q"}
_DATA_TAGS = ((273, 279, "strip"), (324, 325, "tile"))  # (offsets, byte counts, what)
_SUBIFDS = 330
_MAX_IFDS = 1_000_000


class _Truncated(Exception):
    pass


class _Reader:
    def __init__(self, handle, size):
        self.handle, self.size = handle, size

    def read(self, offset, n, what):
        if offset < 0 or offset + n > self.size:
            raise _Truncated(f"{what} at bytes {offset}-{offset + n} lies past the file end ({self.size} bytes)")
        self.handle.seek(offset)
        data = self.handle.read(n)
        if len(data) != n:
            raise _Truncated(f"{what} at byte {offset} could not be read ({len(data)} of {n} bytes)")
        return data


def _header(reader):
    start = reader.read(0, 8, "TIFF header")
    order = {b"II": "<", b"MM": ">"}.get(start[:2])
    if order is None:
        raise ValueError("not a TIFF file (no II/MM byte order mark)")
    version = struct.unpack(order + "H", start[2:4])[0]
    if version == 42:
        return order, False, struct.unpack(order + "I", start[4:8])[0]
    if version == 43:
        rest = reader.read(8, 8, "BigTIFF header")
        return order, True, struct.unpack(order + "Q", rest)[0]
    raise ValueError(f"not a TIFF file (version {version})")


def _entries(reader, order, big, offset, name):
    count_format, entry_size, pointer_format = ("Q", 20, "Q") if big else ("H", 12, "I")
    count_size = struct.calcsize(count_format)
    n = struct.unpack(order + count_format, reader.read(offset, count_size, name))[0]
    body = reader.read(offset + count_size, n * entry_size + struct.calcsize(pointer_format), f"{name} ({n} tags)")
    entries = []
    for i in range(n):
        raw = body[i * entry_size:(i + 1) * entry_size]
        tag, dtype = struct.unpack(order + "HH", raw[:4])
        count = struct.unpack(order + ("Q" if big else "I"), raw[4:12 if big else 8])[0]
        entries.append((tag, dtype, count, raw[12:] if big else raw[8:]))
    next_offset = struct.unpack(order + pointer_format, body[n * entry_size:])[0]
    return entries, next_offset


def _values(reader, order, big, entry, name):
    """Return the value bytes of one tag, reading them if stored out of line (checks their extent)."""
    tag, dtype, count, field = entry
    n_bytes = _TYPE_SIZES.get(dtype, 0) * count
    if n_bytes <= len(field):
        return field[:n_bytes]
    offset = struct.unpack(order + ("Q" if big else "I"), field)[0]
    return reader.read(offset, n_bytes, f"{name} tag {tag} value ({n_bytes} bytes)")


def _integers(order, dtype, data):
    code = _INT_FORMATS.get(dtype)
    if code is None:
        return []
    return list(struct.unpack(f"{order}{len(data) // struct.calcsize(code)}{code}", data))


def _check_ifd(reader, order, big, offset, name, todo):
    entries, next_offset = _entries(reader, order, big, offset, name)
    by_tag = {}
    for entry in entries:
        tag, dtype = entry[0], entry[1]
        if dtype not in _TYPE_SIZES:
            continue  # unknown field type: its size is unknown, so is its extent
        data = _values(reader, order, big, entry, name)
        if tag in (273, 279, 324, 325, _SUBIFDS):
            by_tag[tag] = _integers(order, dtype, data)
    for offsets_tag, counts_tag, what in _DATA_TAGS:
        for i, (start, n) in enumerate(zip(by_tag.get(offsets_tag, ()), by_tag.get(counts_tag, ()))):
            if n and start + n > reader.size:
                raise _Truncated(
                    f"pixel data of {name} ({what} {i}, bytes {start}-{start + n}) lies past the file end "
                    f"({reader.size} bytes)"
                )
    todo += [(sub, f"SubIFD {j} of {name}") for j, sub in enumerate(by_tag.get(_SUBIFDS, ())) if sub]
    return next_offset


def tiff_structure_problem(path):
    """Return why ``path`` is not a complete TIFF, or None if its structure is intact.

    Checks the header, every IFD of the page chain and of SubIFDs, every tag
    value stored out of line and every strip or tile of pixel data against the
    file size. Reads only structure (no pixel data), so it is cheap.

    Examples
    --------
    >>> import os, tempfile, numpy, tifffile
    >>> path = os.path.join(tempfile.mkdtemp(), "image.tiff")
    >>> tifffile.imwrite(path, numpy.zeros((2, 64, 64), "uint16"), photometric="minisblack")
    >>> tiff_structure_problem(path) is None
    True
    >>> with open(path, "r+b") as handle:
    ...     _ = handle.truncate(4000)
    >>> print(tiff_structure_problem(path))
    TIFF is truncated: pixel data of IFD 1 (strip 0, bytes 256-8448) lies past the file end (4000 bytes)
    """
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        reader = _Reader(handle, size)
        try:
            order, big, offset = _header(reader)
            if offset == 0:
                return "TIFF has no image (first IFD offset is 0)"
            todo, seen, number = [], set(), 0
            while offset:
                if offset in seen or number >= _MAX_IFDS:
                    return f"TIFF IFD chain loops back to byte {offset} (corrupt file)"
                seen.add(offset)
                number += 1
                offset = _check_ifd(reader, order, big, offset, f"IFD {number}", todo)
            while todo:
                sub, name = todo.pop()
                if sub not in seen:
                    seen.add(sub)
                    following = _check_ifd(reader, order, big, sub, name, todo)
                    todo += [(following, f"IFD after {name}")] if following else []
        except _Truncated as error:
            return f"TIFF is truncated: {error}"
        except ValueError as error:
            return str(error)
    return None
