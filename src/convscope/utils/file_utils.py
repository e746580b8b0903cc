"""Keras' `utils.get_file`: download a file once into a cache folder, check its hash, extract an archive.

The same arguments, cache layout and return values as Keras 3.15 (`~/.keras/datasets/<fname>` by default, or
`$KERAS_HOME`; an archive's folder `<name>_extracted` or `<name>`), so that a Keras script finds what it
expects and files Keras already downloaded are reused.  What differs is safety:

* the download streams into a temporary file that is renamed into place only when complete and, with a hash,
  only when it matches (`datasets._files.download`): an interrupted or tampered download never sits in the
  cache under the real name;
* an archive is extracted into a temporary folder beside the target and renamed into place when complete
  (callers extracting the same archive at once each get a complete folder; temporary folders of killed
  processes are removed by the next extraction); members that would land outside it (absolute paths, `..`,
  links pointing out), devices and FIFOs are skipped with a warning naming them (Keras skips the first kinds
  too) — and links altogether where Python's tar extraction filter is missing (before 3.10.12/3.11.4: a chain
  of links could otherwise lead out) —, and an archive whose members add up to more than the free disk space
  is refused before anything is written.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import secrets
import shutil
import tarfile
import time
import urllib.parse
import warnings
import zipfile
from pathlib import Path
from typing import Optional

from ..datasets._files import download, file_digest
from ..io._atomic import _process_alive

__all__ = ["get_file", "extract_archive", "validate_file"]

_FORMATS = ("tar", "zip")
_counter = itertools.count()        # unique temporary folders within a process (threads)
_MARKER = ".convscope-extracting"
_STALE_HOUR, _STALE_DAY = 3600.0, 86400.0


def _hash_algorithm(algorithm: str, file_hash: str) -> str:
    """Keras' rule: "auto" is SHA-256 for a 64-character hash, MD5 otherwise."""
    if algorithm == "auto":
        return "sha256" if len(file_hash) == 64 else "md5"
    if algorithm not in ("sha256", "md5"):
        raise ValueError(f"get_file: argument `hash_algorithm` must be 'auto', 'sha256' or 'md5', got {algorithm!r}")
    return algorithm


def validate_file(fpath, file_hash: str, algorithm: str = "auto") -> bool:
    """True when the file's hash (SHA-256 or MD5, `algorithm` "auto" choosing by length) is `file_hash`."""
    return file_digest(fpath, _hash_algorithm(algorithm, str(file_hash))) == str(file_hash)


def _cache_root(cache_dir) -> Path:
    if cache_dir is None:
        cache_dir = os.environ.get("KERAS_HOME") or os.path.join("~", ".keras")
    return Path(os.fspath(cache_dir)).expanduser()


def _targets(fname: Optional[str], origin: str, datadir: Path, extract: bool):
    """(download target, extraction folder or None), named as Keras names them."""
    given = fname
    if not fname:
        fname = os.path.basename(urllib.parse.urlsplit(origin).path)
        if not fname:
            raise ValueError(f"get_file: cannot take a file name from the origin {origin!r}; pass `fname`")
    elif os.sep in fname or (os.altsep and os.altsep in fname) or fname in (".", ".."):
        raise ValueError(f"get_file: argument `fname` must be a file name, not a path (the folder is `cache_dir` "
                         f"and `cache_subdir`), got {fname!r}")
    if not extract:
        return datadir / fname, None
    if given and "." in fname:
        return datadir / fname, datadir / f"{fname[:fname.find('.')]}_extracted"
    return datadir / f"{fname}_archive", datadir / fname


