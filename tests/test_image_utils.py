"""Image files: load_img/img_to_array/array_to_img/save_img, image_dataset_from_directory and the legacy
ImageDataGenerator, against Keras 3.15.1 (torch backend) where Keras runs without TensorFlow/SciPy,
and against PyTorch's grid_sample and exact transforms where it does not.

Every image is generated here (PNG, JPEG, BMP, GIF through Pillow) in a temporary folder."""

import io
import os
import warnings

import numpy as np
import pytest
from PIL import Image

from convscope import utils
from convscope.preprocessing import image as cs_image
from convscope.utils import image_utils

FORMATS = ("png", "jpg", "bmp", "gif")


def write_folder(root, classes=("cat", "dog", "ant"), per_class=7, seed=0, nested=True):
    """Class subfolders of random images of random sizes in every format (one in a subfolder)."""
    rng = np.random.default_rng(seed)
    for name in classes:
        for i in range(per_class):
            folder = root / name / ("sub" if nested and i == 3 else "")
            folder.mkdir(parents=True, exist_ok=True)
            array = rng.integers(0, 256, (int(rng.integers(5, 20)), int(rng.integers(5, 20)), 3), dtype=np.uint8)
            Image.fromarray(array).save(folder / f"f{i}.{FORMATS[i % 4]}")
    (root / ".hidden").mkdir(exist_ok=True)
    (root / "cat" / "notes.txt").write_text("not an image")
    return root


@pytest.fixture
def folder(tmp_path):
    return write_folder(tmp_path / "images")


@pytest.fixture(scope="module")
def kimage(keras):
    from keras.src.utils import image_utils as kimage
    return kimage


# -- load_img / img_to_array / array_to_img / save_img ------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_load_img_matches_keras(tmp_path, kimage, fmt):
    rng = np.random.default_rng(1)
    path = tmp_path / f"a.{fmt}"
    Image.fromarray(rng.integers(0, 256, (13, 17, 4 if fmt == "png" else 3), dtype=np.uint8)).save(path)
    for color_mode in ("rgb", "rgba", "grayscale"):
        for size, interpolation, keep in ((None, "nearest", False), ((9, 11), "bilinear", False),
                                          ((20, 8), "bicubic", True), ((7, 7), "lanczos", True),
                                          ((13, 17), "box", False)):
            ours = image_utils.load_img(path, color_mode, size, interpolation, keep)
            theirs = kimage.load_img(str(path), color_mode, size, interpolation, keep)
            assert ours.mode == theirs.mode and ours.size == theirs.size
            np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    with open(path, "rb") as handle:
        buffer = io.BytesIO(handle.read())
    np.testing.assert_array_equal(np.asarray(image_utils.load_img(buffer)), np.asarray(kimage.load_img(str(path))))


def test_img_to_array_and_array_to_img_match_keras(kimage):
    rng = np.random.default_rng(2)
    for shape in ((6, 5, 3), (6, 5, 4), (6, 5, 1)):
        x = rng.uniform(-3, 700, shape).astype("float32")
        for data_format in ("channels_last", "channels_first"):
            arr = x.transpose(2, 0, 1) if data_format == "channels_first" else x
            for scale in (True, False):
                ours, theirs = utils.array_to_img(arr, data_format, scale), kimage.array_to_img(arr, data_format, scale)
                assert ours.mode == theirs.mode
                np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
                for dtype in (None, "float64", "uint8"):
                    a = utils.img_to_array(ours, data_format, dtype)
                    b = kimage.img_to_array(theirs, data_format, dtype)
                    assert a.dtype == b.dtype and a.shape == b.shape
                    np.testing.assert_array_equal(a, b)


def test_save_img_matches_keras_and_writes_atomically(tmp_path, kimage):
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (8, 9, 4)).astype("float32")
    for name in ("a.png", "b.bmp", "c.jpg"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            utils.save_img(tmp_path / f"ours_{name}", x)
            kimage.save_img(str(tmp_path / f"keras_{name}"), x)
        if name.endswith(".jpg"):
            assert any("JPEG format does not support RGBA" in str(w.message) for w in caught)
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / f"ours_{name}")),
                                      np.asarray(Image.open(tmp_path / f"keras_{name}")))
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".part")]
    buffer = io.BytesIO()
    utils.save_img(buffer, x[:, :, :3], file_format="png")
    assert Image.open(io.BytesIO(buffer.getvalue())).size == (9, 8)


