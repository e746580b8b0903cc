"""Datasets: IDX/npz reading, the search order, downloads checked by SHA-256, digits and shapes.

Every file these tests read is made here (tiny IDX/npz files); downloads go
through file:// URLs or a fake opener, never the network.
"""

import dataclasses
import gzip
import hashlib
import io
import struct
from pathlib import Path

import numpy as np
import pytest

from convscope.datasets import _files, digits, fashion_mnist, mnist, shapes

FILE_NAMES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
              "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def idx_bytes(array: np.ndarray, type_code: int = 0x08, dtype: str = ">u1") -> bytes:
    """The IDX encoding written out by hand: 0, 0, type, ndim, big-endian sizes, data."""
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(dtype).tobytes()


def tiny_dataset(seed: int = 0):
    rng = np.random.default_rng(seed)
    x_train = rng.integers(0, 256, (5, 4, 3), dtype=np.uint8)
    y_train = rng.integers(0, 10, 5, dtype=np.uint8)
    x_test = rng.integers(0, 256, (2, 4, 3), dtype=np.uint8)
    y_test = rng.integers(0, 10, 2, dtype=np.uint8)
    return x_train, y_train, x_test, y_test


def write_idx_folder(folder, arrays):
    """Write the four gzip'ed IDX files; return their SHA-256 checksums."""
    folder.mkdir(parents=True, exist_ok=True)
    digests = []
    for name, array in zip(FILE_NAMES, arrays):
        data = gzip.compress(idx_bytes(array))
        (folder / name).write_bytes(data)
        digests.append(hashlib.sha256(data).hexdigest())
    return digests


