"""Writing the results' output files so that a failure never leaves a half-written one.

Each file is written to a unique temporary name in its own folder (a dot name keeping the suffix,
so matplotlib still picks the format from it: ``.report.k2j4.html``), flushed to disk and renamed
over the old one (``os.replace``, atomic on one file system). A full disk, a read-only folder or
any other failure leaves the previous file as it was and no temporary file behind; an ``OSError``
becomes one :class:`~harness.errors.HarnessError` line naming the file and the fix.
"""
from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path
from typing import Callable, Union

from ..errors import HarnessError

# errno values that mean "no room": the fix is to free space
NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}
# errno values that mean "not allowed": the fix is permissions or another folder
NOT_ALLOWED = {errno.EACCES, errno.EPERM, errno.EROFS}


def write_error(path: Union[str, Path], exc: OSError, elsewhere: str = "") -> HarnessError:
    """The one line for a file that could not be written: what happened and the fix.

    ``elsewhere``: how to write it to another place instead (e.g. ``--out DIR``)."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    why = exc.strerror or type(exc).__name__
    other = f" or {elsewhere}" if elsewhere else ""
    if exc.errno in NO_SPACE:
        fix = f"free space on the disk holding {folder} (df -h {folder}){other}, then run again"
    elif exc.errno in NOT_ALLOWED:
        fix = f"make {folder} writable{other}"
    else:
        fix = f"check {folder} (it must be a writable folder){other}"
    return HarnessError(f"{path}: cannot write ({why}); {fix}")


def _new_temp(path: Path) -> Path:
    """A new empty file beside ``path``: ``.<stem>.<random><suffix>``, with the permissions a plain
    ``open(path, "w")`` would give (0666 less the umask; ``mkstemp`` would make it private)."""
    for _ in range(100):
        tmp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}{path.suffix}")
        try:
            os.close(os.open(str(tmp), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(path))


def write_atomic(path: Union[str, Path], write: Callable[[Path], None], elsewhere: str = "") -> Path:
    """Write ``path`` through ``write(temporary_path)``, then rename it into place.

    The temporary file sits in the same folder (same file system, so the rename is atomic) and has
    the same suffix. On any failure it is removed and the previous ``path`` is left intact; an
    ``OSError`` (no space, no permission) is raised as one :class:`HarnessError` line."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _new_temp(path)
        write(tmp)
        fd = os.open(str(tmp), os.O_RDONLY)
        try:
            os.fsync(fd)  # the bytes are on disk before the name points at them
        finally:
            os.close(fd)
        os.replace(str(tmp), str(path))
        tmp = None
    except OSError as exc:
        raise write_error(path, exc, elsewhere) from None
    finally:
        if tmp is not None:
            try:
                tmp.unlink()
            except OSError:
                pass
    return path


def write_text_atomic(path: Union[str, Path], text: str, elsewhere: str = "", encoding: str = "utf-8") -> Path:
    """:func:`write_atomic` of a text file."""
    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding=encoding) as fh:
            fh.write(text)

    return write_atomic(path, write, elsewhere)
