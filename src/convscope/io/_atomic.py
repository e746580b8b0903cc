"""Write a file so that readers see either the old file or the whole new one, never a part.

The bytes go to a temporary file beside the file being replaced (same folder, so
the final `os.replace` is atomic), are flushed and fsync'ed, and only then
renamed over it.  If anything fails, the temporary file is removed and an
earlier file is left untouched.

The rules a plain `open(path, "wb")` would follow hold too:

* a new file gets the mode 0o666 less the umask (0644 under umask 022), as
  `np.save` and Keras give; an existing file keeps its mode (0640 stays 0640);
* a symbolic link (or a chain of them, relative or absolute) is written
  through: its final target is replaced, atomically, and the link stays a link
  (a link loop raises an OSError);
* the temporary file is `.{name}.{pid}-{n}.part` in the target's folder; a save
  removes the `.part` files of earlier saves to the same file whose process is
  no longer running (a save killed half-way), never one a live process writes;
  an error creating or renaming it names the file asked for, not this internal name.

Replacing a file gives it a new inode: other hard links to the old file keep
the old bytes, and the new file has the saving user's ownership.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import re
import stat
from pathlib import Path
from typing import BinaryIO, Iterator, Optional

_PART_SUFFIX = ".part"
# Room in a 255-byte file name for the target's name: "." + name + "." + pid "-" n + ".part",
# the pid and the counter up to 10 digits each.
_NAME_ROOM = 255 - 2 - 21 - len(_PART_SUFFIX)
_counter = itertools.count()        # next() is atomic under the GIL: unique per process


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb") -> Iterator[BinaryIO]:
    """Open a temporary file beside `path`'s final target; rename it over the target on success."""
    requested = Path(path)
    target = final_target(requested)
    directory = target.parent
    if not directory.is_dir():
        raise FileNotFoundError(f"cannot write '{requested}': the folder '{directory}' does not exist")
    existing_mode = _regular_file_mode(target)
    remove_stale_parts(target)
    temp = directory / _part_name(target.name, os.getpid(), next(_counter))
    try:
        fd = _create(temp)
    except OSError as error:
        raise _naming(error, temp, requested) from None
    try:
        if existing_mode is not None and hasattr(os, "fchmod"):
            os.fchmod(fd, existing_mode)
        handle = os.fdopen(fd, mode)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except OSError as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise _naming(error, temp, requested) from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    _fsync_directory(directory)


def _naming(error: OSError, temp: Path, requested: Path) -> OSError:
    """`error` naming the file asked for instead of the temporary file beside it (an internal name
    that means nothing to the user); any other error as it is."""
    if str(temp) not in (error.filename, error.filename2) or error.errno is None:
        return error
    return type(error)(error.errno, f"cannot write '{requested}': {error.strerror}")


def final_target(path: Path) -> Path:
    """The file a write to `path` replaces: `path`, or the end of its chain of symbolic links."""
    if not os.path.islink(path):
        return path
    resolved = Path(os.path.realpath(path))
    if os.path.islink(resolved):            # realpath stops at a loop and returns a link
        raise OSError(errno.ELOOP, f"cannot write '{path}': its symbolic links form a loop",
                      str(path))
    return resolved


def remove_stale_parts(target: Path) -> None:
    """Remove `.part` files of earlier saves to `target` whose process no longer runs."""
    if os.name != "posix":          # no signal-0 probe of a process elsewhere
        return
    pattern = re.compile(re.escape("." + _short_name(target.name) + ".") + r"(\d{1,10})-\d{1,10}"
                         + re.escape(_PART_SUFFIX))
    directory = target.parent
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or _process_alive(int(match.group(1))):
            continue
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)


def _part_name(name: str, pid: int, number: int) -> str:
    return f".{_short_name(name)}.{pid}-{number}{_PART_SUFFIX}"


def _short_name(name: str) -> str:
    """`name`, cut to `_NAME_ROOM` bytes so that the temporary name fits in 255 bytes."""
    encoded = os.fsencode(name)
    return name if len(encoded) <= _NAME_ROOM else os.fsdecode(encoded[:_NAME_ROOM])


def _process_alive(pid: int) -> bool:
    """Whether process `pid` may be running (when in doubt: yes).  Our own pid counts as alive:
    another thread of this process may be writing that file."""
    if pid <= 0 or pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):
        return True         # PermissionError: it runs, as another user
    return True


def _create(temp: Path) -> int:
    """Create `temp` exclusively with mode 0o666 less the umask (the kernel applies it)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        return os.open(temp, flags, 0o666)
    except FileExistsError:
        # Our pid and counter: left by an earlier process that had this pid and died.
        os.unlink(temp)
        return os.open(temp, flags, 0o666)


def _regular_file_mode(path: Path) -> Optional[int]:
    """The permission bits of an existing regular file at `path`, else None."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return stat.S_IMODE(info.st_mode) if stat.S_ISREG(info.st_mode) else None


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable where the platform allows opening a folder."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
