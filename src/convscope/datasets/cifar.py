"""What CIFAR-10 and CIFAR-100 share: Keras' archive (the "python version" tar.gz), read safely.

Archive layout (as Keras reads it): `cifar-10-batches-py/data_batch_1..5` and
`test_batch`, or `cifar-100-python/train` and `test`; each a pickled dict with
`data` (N×3072 uint8: 1024 red, 1024 green, 1024 blue values of a 32×32 image)
and the labels (`labels`, or `fine_labels`/`coarse_labels`) as a list of ints.
The pickles are read by `cifar_pickle.load_restricted`, which runs nothing.  The
archive is read as a stream, straight from the `.tar.gz`: nothing is extracted.

Search order for `load_data()` (the first copy found wins):

1. the `path` argument: the archive file, or a folder holding the batch files,
   their `cifar-10-batches-py`/`cifar-100-python` folder, or the archive;
2. `$CONVSCOPE_DATA/<name>/`, then `$CONVSCOPE_DATA/`;
3. `shared/datasets/<name>/` beside a source checkout;
4. Keras' cache, `$KERAS_HOME` or `~/.keras`, `datasets/`: Keras 3's
   `cifar-10-batches-py-target_archive` and `cifar-10-batches-py-target/cifar-10-batches-py/`,
   Keras 2's `cifar-10-batches-py.tar.gz` and `cifar-10-batches-py/`;
5. convscope's cache, `~/.convscope/datasets/<name>/`;
6. otherwise the archive is downloaded from Keras' URL into convscope's cache,
   streamed into a temporary file, checked against Keras' SHA-256 and only then
   renamed into place.

An archive found by searching must have Keras' SHA-256 (one named by `path` need
not); extracted batch files have no published checksum, so they are checked by
content: the dict, the keys, uint8 images of 3072 values, one label per image,
labels in range.  The images come as `backend.image_data_format()` says, as in
Keras: (N, 32, 32, 3) for "channels_last", (N, 3, 32, 32) for "channels_first".
"""

from __future__ import annotations

import gzip
import os
import sys
import tarfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from .. import backend
from ._files import checkout_shared_folder, download, file_digest
from .cifar_pickle import load_restricted

_PIXELS = 3 * 32 * 32
_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class CifarSpec:
    """Where one CIFAR archive comes from and what it holds."""

    name: str                  # "cifar10": convscope's cache and data sub-folder
    title: str                 # "CIFAR-10", for messages
    folder: str                # the folder inside the archive: "cifar-10-batches-py"
    archive: str               # the archive's file name: "cifar-10-python.tar.gz"
    url: str                   # Keras' origin
    sha256: str                # Keras' file_hash of the archive
    train: Tuple[str, ...]     # batch files of the training images, in order
    test: Tuple[str, ...]
    keras_dirname: str         # Keras 3's get_file name: "cifar-10-batches-py-target"
    label_dtype: str           # what Keras returns: uint8 (CIFAR-10), int64 (CIFAR-100)
    max_batch_bytes: int       # the largest batch file accepted
    max_archive_bytes: int     # the most bytes read out of the (decompressed) archive

    @property
    def batches(self) -> Tuple[str, ...]:
        return self.train + self.test


