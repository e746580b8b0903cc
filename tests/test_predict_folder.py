"""`convscope predict MODEL FOLDER -o out.parquet` / `distribute.score_folder`: one row per file
(10,000 generated 8x8 PNGs on a 2-process LocalCluster), predictions equal to in-memory predict,
memory bounded by the chunk, any image size, unreadable files reported, a worker killed mid-way."""

import os
import signal
import threading
import time
import tracemalloc

import numpy as np
import pytest

from seed_models import seed002_model

distributed = pytest.importorskip("distributed")
pq = pytest.importorskip("pyarrow.parquet")
Image = pytest.importorskip("PIL.Image")

from convscope import cli  # noqa: E402
from convscope.distribute import score_folder  # noqa: E402
from convscope.distribute.folder import _score_chunk, image_files  # noqa: E402


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def model():
    m = seed002_model()
    m.build((None, 8, 8, 1))
    return m


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """10,000 8x8 grayscale PNGs in two sub-folders, pixel values from a seeded generator."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for sub in ("a", "b/c"):
        (root / sub).mkdir(parents=True)
    for index in range(10_000):
        where = "a" if index % 2 else "b/c"
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(root / where / f"{index:05d}.png")
    return root


def _expected(model, root, names, rescale=1 / 255):
    x = np.stack([np.asarray(Image.open(root / n), np.float32)[..., None] * np.float32(rescale) for n in names])
    return model.predict(x, batch_size=32, verbose=0)


def test_cli_scores_10000_files_one_row_each(model, folder, client, tmp_path):
    model_path = tmp_path / "model.keras"
    model.save(model_path)
    out = tmp_path / "predictions.parquet"
    address = client.scheduler.address
    code = cli.main(["predict", str(model_path), str(folder), "-o", str(out), "--scheduler", address,
                     "--chunk-size", "1000", "--no-progress"])
    assert code == 0
    table = pq.read_table(out)
    paths = table.column("path").to_pylist()
    assert table.num_rows == 10_000 and len(set(paths)) == 10_000
    assert set(paths) == set(image_files(folder))
    assert table.column("error").null_count == 10_000
    assert pq.ParquetFile(out).metadata.num_row_groups == 10          # one row group per chunk
    sample = [paths[i] for i in (0, 4321, 9999)]
    predictions = np.array([table.column("prediction")[i].as_py() for i in (0, 4321, 9999)], np.float32)
    np.testing.assert_allclose(predictions, _expected(model, folder, sample), rtol=1e-6, atol=1e-7)


def test_memory_stays_within_a_few_chunks(model, folder, tmp_path):
    """In this process ('synchronous'), traced peak memory stays under 4x one chunk's input."""
    chunk = 1000
    chunk_input = chunk * 8 * 8 * 1 * 4
    out = tmp_path / "threads.parquet"
    warm = tmp_path / "warm"
    warm.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(warm / "0.png")
    score_folder(model, warm, out, scheduler="synchronous", progress=False)    # imports, compiled kernels
    model.predict(np.zeros((chunk, 8, 8, 1), np.float32), verbose=0)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        rows = score_folder(model, folder, out, chunk_size=chunk, scheduler="synchronous", progress=False)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert rows == 10_000 and pq.read_metadata(out).num_rows == 10_000
    assert peak < 4 * chunk_input, (peak, chunk_input)


def test_any_size_unreadable_files_and_rgb(tmp_path):
    from convscope import layers
    from convscope.models import Sequential
    rgb = Sequential([layers.Input((6, 5, 3)), layers.Conv2D(2, 3, activation="relu"), layers.Flatten(),
                      layers.Dense(2, activation="softmax")])
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(tmp_path / "big.jpg", quality=95)
    Image.fromarray(rng.integers(0, 256, (3, 2), dtype=np.uint8)).save(tmp_path / "small.PNG")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    (tmp_path / "notes.txt").write_text("not an image")
    out = tmp_path / "out.parquet"
    rows = score_folder(rgb, tmp_path, out, chunk_size=2, scheduler="threads", progress=False)
    table = pq.read_table(out).to_pydict()
    assert rows == 3 and sorted(table["path"]) == ["big.jpg", "broken.png", "small.PNG"]
    by_path = dict(zip(table["path"], zip(table["prediction"], table["error"])))
    assert by_path["broken.png"][0] is None and "UnidentifiedImageError" in by_path["broken.png"][1]
    for name in ("big.jpg", "small.PNG"):
        with Image.open(tmp_path / name) as image:
            x = np.asarray(image.convert("RGB").resize((5, 6), Image.BILINEAR), np.float32) / np.float32(255)
        np.testing.assert_allclose(by_path[name][0], rgb.predict(x[None], verbose=0)[0], rtol=1e-6)
        assert by_path[name][1] is None


def test_worker_killed_while_scoring_no_row_lost_or_duplicated(model, folder, client, tmp_path):
    pids = client.run(os.getpid)
    done = []

    def killer():
        while not done:
            busy = [w for w, tasks in client.processing().items() if any("_score_chunk" in str(t) for t in tasks)]
            if busy:
                time.sleep(0.05)
                os.kill(pids[busy[0]], signal.SIGKILL)
                done.append(busy[0])
                return
            time.sleep(0.005)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    out = tmp_path / "killed.parquet"
    rows = score_folder(model, folder / "a", out, chunk_size=250, scheduler=client, progress=False)
    done.append(None)
    thread.join()
    paths = pq.read_table(out, columns=["path"]).column("path").to_pylist()
    assert rows == 5_000 and len(paths) == 5_000 and set(paths) == set(image_files(folder / "a"))
    assert done[0] is not None and pids[done[0]] not in client.run(os.getpid).values()
    client.wait_for_workers(2, timeout=180)  # a restarted worker imports convscope anew


