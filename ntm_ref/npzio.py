"""Reading a user's .npz safely: every array header is checked before any array is read.

``numpy.load`` allocates whatever a .npy header declares: a 56 KB file may declare an 800 GB array and end
the program with a MemoryError; a file that is no zip at all is tried as a pickle ("contains pickled
(object) data"). ``read_npz`` reads every member's header first and refuses, with one line naming the
file (NpzError, a ValueError), a file that is not a zip of .npy arrays, a member holding Python objects,
and arrays declaring more bytes in total than a limit (by default half the memory available now), and
only then reads the arrays, with ``allow_pickle=False``.

    read_npz(path, what, max_bytes=None)  -> dict name -> array
    available_bytes()                     -> memory available to this process now, in bytes
    format_bytes(n)                       -> '745 GiB'
"""
import os
import zipfile

import numpy as np
from numpy.lib import format as npy_format

MEMORY_FRACTION = 0.5          # default limit of read_npz: this share of the available memory
FALLBACK_AVAILABLE = 4 << 30   # assumed available memory when the system cannot tell (4 GiB)
NPY_MAGIC = b"\x93NUMPY"
ZIP_LOCAL_HEADER = b"PK\x03\x04"


class NpzError(ValueError):
    """An .npz that cannot be used; str() is one line: '<what> <path>: <problem>'."""

    def __init__(self, path, what, problem):
        self.path, self.what, self.problem = path, what, problem
        super().__init__(f"{what} {path}: {problem}" if what else f"{path}: {problem}")


def available_bytes():
    """Memory available to new allocations now, in bytes: MemAvailable of /proc/meminfo (Linux), else
    the free physical pages (os.sysconf), else FALLBACK_AVAILABLE."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return FALLBACK_AVAILABLE


def format_bytes(n):
    """A byte count for messages: 512 B, 3.2 MiB, 745 GiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1024


def _read_header(f):
    """(shape, dtype) of the .npy stream f, reading only its header.  ValueError for a bad header."""
    version = npy_format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = npy_format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, _, dtype = npy_format.read_array_header_2_0(f)
    elif version == (3, 0) and hasattr(npy_format, "_read_array_header"):   # utf-8 field names
        shape, _, dtype = npy_format._read_array_header(f, version)
    else:
        raise ValueError(f".npy format version {version[0]}.{version[1]} is not supported")
    return shape, dtype


def _headers(path, what):
    """[(name, shape, dtype)] of every member of the zip at path, from the headers only (NpzError)."""
    out = []
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            with zf.open(info) as f:
                try:
                    shape, dtype = _read_header(f)
                except ValueError as err:
                    raise NpzError(path, what, f"member {info.filename!r} is not a .npy array ({err})") from None
            if dtype.hasobject:
                raise NpzError(path, what, f"array {name!r} holds Python objects (dtype {dtype}), which need "
                                           f"pickle to read; only plain numeric or string arrays are accepted")
            if any(n < 0 for n in shape):
                raise NpzError(path, what, f"array {name!r} declares a negative shape {shape}")
            out.append((name, shape, dtype))
    return out


def _check_file(path, what):
    """NpzError unless path is an existing file that starts like a zip archive."""
    if not os.path.exists(path):
        raise NpzError(path, what, "no such file")
    if not os.path.isfile(path):
        raise NpzError(path, what, "is a folder, not an .npz file" if os.path.isdir(path) else "not a regular file")
    with open(path, "rb") as f:
        start = f.read(len(NPY_MAGIC))
    if zipfile.is_zipfile(path):
        if not start.startswith(b"PK"):            # numpy.load would try it as a pickle
            raise NpzError(path, what, "not an .npz archive (other data before its zip archive)")
        return
    if start.startswith(ZIP_LOCAL_HEADER):
        raise NpzError(path, what, "a zip archive without its directory: truncated or corrupted")
    if start == NPY_MAGIC:
        raise NpzError(path, what, "a single-array .npy file, not an .npz archive (write one with numpy.savez)")
    raise NpzError(path, what, "not an .npz archive (not a zip file; write one with numpy.savez)")


def read_npz(path, what, max_bytes=None):
    """The arrays of an .npz as a dict name -> array, refusing before any array is read a file that is not
    a zip of .npy arrays, an array of Python objects, or arrays declaring more than max_bytes in total
    (default: MEMORY_FRACTION of available_bytes()).

    what: the file's role for messages, e.g. '--params' or 'trace' ('' for the path alone).
    Raises NpzError (a ValueError; one line '<what> <path>: <problem>') for every unusable file.
    """
    _check_file(path, what)
    try:
        headers = _headers(path, what)
        limit = int(MEMORY_FRACTION * available_bytes()) if max_bytes is None else max_bytes
        sizes = [(int(np.prod(shape, dtype=object)) * dtype.itemsize, name, shape, dtype)
                 for name, shape, dtype in headers]
        total = sum(s[0] for s in sizes)
        if total > limit:
            size, name, shape, dtype = max(sizes, key=lambda s: s[0])
            raise NpzError(path, what, f"its arrays declare {format_bytes(total)} (the largest, {name!r}, "
                                       f"{dtype} of shape {shape}: {format_bytes(size)}), more than the "
                                       f"{format_bytes(limit)} this machine can spare; not read")
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except NpzError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, NotImplementedError,
            RuntimeError) as err:            # RuntimeError: an encrypted member
        problem = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise NpzError(path, what, f"truncated or corrupted ({problem})") from None
