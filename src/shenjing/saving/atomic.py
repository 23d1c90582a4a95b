"""Atomic file writes: a reader (or a process that restarts after a crash) sees either the previous
file or the new one, never a half-written file.

Every save in :mod:`shenjing.saving` goes through here: the content is written to a temporary file
in the *same directory* (so that the final rename cannot cross file systems), flushed and
``fsync``-ed, then moved over the target with :func:`os.replace` (atomic on POSIX and Windows), and
the directory entry is ``fsync``-ed too where the platform allows it. If the writer fails or is
killed, the target is untouched; a killed writer may leave its temporary file behind
(``.<name>.tmp-<pid>-<random>``), which :func:`remove_stale_temporaries` removes.
"""

from __future__ import annotations

import contextlib
import os
import secrets

_TMP_MARK = ".tmp-"


def _temporary_path(path: str) -> str:
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f".{name}{_TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")


def fsync_directory(directory: str) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse
        pass
    finally:
        os.close(fd)


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _prepare_directory(path: str) -> str:
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot save to {path!r}: the directory {directory!r} does not exist")
    return directory


@contextlib.contextmanager
def atomic_path(path: str):
    """``with atomic_path('model.h5') as tmp: write_to(tmp)``: write to the temporary path ``tmp``
    (for libraries that open files by name, such as h5py); on success it is fsync-ed and renamed
    over ``path``; on an exception it is removed and ``path`` is left as it was."""
    path = os.fspath(path)
    directory = _prepare_directory(path)
    tmp = _temporary_path(path)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    fsync_directory(directory)


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "wb", encoding: str | None = None):
    """``with atomic_open('config.json', 'w') as f: f.write(...)``: like ``open`` for writing, but the
    file appears at ``path`` complete or not at all."""
    if not any(c in mode for c in "wax") or "r" in mode or "+" in mode:
        raise ValueError(f"atomic_open: mode must be a plain write mode ('w', 'wb'), got {mode!r}")
    with atomic_path(path) as tmp:
        with open(tmp, mode.replace("a", "w").replace("x", "w"), encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)


def remove_stale_temporaries(path: str) -> list:
    """Remove the temporary files that writers of ``path`` killed mid-write left behind (those of
    processes that no longer run). Returns the paths removed."""
    directory, name = os.path.split(os.path.abspath(os.fspath(path)))
    prefix = f".{name}{_TMP_MARK}"
    removed = []
    try:
        entries = os.listdir(directory)
    except OSError:
        return removed
    for entry in entries:
        if not entry.startswith(prefix):
            continue
        pid_text = entry[len(prefix):].split("-", 1)[0]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and _pid_alive(int(pid_text)):
            continue
        if pid_text.isdigit() and int(pid_text) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            os.remove(os.path.join(directory, entry))
            removed.append(os.path.join(directory, entry))
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


__all__ = ["atomic_path", "atomic_open", "atomic_write_bytes", "atomic_write_text", "fsync_directory",
           "remove_stale_temporaries"]