def test_image_util_errors(tmp_path):
    with pytest.raises(ValueError, match=r"load_img: argument `color_mode` must be one of .*got 'cmyk'"):
        utils.load_img(tmp_path / "x.png", color_mode="cmyk")
    with pytest.raises(ValueError, match=r"load_img: argument `interpolation` must be one of .*got 'area'"):
        utils.load_img(tmp_path / "x.png", interpolation="area")
    with pytest.raises(ValueError, match=r"load_img: argument `target_size` must be a \(height, width\) pair"):
        utils.load_img(tmp_path / "x.png", target_size=(0, 3))
    with pytest.raises(TypeError, match=r"load_img: argument `path` must be a path .* got int"):
        utils.load_img(3)
    with pytest.raises(ValueError, match=r"array_to_img: expected an image array of rank 3 .*got shape \(2, 2\)"):
        utils.array_to_img(np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"array_to_img: an image needs 1, 3 or 4 channels, got 2"):
        utils.array_to_img(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match=r"img_to_array: argument `data_format` must be .*got 'NHWC'"):
        utils.img_to_array(Image.new("RGB", (2, 2)), data_format="NHWC")
    with pytest.raises(ValueError, match=r"save_img: argument `file_format` is required"):
        utils.save_img(io.BytesIO(), np.zeros((2, 2, 3)))


# -- image_dataset_from_directory ------------------------------------------------------------------------
def keras_index(keras_dataset_utils, root, seed, split=None, subset=None, **kwargs):
    from keras.src.utils import image_dataset_utils
    paths, labels, names = keras_dataset_utils.index_directory(str(root), kwargs.pop("labels", "inferred"),
                                                               image_dataset_utils.ALLOWLIST_FORMATS, seed=seed,
                                                               verbose=False, **kwargs)
    paths, labels = keras_dataset_utils.get_training_or_validation_split(paths, labels, split, subset)
    return paths, labels, names


