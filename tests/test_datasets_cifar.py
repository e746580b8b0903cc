"""CIFAR-10/100 from fake archives in Keras' format: where they are found, what comes back
(Keras 3.15.1 reading the same files is the oracle), the pickles never run, damaged and
foreign files refused, downloads from a local HTTP server kept only whole and checked."""

import builtins
import dataclasses
import hashlib
import io
import os
import pickle
import socket
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from convscope import backend
from convscope.datasets import cifar, cifar10, cifar100
from convscope.datasets.cifar_pickle import load_restricted


# -- fake CIFAR files, pickled as Python 2 did ---------------------------------------------
class Py2Pickler(pickle._Pickler):
    """Writes str and bytes as Python 2 `str` (STRING/BINSTRING) and NumPy as `numpy.core`,
    as the published CIFAR batches were written."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj):
        data = obj.encode("latin-1") if isinstance(obj, str) else obj
        if self.proto == 0:
            self.write(b"S" + repr(data)[1:].encode("ascii") + b"\n")
        elif len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + len(data).to_bytes(4, "little") + data)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str

    def save_global(self, obj, name=None):
        module = pickle.whichmodule(obj, obj.__name__).replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{obj.__name__}\n".encode("ascii"))
        self.memoize(obj)


def pickled(obj, protocol="py2"):
    """py2 (protocol 2, as CIFAR's files), py2-0 (Python 2 text protocol) or a Python 3 protocol."""
    if protocol in ("py2", "py2-0"):
        out = io.BytesIO()
        Py2Pickler(out, protocol=2 if protocol == "py2" else 0).dump(obj)
        return out.getvalue()
    return pickle.dumps(obj, protocol=protocol)


def fake_batch(rng, n, label_keys, classes):
    pixels = np.frombuffer(rng.bytes(n * 3072), np.uint8).reshape(n, 3072)
    batch = {b"batch_label": b"fake batch", b"data": pixels,
             b"filenames": [f"img_{i}.png".encode() for i in range(n)]}
    for key, count in zip(label_keys, classes):
        batch[key.encode()] = rng.integers(0, count, n).tolist()
    return batch


def cifar10_batches(seed=0, n=6):
    rng = np.random.default_rng(seed)
    return {name: fake_batch(rng, n, ["labels"], [10]) for name in cifar10.SPEC.batches}


def cifar100_batches(seed=0, n=6):
    rng = np.random.default_rng(seed)
    return {name: fake_batch(rng, n + 3 * (name == "train"), ["fine_labels", "coarse_labels"], [100, 20])
            for name in cifar100.SPEC.batches}


def write_folder(root, spec, batches, protocol="py2", extra=None):
    """`root/<spec.folder>/` with every batch file (and `extra` files); returns that folder."""
    folder = root / spec.folder
    folder.mkdir(parents=True, exist_ok=True)
    for name, batch in batches.items():
        (folder / name).write_bytes(batch if isinstance(batch, bytes) else pickled(batch, protocol))
    for name, data in (extra or {}).items():
        (folder / name).write_bytes(data)
    return folder


def write_archive(path, spec, batches, protocol="py2", compression="gz"):
    """The archive as Keras downloads it: `<folder>/<batch>` members, plus meta and readme."""
    members = {name: b if isinstance(b, bytes) else pickled(b, protocol) for name, b in batches.items()}
    members["batches.meta" if spec is cifar10.SPEC else "meta"] = pickled({b"label_names": [b"x"]})
    members["readme.html"] = b"<html>fake</html>"
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, f"w:{compression}") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"{spec.folder}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def expected(batches, names, label_key, data_format="channels_last"):
    """What Keras' load_data makes of these batches, computed here from the raw dicts."""
    images = np.concatenate([batches[n][b"data"] for n in names]).reshape(-1, 3, 32, 32)
    if data_format == "channels_last":
        images = images.transpose(0, 2, 3, 1)
    labels = np.concatenate([batches[n][label_key.encode()] for n in names]).reshape(-1, 1)
    return images, labels