def test_score_chunk_equals_in_memory_predict(model, folder):
    from convscope.distribute._replica import model_bytes
    blob, token = model_bytes(model)
    names = sorted(image_files(folder / "a"))[:70]
    _, predictions, errors = _score_chunk(blob, token, str(folder / "a"), names, 32, 1 / 255)
    assert errors == {}
    np.testing.assert_array_equal(predictions, _expected(model, folder / "a", names))


def test_argument_errors(model, folder, tmp_path, capsys):
    with pytest.raises(ValueError, match=r"score_folder: argument `chunk_size` must be a positive int, got 0"):
        score_folder(model, folder, tmp_path / "x.parquet", chunk_size=0)
    with pytest.raises(ValueError, match=r"score_folder: argument `output` must be a .parquet file, got"):
        score_folder(model, folder, tmp_path / "x.csv")
    with pytest.raises(ValueError, match=r"score_folder: argument `folder` must be a folder of images, got"):
        score_folder(model, tmp_path / "missing", tmp_path / "x.parquet")
    with pytest.raises(TypeError, match=r"score_folder: argument `scheduler` must be None, 'threads'"):
        score_folder(model, folder / "a", tmp_path / "x.parquet", scheduler=3, progress=False)
    model_path = tmp_path / "m.convscope"
    model.save(model_path)
    assert cli.main(["predict", str(model_path), str(folder), "-o", str(tmp_path / "p.csv")]) == 2
    assert "-o must name a Parquet file ending in .parquet, got" in capsys.readouterr().err
    assert not (tmp_path / "x.parquet").exists()


def test_rescale_as_a_numpy_scalar_and_a_non_finite_one(model, tmp_path):
    """A NumPy float (e.g. np.float32(1 / 255)) is a number like any other; inf is a ValueError."""
    rng = np.random.default_rng(3)
    names = [f"{i}.png" for i in range(3)]
    for name in names:
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(tmp_path / name)
    out = tmp_path / "p.parquet"
    assert score_folder(model, tmp_path, out, rescale=np.float32(0.5), scheduler="synchronous", progress=False) == 3
    table = pq.read_table(out).to_pydict()
    order = [table["path"].index(name) for name in names]
    np.testing.assert_allclose(np.array([table["prediction"][i] for i in order]),
                               _expected(model, tmp_path, names, rescale=0.5), rtol=1e-6, atol=1e-7)
    with pytest.raises(TypeError, match=r"score_folder: argument `rescale` must be a finite number, got '2'"):
        score_folder(model, tmp_path, out, rescale="2", scheduler="synchronous", progress=False)
    with pytest.raises(ValueError, match=r"score_folder: argument `rescale` must be a finite number, got inf"):
        score_folder(model, tmp_path, out, rescale=float("inf"), scheduler="synchronous", progress=False)


def test_cli_without_scheduler_starts_a_local_cluster(model, tmp_path, capsys):
    images = tmp_path / "few"
    images.mkdir()
    rng = np.random.default_rng(5)
    for index in range(12):
        Image.fromarray(rng.integers(0, 256, (11, 9), dtype=np.uint8)).save(images / f"{index}.png")
    model_path = tmp_path / "m.convscope"
    model.save(model_path)
    out = tmp_path / "few.parquet"
    assert cli.main(["predict", str(model_path), str(images), "-o", str(out), "--chunk-size", "5"]) == 0
    assert f"wrote {out}: 12 rows" in capsys.readouterr().out
    table = pq.read_table(out).to_pydict()
    assert sorted(table["path"]) == sorted(f"{i}.png" for i in range(12))
    names = table["path"][:3]
    x = np.stack([np.asarray(Image.open(images / n).resize((8, 8), Image.BILINEAR), np.float32)[..., None]
                  * np.float32(1 / 255) for n in names])
    np.testing.assert_allclose(table["prediction"][:3], model.predict(x, verbose=0), rtol=1e-6, atol=1e-7)


def test_channels_first_by_the_model_and_16_bit_grayscale_kept(tmp_path):
    """The channel axis is read from the model's data_format (a 3x4x3 channels_first input was read as
    channels_last by its sizes), and a 16-bit PNG keeps its values as Keras' load_img (no clip to 255)."""
    from convscope import layers
    from convscope.models import Sequential
    first = Sequential([layers.Input((3, 4, 3)), layers.Conv2D(2, 1, data_format="channels_first"),
                        layers.Flatten()])
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (4, 3, 3), dtype=np.uint8)            # height 4, width 3, RGB
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    out = tmp_path / "out.parquet"
    score_folder(first, tmp_path, out, chunk_size=4, scheduler="synchronous", progress=False)
    table = pq.read_table(out).to_pydict()
    x = (rgb.astype(np.float32) / np.float32(255)).transpose(2, 0, 1)[None]
    # atol: the folder reader and this line may round a pixel / 255 differently in the last bit, which a
    # random filter's output near 0 shows as a large relative difference (a misread axis differs by ~0.1)
    np.testing.assert_allclose(table["prediction"][0], first.predict(x, verbose=0)[0], rtol=1e-6, atol=1e-6)

    gray = Sequential([layers.Input((2, 2, 1)), layers.Flatten()])
    deep = tmp_path / "deep"
    deep.mkdir()
    values = np.array([[0, 1000], [40000, 65535]], np.uint16)
    Image.fromarray(values).save(deep / "g16.png")
    score_folder(gray, deep, out, chunk_size=4, scheduler="synchronous", progress=False, rescale=1.0)
    np.testing.assert_array_equal(pq.read_table(out).to_pydict()["prediction"][0], values.ravel())