def test_dataset_files_labels_and_split_match_keras(folder, keras, capsys):
    from keras.src.utils import dataset_utils
    for seed in (3, 1234):
        for subset in ("training", "validation"):
            ds = utils.image_dataset_from_directory(folder, image_size=(8, 9), seed=seed, validation_split=0.3,
                                                    subset=subset, batch_size=4, verbose=False)
            paths, labels, names = keras_index(dataset_utils, folder, seed, 0.3, subset)
            assert ds.file_paths == paths and ds.class_names == names == ["ant", "cat", "dog"]
            np.testing.assert_array_equal(ds.labels, labels)
            assert len(ds) == -(-len(paths) // 4)
        train, val = utils.image_dataset_from_directory(folder, seed=seed, validation_split=0.3, subset="both",
                                                        verbose=False)
        assert train.file_paths + val.file_paths == keras_index(dataset_utils, folder, seed)[0]
    ds = utils.image_dataset_from_directory(folder, shuffle=False, class_names=["dog", "cat"], verbose=True)
    paths, labels, names = keras_index(dataset_utils, folder, None, shuffle=False, class_names=["dog", "cat"])
    assert (ds.file_paths, ds.class_names) == (paths, names) and list(ds.labels) == list(labels)
    assert "Found 14 files belonging to 2 classes." in capsys.readouterr().out
    manual = list(range(21))
    ds = utils.image_dataset_from_directory(folder, labels=manual, seed=5, verbose=False)
    paths, labels, names = keras_index(dataset_utils, folder, 5, labels=manual)
    assert ds.file_paths == paths and ds.class_names == names
    np.testing.assert_array_equal(ds.labels, labels)


@pytest.mark.parametrize("color_mode,interpolation,aspect,data_format", [
    ("rgb", "bilinear", None, "channels_last"), ("grayscale", "nearest", "crop", "channels_last"),
    ("rgba", "bilinear", "pad", "channels_first"), ("rgb", "nearest", None, "channels_first")])
def test_dataset_pixels_match_keras(folder, keras, color_mode, interpolation, aspect, data_format):
    from keras.src.utils import image_dataset_utils
    ds = utils.image_dataset_from_directory(folder, color_mode=color_mode, image_size=(11, 7), shuffle=False,
                                            interpolation=interpolation, crop_to_aspect_ratio=aspect == "crop",
                                            pad_to_aspect_ratio=aspect == "pad", data_format=data_format,
                                            batch_size=8, verbose=False)
    channels = {"rgb": 3, "rgba": 4, "grayscale": 1}[color_mode]
    images, labels = next(iter(ds))
    assert images.dtype == np.float32 and labels.dtype == np.int32
    assert images.shape == ((8, 11, 7, channels) if data_format == "channels_last" else (8, channels, 11, 7))
    for image, path in zip(images, ds.file_paths):
        reference = image_dataset_utils._load_image_grain(path, (11, 7), channels, interpolation, data_format,
                                                          aspect == "crop", aspect == "pad")
        np.testing.assert_allclose(image, np.asarray(reference), rtol=1e-6, atol=1e-5)   # float32 of 0..255


def test_dataset_label_modes_batches_and_passes(folder):
    kwargs = dict(image_size=(4, 4), batch_size=5, seed=7, verbose=False)
    ints = utils.image_dataset_from_directory(folder, **kwargs)
    cat = utils.image_dataset_from_directory(folder, label_mode="categorical", **kwargs)
    _, y_int = next(iter(ints))
    _, y_cat = next(iter(cat))
    assert y_cat.dtype == np.float32 and y_cat.shape == (5, 3)
    binary = utils.image_dataset_from_directory(folder, label_mode="binary", class_names=["ant", "dog"], **kwargs)
    _, y_bin = next(iter(binary))
    assert y_bin.dtype == np.float32 and y_bin.shape == (5, 1) and set(np.unique(y_bin)) <= {0.0, 1.0}
    none = utils.image_dataset_from_directory(folder, label_mode=None, **kwargs)
    batch = next(iter(none))
    assert isinstance(batch, np.ndarray) and batch.shape == (5, 4, 4, 3)
    # one pass covers every file once, the last batch partial; each pass takes a new order
    passes = []
    for _ in range(2):
        seen = [y for _, y in ints]
        assert [len(y) for y in seen] == [5, 5, 5, 5, 1]
        passes.append(np.concatenate(seen))
        assert sorted(passes[-1]) == sorted(ints.labels)
    assert not np.array_equal(passes[0], passes[1])
    single = utils.image_dataset_from_directory(folder, batch_size=None, image_size=(4, 4), seed=1, verbose=False)
    image, label = next(iter(single))
    assert image.shape == (4, 4, 3) and label.shape == () and len(single) == 21


def test_dataset_argument_errors(folder, tmp_path):
    make = utils.image_dataset_from_directory
    with pytest.raises(ValueError, match=r"image_dataset_from_directory: with `validation_split` and shuffling, "
                                         r"argument `seed` is required"):
        make(folder, validation_split=0.2, subset="training")
    with pytest.raises(ValueError, match=r"if `subset` is set, `validation_split` must be set"):
        make(folder, subset="training", seed=1)
    with pytest.raises(ValueError, match=r"argument `subset` must be 'training', 'validation', 'both' or None, "
                                         r"got 'test'"):
        make(folder, validation_split=0.2, subset="test", seed=1)
    with pytest.raises(ValueError, match=r"argument `label_mode` must be .*got 'sparse'"):
        make(folder, label_mode="sparse")
    with pytest.raises(ValueError, match=r"there must be exactly 2 class_names, got "
                                         r"class_names=\['ant', 'cat', 'dog'\]"):
        make(folder, label_mode="binary", verbose=False)
    with pytest.raises(ValueError, match=r"the `class_names` passed did not match .*received: class_names=\['cow'\]"):
        make(folder, class_names=["cow"])
    with pytest.raises(ValueError, match=r"argument `interpolation` must be one of \('bilinear', 'nearest'\) "
                                         r".*got 'area'"):
        make(folder, interpolation="area")
    with pytest.raises(ValueError, match=r"argument `image_size` must be a \(height, width\) pair .*got \(3,\)"):
        make(folder, image_size=(3,))
    with pytest.raises(ValueError, match=r"image_dataset_from_directory: argument `format` must be 'tf' or 'grain', "
                                         r"got 'torch'"):
        make(folder, format="torch")
    with pytest.raises(ValueError, match=r"argument `directory` must be an existing folder"):
        make(tmp_path / "missing")
    with pytest.raises(ValueError, match=r"expected the lengths of `labels` to match .*len\(labels\) is 2 while we "
                                         r"found 21 files"):
        make(folder, labels=[0, 1], verbose=False)
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"no images found in directory"):
        make(tmp_path / "empty", verbose=False)


# -- ImageDataGenerator ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def klegacy(keras):
    from keras.src.legacy.preprocessing import image as klegacy
    return klegacy