Arrays = Tuple[Tuple[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]


def parse_batch(data: bytes, source: str, label_key: str, classes: int, function: str):
    """One batch file's bytes -> (images (N, 3, 32, 32) uint8, labels (N,) int64), checked."""
    batch = load_restricted(data, source, function)
    if not isinstance(batch, dict):
        raise ValueError(f"{function}: '{source}' holds a {type(batch).__name__}, expected the dict "
                         "of a CIFAR python batch")
    batch = {key.decode("utf-8", "replace") if isinstance(key, bytes) else key: value
             for key, value in batch.items()}
    missing = [key for key in ("data", label_key) if key not in batch]
    if missing:
        raise ValueError(f"{function}: '{source}' has the keys {sorted(map(str, batch))}, expected "
                         f"'data' and '{label_key}' (missing {missing})")
    images = batch["data"]
    if (not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 2
            or images.shape[1] != _PIXELS):
        described = f"of dtype {images.dtype} and shape {images.shape}" \
            if isinstance(images, np.ndarray) else f"of type {type(images).__name__}"
        raise ValueError(f"{function}: '{source}' has 'data' {described}; expected a uint8 "
                         f"array of shape (N, {_PIXELS})")
    labels = _labels(batch[label_key], len(images), classes, f"'{source}' key '{label_key}'", function)
    return images.reshape(-1, 3, 32, 32), labels


def _labels(value, count: int, classes: int, where: str, function: str) -> np.ndarray:
    """A list of ints (or 1-D integer array), one per image, each in 0..classes-1, as int64."""
    if isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "iu":
        low, high = (int(value.min()), int(value.max())) if len(value) else (0, 0)
    elif isinstance(value, list) and all(type(v) is int for v in value):
        low, high = (min(value), max(value)) if value else (0, 0)
    else:
        raise ValueError(f"{function}: {where} must be a list of ints, got "
                         f"{type(value).__name__}")
    if len(value) != count:
        raise ValueError(f"{function}: {where} has {len(value)} labels for {count} images")
    if low < 0 or high >= classes:
        raise ValueError(f"{function}: {where} has labels from {low} to {high}; "
                         f"expected 0..{classes - 1}")
    return np.asarray(value, dtype=np.int64).reshape(count)


def assemble(spec: CifarSpec, blobs: Dict[str, bytes], label_key: str, classes: int, source: str,
             function: str) -> Arrays:
    """Parse every batch (dropping its bytes as it goes) into Keras' four arrays."""
    channels_last = backend.image_data_format() == "channels_last"
    result = []
    for names in (spec.train, spec.test):
        parts = [parse_batch(blobs.pop(name), f"{source}/{name}", label_key, classes, function)
                 for name in names]
        labels = np.concatenate([labels for _, labels in parts]).reshape(-1, 1)
        result.append((_images(parts, channels_last), labels.astype(spec.label_dtype)))
    return result[0], result[1]


def _images(parts, channels_last: bool) -> np.ndarray:
    """The batches' (n, 3, 32, 32) images in one array, channels moved last if asked."""
    total = sum(len(images) for images, _ in parts)
    out = np.empty((total, 32, 32, 3) if channels_last else (total, 3, 32, 32), np.uint8)
    start = 0
    for images, _ in parts:
        stop = start + len(images)
        if channels_last:
            for channel in range(3):      # one plane at a time: faster than a 4-D transpose
                out[start:stop, :, :, channel] = images[:, channel]
        else:
            out[start:stop] = images
        start = stop
    return out


class _Limited:
    """A binary stream that raises once more than `limit` bytes have been read from it."""

    def __init__(self, stream, limit: int, source: str, function: str):
        self.stream, self.limit, self.source, self.function = stream, limit, source, function
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self.stream.read(size)
        self.count += len(chunk)
        if self.count > self.limit:
            raise ValueError(f"{self.function}: '{self.source}' unpacks to more than "
                             f"{self.limit} bytes; a CIFAR archive is far smaller")
        return chunk


def read_archive(path, spec: CifarSpec, function: str) -> Dict[str, bytes]:
    """The batch files' bytes, read in one pass over the (gzip'ed) tar; nothing is extracted."""
    wanted = {f"{spec.folder}/{name}": name for name in spec.batches}
    found: Dict[str, bytes] = {}
    try:
        with open(path, "rb") as raw:
            compressed = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            stream = gzip.GzipFile(fileobj=raw) if compressed else raw
            limited = _Limited(stream, spec.max_archive_bytes, str(path), function)
            with tarfile.open(fileobj=limited, mode="r|") as tar:
                for member in tar:
                    _take_member(tar, member, wanted, found, spec, str(path), function)
            while limited.read(_READ_CHUNK):    # to the end, so that gzip checks its CRC
                pass
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise ValueError(f"{function}: cannot read '{path}' as the {spec.title} archive "
                         f"({spec.archive}): {type(error).__name__}: {error}") from None
    missing = [member for member, name in wanted.items() if name not in found]
    if missing:
        raise ValueError(f"{function}: '{path}' is not the {spec.title} python-version archive: it "
                         f"lacks {missing} (expected {spec.archive} from {spec.url})")
    return found


def _take_member(tar, member, wanted, found, spec: CifarSpec, source: str, function: str) -> None:
    name = member.name[2:] if member.name.startswith("./") else member.name
    if name not in wanted:
        return
    if not member.isfile():
        raise ValueError(f"{function}: '{source}' has '{name}' as a link or special file; "
                         "expected a regular file")
    if wanted[name] in found:
        raise ValueError(f"{function}: '{source}' holds '{name}' twice")
    if member.size > spec.max_batch_bytes:
        raise ValueError(f"{function}: '{source}' has '{name}' of {member.size} bytes; a "
                         f"{spec.title} batch has at most {spec.max_batch_bytes}")
    found[wanted[name]] = tar.extractfile(member).read()


def has_batches(folder: Path, spec: CifarSpec) -> bool:
    """True when `folder` holds every batch file of `spec`."""
    return all((folder / name).is_file() for name in spec.batches)


def read_folder(folder: Path, spec: CifarSpec, function: str) -> Dict[str, bytes]:
    """The batch files' bytes from an extracted folder."""
    found = {}
    for name in spec.batches:
        path = folder / name
        size = path.stat().st_size
        if size > spec.max_batch_bytes:
            raise ValueError(f"{function}: '{path}' has {size} bytes; a {spec.title} batch has at "
                             f"most {spec.max_batch_bytes}")
        found[name] = path.read_bytes()
    return found


def cache_folder(spec: CifarSpec) -> Path:
    """convscope's download cache: ~/.convscope/datasets/<name>."""
    return Path.home() / ".convscope" / "datasets" / spec.name


def _candidates(spec: CifarSpec) -> List[Tuple[str, Path]]:
    """("archive" | "folder", path) in the search order of the module's notes."""
    found: List[Tuple[str, Path]] = []
    env = os.environ.get("CONVSCOPE_DATA")
    roots = [Path(env).expanduser() / spec.name, Path(env).expanduser()] if env else []
    for root in roots + [checkout_shared_folder() / spec.name]:
        found += [("archive", root / spec.archive), ("folder", root / spec.folder), ("folder", root)]
    keras = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser() / "datasets"
    found += [("archive", keras / f"{spec.keras_dirname}_archive"),
              ("folder", keras / spec.keras_dirname / spec.folder),
              ("archive", keras / f"{spec.folder}.tar.gz"), ("folder", keras / spec.folder)]
    cache = cache_folder(spec)
    found += [("archive", cache / spec.archive), ("folder", cache / spec.folder)]
    return [(kind, path) for kind, path in found
            if (path.is_file() if kind == "archive" else has_batches(path, spec))]


def load(spec: CifarSpec, label_key: str, classes: int, path, function: str) -> Arrays:
    """Find (or download) `spec`'s data and return Keras' `((x_train, y_train), (x_test, y_test))`."""
    if path is not None:
        kind, place = _given(spec, Path(path).expanduser(), function)
        return _read(spec, kind, place, label_key, classes, function)
    skipped = []
    for kind, place in _candidates(spec):
        if kind == "archive" and file_digest(place) != spec.sha256:
            skipped.append(f"{place} (its SHA-256 is not Keras' {spec.sha256})")
            continue
        return _read(spec, kind, place, label_key, classes, function)
    archive = _download(spec, function, skipped)
    return _read(spec, "archive", archive, label_key, classes, function)


def _read(spec: CifarSpec, kind: str, place: Path, label_key: str, classes: int, function: str) -> Arrays:
    blobs = read_archive(place, spec, function) if kind == "archive" else read_folder(place, spec, function)
    return assemble(spec, blobs, label_key, classes, str(place), function)


def _given(spec: CifarSpec, path: Path, function: str) -> Tuple[str, Path]:
    """What a `path` argument names: the archive, or a folder with the batches or the archive."""
    if path.is_file():
        return "archive", path
    for folder in (path, path / spec.folder):
        if has_batches(folder, spec):
            return "folder", folder
    if (path / spec.archive).is_file():
        return "archive", path / spec.archive
    expected = (f"the {spec.title} archive ({spec.archive}) or the batch files "
                f"{list(spec.batches)} (directly or in '{spec.folder}')")
    if path.is_dir():
        raise FileNotFoundError(f"{function}: argument `path` names the folder '{path}', which holds "
                                f"neither {expected.replace(' or ', ' nor ', 1)}")
    raise FileNotFoundError(f"{function}: argument `path` names '{path}', which does not exist; "
                            f"expected {expected}")


class _CheckedLength:
    """A response that raises when the connection ends before its Content-Length."""

    def __init__(self, response, url: str):
        self.response, self.url, self.received = response, url, 0
        length = response.headers.get("Content-Length") if hasattr(response, "headers") else None
        self.expected = int(length) if length and length.isdigit() else None

    def read(self, size: int = -1) -> bytes:
        chunk = self.response.read(size)
        self.received += len(chunk)
        if not chunk and self.expected is not None and self.received < self.expected:
            raise ConnectionError(f"the download of '{self.url}' was interrupted after "
                                  f"{self.received} of {self.expected} bytes")
        return chunk

    def close(self) -> None:
        self.response.close()


def _open_url(url: str) -> _CheckedLength:
    return _CheckedLength(urllib.request.urlopen(url, timeout=60), url)  # noqa: S310


def _download(spec: CifarSpec, function: str, skipped: List[str]) -> Path:
    """Keras' archive into convscope's cache, kept only whole and with Keras' SHA-256."""
    target = cache_folder(spec) / spec.archive
    print(f"Downloading data from {spec.url}", file=sys.stderr)
    try:
        return download(spec.url, target, spec.sha256, opener=_open_url)
    except ValueError as error:
        raise ValueError(f"{function}: {error}") from None
    except OSError as error:
        raise FileNotFoundError(_not_found(spec, function, error, skipped)) from None


def _not_found(spec: CifarSpec, function: str, error: OSError, skipped: List[str]) -> str:
    passed_over = "".join(f"\n  passed over {s}" for s in skipped)
    return (f"{function}: the {spec.title} data were not found and could not be downloaded "
            f"(offline?): {error}{passed_over}\nNothing was kept.  Put {spec.archive} (from "
            f"{spec.url}) or its extracted '{spec.folder}' folder in a folder and set CONVSCOPE_DATA "
            f"to it, pass it as load_data(path=...), or place it in {cache_folder(spec)}.")