def get_file(fname=None, origin=None, untar=False, md5_hash=None, file_hash=None, cache_subdir="datasets",
             hash_algorithm="auto", extract=False, archive_format="auto", cache_dir=None, force_download=False):
    """The path of `origin`'s file in the cache (downloaded if missing, or if its hash does not match), or with
    `extract`/`untar` the folder its archive was extracted into."""
    if not isinstance(origin, str) or not origin:
        raise ValueError(f"get_file: argument `origin` must be the URL of the file to download, got {origin!r}")
    if fname is not None and not isinstance(fname, (str, os.PathLike)):
        raise TypeError(f"get_file: argument `fname` must be a file name or None, got {fname!r}")
    if not isinstance(cache_subdir, (str, os.PathLike)):
        raise TypeError(f"get_file: argument `cache_subdir` must be a folder (under `cache_dir`, or absolute), got "
                        f"{cache_subdir!r}")
    if md5_hash is not None and file_hash is None:
        file_hash, hash_algorithm = md5_hash, "md5"
    algorithm = None if file_hash is None else _hash_algorithm(hash_algorithm, str(file_hash))
    datadir = _cache_root(cache_dir) / cache_subdir         # an absolute `cache_subdir` is the folder, as Keras
    datadir.mkdir(parents=True, exist_ok=True)
    target, folder = _targets(None if fname is None else os.fspath(fname), origin, datadir, extract or untar)
    fetch = force_download or not target.is_file() or (
        file_hash is not None and file_digest(target, algorithm) != str(file_hash))
    if fetch:
        print(f"Downloading data from {origin}")
        try:
            download(origin, target, None if file_hash is None else str(file_hash), algorithm=algorithm or "sha256")
        except ValueError as error:
            raise ValueError(f"get_file: {error}") from None
        except OSError as error:
            raise OSError(f"get_file: cannot download {origin!r}: {error}") from error
    if folder is None:
        return str(target)
    if fetch or not folder.is_dir():            # a new download replaces the folder; else the first one stays
        kind = _kind(target, "tar" if untar else archive_format)
        if kind is not None:
            _extract_into_place(target, folder, kind, replace=fetch)
        else:
            warnings.warn(f"get_file: '{target}' is not a {' or '.join(_FORMATS)} archive; nothing was extracted",
                          stacklevel=2)
    return str(folder)


def extract_archive(file_path, path=".", archive_format="auto") -> bool:
    """Extract a tar (any compression) or zip archive into the folder `path` (what is there stays, as Keras'),
    the unsafe members skipped; False when the file is none of `archive_format` ("auto": tar or zip; None:
    nothing)."""
    kind = _kind(file_path, archive_format)
    if kind is None:
        return False
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    try:
        _extract_members(Path(file_path), path, kind)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as error:
        raise ValueError(f"extract_archive: cannot extract '{file_path}': {type(error).__name__}: {error}") from None
    return True


def _kind(file_path, archive_format) -> Optional[str]:
    """"tar" or "zip" where the file is one of `archive_format`, else None."""
    if archive_format is None:
        return None
    formats = list(_FORMATS) if archive_format == "auto" else \
        [archive_format] if isinstance(archive_format, str) else list(archive_format)
    unknown = [f for f in formats if f not in _FORMATS]
    if unknown:
        raise ValueError(f"extract_archive: argument `archive_format` must be 'auto', 'tar', 'zip', a list of them "
                         f"or None, got {archive_format!r}")
    for kind in formats:
        if (tarfile.is_tarfile if kind == "tar" else zipfile.is_zipfile)(file_path):
            return kind
    return None


def _extract_members(file_path: Path, folder: Path, kind: str) -> None:
    """The archive's safe members written into `folder`."""
    if kind == "tar":
        with tarfile.open(file_path) as archive:
            members = _safe_members(archive.getmembers(), folder, kind, file_path)
            _check_space(sum(m.size for m in members), folder, file_path)
            extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            archive.extractall(folder, members=members, **extra)
    else:
        with zipfile.ZipFile(file_path) as archive:
            members = _safe_members(archive.infolist(), folder, kind, file_path)
            _check_space(sum(m.file_size for m in members), folder, file_path)
            archive.extractall(folder, members=members)