NON_AFFINE = dict(horizontal_flip=True, vertical_flip=True, rescale=1 / 255.0, channel_shift_range=10.0,
                  brightness_range=(0.5, 1.5), samplewise_center=True, samplewise_std_normalization=True)


def test_flow_batches_and_order_match_keras(klegacy):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (10, 6, 7, 3)).astype("float32")
    y, w = np.arange(10), rng.uniform(size=10)
    for kwargs, flow in ((NON_AFFINE, dict(batch_size=4, seed=7)),
                         (dict(featurewise_center=True, featurewise_std_normalization=True),
                          dict(batch_size=3, seed=1, sample_weight=w)),
                         (dict(validation_split=0.3), dict(batch_size=4, seed=2, subset="training",
                                                           ignore_class_split=True))):
        ours, theirs = cs_image.ImageDataGenerator(**kwargs), klegacy.ImageDataGenerator(**kwargs)
        if kwargs.get("featurewise_center"):
            ours.fit(x)
            theirs.fit(x)
            np.testing.assert_allclose(ours.mean, theirs.mean, rtol=1e-6)
            np.testing.assert_allclose(ours.std, theirs.std, rtol=1e-6)
        a, b = ours.flow(x, y, **flow), theirs.flow(x, y, **flow)
        assert len(a) == len(b)
        for index in list(range(len(a))) + ["epoch"] + list(range(len(a))):
            if index == "epoch":
                a.on_epoch_end()
                b.on_epoch_end()
                continue
            mine, keras_batch = a[index], b[index]
            assert len(mine) == len(keras_batch)
            for left, right in zip(mine, keras_batch):
                assert left.dtype == right.dtype
                np.testing.assert_allclose(left, right, rtol=1e-6, atol=1e-6)
        c, d = ours.flow(x, y, **flow), theirs.flow(x, y, **flow)
        for _ in range(len(c) + 2):                         # next(): Keras' endless stream, same order
            np.testing.assert_allclose(next(c)[0], next(d)[0], rtol=1e-6, atol=1e-6)


def test_random_transform_parameters_match_keras(klegacy):
    for kwargs in (dict(rotation_range=30, width_shift_range=0.2, height_shift_range=[1, 2], shear_range=5,
                        zoom_range=0.1, horizontal_flip=True, vertical_flip=True, channel_shift_range=3.0,
                        brightness_range=[0.2, 0.9]),
                   dict(width_shift_range=3, height_shift_range=0.5, zoom_range=[0.5, 0.8]),
                   dict(data_format="channels_first", width_shift_range=0.3, height_shift_range=0.1)):
        ours, theirs = cs_image.ImageDataGenerator(**kwargs), klegacy.ImageDataGenerator(**kwargs)
        for seed in (0, 3, 99):
            assert ours.get_random_transform((6, 7, 3), seed=seed) == theirs.get_random_transform((6, 7, 3), seed=seed)


def test_flow_from_directory_matches_keras(tmp_path, klegacy, capsys):
    root = write_folder(tmp_path / "images", per_class=5, nested=False)
    for class_mode in ("categorical", "binary", "sparse", "input", None):
        for subset in (None, "validation", "training"):
            args = dict(target_size=(9, 8), class_mode=class_mode, batch_size=4, seed=3, subset=subset,
                        classes=["ant", "dog"] if class_mode == "binary" else None)
            a = cs_image.ImageDataGenerator(validation_split=0.4, horizontal_flip=True, rescale=0.5)
            b = klegacy.ImageDataGenerator(validation_split=0.4, horizontal_flip=True, rescale=0.5)
            ours, theirs = a.flow_from_directory(str(root), **args), b.flow_from_directory(str(root), **args)
            assert ours.filenames == theirs.filenames and ours.class_indices == theirs.class_indices
            np.testing.assert_array_equal(ours.classes, theirs.classes)
            for index in range(len(ours)):
                left, right = ours[index], theirs[index]
                left, right = (left,) if class_mode is None else left, (right,) if class_mode is None else right
                for l_part, r_part in zip(left, right):
                    np.testing.assert_array_equal(l_part, r_part)
    lines = capsys.readouterr().out.splitlines()        # ours then Keras' for each iterator
    assert lines[0::2] == lines[1::2] and "Found 9 images belonging to 4 classes." in lines   # .hidden counts, as Keras