def assert_cifar10(result, batches, dtype=np.uint8, data_format="channels_last"):
    for (x, y), names in zip(result, (cifar10.SPEC.train, cifar10.SPEC.test)):
        want_x, want_y = expected(batches, names, "labels", data_format)
        assert x.dtype == np.uint8 and y.dtype == dtype
        np.testing.assert_array_equal(x, want_x)
        np.testing.assert_array_equal(y, want_y)


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def unreachable_url():
    """An http URL on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/archive.tar.gz"


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No CONVSCOPE_DATA, Keras or convscope cache, shared folder or real network."""
    for name in ("CONVSCOPE_DATA", "KERAS_HOME", "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(cifar, "checkout_shared_folder", lambda: tmp_path / "no-shared")
    for module in (cifar10, cifar100):
        monkeypatch.setattr(module, "SPEC", dataclasses.replace(module.SPEC, url=unreachable_url()))
    return tmp_path


@pytest.fixture
def channels_first():
    backend.set_image_data_format("channels_first")
    yield
    backend.set_image_data_format("channels_last")


def use_sha(monkeypatch, module, digest):
    monkeypatch.setattr(module, "SPEC", dataclasses.replace(module.SPEC, sha256=digest))


# -- what comes back, against Keras -------------------------------------------------------------
@pytest.mark.parametrize("protocol", ["py2", "py2-0", 3, 4])
def test_each_batch_as_keras_load_batch_reads_it(keras, tmp_path, protocol):
    from keras.src.datasets.cifar import load_batch
    batches = cifar10_batches(seed=1)
    folder = write_folder(tmp_path, cifar10.SPEC, batches, protocol)
    for name in cifar10.SPEC.batches:
        keras_x, keras_y = load_batch(str(folder / name))
        x, y = cifar.parse_batch((folder / name).read_bytes(), name, "labels", 10, "test")
        np.testing.assert_array_equal(x, keras_x)
        np.testing.assert_array_equal(y, keras_y)
        assert x.dtype == keras_x.dtype == np.uint8


def keras_load(keras, monkeypatch, module_name, root, *args):
    """Keras' own load_data, its get_file pointed at `root` (which holds the extracted folder)."""
    import importlib
    module = importlib.import_module(f"keras.src.datasets.{module_name}")
    monkeypatch.setattr(module, "get_file", lambda *a, **k: str(root))
    return module.load_data(*args)


def assert_same(ours, theirs):
    for mine, keras_array in zip([*ours[0], *ours[1]], [*theirs[0], *theirs[1]]):
        assert mine.shape == keras_array.shape and mine.dtype == keras_array.dtype
        np.testing.assert_array_equal(mine, keras_array)


@pytest.mark.parametrize("data_format", ["channels_last"])
def test_cifar10_as_keras_full_size(keras, tmp_path, monkeypatch, isolated, data_format):
    """Keras' cifar10 needs 10,000 images per batch: the real shapes and dtypes (channels_first
    is compared on small batches below, and by Keras for CIFAR-100)."""
    batches = cifar10_batches(seed=2, n=10000)
    write_folder(tmp_path / "k", cifar10.SPEC, batches)
    keras.backend.set_image_data_format(data_format)
    backend.set_image_data_format(data_format)
    try:
        theirs = keras_load(keras, monkeypatch, "cifar10", tmp_path / "k")
        ours = cifar10.load_data(path=tmp_path / "k")
    finally:
        backend.set_image_data_format("channels_last")
        keras.backend.set_image_data_format("channels_last")
    assert_same(ours, theirs)
    shape = (50000, 32, 32, 3) if data_format == "channels_last" else (50000, 3, 32, 32)
    assert ours[0][0].shape == shape and ours[0][1].shape == (50000, 1)
    assert ours[1][0].shape == (10000,) + shape[1:] and ours[1][1].shape == (10000, 1)


@pytest.mark.parametrize("label_mode", ["fine", "coarse"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_cifar100_as_keras(keras, tmp_path, monkeypatch, isolated, label_mode, data_format):
    batches = cifar100_batches(seed=3)
    write_folder(tmp_path / "k", cifar100.SPEC, batches)
    keras.backend.set_image_data_format(data_format)
    backend.set_image_data_format(data_format)
    try:
        theirs = keras_load(keras, monkeypatch, "cifar100", tmp_path / "k", label_mode)
        ours = cifar100.load_data(label_mode, path=tmp_path / "k")
    finally:
        backend.set_image_data_format("channels_last")
        keras.backend.set_image_data_format("channels_last")
    assert_same(ours, theirs)
    assert ours[0][1].dtype == np.int64 and ours[0][1].max() < {"fine": 100, "coarse": 20}[label_mode]


@pytest.mark.parametrize("protocol", ["py2", "py2-0", 2, 4])
def test_cifar10_small_batches_both_formats(isolated, tmp_path, protocol):
    batches = cifar10_batches(seed=4)
    if protocol == 2:       # Python 3's protocol 2 writes bytes with `_codecs.encode`: refused
        write_folder(tmp_path / "d", cifar10.SPEC, batches, protocol)
        with pytest.raises(ValueError, match=r"asks for `_codecs.encode`, which is never loaded"):
            cifar10.load_data(path=tmp_path / "d")
        return
    archive = write_archive(tmp_path / "a.tar.gz", cifar10.SPEC, batches, protocol)
    assert_cifar10(cifar10.load_data(path=archive), batches)
    backend.set_image_data_format("channels_first")
    try:
        assert_cifar10(cifar10.load_data(path=archive), batches, data_format="channels_first")
    finally:
        backend.set_image_data_format("channels_last")


# -- where the data are found ------------------------------------------------------------------
def place_archive(root, spec, batches, monkeypatch, module, name=None):
    path = write_archive(root / (name or spec.archive), spec, batches)
    use_sha(monkeypatch, module, sha256(path))
    return path


@pytest.mark.parametrize("where", [
    "path-archive", "path-folder", "path-parent", "path-archive-folder", "env-archive",
    "env-subfolder", "env-extracted", "shared", "keras3-archive", "keras3-folder", "keras2-archive",
    "keras2-folder", "keras-home", "cache-archive"])
def test_every_local_place_of_the_search(isolated, tmp_path, monkeypatch, where):
    batches = cifar10_batches(seed=5)
    spec, home = cifar10.SPEC, tmp_path / "home"
    keras_data = home / ".keras" / "datasets"
    path = None
    if where == "path-archive":
        path = write_archive(tmp_path / "anywhere.tgz", spec, batches)     # named: no checksum
    elif where == "path-folder":
        path = write_folder(tmp_path / "x", spec, batches)
    elif where == "path-parent":
        write_folder(tmp_path / "x", spec, batches)
        path = str(tmp_path / "x")
    elif where == "path-archive-folder":
        write_archive(tmp_path / "x" / spec.archive, spec, batches)
        path = tmp_path / "x"
    elif where.startswith("env"):
        monkeypatch.setenv("CONVSCOPE_DATA", str(tmp_path / "data"))
        if where == "env-archive":
            place_archive(tmp_path / "data", spec, batches, monkeypatch, cifar10)
        elif where == "env-subfolder":
            place_archive(tmp_path / "data" / "cifar10", spec, batches, monkeypatch, cifar10)
        else:
            write_folder(tmp_path / "data", spec, batches)
    elif where == "shared":
        write_folder(tmp_path / "no-shared" / "cifar10", spec, batches)
    elif where == "keras3-archive":
        place_archive(keras_data, spec, batches, monkeypatch, cifar10, "cifar-10-batches-py-target_archive")
    elif where == "keras3-folder":
        write_folder(keras_data / "cifar-10-batches-py-target", spec, batches)
    elif where == "keras2-archive":
        place_archive(keras_data, spec, batches, monkeypatch, cifar10, "cifar-10-batches-py.tar.gz")
    elif where == "keras2-folder":
        write_folder(keras_data, spec, batches)
    elif where == "keras-home":
        monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
        write_folder(tmp_path / "kh" / "datasets" / "cifar-10-batches-py-target", spec, batches)
    else:
        place_archive(home / ".convscope" / "datasets" / "cifar10", spec, batches, monkeypatch, cifar10)
    assert_cifar10(cifar10.load_data(path=path), batches)


def test_cifar100_from_the_convscope_data_folder(isolated, tmp_path, monkeypatch):
    batches = cifar100_batches(seed=6)
    monkeypatch.setenv("CONVSCOPE_DATA", str(tmp_path / "data"))
    place_archive(tmp_path / "data" / "cifar100", cifar100.SPEC, batches, monkeypatch, cifar100)
    (x_train, y_train), (x_test, y_test) = cifar100.load_data("coarse")
    want_x, want_y = expected(batches, ["train"], "coarse_labels")
    np.testing.assert_array_equal(x_train, want_x)
    np.testing.assert_array_equal(y_train, want_y)
    np.testing.assert_array_equal(y_test, expected(batches, ["test"], "coarse_labels")[1])


def test_the_first_place_wins(isolated, tmp_path, monkeypatch):
    first, second = cifar10_batches(seed=7), cifar10_batches(seed=8)
    monkeypatch.setenv("CONVSCOPE_DATA", str(tmp_path / "data"))
    write_folder(tmp_path / "data", cifar10.SPEC, first)
    write_folder(tmp_path / "home" / ".convscope" / "datasets" / "cifar10", cifar10.SPEC, second)
    assert_cifar10(cifar10.load_data(), first)


def test_a_searched_archive_must_have_keras_checksum(isolated, tmp_path, monkeypatch):
    """An archive found by searching but not matching Keras' SHA-256 is passed over (and said so)."""
    batches = cifar10_batches(seed=9)
    monkeypatch.setenv("CONVSCOPE_DATA", str(tmp_path / "data"))
    archive = write_archive(tmp_path / "data" / cifar10.SPEC.archive, cifar10.SPEC, batches)
    with pytest.raises(FileNotFoundError, match=rf"passed over {archive} \(its SHA-256 is not Keras'"):
        cifar10.load_data()
    use_sha(monkeypatch, cifar10, sha256(archive))
    assert_cifar10(cifar10.load_data(), batches)


# -- hostile, damaged and foreign files -----------------------------------------------------------
class Payload:
    """Unpickled by `pickle`, this writes the marker file: proof that the pickle ran code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.exec, (f"open({self.marker!r}, 'w').write('ran')",)


def hostile_batches(marker, where):
    batches = cifar10_batches(seed=10)
    batch = batches["data_batch_3"]
    if where == "data":
        batch[b"data"] = Payload(marker)
    elif where == "labels":
        batch[b"labels"][5] = Payload(marker)
    else:
        batch[b"extra"] = {b"deep": [Payload(marker)]}
    return batches


@pytest.mark.parametrize("where", ["data", "labels", "nested"])
@pytest.mark.parametrize("protocol", ["py2", "py2-0", 4])
def test_a_reduce_payload_never_runs(isolated, tmp_path, where, protocol):
    marker = tmp_path / "ran.txt"
    batches = hostile_batches(marker, where)
    evil = pickled(batches["data_batch_3"], protocol)
    pickle.loads(evil, encoding="bytes")        # the payload is live: plain pickle runs it
    assert marker.read_text() == "ran"
    marker.unlink()
    batches["data_batch_3"] = evil
    archive = write_archive(tmp_path / "evil.tar.gz", cifar10.SPEC, batches)
    with pytest.raises(ValueError, match=r"cifar10.load_data: '.*data_batch_3' is not a CIFAR python "
                                         r"batch: it asks for `builtins.exec`, which is never loaded"):
        cifar10.load_data(path=archive)
    assert not marker.exists()


def raw_pickle(*parts):
    return b"".join(parts)


@pytest.mark.parametrize("data, message", [
    # numpy.ndarray called directly with a huge shape: an allocation from a few bytes
    (raw_pickle(b"\x80\x02cnumpy\nndarray\n", b"J\x00\xca\x9a;\x85R."), "calls numpy's ndarray"),
    # an object array: its items would be arbitrary objects
    (raw_pickle(b"\x80\x02cnumpy\ndtype\nX\x02\x00\x00\x00O8\x85R."), "dtype 'O8'"),
    (raw_pickle(b"\x80\x04\x8c\x02os\x8c\x06system\x93."), "asks for `os.system`"),
    (raw_pickle(b"\x80\x02cposix\nsystem\nX\x04\x00\x00\x00true\x85R."), "asks for `posix.system`"),
    (raw_pickle(b"\x80\x02(K\x01K\x02l}b."), "sets the state of a list"),   # BUILD: setattr on an object
    (raw_pickle(b"\x80\x02K\x01."[:-1]), "ends before its STOP"),
    (raw_pickle(b"\x80\x02\xff."), "unknown opcode"),
    (raw_pickle(b"\x80\x02G?\xf0\x00\x00\x00\x00\x00\x00."), "opcode BINFLOAT"),
    (raw_pickle(b"\x80\x02h\x05."), "KeyError"),
])
def test_restricted_reader_refusals(data, message):
    with pytest.raises(ValueError, match=r"f: 'src' is not a CIFAR python batch: .*" + message):
        load_restricted(data, "src", "f")


def test_array_state_must_match_its_bytes():
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    good = pickle.dumps(array, protocol=3)
    np.testing.assert_array_equal(load_restricted(good, "s", "f"), array)
    short = good.replace(bytes(range(12)), bytes(range(11)) + b"").replace(b"C\x0c", b"C\x0b")
    with pytest.raises(ValueError, match=r"an array of shape \(3, 4\) \(uint8\) needs 12 bytes, the "
                                         r"file gives 11"):
        load_restricted(short, "s", "f")
    with pytest.raises(TypeError, match=r"load_restricted: argument `data` must be bytes, got str"):
        load_restricted("text", "s", "f")


def damaged(batch_edit):
    batches = cifar10_batches(seed=11)
    batch_edit(batches["test_batch"])
    return batches


@pytest.mark.parametrize("edit, message", [
    (lambda b: b.update({b"data": b[b"data"][:, :1000]}),
     r"has 'data' of dtype uint8 and shape \(6, 1000\); expected a uint8 array of shape \(N, 3072\)"),
    (lambda b: b.update({b"data": b[b"data"].astype(np.int32)}), r"has 'data' of dtype int32 and shape \(6, 3072\); expected a uint8"),
    (lambda b: b.update({b"data": b"raw bytes"}), r"has 'data' of type bytes; expected a uint8 array"),
    (lambda b: b[b"labels"].append(3), r"key 'labels' has 7 labels for 6 images"),
    (lambda b: b[b"labels"].__setitem__(0, 10), r"key 'labels' has labels from \d+ to 10; expected 0..9"),
    (lambda b: b[b"labels"].__setitem__(0, -1), r"key 'labels' has labels from -1 to \d; expected 0..9"),
    (lambda b: b[b"labels"].__setitem__(0, 2**70), r"key 'labels' has labels from \d to 1180591620717411303424; "
                                                  r"expected 0..9"),
    (lambda b: b.update({b"labels": b"\x01" * 6}), r"key 'labels' must be a list of ints, got bytes"),
    (lambda b: b.pop(b"labels"), r"has the keys \['batch_label', 'data', 'filenames'\], expected "
                                 r"'data' and 'labels' \(missing \['labels'\]\)"),
])
def test_damaged_batches_name_the_problem(isolated, tmp_path, edit, message):
    archive = write_archive(tmp_path / "d.tar.gz", cifar10.SPEC, damaged(edit))
    with pytest.raises(ValueError, match=r"cifar10.load_data: '.*test_batch' " + message):
        cifar10.load_data(path=archive)


def test_a_batch_that_is_not_a_dict(isolated, tmp_path):
    batches = cifar10_batches(seed=12)
    batches["test_batch"] = pickled([1, 2, 3])
    with pytest.raises(ValueError, match=r"'.*test_batch' holds a list, expected the dict"):
        cifar10.load_data(path=write_folder(tmp_path, cifar10.SPEC, batches))


def test_truncated_and_flipped_archives(isolated, tmp_path):
    archive = write_archive(tmp_path / "a.tar.gz", cifar10.SPEC, cifar10_batches(seed=13))
    data = archive.read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cifar10.load_data: cannot read '.*cut.tar.gz' as the "
                                         r"CIFAR-10 archive \(cifar-10-python.tar.gz\): EOFError"):
        cifar10.load_data(path=tmp_path / "cut.tar.gz")
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    (tmp_path / "flip.tar.gz").write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match=r"cannot read '.*flip.tar.gz' as the CIFAR-10 archive"):
        cifar10.load_data(path=tmp_path / "flip.tar.gz")


def test_foreign_archives(isolated, tmp_path):
    other = write_archive(tmp_path / "c100.tar.gz", cifar100.SPEC, cifar100_batches(seed=14))
    with pytest.raises(ValueError, match=r"'.*c100.tar.gz' is not the CIFAR-10 python-version archive: "
                                         r"it lacks \['cifar-10-batches-py/data_batch_1'"):
        cifar10.load_data(path=other)
    (tmp_path / "random.bin").write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(ValueError, match=r"cannot read '.*random.bin' as the CIFAR-10 archive"):
        cifar10.load_data(path=tmp_path / "random.bin")
    import zipfile
    with zipfile.ZipFile(tmp_path / "c.zip", "w") as z:
        z.writestr("cifar-10-batches-py/data_batch_1", b"x")
    with pytest.raises(ValueError, match=r"cannot read '.*c.zip' as the CIFAR-10 archive"):
        cifar10.load_data(path=tmp_path / "c.zip")


def test_plain_tar_and_links_in_the_archive(isolated, tmp_path):
    batches = cifar10_batches(seed=15)
    assert_cifar10(cifar10.load_data(path=write_archive(tmp_path / "p.tar", cifar10.SPEC, batches,
                                                        compression="")), batches)
    path = tmp_path / "link.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(ValueError, match=r"has 'cifar-10-batches-py/data_batch_1' as a link or special "
                                         r"file; expected a regular file"):
        cifar10.load_data(path=path)


def test_size_limits(isolated, tmp_path, monkeypatch):
    batches = cifar10_batches(seed=16)
    archive = write_archive(tmp_path / "a.tar.gz", cifar10.SPEC, batches)
    folder = write_folder(tmp_path / "f", cifar10.SPEC, batches)
    spec = cifar10.SPEC
    monkeypatch.setattr(cifar10, "SPEC", dataclasses.replace(spec, max_batch_bytes=10_000))
    with pytest.raises(ValueError, match=r"has 'cifar-10-batches-py/data_batch_1' of \d+ bytes; a "
                                         r"CIFAR-10 batch has at most 10000"):
        cifar10.load_data(path=archive)
    with pytest.raises(ValueError, match=r"'.*data_batch_1' has \d+ bytes; a CIFAR-10 batch has at "
                                         r"most 10000"):
        cifar10.load_data(path=folder)
    monkeypatch.setattr(cifar10, "SPEC", dataclasses.replace(spec, max_archive_bytes=50_000))
    with pytest.raises(ValueError, match=r"'.*a.tar.gz' unpacks to more than 50000 bytes"):
        cifar10.load_data(path=archive)


# -- arguments ----------------------------------------------------------------------------------
@pytest.mark.parametrize("label_mode", ["Fine", "medium", None, 1])
def test_cifar100_label_mode_is_checked(label_mode):
    with pytest.raises(ValueError, match=rf"cifar100.load_data: argument `label_mode` must be 'fine' or "
                                         rf"'coarse', got {label_mode!r}"):
        cifar100.load_data(label_mode)


@pytest.mark.parametrize("module", [cifar10, cifar100])
def test_path_is_checked(isolated, tmp_path, module):
    name = module.__name__.rsplit(".", 1)[1]
    with pytest.raises(TypeError, match=rf"{name}.load_data: argument `path` must be None or a file or "
                                        r"folder path \(str or os.PathLike\), got 3"):
        module.load_data(path=3)
    with pytest.raises(FileNotFoundError, match=rf"{name}.load_data: argument `path` names "
                                                r"'.*nowhere', which does not exist; expected the"):
        module.load_data(path=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"names the folder '.*empty', which holds neither the "
                                                r"CIFAR-10* archive .* nor the batch files"):
        module.load_data(path=tmp_path / "empty")


# -- downloads, from a local HTTP server -----------------------------------------------------------
@pytest.fixture
def server():
    """An HTTP server on 127.0.0.1 serving `state["body"]`; `truncate` sends half of it and hangs up."""
    state = {"body": b"", "truncate": False, "status": 200, "requests": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            state["requests"] += 1
            if state["status"] != 200:
                self.send_error(state["status"])
                return
            body = state["body"]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if state["truncate"] else body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{httpd.server_port}/cifar-10-python.tar.gz"
    yield state
    httpd.shutdown()
    httpd.server_close()


def serve(server, monkeypatch, tmp_path, digest=None):
    batches = cifar10_batches(seed=20)
    archive = write_archive(tmp_path / "served.tar.gz", cifar10.SPEC, batches)
    server["body"] = archive.read_bytes()
    spec = dataclasses.replace(cifar10.SPEC, url=server["url"], sha256=digest or sha256(archive))
    monkeypatch.setattr(cifar10, "SPEC", spec)
    return batches, tmp_path / "home" / ".convscope" / "datasets" / "cifar10"


def test_download_into_the_cache_then_reuse_it(isolated, tmp_path, monkeypatch, server, capsys):
    batches, cache = serve(server, monkeypatch, tmp_path)
    assert_cifar10(cifar10.load_data(), batches)
    assert f"Downloading data from {server['url']}" in capsys.readouterr().err
    assert sorted(p.name for p in cache.iterdir()) == ["cifar-10-python.tar.gz"]
    assert (cache / "cifar-10-python.tar.gz").read_bytes() == server["body"]
    assert_cifar10(cifar10.load_data(), batches)
    assert server["requests"] == 1                # the second call read the cached archive


def test_download_with_the_wrong_checksum_keeps_nothing(isolated, tmp_path, monkeypatch, server):
    _, cache = serve(server, monkeypatch, tmp_path, digest="0" * 64)
    with pytest.raises(ValueError, match=r"cifar10.load_data: download: '.*' has SHA-256 [0-9a-f]{64}, "
                                         r"expected 0{64}; the download was discarded"):
        cifar10.load_data()
    assert list(cache.iterdir()) == []


def test_an_interrupted_download_leaves_no_partial_file(isolated, tmp_path, monkeypatch, server):
    _, cache = serve(server, monkeypatch, tmp_path)
    server["truncate"] = True
    size = len(server["body"])
    with pytest.raises(FileNotFoundError, match=rf"could not be downloaded \(offline\?\): the download of "
                                                rf"'.*' was interrupted after {size // 2} of {size} bytes"):
        cifar10.load_data()
    assert list(cache.iterdir()) == []
    server["truncate"] = False                   # a later call downloads it whole
    cifar10.load_data()
    assert sorted(p.name for p in cache.iterdir()) == ["cifar-10-python.tar.gz"]


def test_http_errors_and_offline_say_where_to_put_the_archive(isolated, tmp_path, monkeypatch, server):
    _, cache = serve(server, monkeypatch, tmp_path)
    server["status"] = 404
    with pytest.raises(FileNotFoundError, match=r"HTTP Error 404"):
        cifar10.load_data()
    monkeypatch.setattr(cifar10, "SPEC", dataclasses.replace(cifar10.SPEC, url=unreachable_url()))
    with pytest.raises(FileNotFoundError) as error:
        cifar10.load_data()
    message = str(error.value)
    assert message.startswith("cifar10.load_data: the CIFAR-10 data were not found and could not be "
                              "downloaded (offline?)")
    assert "Put cifar-10-python.tar.gz" in message and "CONVSCOPE_DATA" in message
    assert str(cache) in message
    assert list(cache.iterdir()) == []
