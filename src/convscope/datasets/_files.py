"""Finding, checking and reading the files of the IDX datasets (MNIST, Fashion-MNIST).

Search order for `load_data()` (the first complete set wins):

1. the `path` argument, when it names an existing `.npz` file or a folder;
2. the folder named by the environment variable `CONVSCOPE_DATA`: its
   sub-folders named after the dataset, then the folder itself;
3. `shared/datasets/<name>` beside a source checkout (the project's data folder);
4. Keras' own cache, `~/.keras/datasets/`;
5. convscope's cache, `~/.convscope/datasets/<name>/`;
6. otherwise the four files are downloaded into convscope's cache, each checked
   against its published SHA-256 before it is renamed into place.

Files found by searching (not named by `path`) must match the published
SHA-256, so that MNIST and Fashion-MNIST — whose files have the same names —
are never mixed up.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import numpy as np

from ..io._atomic import atomic_write

# IDX type codes (third byte of the magic number) -> big-endian NumPy dtype.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CHUNK = 1 << 20

Arrays = Tuple[Tuple[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]
Opener = Callable[[str], "object"]


@dataclass(frozen=True)
class IdxDataset:
    """What is needed to find, download and check one IDX dataset."""

    name: str                      # "mnist" — also the cache sub-folder
    folder_names: Tuple[str, ...]  # sub-folders of CONVSCOPE_DATA / shared to look in
    files: Tuple[Tuple[str, str], ...]  # (x_train, y_train, x_test, y_test) file, SHA-256
    mirrors: Tuple[str, ...]       # base URLs, tried in order
    keras_cache: Tuple[str, ...]   # paths under ~/.keras/datasets holding the data
    npz_sha256: Optional[str] = None  # SHA-256 of Keras' npz, when Keras ships one

    @property
    def file_names(self) -> List[str]:
        return [name for name, _ in self.files]


def read_idx(path) -> np.ndarray:
    """Read an IDX file (gzip-compressed when its name ends in `.gz`) into an array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as error:
        raise ValueError(f"read_idx: cannot read '{path}' as an IDX file: {error}") from None
    return parse_idx(data, str(path))


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode IDX bytes: magic 0x0000TTNN (type TT, NN dimensions), NN big-endian sizes, data."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"read_idx: '{source}' is not an IDX file (expected the magic bytes "
                         f"00 00 <type> <ndim>, got {data[:4].hex(' ') or 'an empty file'})")
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"read_idx: '{source}' is truncated inside its header "
                         f"({len(data)} bytes, the header needs {header})")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(f"read_idx: '{source}' has {len(data)} bytes but its header "
                         f"(shape {dims}, {dtype.name}) needs {expected}; the file is truncated "
                         "or damaged")
    array = np.frombuffer(data, dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=True)


def file_digest(path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes (SHA-256, or `algorithm`: Keras publishes MD5s for its applications)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_npz(path, function: str) -> Arrays:
    """Read a Keras-style npz holding `x_train`, `y_train`, `x_test`, `y_test`."""
    keys = ("x_train", "y_train", "x_test", "y_test")
    try:
        with np.load(path, allow_pickle=False) as archive:
            present = sorted(archive.files)
            arrays = [archive[k] for k in keys if k in present]
    except (OSError, EOFError, ValueError) as error:
        raise ValueError(f"{function}: cannot read '{path}' as a Keras .npz dataset file: "
                         f"{error}") from None
    if len(arrays) != len(keys):
        missing = [k for k in keys if k not in present]
        raise ValueError(f"{function}: '{path}' holds arrays {present}, expected {list(keys)} "
                         f"(missing {missing})")
    x_train, y_train, x_test, y_test = arrays
    return _checked(function, str(path), x_train, y_train, x_test, y_test)


def read_idx_folder(folder, spec: IdxDataset, function: str) -> Arrays:
    """Read the four IDX files of `spec` from `folder` (`.gz` or uncompressed)."""
    arrays = []
    for name in spec.file_names:
        candidates = [Path(folder) / name, Path(folder) / name[:-len(".gz")]]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise FileNotFoundError(f"{function}: '{folder}' has no '{name}' (nor its "
                                    f"uncompressed form); expected the files {spec.file_names}")
        arrays.append(read_idx(found))
    return _checked(function, str(folder), *arrays)


def _checked(function: str, source: str, x_train, y_train, x_test, y_test) -> Arrays:
    """Check the shapes fit together (images N×H×W, one label per image) and return uint8."""
    for images, labels, split in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"{function}: '{source}' has {split} images of shape {images.shape} "
                             f"and labels of shape {labels.shape}; expected (N, rows, cols) "
                             "and (N,) with the same N")
    return ((np.asarray(x_train, np.uint8), np.asarray(y_train, np.uint8)),
            (np.asarray(x_test, np.uint8), np.asarray(y_test, np.uint8)))