def _grid_sample(image, affine, offset, padding_mode):
    """PyTorch's grid_sample reading input pixel affine @ o + offset for each output pixel o, and which
    output pixels read within one pixel outside an edge (where SciPy's "reflect" taps mirror about the
    edge pixel and torch's about the edge: the two differ there)."""
    import torch
    rows, cols = np.meshgrid(np.arange(image.shape[0]), np.arange(image.shape[1]), indexing="ij")
    src = np.tensordot(affine, np.stack([rows, cols]).astype(np.float64), axes=1) + offset[:, None, None]
    h, w = image.shape
    grid = np.stack([(2 * src[1] + 1) / w - 1, (2 * src[0] + 1) / h - 1], axis=-1)[None]
    out = torch.nn.functional.grid_sample(torch.tensor(image[None, None], dtype=torch.float64), torch.tensor(grid),
                                          mode="bilinear", padding_mode=padding_mode, align_corners=False)
    band = ((src > -1) & (src < 0)) | ((src > np.array([h - 1, w - 1])[:, None, None]) &
                                        (src < np.array([h, w])[:, None, None]))
    return out[0, 0].numpy(), band.any(axis=0)


def test_affine_transform_against_torch_and_exact_moves(keras):
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 255, (9, 11, 2))
    for theta, tx, ty, shear, zx, zy in ((17.0, 1.3, -2.2, 0, 1, 1), (0, 0, 0, 12.0, 0.8, 1.3),
                                         (-40.0, 0.5, 0, 3.0, 1.1, 0.9)):
        matrix = np.eye(3)
        t, s = np.deg2rad(theta), np.deg2rad(shear)
        for part in (np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]]),
                     np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]]),
                     np.array([[1, -np.sin(s), 0], [0, np.cos(s), 0], [0, 0, 1]]),
                     np.diag([zx, zy, 1.0])):
            matrix = matrix @ part
        to_centre = np.array([[1, 0, 4.0], [0, 1, 5.0], [0, 0, 1]])
        back = np.array([[1, 0, -4.0], [0, 1, -5.0], [0, 0, 1]])
        centre = to_centre @ matrix @ back
        centre = centre[[1, 0]][:, [1, 0, 2]]         # Keras swaps the two axes of its matrix (col_axis > row_axis)
        for mode, padding in (("nearest", "border"), ("reflect", "reflection")):
            ours = cs_image.apply_affine_transform(x, theta, tx, ty, shear, zx, zy, row_axis=0, col_axis=1,
                                                   channel_axis=2, fill_mode=mode)
            for c in range(2):
                reference, band = _grid_sample(x[:, :, c], centre[:2, :2], centre[:2, 2], padding)
                compare = ~band if mode == "reflect" else np.ones_like(band)
                assert compare.mean() > 0.7
                np.testing.assert_allclose(ours[:, :, c][compare], reference[compare], atol=1e-9)
    # exact moves: an integer shift fills with cval / the edge, 90 degrees is rot90, order 0 the same
    shifted = cs_image.apply_affine_transform(x, tx=2, ty=-3, row_axis=0, col_axis=1, channel_axis=2,
                                              fill_mode="constant", cval=-1.0)
    expected = np.full_like(x, -1.0)            # Keras' swap: tx moves the columns, ty the rows
    expected[3:, :-2] = x[:-3, 2:]
    np.testing.assert_allclose(shifted, expected, atol=1e-9)
    square = x[:9, :9]
    for order in (0, 1):
        turned = cs_image.apply_affine_transform(square, theta=90, row_axis=0, col_axis=1, channel_axis=2, order=order)
        np.testing.assert_allclose(turned, np.rot90(square, k=1, axes=(0, 1)), atol=1e-9)
    wrapped = cs_image.apply_affine_transform(x, tx=-2, row_axis=0, col_axis=1, channel_axis=2, fill_mode="wrap")
    np.testing.assert_allclose(wrapped[:, 2:], x[:, :-2], atol=1e-9)


