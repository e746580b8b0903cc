"""`utils.get_file`: Keras' download cache, with atomic downloads, hash checks and safe extraction.

Oracle: Keras 3.15.1's own `get_file` on the same `file://` origins (no network): the same returned paths
under each one's `cache_dir`, the same extracted files.  Then what Keras does not promise: a hash mismatch
leaves nothing in the cache, hostile archive members are skipped, a cached file is not fetched again.
"""

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import convscope as cs


def make_archives(folder: Path):
    """A .tar.gz and a .zip of the same two files (one in a sub-folder), and a plain file."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"data/a.txt": b"alpha\n", "data/sub/b.bin": bytes(range(256)) * 3}
    with tarfile.open(folder / "pack.tar.gz", "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with zipfile.ZipFile(folder / "pack.zip", "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    (folder / "weights.npy").write_bytes(b"\x93NUMPY" + b"0" * 100)
    return files


def tree(folder) -> dict:
    root = Path(folder)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


CALLS = [
    dict(fname="weights.npy", origin="weights.npy"),
    dict(origin="weights.npy"),
    dict(fname="pack.tar.gz", origin="pack.tar.gz", extract=True),
    dict(origin="pack.tar.gz", extract=True),
    dict(fname="pack", origin="pack.tar.gz", untar=True),
    dict(fname="pack.zip", origin="pack.zip", extract=True, cache_subdir="zips"),
    dict(fname="w.npy", origin="weights.npy", cache_subdir="{tmp}/absolute"),     # an absolute folder, as Keras
]


@pytest.mark.parametrize("call", CALLS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_paths_and_files_equal_keras(keras, tmp_path, call):
    files = make_archives(tmp_path / "server")
    kwargs = dict(call, origin=(tmp_path / "server" / call["origin"]).as_uri())
    if "cache_subdir" in call:
        kwargs["cache_subdir"] = call["cache_subdir"].format(tmp=tmp_path)
    for side in ("ours", "theirs"):      # Keras falls back to /tmp/.keras for a cache_dir that does not exist yet
        (tmp_path / side).mkdir()
    ours = cs.utils.get_file(**kwargs, cache_dir=str(tmp_path / "ours"))
    theirs = keras.utils.get_file(**kwargs, cache_dir=str(tmp_path / "theirs"))
    assert os.path.relpath(ours, tmp_path / "ours") == os.path.relpath(theirs, tmp_path / "theirs")
    if os.path.isdir(theirs):
        assert tree(ours) == tree(theirs) == files
    else:
        assert Path(ours).read_bytes() == Path(theirs).read_bytes()


def test_hashes_decide_what_is_kept_and_fetched_again(tmp_path):
    make_archives(tmp_path / "server")
    origin = (tmp_path / "server" / "weights.npy").as_uri()
    data = (tmp_path / "server" / "weights.npy").read_bytes()
    sha256, md5 = [hashlib.new(a, data).hexdigest() for a in ("sha256", "md5")]
    with pytest.raises(ValueError, match="get_file: download: .* has SHA-256 .*, expected 0{64}"):
        cs.utils.get_file("w.npy", origin, file_hash="0" * 64, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache" / "datasets" / "w.npy").exists()          # nothing half-kept
    assert not list((tmp_path / "cache" / "datasets").glob(".*part"))
    path = cs.utils.get_file("w.npy", origin, md5_hash=md5, cache_dir=tmp_path / "cache")
    assert Path(path).read_bytes() == data
    (tmp_path / "server" / "weights.npy").unlink()                           # the origin gone: the cache serves
    assert cs.utils.get_file("w.npy", origin, file_hash=sha256, cache_dir=tmp_path / "cache") == path
    Path(path).write_bytes(b"damaged")                                        # a damaged cache: fetched again
    with pytest.raises(OSError, match="get_file: cannot download"):
        cs.utils.get_file("w.npy", origin, file_hash=sha256, cache_dir=tmp_path / "cache")
    assert cs.utils.validate_file(path, hashlib.md5(b"damaged").hexdigest())       # kept as it was


def test_hostile_archive_members_are_skipped(tmp_path):
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        for name, data in (("ok.txt", b"fine"), ("../escape.txt", b"x"), ("/abs.txt", b"y")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("link")
        link.type, link.linkname = tarfile.SYMTYPE, "../../outside"
        tar.addfile(link)
        fifo = tarfile.TarInfo("pipe")
        fifo.type = tarfile.FIFOTYPE
        tar.addfile(fifo)
    with pytest.warns(UserWarning, match="skipped 4 member\\(s\\) .*'../escape.txt', '/abs.txt', 'link', 'pipe'"):
        folder = cs.utils.get_file("evil.tar", archive.as_uri(), extract=True, cache_dir=tmp_path / "cache")
    assert tree(folder) == {"ok.txt": b"fine"}
    cache = tmp_path / "cache"          # members land in cache/datasets/.evil_extracted.<pid>-<n>.extracting/
    assert not (cache / "datasets" / "escape.txt").exists() and not Path("/abs.txt").exists()
    assert not (cache / "outside").exists() and not os.path.lexists(cache / "datasets" / "link")
    zipped = tmp_path / "evil.zip"
    with zipfile.ZipFile(zipped, "w") as handle:
        handle.writestr("good/x.txt", b"1")
        handle.writestr("../../zip_escape.txt", b"2")
    with pytest.warns(UserWarning, match="skipped 1 member"):
        folder = cs.utils.get_file("evil.zip", zipped.as_uri(), extract=True, cache_dir=tmp_path / "cache")
    assert tree(folder) == {"good/x.txt": b"1"} and not (tmp_path / "cache" / "zip_escape.txt").exists()


def test_a_damaged_archive_is_refused_and_leaves_no_folder(tmp_path):
    bad = tmp_path / "bad.tar.gz"
    good = io.BytesIO()
    with tarfile.open(fileobj=good, mode="w:gz") as tar:
        info = tarfile.TarInfo("a.bin")
        info.size = 100000
        tar.addfile(info, io.BytesIO(np.random.default_rng(0).bytes(100000)))
    bad.write_bytes(good.getvalue()[:-2000])                                   # truncated
    with pytest.raises(ValueError, match="extract_archive: cannot extract"):
        cs.utils.get_file("bad.tar.gz", bad.as_uri(), extract=True, cache_dir=tmp_path / "cache")
    assert sorted(p.name for p in (tmp_path / "cache" / "datasets").iterdir()) == ["bad.tar.gz"]


def test_arguments_are_checked_by_name(tmp_path):
    with pytest.raises(ValueError, match="get_file: argument `origin` must be the URL"):
        cs.utils.get_file("a")
    with pytest.raises(ValueError, match="get_file: argument `fname` must be a file name, not a path"):
        cs.utils.get_file("sub/a.txt", "file:///nowhere", cache_dir=tmp_path)
    with pytest.raises(TypeError, match="get_file: argument `cache_subdir` must be a folder"):
        cs.utils.get_file("a.txt", "file:///nowhere", cache_subdir=3, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="get_file: argument `hash_algorithm` must be"):
        cs.utils.get_file("a.txt", "file:///nowhere", file_hash="ab", hash_algorithm="sha1", cache_dir=tmp_path)


def test_links_are_skipped_where_python_has_no_extraction_filter(tmp_path, monkeypatch):
    """Without tarfile's data filter (Python before 3.10.12/3.11.4) a chain of links (d/l -> .., d/l/x -> ..)
    checked one by one would lead a later file out of the folder: links are skipped there."""
    archive = tmp_path / "chain.tar"
    with tarfile.open(archive, "w") as tar:
        folder = tarfile.TarInfo("d")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for name in ("d/l", "d/l/x"):
            link = tarfile.TarInfo(name)
            link.type, link.linkname = tarfile.SYMTYPE, ".."
            tar.addfile(link)
        info = tarfile.TarInfo("d/l/x/ESCAPED.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"!"))
    monkeypatch.delattr(tarfile, "data_filter", raising=False)
    with pytest.warns(UserWarning, match="skipped 2 member.*'d/l', 'd/l/x'"):
        folder = cs.utils.get_file("chain.tar", archive.as_uri(), extract=True, cache_dir=tmp_path / "cache")
    assert list(tmp_path.rglob("ESCAPED.txt")) == [Path(folder) / "d" / "l" / "x" / "ESCAPED.txt"]   # inside
    assert not any(p.is_symlink() for p in Path(folder).rglob("*"))


def test_callers_extracting_at_once_each_get_the_whole_folder(tmp_path):
    server = tmp_path / "server"
    server.mkdir()
    with tarfile.open(server / "many.tar", "w") as tar:
        for i in range(200):
            info = tarfile.TarInfo(f"f{i}.bin")
            info.size = 1000
            tar.addfile(info, io.BytesIO(bytes([i % 256]) * 1000))
    (tmp_path / "cache" / "datasets").mkdir(parents=True)
    cs.utils.get_file("many.tar", (server / "many.tar").as_uri(), cache_dir=tmp_path / "cache")  # downloaded once
    results, errors = [], []

    def extract():
        try:
            folder = cs.utils.get_file("many.tar", (server / "many.tar").as_uri(), extract=True,
                                       cache_dir=tmp_path / "cache")
            results.append(len(list(Path(folder).iterdir())))
        except Exception as error:          # noqa: BLE001 (reported below)
            errors.append(error)
    threads = [threading.Thread(target=extract) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and results == [200] * 6
    assert sorted(p.name for p in (tmp_path / "cache" / "datasets").iterdir()) == ["many.tar", "many_extracted"]


def test_a_killed_extraction_leaves_nothing_behind(tmp_path):
    """The temporary folder of an extraction whose process died is removed by the next extraction."""
    make_archives(tmp_path / "server")
    datasets = tmp_path / "cache" / "datasets"
    datasets.mkdir(parents=True)
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(child.stdout)                                                  # a pid that no longer runs
    stale = datasets / f".pack_extracted.{dead}-0.extracting"
    (stale / "data").mkdir(parents=True)
    (stale / "data" / "half.bin").write_bytes(b"x" * 100)
    mine = datasets / f".pack_extracted.{os.getpid()}-0.extracting"          # a live process' (this one's), or a
    mine.mkdir()                                                 # dead one's with the same pid in another container
    recent = datasets / f".pack_extracted.{dead}-1.extracting"              # a dead pid's, but touched a minute ago:
    recent.mkdir()                                                          # perhaps another machine's, running
    hour_ago = time.time() - 7200
    os.utime(stale, (hour_ago, hour_ago))
    folder = cs.utils.get_file("pack.tar.gz", (tmp_path / "server" / "pack.tar.gz").as_uri(), extract=True,
                               cache_dir=tmp_path / "cache")
    assert tree(folder) == {"data/a.txt": b"alpha\n", "data/sub/b.bin": bytes(range(256)) * 3}
    assert not stale.exists() and mine.exists() and recent.exists()
    day_ago = time.time() - 2 * 86400
    os.utime(mine, (day_ago, day_ago))                                        # a day untouched: whoever's it was
    cs.utils.get_file("pack.tar.gz", (tmp_path / "server" / "pack.tar.gz").as_uri(), extract=True,
                      cache_dir=tmp_path / "cache", force_download=True)
    assert not mine.exists()


def test_a_folder_removed_while_it_fills_is_not_put_in_place(tmp_path, monkeypatch):
    """If another machine's clean-up removes an extraction's folder while it fills (tarfile would recreate the
    missing folders and carry on), the extraction fails instead of renaming a partial folder into place."""
    from convscope.utils import file_utils
    make_archives(tmp_path / "server")
    real = file_utils._extract_members

    def disturbed(file_path, folder, kind):
        shutil.rmtree(folder)                                                 # removed under the extraction ...
        folder.mkdir()
        real(file_path, folder, kind)                                         # ... which fills it again
    monkeypatch.setattr(file_utils, "_extract_members", disturbed)
    with pytest.raises(ValueError, match="extract_archive: cannot extract .*FileNotFoundError"):
        cs.utils.get_file("pack.tar.gz", (tmp_path / "server" / "pack.tar.gz").as_uri(), extract=True,
                          cache_dir=tmp_path / "cache")
    assert sorted(p.name for p in (tmp_path / "cache" / "datasets").iterdir()) == ["pack.tar.gz"]


def test_extract_archive_keeps_what_the_folder_holds(keras, tmp_path):
    """Keras' `extract_archive(file, path)`: the members go into `path`, whose other files stay."""
    from keras.src.utils import file_utils as keras_file_utils
    make_archives(tmp_path / "server")
    for extract, folder in ((cs.utils.extract_archive, tmp_path / "ours"),
                            (keras_file_utils.extract_archive, tmp_path / "theirs")):
        folder.mkdir()
        (folder / "keep.txt").write_bytes(b"mine")
        assert extract(str(tmp_path / "server" / "pack.zip"), str(folder))
    assert tree(tmp_path / "ours") == tree(tmp_path / "theirs")
    assert tree(tmp_path / "ours")["keep.txt"] == b"mine"