def download(url: str, target, digest: Optional[str], opener: Optional[Opener] = None,
             algorithm: str = "sha256") -> Path:
    """Fetch `url` into `target`, keeping it only if its digest (`algorithm`, SHA-256 by default; Keras
    publishes MD5s for its applications' weights) is `digest` (None: no published digest, kept as fetched).

    The bytes stream into a temporary file beside `target`, hashed on the way;
    on a match the file is renamed into place, otherwise it is deleted and a
    ValueError names both checksums.  `opener(url)` returns a readable binary
    file object (default: `urllib.request.urlopen` with a 60 s timeout).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    open_url = opener or (lambda u: urllib.request.urlopen(u, timeout=60))  # noqa: S310
    hashed = hashlib.new(algorithm)
    with atomic_write(target) as out:   # on any error the partial download is removed
        response = open_url(url)
        try:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                hashed.update(chunk)
                out.write(chunk)
        finally:
            close = getattr(response, "close", None)
            if close is not None:
                close()
        if digest is not None and hashed.hexdigest() != digest:
            label = "SHA-256" if algorithm == "sha256" else algorithm.upper()
            raise ValueError(f"download: '{url}' has {label} {hashed.hexdigest()}, expected "
                             f"{digest}; the download was discarded and '{target}' left as it was")
    return target


def find_or_download(spec: IdxDataset, path: Optional[str], function: str) -> Arrays:
    """Load `spec` following the search order of this module's docstring."""
    if path is not None:
        given = Path(path).expanduser()
        if given.is_file():
            return read_npz(given, function)
        if given.is_dir():
            return read_idx_folder(given, spec, function)
    npz_name = Path(path).name if path is not None else None

    for folder in _search_folders(spec):
        if npz_name and (folder / npz_name).is_file() and _npz_acceptable(folder / npz_name, spec):
            return read_npz(folder / npz_name, function)
        if _has_verified_idx(folder, spec):
            return read_idx_folder(folder, spec, function)

    cache = cache_folder(spec)
    _download_all(spec, cache, function)
    return read_idx_folder(cache, spec, function)


def cache_folder(spec: IdxDataset) -> Path:
    """convscope's download cache for `spec`: ~/.convscope/datasets/<name>."""
    return Path.home() / ".convscope" / "datasets" / spec.name


def checkout_shared_folder() -> Path:
    """`shared/datasets` beside the repository when convscope runs from a source checkout."""
    parents = Path(__file__).resolve().parents
    return (parents[4] if len(parents) > 4 else parents[-1]) / "shared" / "datasets"


def _search_folders(spec: IdxDataset) -> List[Path]:
    folders: List[Path] = []
    env = os.environ.get("CONVSCOPE_DATA")
    if env:
        root = Path(env).expanduser()
        folders += [root / name for name in spec.folder_names] + [root]
    shared = checkout_shared_folder()
    folders += [shared / name for name in spec.folder_names]
    keras = Path.home() / ".keras" / "datasets"
    folders += [keras / sub for sub in spec.keras_cache]
    folders.append(cache_folder(spec))
    return [f for f in dict.fromkeys(folders) if f.is_dir()]


def _npz_acceptable(path: Path, spec: IdxDataset) -> bool:
    """A searched-for npz is used when Keras publishes no checksum or the checksum matches."""
    return spec.npz_sha256 is None or file_digest(path) == spec.npz_sha256


def _has_verified_idx(folder: Path, spec: IdxDataset) -> bool:
    """True when all four `.gz` files are in `folder` with their published SHA-256."""
    paths = [folder / name for name in spec.file_names]
    if not all(p.is_file() for p in paths):
        return False
    return all(file_digest(p) == digest for p, (_, digest) in zip(paths, spec.files))


def _download_all(spec: IdxDataset, cache: Path, function: str) -> None:
    for name, digest in spec.files:
        target = cache / name
        if target.is_file() and file_digest(target) == digest:
            continue
        failures: List[str] = []
        mismatch = False
        for base in spec.mirrors:
            url = base + name
            print(f"Downloading data from {url}", file=sys.stderr)
            try:
                download(url, target, digest)
                break
            except ValueError as error:
                mismatch = True
                failures.append(str(error))
            except OSError as error:
                failures.append(f"{url}: {error}")
        else:
            reasons = "\n  ".join(failures)
            if mismatch:
                raise ValueError(f"{function}: could not get a correct copy of '{name}':\n  "
                                 f"{reasons}")
            raise FileNotFoundError(_where_to_put(spec, function, reasons))


def _where_to_put(spec: IdxDataset, function: str, reasons: str) -> str:
    files = ", ".join(spec.file_names)
    return (f"{function}: the {spec.name} files were not found and could not be downloaded "
            f"(offline?).\n  {reasons}\nPut the four files ({files}) in a folder and either set "
            f"CONVSCOPE_DATA to that folder, pass it as load_data(path=...), or place them in "
            f"{cache_folder(spec)}.")