def test_image_data_generator_errors(tmp_path):
    with pytest.raises(ValueError, match=r"ImageDataGenerator: argument `fill_mode` must be one of .*got 'mirror'"):
        cs_image.ImageDataGenerator(fill_mode="mirror")
    with pytest.raises(ValueError, match=r"ImageDataGenerator: argument `zoom_range` must be a float or a pair"):
        cs_image.ImageDataGenerator(zoom_range=[1, 2, 3])
    with pytest.raises(ValueError, match=r"ImageDataGenerator: argument `validation_split` must be strictly between"):
        cs_image.ImageDataGenerator(validation_split=1.5)
    with pytest.raises(ValueError, match=r"ImageDataGenerator: argument `interpolation_order` must be 0 or 1"):
        cs_image.ImageDataGenerator(interpolation_order=3)
    generator = cs_image.ImageDataGenerator()
    with pytest.raises(ValueError, match=r"ImageDataGenerator.flow: the images must have rank 4, got .*\(3, 4, 5\)"):
        generator.flow(np.zeros((3, 4, 5)))
    with pytest.raises(ValueError, match=r"ImageDataGenerator.flow: `x` \(images\) and `y` \(labels\) must have the "
                                         r"same length"):
        generator.flow(np.zeros((3, 4, 5, 3)), np.zeros(2))
    with pytest.raises(ValueError, match=r"NumpyArrayIterator: asked to retrieve element 5, but the Sequence has "
                                         r"length 1"):
        generator.flow(np.zeros((3, 4, 5, 3)))[5]
    with pytest.raises(ValueError, match=r"flow_from_directory: argument `class_mode` must be one of .*got 'raw'"):
        generator.flow_from_directory(str(tmp_path), class_mode="raw")
    with pytest.raises(ValueError, match=r"apply_affine_transform: argument `order` must be 0 \(nearest\) or 1"):
        cs_image.apply_affine_transform(np.zeros((3, 3, 1)), theta=3, order=2)


@pytest.mark.filterwarnings("ignore:Your input ran out of data")      # Keras, at its generator's end
def test_fit_takes_the_dataset_as_keras_takes_its_batches(folder, keras):
    from convscope import layers
    import convscope as cs
    train, val = utils.image_dataset_from_directory(folder, image_size=(6, 6), batch_size=4, seed=2,
                                                    validation_split=0.25, subset="both", verbose=False)
    ours = cs.Sequential([cs.Input((6, 6, 3)), layers.Rescaling(1 / 255.0), layers.Flatten(),
                          layers.Dense(3, activation="softmax")])
    theirs = keras.Sequential([keras.Input((6, 6, 3)), keras.layers.Rescaling(1 / 255.0), keras.layers.Flatten(),
                               keras.layers.Dense(3, activation="softmax")])
    theirs.set_weights([w.numpy() for w in ours.weights])
    ours.compile(cs.optimizers.SGD(0.1), "sparse_categorical_crossentropy", metrics=["accuracy"])
    theirs.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy", metrics=["accuracy"])
    replay = np.random.default_rng(2)                     # the orders the dataset's passes will take
    orders = [replay.permutation(len(train.file_paths)) for _ in range(2)]
    images = np.stack([train.load(path) for path in train.file_paths])
    x_val = np.stack([val.load(path) for path in val.file_paths])
    history = ours.fit(train, validation_data=val, epochs=2, verbose=0)
    for epoch, order in enumerate(orders):
        batches = [(images[order[s:s + 4]], train.labels[order[s:s + 4]]) for s in range(0, len(order), 4)]
        keras_history = theirs.fit((b for b in batches), validation_data=(x_val, val.labels), batch_size=4,
                                   shuffle=False, verbose=0)
        for key, values in keras_history.history.items():
            np.testing.assert_allclose(history.history[key][epoch], values[0], rtol=1e-5, atol=1e-6)
    for mine, reference in zip(ours.weights, theirs.weights):
        np.testing.assert_allclose(mine.numpy(), reference.numpy(), rtol=1e-5, atol=1e-6)


def test_flow_save_to_dir_writes_keras_files(tmp_path, klegacy):
    rng = np.random.default_rng(5)
    x = rng.uniform(0, 255, (5, 6, 7, 3)).astype("float32")
    for maker, name in ((cs_image.ImageDataGenerator, "ours"), (klegacy.ImageDataGenerator, "keras")):
        (tmp_path / name).mkdir()
        iterator = maker(horizontal_flip=True).flow(x, np.arange(5), batch_size=2, seed=4,
                                                   save_to_dir=str(tmp_path / name), save_prefix="aug")
        for index in range(len(iterator)):
            iterator[index]
    ours, theirs = sorted(os.listdir(tmp_path / "ours")), sorted(os.listdir(tmp_path / "keras"))
    assert ours == theirs and len(ours) == 5 and all(f.startswith("aug_") and f.endswith(".png") for f in ours)
    for name in ours:
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "ours" / name)),
                                      np.asarray(Image.open(tmp_path / "keras" / name)))
