"""Cache files that survive crashes and concurrent runs.

Every cache of the harness (the LR frames, exported and INT8 ONNX files, TensorRT engines) uses
the same three rules:

* a file is written under a unique temporary name in its own folder (:func:`atomic_path`,
  :func:`atomic_write_bytes`) and renamed onto its real name only once it is complete, so a
  reader never sees half a file and a killed writer leaves only a ``.<name>.*.tmp`` file that
  nothing reads (safe to delete);
* a build takes an exclusive lock on ``<file>.lock`` (:func:`file_lock`), so two runs sharing a
  cache folder build an entry once: the second waits, then finds the first one's file;
* a read is verified (here: against a ``<file>.sha256`` record, :func:`write_record` and
  :func:`check_record`), and a damaged entry is rebuilt with one warning (:func:`load_or_build`).

The lock is ``fcntl.flock`` (POSIX); where that is missing (Windows) or the file system refuses
it, builds run unlocked, which the atomic renames keep safe (at worst an entry is built twice).
This module imports nothing from the harness, nor PyTorch.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import warnings
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence, Tuple, TypeVar, Union

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; builds run unlocked
    fcntl = None  # type: ignore[assignment]

PathLike = Union[str, Path]
T = TypeVar("T")


def lock_path(path: PathLike) -> Path:
    return Path(f"{path}.lock")


@contextlib.contextmanager
def file_lock(path: PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``<path>.lock`` (created if needed, never removed), blocking until
    other processes release it. A no-op where ``fcntl`` is missing or the file system has no locks."""
    lock = lock_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(str(lock), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError:  # e.g. a network file system without locks: the atomic renames still hold
                pass
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """A unique temporary path beside ``path`` to write; renamed onto ``path`` when the block ends
    without an exception, removed when it raises (or the process is killed: then a stray
    ``.<name>.*.tmp`` file stays, which no reader ever opens)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:  # tempfile.mkstemp's exclusive create, with the usual 0666 & ~umask mode (mkstemp's is 0600)
        tmp = str(path.parent / f".{path.name}.{os.getpid()}-{os.urandom(4).hex()}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
    try:
        yield Path(tmp)
        os.replace(tmp, str(path))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`), flushed to disk before the rename."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def sha256_of(path: PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def record_path(path: PathLike) -> Path:
    return Path(f"{path}.sha256")


def write_record(path: PathLike, built: Optional[PathLike] = None, sources: Sequence[PathLike] = ()) -> Path:
    """Write ``<path>.sha256`` (``sha256sum`` format) with the digest of ``built`` (the finished file,
    still under its temporary name; default ``path``) under ``path``'s name, then the digests of
    ``sources`` (files in the same folder the entry was made from: a changed source invalidates it).
    Write it before renaming the file into place, so a reader never sees a new file with an old record."""
    path = Path(path)
    lines = [f"{sha256_of(built or path)}  {path.name}"]
    lines += [f"{sha256_of(s)}  {Path(s).name}" for s in sources]
    return atomic_write_bytes(record_path(path), ("\n".join(lines) + "\n").encode())


def check_record(path: PathLike) -> Optional[str]:
    """None when ``path`` and every file its ``.sha256`` record names (in its folder) match the
    record; else why not: ``missing``, ``no sha256 record``, ``unreadable sha256 record`` or
    ``sha256 mismatch: <name>``."""
    path = Path(path)
    if not path.is_file():
        return "missing"
    try:
        text = record_path(path).read_text()
    except FileNotFoundError:
        return "no sha256 record"
    except (OSError, UnicodeDecodeError):
        return "unreadable sha256 record"
    entries = [line.split(None, 1) for line in text.splitlines() if line.strip()]
    if not entries or any(len(e) != 2 or len(e[0]) != 64 for e in entries) or entries[0][1] != path.name:
        return "unreadable sha256 record"
    for digest, name in entries:
        try:
            if sha256_of(path.parent / name) != digest:
                return f"sha256 mismatch: {name}"
        except OSError:
            return f"{name} unreadable"
    return None


def file_stamp(path: Path) -> Optional[Tuple[int, int, int]]:
    """(inode, mtime, size) of ``path``, None when absent: a changed stamp means it was replaced."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class Damaged(Exception):
    """Raised by a ``load`` for :func:`load_or_build` when a check fails (its text is the reason)."""


def verified(path: Path) -> Path:
    """A ``load`` for :func:`load_or_build`: ``path`` when its ``.sha256`` record matches, else :class:`Damaged`."""
    why = check_record(path)
    if why is not None:
        raise Damaged(why)
    return path


def warn_damaged(path: PathLike, why: str, what: str = "cache entry") -> None:
    """The one-line warning for a cache entry that is rebuilt (the CLI prints it as ``warning: ...``)."""
    warnings.warn(f"{path}: damaged {what} ({why}); rebuilding it", stacklevel=2)


def load_or_build(path: PathLike, load: Callable[[Path], T], build: Callable[[Path], T],
                  what: str = "cache entry") -> T:
    """The cache entry at ``path``: ``load(path)`` when the file is there and loads, else
    ``build(tmp)``, which writes the entry at the temporary path ``tmp`` (renamed onto ``path``
    when it returns) and returns its value.

    ``load`` raises on a damaged entry; that entry is rebuilt with one warning. The build holds
    :func:`file_lock`; a run that waited for it first reads what the other run built.
    """
    path = Path(path)

    def attempt() -> Tuple[bool, Optional[T]]:
        if not path.is_file():
            return False, None
        try:
            return True, load(path)
        except Exception as exc:  # noqa: BLE001 - any failure to read the entry means: rebuild it
            text = (str(exc).strip().splitlines() or [""])[0][:160]
            why = text if isinstance(exc, Damaged) else f"{type(exc).__name__}: {text}".rstrip(": ")
            warn_damaged(path, why, what)
            return False, None

    seen = file_stamp(path)
    ok, value = attempt()
    if ok:
        return value  # type: ignore[return-value]
    with file_lock(path):
        if file_stamp(path) != seen:  # another run wrote it while this one waited for the lock
            ok, value = attempt()
            if ok:
                return value  # type: ignore[return-value]
        with atomic_path(path) as tmp:
            value = build(tmp)
        return value  # type: ignore[return-value]
