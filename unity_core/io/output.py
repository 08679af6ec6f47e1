"""Output files that never replace anything, created atomically.

Every writer in the project (videos, values files, explore's JSON record) writes to a
temporary name in the destination folder (``.name.XXXX.part``) and, once the file is
complete, publishes it under the first free name of ``name.ext``, ``name_1.ext``,
``name_2.ext``, ... with an operation that fails instead of replacing: a hard link
(``os.link`` raises ``FileExistsError`` when the name is taken), or, on file systems without
hard links, an exclusive create (``O_CREAT | O_EXCL``) of the name followed by moving the
finished file over that placeholder. Two writers (two processes, two ranks) therefore never
get the same name, and a write that fails or is interrupted (Ctrl-C) leaves nothing under
the final name: the temporary file is removed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Optional, Union

PathLike = Union[str, Path]

#: Suffixes :func:`unity_core.io.write_video` writes.
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".webp", ".gif")


def check_output_suffix(path: PathLike, allowed: Iterable[str] = VIDEO_SUFFIXES, what: str = "output video") -> Path:
    """Return ``Path(path)`` if its suffix is one of ``allowed`` (case-insensitive); call it before
    any heavy work so a bad name fails in a second, not after sampling.

    Raises:
        ValueError: another suffix, naming the ones that work.
    """
    path = Path(path)
    allowed = tuple(s.lower() for s in allowed)
    if path.suffix.lower() not in allowed:
        raise ValueError(f"{what} {path.name!r} has an unsupported suffix {path.suffix or '(none)'!r}; "
                         f"use one of {', '.join(allowed)} (e.g. {path.with_suffix(allowed[0]).name!r})")
    return path


def _candidates(path: Path) -> Iterator[Path]:
    yield path
    i = 1
    while True:
        yield path.with_name(f"{path.stem}_{i}{path.suffix}")
        i += 1


def publish(tmp: PathLike, path: PathLike) -> Path:
    """Give the finished file ``tmp`` the first free name of ``path``, ``stem_1.ext``, ... without
    ever replacing a file (see the module docstring); ``tmp`` is gone afterwards.

    Returns:
        The name the file now has.
    """
    tmp, path = Path(tmp), Path(path)
    for candidate in _candidates(path):
        try:
            os.link(tmp, candidate)
        except FileExistsError:
            continue
        except OSError as err:  # no hard links here (some network or FAT file systems)
            if err.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
                raise
            try:
                fd = os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                continue
            os.close(fd)
            os.replace(tmp, candidate)  # replaces only the placeholder this call created
            return candidate
        os.unlink(tmp)
        return candidate
    raise AssertionError("unreachable")


class AtomicOutput:
    """A file being written: write to :attr:`tmp`; on success :attr:`path` is where it landed.

    Use through :func:`atomic_output`.
    """

    def __init__(self, wanted: Path):
        self.wanted = wanted
        wanted.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{wanted.stem}.", suffix=f"{wanted.suffix}.part", dir=wanted.parent)
        os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(name, 0o666 & ~umask)  # mkstemp's 0600 would make outputs private; use what open() gives
        #: the temporary file to write (same folder and suffix before ``.part``)
        self.tmp = Path(name)
        #: the published name (None until :meth:`commit`)
        self.path: Optional[Path] = None

    def commit(self) -> Path:
        """Publish :attr:`tmp` under a free name (:func:`publish`)."""
        self.path = publish(self.tmp, self.wanted)
        return self.path

    def abort(self) -> None:
        """Remove the temporary file (nothing is published)."""
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()


@contextlib.contextmanager
def atomic_output(path: PathLike) -> Iterator[AtomicOutput]:
    """Write a new file without ever replacing one.

    >>> with atomic_output("out/depth.mp4") as out:
    ...     write_something(out.tmp)
    >>> out.path      # out/depth.mp4, or out/depth_1.mp4 if that name was taken

    Missing parent folders are created. An exception (including ``KeyboardInterrupt``) inside
    the block removes the temporary file and publishes nothing.
    """
    out = AtomicOutput(Path(path))
    try:
        yield out
    except BaseException:
        out.abort()
        raise
    out.commit()


def write_new_text(path: PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to a new file (``path`` or ``stem_1.ext``, ...; never replaces); returns the
    name written."""
    with atomic_output(path) as out:
        out.tmp.write_text(text, encoding=encoding)
    return out.path


__all__ = ["AtomicOutput", "VIDEO_SUFFIXES", "atomic_output", "check_output_suffix", "publish", "write_new_text"]