def assert_same(loaded, arrays):
    (x_train, y_train), (x_test, y_test) = loaded
    for got, want in zip((x_train, y_train, x_test, y_test), arrays):
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, want)


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No CONVSCOPE_DATA, an empty home and no checkout data folder: nothing to find."""
    monkeypatch.delenv("CONVSCOPE_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(_files, "checkout_shared_folder", lambda: tmp_path / "no-shared")
    return tmp_path


def use_spec(monkeypatch, module, digests, mirrors=()):
    spec = dataclasses.replace(module.SPEC, files=tuple(zip(FILE_NAMES, digests)),
                               mirrors=tuple(mirrors))
    monkeypatch.setattr(module, "SPEC", spec)
    return spec


# -- IDX -------------------------------------------------------------------------------

@pytest.mark.parametrize("type_code,dtype", [(0x08, ">u1"), (0x09, ">i1"), (0x0B, ">i2"),
                                             (0x0C, ">i4"), (0x0D, ">f4"), (0x0E, ">f8")])
def test_parse_idx_every_type(type_code, dtype):
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    if dtype == ">u1":
        array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    decoded = _files.parse_idx(idx_bytes(array, type_code, dtype))
    assert decoded.shape == (2, 3, 4)
    assert decoded.dtype.isnative
    np.testing.assert_array_equal(decoded, array)


def test_read_idx_gz_and_plain(tmp_path):
    labels = np.array([3, 1, 4, 1, 5], np.uint8)
    (tmp_path / "labels.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    (tmp_path / "labels").write_bytes(idx_bytes(labels))
    np.testing.assert_array_equal(_files.read_idx(tmp_path / "labels.gz"), labels)
    np.testing.assert_array_equal(_files.read_idx(tmp_path / "labels"), labels)


def test_idx_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match=r"read_idx: .* is not an IDX file .*magic bytes.*got 50 4b"):
        _files.parse_idx(b"PK\x03\x04rest", "x.idx")
    good = idx_bytes(np.zeros((3, 2, 2), np.uint8))
    with pytest.raises(ValueError, match=r"has 18 bytes but its header \(shape \(3, 2, 2\), uint8\) "
                                         r"needs 28; the file is truncated"):
        _files.parse_idx(good[:-10])
    with pytest.raises(ValueError, match=r"truncated inside its header"):
        _files.parse_idx(good[:9])
    (tmp_path / "broken.gz").write_bytes(gzip.compress(good)[:-8])
    with pytest.raises(ValueError, match=r"read_idx: cannot read .*broken.gz"):
        _files.read_idx(tmp_path / "broken.gz")


# -- mnist.load_data from files the tests make ---------------------------------------------

def test_load_from_idx_folder(tmp_path, isolated):
    arrays = tiny_dataset()
    write_idx_folder(tmp_path / "idx", arrays)
    assert_same(mnist.load_data(path=tmp_path / "idx"), arrays)


def test_load_from_uncompressed_idx_folder(tmp_path, isolated):
    arrays = tiny_dataset()
    folder = tmp_path / "plain"
    folder.mkdir()
    for name, array in zip(FILE_NAMES, arrays):
        (folder / name[:-3]).write_bytes(idx_bytes(array))
    assert_same(mnist.load_data(path=str(folder)), arrays)


def test_load_from_keras_npz(tmp_path, isolated):
    arrays = tiny_dataset()
    np.savez(tmp_path / "mine.npz", x_train=arrays[0], y_train=arrays[1], x_test=arrays[2],
             y_test=arrays[3])
    assert_same(mnist.load_data(path=str(tmp_path / "mine.npz")), arrays)


def test_npz_errors(tmp_path, isolated):
    np.savez(tmp_path / "partial.npz", x_train=np.zeros((2, 2, 2)), y_train=np.zeros(2))
    with pytest.raises(ValueError, match=r"mnist.load_data: .*partial.npz' holds arrays "
                                         r"\['x_train', 'y_train'\].*missing \['x_test', 'y_test'\]"):
        mnist.load_data(path=str(tmp_path / "partial.npz"))
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(ValueError, match=r"cannot read .*text.npz' as a Keras .npz dataset file"):
        mnist.load_data(path=str(tmp_path / "text.npz"))
    np.savez(tmp_path / "mismatch.npz", x_train=np.zeros((3, 2, 2)), y_train=np.zeros(2),
             x_test=np.zeros((1, 2, 2)), y_test=np.zeros(1))
    with pytest.raises(ValueError, match=r"train images of shape \(3, 2, 2\) and labels of shape "
                                         r"\(2,\); expected \(N, rows, cols\) and \(N,\)"):
        mnist.load_data(path=str(tmp_path / "mismatch.npz"))


def test_folder_missing_a_file(tmp_path, isolated):
    write_idx_folder(tmp_path / "idx", tiny_dataset())
    (tmp_path / "idx" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"has no 't10k-labels-idx1-ubyte.gz'"):
        mnist.load_data(path=tmp_path / "idx")


def test_path_type_is_checked():
    with pytest.raises(TypeError, match=r"mnist.load_data: argument `path` must be a file or "
                                        r"folder path .*got 42"):
        mnist.load_data(path=42)
    with pytest.raises(TypeError, match=r"fashion_mnist.load_data: argument `path`"):
        fashion_mnist.load_data(path=3.5)


# -- where load_data looks ------------------------------------------------------------------

def test_convscope_data_folder_and_its_subfolder(tmp_path, isolated, monkeypatch):
    arrays = tiny_dataset(1)
    digests = write_idx_folder(tmp_path / "data" / "mnist", arrays)
    use_spec(monkeypatch, mnist, digests)
    monkeypatch.setenv("CONVSCOPE_DATA", str(tmp_path / "data"))
    assert_same(mnist.load_data(), arrays)
    monkeypatch.setenv("CONVSCOPE_DATA", str(tmp_path / "data" / "mnist"))
    assert_same(mnist.load_data(), arrays)


def test_keras_cache_npz(tmp_path, isolated, monkeypatch):
    arrays = tiny_dataset(2)
    cache = tmp_path / "home" / ".keras" / "datasets"
    cache.mkdir(parents=True)
    np.savez(cache / "mnist.npz", x_train=arrays[0], y_train=arrays[1], x_test=arrays[2],
             y_test=arrays[3])
    digest = _files.file_digest(cache / "mnist.npz")
    monkeypatch.setattr(mnist, "SPEC", dataclasses.replace(mnist.SPEC, npz_sha256=digest,
                                                           mirrors=()))
    assert_same(mnist.load_data(), arrays)


def test_searched_files_must_match_their_checksums(tmp_path, isolated, monkeypatch):
    """MNIST and Fashion-MNIST files share names: a searched folder counts only by checksum."""
    mnist_digests = write_idx_folder(tmp_path / "data", tiny_dataset(3))
    use_spec(monkeypatch, mnist, mnist_digests)
    use_spec(monkeypatch, fashion_mnist, ["0" * 64] * 4, [(tmp_path / "nowhere").as_uri() + "/"])
    monkeypatch.setenv("CONVSCOPE_DATA", str(tmp_path / "data"))
    assert_same(mnist.load_data(), tiny_dataset(3))
    with pytest.raises(FileNotFoundError, match=r"fashion_mnist.load_data: the fashion_mnist "
                                                r"files were not found"):
        fashion_mnist.load_data()


def test_checkout_shared_folder_is_beside_the_repository():
    repo = Path(__file__).resolve().parents[1]
    assert _files.checkout_shared_folder() == repo.parent / "shared" / "datasets"


# -- downloads ------------------------------------------------------------------------------

def test_download_through_file_url_into_the_cache(tmp_path, isolated, monkeypatch):
    arrays = tiny_dataset(4)
    digests = write_idx_folder(tmp_path / "server", arrays)
    use_spec(monkeypatch, fashion_mnist, digests, [(tmp_path / "server").as_uri() + "/"])
    assert_same(fashion_mnist.load_data(), arrays)
    cache = tmp_path / "home" / ".convscope" / "datasets" / "fashion_mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(FILE_NAMES)
    for name in FILE_NAMES:   # byte-identical copies, no temporary files left
        assert (cache / name).read_bytes() == (tmp_path / "server" / name).read_bytes()
    for name in FILE_NAMES:   # the second call reads the cache, not the server
        (tmp_path / "server" / name).unlink()
    assert_same(fashion_mnist.load_data(), arrays)


def test_download_tries_the_next_mirror(tmp_path, isolated, monkeypatch):
    arrays = tiny_dataset(5)
    digests = write_idx_folder(tmp_path / "server", arrays)
    mirrors = [(tmp_path / "dead").as_uri() + "/", (tmp_path / "server").as_uri() + "/"]
    use_spec(monkeypatch, mnist, digests, mirrors)
    assert_same(mnist.load_data(), arrays)


def test_checksum_mismatch_keeps_nothing(tmp_path, isolated, monkeypatch):
    digests = write_idx_folder(tmp_path / "server", tiny_dataset(6))
    digests[1] = hashlib.sha256(b"something else").hexdigest()
    use_spec(monkeypatch, mnist, digests, [(tmp_path / "server").as_uri() + "/"])
    with pytest.raises(ValueError, match=r"(?s)could not get a correct copy of "
                                         r"'train-labels-idx1-ubyte.gz'.*has SHA-256 [0-9a-f]{64}, "
                                         r"expected " + digests[1]):
        mnist.load_data()
    cache = tmp_path / "home" / ".convscope" / "datasets" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == ["train-images-idx3-ubyte.gz"]


def test_offline_error_says_where_to_put_the_files(tmp_path, isolated, monkeypatch):
    use_spec(monkeypatch, mnist, ["0" * 64] * 4, [(tmp_path / "offline").as_uri() + "/"])
    with pytest.raises(FileNotFoundError) as error:
        mnist.load_data()
    message = str(error.value)
    assert "mnist.load_data: the mnist files were not found and could not be downloaded" in message
    assert "CONVSCOPE_DATA" in message and "train-images-idx3-ubyte.gz" in message
    assert str(tmp_path / "home" / ".convscope" / "datasets" / "mnist") in message


def test_download_with_a_fake_opener(tmp_path):
    payload = b"\x00" * 1000 + b"payload" * 500000   # several read chunks
    digest = hashlib.sha256(payload).hexdigest()
    requested = []

    def opener(url):
        requested.append(url)
        return io.BytesIO(payload)

    target = _files.download("https://example.invalid/f.gz", tmp_path / "f.gz", digest, opener)
    assert requested == ["https://example.invalid/f.gz"]
    assert target.read_bytes() == payload
    (tmp_path / "g.gz").write_bytes(b"older good copy")
    with pytest.raises(ValueError, match=r"download: 'https://example.invalid/g.gz' has SHA-256 "
                                         + digest + ", expected " + "1" * 64):
        _files.download("https://example.invalid/g.gz", tmp_path / "g.gz", "1" * 64, opener)
    assert (tmp_path / "g.gz").read_bytes() == b"older good copy"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.gz", "g.gz"]


def test_download_interrupted_leaves_no_partial_file(tmp_path):
    class Broken(io.BytesIO):
        def read(self, size=-1):
            if self.tell() > 0:
                raise ConnectionResetError("connection lost")
            return super().read(10)

    with pytest.raises(ConnectionResetError):
        _files.download("https://example.invalid/h", tmp_path / "h", "0" * 64,
                        lambda url: Broken(b"x" * 100))
    assert list(tmp_path.iterdir()) == []


# -- the real MNIST files, when they are beside the repo ------------------------------------

@pytest.mark.mnist
@pytest.mark.parametrize("how", ["CONVSCOPE_DATA", "search rule"])
def test_real_mnist_from_the_shared_folder(mnist_dir, monkeypatch, tmp_path, how):
    monkeypatch.setenv("HOME", str(tmp_path))   # no Keras or convscope cache to fall back on
    if how == "CONVSCOPE_DATA":
        monkeypatch.setenv("CONVSCOPE_DATA", str(mnist_dir))
    else:
        monkeypatch.delenv("CONVSCOPE_DATA", raising=False)
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    assert (x_train.shape, y_train.shape, x_test.shape, y_test.shape) == \
        ((60000, 28, 28), (60000,), (10000, 28, 28), (10000,))
    assert x_train.dtype == y_train.dtype == np.uint8
    # label counts printed in the shared folder's SOURCE.txt
    assert np.bincount(y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert x_train.max() == 255 and x_train.min() == 0


# -- the embedded digits --------------------------------------------------------------------

def test_digits_split_and_content():
    (x_train, y_train), (x_test, y_test) = digits.load_data()
    assert x_train.shape == (1438, 8, 8) and x_test.shape == (359, 8, 8)
    assert y_train.shape == (1438,) and y_test.shape == (359,)
    assert x_train.dtype == y_train.dtype == np.uint8
    assert x_train.max() == 16 and x_train.min() == 0
    # the UCI per-digit counts of the 1,797 images
    counts = np.bincount(np.concatenate([y_train, y_test]), minlength=10)
    assert counts.tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    # first record of the UCI file (optdigits, as bundled by scikit-learn): a zero
    assert y_train[0] == 0
    assert x_train[0].ravel().tolist()[:16] == [0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0]
    # image 4 of the file is the first test image; the split is fixed
    assert np.array_equal(digits.load_data()[1][0], x_test)


# -- seed 002's shapes ----------------------------------------------------------------------

def test_shapes_are_deterministic_balanced_and_distinct():
    (x_train, y_train), (x_test, y_test) = shapes.load_data(num_train=90, num_test=30)
    assert x_train.shape == (90, 8, 8) and x_test.shape == (30, 8, 8)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.uint8
    assert np.bincount(y_train).tolist() == [30, 30, 30]
    again = shapes.load_data(num_train=90, num_test=30)
    assert np.array_equal(again[0][0], x_train) and np.array_equal(again[1][0], x_test)
    other = shapes.load_data(num_train=90, num_test=30, seed=7)
    assert not np.array_equal(other[0][0], x_train)
    assert len({img.tobytes() for img in x_train}) == 90   # every drawing differs


def test_shapes_are_learnable_but_not_trivial():
    """Nearest class mean beats chance clearly; the classes differ by outline, not by brightness."""
    (x_train, y_train), (x_test, y_test) = shapes.load_data()
    flat_train = x_train.reshape(len(x_train), -1) / 255.0
    flat_test = x_test.reshape(len(x_test), -1) / 255.0
    means = np.stack([flat_train[y_train == k].mean(0) for k in range(3)])
    predicted = ((flat_test[:, None] - means[None]) ** 2).sum(-1).argmin(1)
    assert (predicted == y_test).mean() > 0.6
    ink = flat_train.sum(1)
    assert all(ink[y_train == k].mean() > 8 for k in range(3))


def test_shapes_argument_errors():
    with pytest.raises(ValueError, match=r"shapes.load_data: argument `num_train` must be >= 3, got 0"):
        shapes.load_data(num_train=0)
    with pytest.raises(TypeError, match=r"shapes.load_data: argument `seed` must be an int, got 1.5"):
        shapes.load_data(seed=1.5)