def _extract_into_place(file_path: Path, path: Path, kind: str, replace: bool) -> None:
    """Extract into a temporary folder beside `path`, then rename it to `path` (`_install`).  The folder holds a
    marker while it fills: if anything removed it meanwhile (another machine's clean-up of a folder it took for
    stale), the marker is gone and the extraction fails rather than put a partial folder in place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(path)
    temp = path.parent / f".{path.name}.{os.getpid()}-{next(_counter)}{secrets.token_hex(4)}.extracting"
    temp.mkdir()
    marker = temp / _MARKER
    try:
        marker.touch()
        _extract_members(file_path, temp, kind)
        marker.unlink()                 # FileNotFoundError: the folder was removed under this extraction
        _install(temp, path, replace)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as error:
        raise ValueError(f"extract_archive: cannot extract '{file_path}': {type(error).__name__}: {error}") from None
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def _install(temp: Path, path: Path, replace: bool) -> None:
    """Rename the complete folder `temp` to `path`: with `replace` an earlier `path` is moved aside first (and
    removed after); a complete folder another caller put there first is kept (and `temp` dropped)."""
    old = path.parent / f".{path.name}.{os.getpid()}-{next(_counter)}.old" if replace else None
    try:
        if old is not None:
            os.rename(path, old)
    except FileNotFoundError:
        old = None
    try:
        os.rename(temp, path)           # never over a non-empty folder (os.replace would be the same here)
    except OSError:
        if not path.is_dir():
            raise
    finally:
        if old is not None:
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    old.unlink()


def _remove_stale(path: Path) -> None:
    """Remove the temporary folders of extractions to `path` left by killed runs: untouched for an hour with
    their process gone, or for a day whatever the process id says (a cache shared by machines or containers,
    where process ids are not this machine's)."""
    pattern = re.compile(re.escape(f".{path.name}.") + r"(\d{1,10})-[0-9a-f]{1,20}\.(extracting|old)")
    now = time.time()
    with contextlib.suppress(OSError):
        for entry in os.scandir(path.parent):
            match = pattern.fullmatch(entry.name)
            if match is None or not entry.is_dir(follow_symlinks=False):
                continue
            age = now - entry.stat(follow_symlinks=False).st_mtime
            if age > _STALE_DAY or (age > _STALE_HOUR and not _process_alive(int(match.group(1)))):
                shutil.rmtree(entry.path, ignore_errors=True)


def _inside(base: Path, name: str) -> bool:
    if not name or os.path.isabs(name) or (os.altsep and name.startswith(os.altsep)):
        return False
    resolved = os.path.realpath(os.path.join(base, name))
    return os.path.commonpath([resolved, os.path.realpath(base)]) == os.path.realpath(base)


def _safe_members(members, base: Path, kind: str, source: Path) -> list:
    """The members that land inside `base`: regular files, folders and links to inside; the others skipped
    with a warning naming them."""
    kept, skipped = [], []
    for member in members:
        name = member.name if kind == "tar" else member.filename
        safe = _inside(base, name)
        if safe and kind == "tar":
            if (member.issym() or member.islnk()) and not hasattr(tarfile, "data_filter"):
                safe = False            # checked one by one, a chain of links could lead out
            elif member.issym():
                safe = _inside(base, os.path.join(os.path.dirname(name), member.linkname))
            elif member.islnk():
                safe = _inside(base, member.linkname)
            else:
                safe = member.isfile() or member.isdir()
        (kept if safe else skipped).append(member if safe else name)
    if skipped:
        warnings.warn(f"extract_archive: skipped {len(skipped)} member(s) of '{source}' that would land outside the "
                      f"folder or are not files, folders or links inside it: {skipped[:5]}", stacklevel=3)
    return kept


def _check_space(total: int, folder: Path, source: Path) -> None:
    free = shutil.disk_usage(folder).free
    if total > free:
        raise ValueError(f"extract_archive: '{source}' would extract to {total:,} bytes, more than the {free:,} "
                         f"bytes free under '{folder.parent}'; nothing was extracted")
