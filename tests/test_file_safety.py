"""Hostile and broken files, and saves that respect the file system (issue 14, parts 2, 3, 5c).

Loading: every malformed file gives a ValueError naming the function and the file, before
anything large is decompressed or allocated (measured in a child process); a file either
loads bit for bit as saved or is refused.  Saving: modes as `open()` gives them, writes
through symlinks, stale temporary files cleaned, and SIGKILL never leaves a broken file.
"""

import bz2
import io
import json
import os
import signal
import stat
import struct
import subprocess
import sys
import textwrap
import threading
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from convscope import _rng, backend, initializers
from convscope.io import saving
from convscope.layers import Conv2D, Dense, Flatten, MaxPooling2D
from convscope.layers.base import deferred_weights
from convscope.models import Sequential
from convscope.optimizers import Adam

MB = 1 << 20
SRC = Path(__file__).resolve().parents[1] / "src"


# -- a real saved model, and a hand-made zip writer ---------------------------------------------

def tiny_model(units: int = 2) -> Sequential:
    return Sequential([Conv2D(2, (3, 3), input_shape=(6, 6, 1), activation="relu"), MaxPooling2D(),
                       Flatten(), Dense(units, activation="softmax")])


@pytest.fixture(scope="module")
def trained():
    """A compiled model after a few Adam steps: weights, slots and an iteration count to save."""
    backend.clear_session(free_memory=False)             # its layers are conv2d, max_pooling2d, flatten, dense
    _rng.set_seed(5)
    model = tiny_model()
    model.compile(optimizer=Adam(learning_rate=0.01), loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).random((8, 6, 6, 1)).astype(np.float32)
    model.fit(x, np.arange(8) % 2, batch_size=4, epochs=1, verbose=0)
    return model


def deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def write_zip(path, entries, declared_entries=None):
    """A zip written byte by byte, so that any name, duplicate, size or method can be written.

    An entry is (name, data) — deflated here — or (name, payload, crc, file_size, method, flags)
    with the payload as it is to be stored.
    """
    out, central = bytearray(), bytearray()
    for entry in entries:
        if len(entry) == 2:
            name, data = entry
            entry = (name, deflate(data), zlib.crc32(data), len(data), 8, 0)
        name, payload, crc, size, method, flags = entry
        raw = name.encode("utf-8")
        offset = len(out)
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, flags, method, 0, 0x21, crc,
                           len(payload), size, len(raw), 0) + raw + payload
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, flags, method, 0, 0x21, crc,
                               len(payload), size, len(raw), 0, 0, 0, 0, 0, offset) + raw
    count = len(entries) if declared_entries is None else declared_entries
    start = len(out)
    out += central + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, len(central),
                                 start, 0)
    Path(path).write_bytes(bytes(out))
    return Path(path)


def entries_of(path):
    with zipfile.ZipFile(path) as archive:
        return [(name, archive.read(name)) for name in archive.namelist()]


def replaced(entries, name, data):
    assert name in dict(entries)
    return [(n, data if n == name else d) for n, d in entries]


def npy(array, **kwargs) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, **kwargs)
    return buffer.getvalue()


def npy_header(shape, descr="<f4", version=(1, 0)) -> bytes:
    buffer = io.BytesIO()
    writer = (np.lib.format.write_array_header_1_0 if version == (1, 0)
              else np.lib.format.write_array_header_2_0)
    writer(buffer, {"descr": descr, "fortran_order": False, "shape": tuple(shape)})
    return buffer.getvalue()


def zero_bomb(name, shape, descr="<f4"):
    """An entry of a .npy header and zeros, deflated at deflate's best ratio (~1030:1), built from
    one compressed MiB repeated (a full flush makes the blocks independent); its CRC is right."""
    head = npy_header(shape, descr)
    nbytes = int(np.prod(shape)) * np.dtype(descr).itemsize
    chunk = bytes(MB)
    assert nbytes % MB == 0
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(head) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH) == block
    payload = first + block * (nbytes // MB) + compressor.flush()
    crc = zlib.crc32(head)
    for _ in range(nbytes // MB):
        crc = zlib.crc32(chunk, crc)
    return (name, payload, crc, len(head) + nbytes, 8, 0)


def refused(call, path, function="load_model") -> str:
    """`call(path)` must raise a ValueError naming the function and the file; its message."""
    with pytest.raises(ValueError) as info:
        call(path)
    message = str(info.value)
    assert message.startswith(f"{function}: ") and f"'{path}'" in message, message
    return message


def same_model(loaded, reference) -> bool:
    """Bit-identical weights, optimizer state and config."""
    mine, theirs = loaded.get_weights(), reference.get_weights()
    if len(mine) != len(theirs) or any(a.dtype != b.dtype or a.shape != b.shape or
                                       a.tobytes() != b.tobytes() for a, b in zip(mine, theirs)):
        return False
    if loaded.get_config() != reference.get_config():
        return False
    state, saved = loaded.optimizer.get_state(), reference.optimizer.get_state()
    return sorted(state) == sorted(saved) and all(
        np.asarray(state[k]).dtype == np.asarray(saved[k]).dtype
        and np.asarray(state[k]).tobytes() == np.asarray(saved[k]).tobytes() for k in state)


def same_weights(model, reference) -> bool:
    return all(a.dtype == b.dtype and a.tobytes() == b.tobytes()
               for a, b in zip(model.get_weights(), reference.get_weights()))


# -- loading in a child process: the memory a hostile file costs ---------------------------------

MEASURE = textwrap.dedent("""
    import json, resource, sys, time, tracemalloc
    from convscope.io import saving
    saving.load_model(sys.argv[2])             # warm up: every lazy import a load needs
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    start = time.perf_counter()
    try:
        saving.load_model(sys.argv[1])
        outcome = {"error": None, "message": ""}
    except Exception as error:
        outcome = {"error": type(error).__name__, "value_error": isinstance(error, ValueError),
                   "message": str(error)}
    outcome["seconds"] = time.perf_counter() - start
    outcome["traced_peak"] = tracemalloc.get_traced_memory()[1]
    outcome["rss_growth"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
    print(json.dumps(outcome))
""")


def load_in_child(path, warm_up_path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", MEASURE, str(path), str(warm_up_path)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{Path(path).name}: {outcome['seconds']:.3f} s, RSS +{outcome['rss_growth'] / MB:.1f} "
          f"MiB, traced peak {outcome['traced_peak'] / MB:.2f} MiB: {outcome['message'][:160]}")
    return outcome


def assert_refused_small(outcome, path):
    assert outcome["error"] is not None and outcome["value_error"], outcome
    assert outcome["message"].startswith("load_model: ") and f"'{path}'" in outcome["message"]
    assert outcome["rss_growth"] < 100 * MB, outcome
    assert outcome["traced_peak"] < 100 * MB, outcome


def test_a_2mb_zip_bomb_is_refused_before_decompressing(tmp_path, trained):
    """weights/00000.npy declares (2^29,) float32 zeros: 2 GiB behind 2 MB of deflate."""
    good = saving.save_model(trained, tmp_path / "good.convscope")
    entries = [zero_bomb(n, (1 << 29,)) if n == "weights/00000.npy" else (n, d)
               for n, d in entries_of(good)]
    bomb = write_zip(tmp_path / "bomb.convscope", entries)
    assert 1.9 * MB < bomb.stat().st_size < 2.3 * MB
    outcome = load_in_child(bomb, good)
    assert_refused_small(outcome, bomb)
    assert "is implausible (a zip bomb?)" in outcome["message"]


def test_a_consistent_bomb_is_refused_by_its_ratio(tmp_path, trained):
    """Config, weights.json and the npy headers all agree on a 2 GiB kernel of deflated zeros:
    only the ratio of the whole file (1030:1, beyond 64 MiB) gives it away."""
    good = saving.save_model(trained, tmp_path / "good.convscope")
    units = 1 << 26
    entries = dict(entries_of(good))
    config = json.loads(entries["config.json"])
    config["layers"][-1]["config"]["units"] = units
    layout = json.loads(entries["weights.json"])
    layout[2]["shape"], layout[3]["shape"] = [8, units], [units]
    members = [("convscope.json", entries["convscope.json"]),
               ("config.json", json.dumps(config).encode()),
               ("weights.json", json.dumps(layout).encode()),
               ("weights/00000.npy", entries["weights/00000.npy"]),
               ("weights/00001.npy", entries["weights/00001.npy"]),
               zero_bomb("weights/00002.npy", (8, units)), zero_bomb("weights/00003.npy", (units,)),
               ("compile.json", b"null")]
    bomb = write_zip(tmp_path / "consistent.convscope", members)
    outcome = load_in_child(bomb, good)
    assert_refused_small(outcome, bomb)
    assert "is implausible (a zip bomb?)" in outcome["message"]


@pytest.mark.parametrize("edit_layout", [False, True], ids=["config only", "config and weights.json"])
def test_a_config_of_ten_million_units_is_refused_before_allocating(tmp_path, trained, edit_layout):
    """Dense(units=10**7): the model's shapes come from the config without creating the weights
    (2.6 GB), and disagree with what the file holds."""
    good = saving.save_model(trained, tmp_path / "good.convscope")
    entries = dict(entries_of(good))
    config = json.loads(entries["config.json"])
    config["layers"][-1]["config"]["units"] = 10 ** 7
    entries["config.json"] = json.dumps(config).encode()
    if edit_layout:
        layout = json.loads(entries["weights.json"])
        layout[2]["shape"], layout[3]["shape"] = [8, 10 ** 7], [10 ** 7]
        entries["weights.json"] = json.dumps(layout).encode()
    path = write_zip(tmp_path / "units.convscope", list(entries.items()))
    outcome = load_in_child(path, good)
    assert_refused_small(outcome, path)
    if edit_layout:
        assert ("the array 'weights/00002.npy' declares shape (8, 2) float32 in its .npy header, but "
                "the model's weight 'dense/kernel' has shape (8, 10000000) float32") in outcome["message"]
    else:
        assert ("weight 2 ('dense/kernel' in weights.json) is declared with shape (8, 2) float32, "
                "but the config builds 'dense/kernel' with shape (8, 10000000) float32") \
            in outcome["message"]


def test_deferred_weights_build_shapes_without_initializers():
    """The hook load_model uses: no initializer runs, the values allocate nothing, and only the
    thread inside the context is affected."""
    class Forbidden(initializers.Initializer):
        def __call__(self, shape, dtype=None):
            raise AssertionError("an initializer ran inside deferred_weights()")

    import tracemalloc
    tracemalloc.start()
    try:
        with deferred_weights():
            layer = Dense(10 ** 7, kernel_initializer=Forbidden(), bias_initializer=Forbidden())
            layer.build_from_shape((None, 64))
            elsewhere = Dense(3, kernel_initializer="ones")
            other = threading.Thread(target=elsewhere.build_from_shape, args=((None, 2),))
            other.start()
            other.join()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [v.shape for v in layer.weights] == [(64, 10 ** 7), (10 ** 7,)]
    assert [v.dtype for v in layer.weights] == [np.float32, np.float32]
    assert not layer.kernel.value.flags.writeable
    assert peak < 10 * MB
    # the other thread, outside the context, built real weights; and so does this one now
    assert elsewhere.kernel.value.flags.writeable and np.array_equal(elsewhere.kernel.value,
                                                                      np.ones((2, 3)))
    with pytest.raises(AssertionError, match="an initializer ran"):
        Dense(3, kernel_initializer=Forbidden()).build_from_shape((None, 2))


# -- the zip directory and the arrays' headers -------------------------------------------------

def test_the_hand_made_zip_writer_gives_a_file_that_loads(tmp_path, trained):
    """The control for every corrupted file below: the same entries rewritten load as saved."""
    good = saving.save_model(trained, tmp_path / "good.convscope")
    path = write_zip(tmp_path / "rewritten.convscope", entries_of(good))
    assert same_model(saving.load_model(path), trained)


def test_an_array_header_must_match_the_config(tmp_path, trained):
    good = saving.save_model(trained, tmp_path / "good.convscope")
    entries = replaced(entries_of(good), "weights/00000.npy", npy(np.zeros((1 << 20,), np.float32)))
    path = write_zip(tmp_path / "m.convscope", entries)
    assert ("is inconsistent: the array 'weights/00000.npy' declares shape (1048576,) float32 in "
            "its .npy header, but the model's weight 'conv2d/kernel' has shape (3, 3, 1, 2) "
            "float32") in refused(saving.load_model, path)


def test_a_declared_size_beyond_what_deflate_can_give(tmp_path, trained):
    good = saving.save_model(trained, tmp_path / "good.convscope")
    entries = entries_of(good)
    name, data = entries[3]
    payload = deflate(data)
    entries[3] = (name, payload, zlib.crc32(data), 1032 * (len(payload) + 1) + 1, 8, 0)
    path = write_zip(tmp_path / "m.convscope", entries)
    assert "more than deflate can give (at most 1032:1" in refused(saving.load_model, path)


def test_a_header_that_disagrees_with_the_zip_size(tmp_path, trained):
    """The header says (3, 3, 1, 2) but the entry holds more bytes (the directory is honest)."""
    good = saving.save_model(trained, tmp_path / "good.convscope")
    entries = dict(entries_of(good))
    entries["weights/00000.npy"] += bytes(64)
    path = write_zip(tmp_path / "m.convscope", list(entries.items()))
    assert ("declares shape (3, 3, 1, 2) float32 (72 bytes after a 128-byte header), but the zip "
            "directory gives the entry 264 bytes") in refused(saving.load_model, path)


def test_a_wrong_optimizer_slot_fails_at_load_naming_the_file(tmp_path, trained):
    """Issue 14 5c: a slot of the wrong shape used to fail only at the first fit."""
    good = saving.save_model(trained, tmp_path / "good.convscope")
    entries = dict(entries_of(good))
    keys = json.loads(entries["optimizer.json"])["state_keys"]
    member = f"optimizer/{keys.index('m/0'):05d}.npy"
    entries[member] = npy(np.zeros((3, 3, 1, 5), np.float32))
    path = write_zip(tmp_path / "slot.convscope", list(entries.items()))
    message = refused(saving.load_model, path)
    assert (f"the array '{member}' declares shape (3, 3, 1, 5) float32 in its .npy header, but the "
            f"optimizer slot 'm/0' of 'conv2d/kernel' has shape (3, 3, 1, 2) float32") in message
    # without the optimizer (compile=False) the same file loads
    assert same_weights(saving.load_model(path, compile=False), trained)


@pytest.mark.parametrize("case", ["unknown slot", "position out of range", "position not a number",
                                  "iterations not a scalar", "iterations a float",
                                  "negative iterations", "no iterations", "slot dtype"])
def test_malformed_optimizer_state(tmp_path, trained, case):
    good = saving.save_model(trained, tmp_path / "good.convscope")
    entries = dict(entries_of(good))
    saved = json.loads(entries["optimizer.json"])
    keys = saved["state_keys"]
    slot = f"optimizer/{keys.index('m/0'):05d}.npy"
    iterations = f"optimizer/{keys.index('iterations'):05d}.npy"
    if case in ("unknown slot", "position out of range", "position not a number", "no iterations"):
        new = {"unknown slot": "bogus/0", "position out of range": "m/4",
               "position not a number": "m/x", "no iterations": "m/9"}[case]
        old = "iterations" if case == "no iterations" else "m/0"
        saved["state_keys"] = [new if k == old else k for k in keys]
        entries["optimizer.json"] = json.dumps(saved).encode()
        if case == "no iterations":
            entries[iterations] = entries[slot]
    elif case == "iterations not a scalar":
        entries[iterations] = npy(np.array([1, 2], np.int64))
    elif case == "iterations a float":
        entries[iterations] = npy(np.array(2.0))
    elif case == "negative iterations":
        entries[iterations] = npy(np.array(-3, np.int64))
    else:
        entries[slot] = npy(np.zeros((3, 3, 1, 2), np.float64))
    path = write_zip(tmp_path / "state.convscope", list(entries.items()))
    message = refused(saving.load_model, path)
    expected = {"unknown slot": "the key 'bogus/0' (", "position out of range": "the key 'm/4' (",
                "position not a number": "the key 'm/x' (",
                "iterations not a scalar": "(the iteration count) has shape (2,), expected a scalar",
                "iterations a float": "of dtype float64; expected integers",
                "negative iterations": "the iteration count is -3, expected a count >= 0",
                "no iterations": "lack 'iterations'",
                "slot dtype": "declares shape (3, 3, 1, 2) float64 in its .npy header, but the "
                              "optimizer slot 'm/0' of 'conv2d/kernel' has shape (3, 3, 1, 2) float32"}
    assert expected[case] in message


# -- truncations and bit flips -------------------------------------------------------------------

def saved_files(folder, model):
    pytest.importorskip("h5py")
    return {"convscope": saving.save_model(model, folder / "m.convscope"),
            "npz": saving.save_weights(model, folder / "m.weights.npz"),
            "h5": saving.save_weights(model, folder / "m.weights.h5")}


def loader(kind):
    if kind == "convscope":
        return saving.load_model, "load_model"
    return (lambda path: saving.load_weights(tiny_model(), path)), "load_weights"


@pytest.mark.parametrize("kind", ["convscope", "npz", "h5"])
def test_truncated_at_many_offsets(tmp_path, trained, kind):
    whole = saved_files(tmp_path, trained)[kind].read_bytes()
    offsets = sorted(set(range(0, len(whole), max(1, len(whole) // 97))) |
                     {len(whole) - k for k in (1, 2, 21, 22, 23, 60)})
    load, function = loader(kind)
    for offset in offsets:
        path = tmp_path / f"cut{offset}.{'convscope' if kind == 'convscope' else 'weights.' + kind}"
        path.write_bytes(whole[:offset])
        refused(load, path, function)


def flip_positions(raw: bytes, kind: str):
    """Every byte of the zip's headers and directory, every 23rd byte of the data; for HDF5 every
    13th byte (our .weights.h5 carries checksums over its metadata and its data).  Both steps are
    odd, so the flipped bit (`position * 5 % 8`) still takes all eight places."""
    if kind == "h5":
        return range(0, len(raw), 13)
    positions = set(range(0, len(raw), 23))
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        for info in archive.infolist():
            positions.update(range(info.header_offset,
                                   info.header_offset + 30 + len(info.filename)))
        positions.update(range(archive.start_dir, len(raw)))
    return sorted(positions)


@pytest.mark.parametrize("kind", ["convscope", "npz", "h5"])
def test_bit_flips_are_refused_or_harmless(tmp_path, trained, kind):
    """Each flipped bit gives a ValueError naming the file, or the very same model; never a
    silently different model, never another exception."""
    raw = saved_files(tmp_path, trained)[kind].read_bytes()
    load, function = loader(kind)
    path = tmp_path / ("flipped.convscope" if kind == "convscope" else f"flipped.weights.{kind}")
    outcomes = {"refused": 0, "same": 0}
    for position in flip_positions(raw, kind):
        damaged = bytearray(raw)
        damaged[position] ^= 1 << (position * 5 % 8)
        path.write_bytes(bytes(damaged))
        try:
            model = tiny_model() if kind != "convscope" else None
            result = load(path) if model is None else saving.load_weights(model, path)
        except ValueError as error:
            message = str(error)
            assert message.startswith(f"{function}: ") and f"'{path}'" in message, \
                f"flip at byte {position}: {message}"
            outcomes["refused"] += 1
            continue
        except Exception as error:  # noqa: BLE001 - the test's point
            pytest.fail(f"flip at byte {position} raised {type(error).__name__}: {error}")
        same = same_model(result, trained) if kind == "convscope" else same_weights(model, trained)
        assert same, f"flip at byte {position} gave a different model"
        outcomes["same"] += 1
    print(kind, len(raw), outcomes)
    assert outcomes["refused"] > 0


# -- malformed JSON entries ----------------------------------------------------------------------

DEEP_LIST = "[" * 100_000 + "]" * 100_000
DEEP_DICT = '{"a":' * 100_000 + "1" + "}" * 100_000


def edit_json(member, change):
    def apply(entries):
        value = json.loads(entries[member])
        new = change(value) if callable(change) else change
        entries[member] = new if isinstance(new, bytes) else json.dumps(new).encode()
    return apply


def _set(container, path, value):
    target = container
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return container


JSON_CASES = {
    "weights.json a dict": edit_json("weights.json", {"a": 1}),
    "weights.json a string": edit_json("weights.json", "weights"),
    "weights.json null": edit_json("weights.json", None),
    "weights.json entry a list": edit_json("weights.json", lambda v: [[1, 2]] + v[1:]),
    "shape with strings": edit_json("weights.json", lambda v: _set(v, [0, "shape"], ["3", 3, 1, 2])),
    "negative shape": edit_json("weights.json", lambda v: _set(v, [0, "shape"], [-3, 3, 1, 2])),
    "shape a number": edit_json("weights.json", lambda v: _set(v, [0, "shape"], 18)),
    "shape of floats": edit_json("weights.json", lambda v: _set(v, [0, "shape"], [3.0, 3, 1, 2])),
    "dtype complex": edit_json("weights.json", lambda v: _set(v, [0, "dtype"], "complex64")),
    "dtype object": edit_json("weights.json", lambda v: _set(v, [0, "dtype"], "O")),
    "name a number": edit_json("weights.json", lambda v: _set(v, [0, "name"], 7)),
    "one weight fewer": edit_json("weights.json", lambda v: v[:-1]),
    "config a list": edit_json("config.json", [1, 2, 3]),
    "config null": edit_json("config.json", None),
    "config a number": edit_json("config.json", 3),
    "layers a string": edit_json("config.json", {"name": "s", "layers": "conv2d"}),
    "layer without class": edit_json("config.json", lambda v: _set(v, ["layers", 1], {"config": {}})),
    "layer config a list": edit_json("config.json", lambda v: _set(v, ["layers", 1, "config"], [1])),
    "build_config a list": edit_json("config.json", lambda v: _set(v, ["layers", 0, "build_config"], [1])),
    "units a string": edit_json("config.json", lambda v: _set(v, ["layers", -1, "config", "units"], "2")),
    "units negative": edit_json("config.json", lambda v: _set(v, ["layers", -1, "config", "units"], -2)),
    "units enormous": edit_json("config.json", lambda v: _set(v, ["layers", -1, "config", "units"], 10 ** 30)),
    "header a list": edit_json("convscope.json", ["convscope-model", 1]),
    "format_version a string": edit_json("convscope.json", lambda v: _set(v, ["format_version"], "1")),
    "format_version true": edit_json("convscope.json", lambda v: _set(v, ["format_version"], True)),
    "format_version 0": edit_json("convscope.json", lambda v: _set(v, ["format_version"], 0)),
    "class_name a list": edit_json("convscope.json", lambda v: _set(v, ["class_name"], ["Sequential"])),
    "compile a list": edit_json("compile.json", [1]),
    "compile optimizer a string": edit_json("compile.json", lambda v: _set(v, ["optimizer"], "nope")),
    "compile loss a number": edit_json("compile.json", lambda v: _set(v, ["loss"], 3)),
    "optimizer.json a list": edit_json("optimizer.json", [1]),
    "state_keys a dict": edit_json("optimizer.json", lambda v: _set(v, ["state_keys"], {"a": 1})),
    "state_keys repeated": edit_json("optimizer.json", lambda v: _set(v, ["state_keys"],
                                                                      v["state_keys"][:1] * len(v["state_keys"]))),
    "weights.json not UTF-8": edit_json("weights.json", b"\xff\xfe[]"),
    "config not JSON": edit_json("config.json", b'{"layers": ['),
    "config a huge number": edit_json("config.json", b"1" * 5000),
    **{f"{member} nested 100,000 deep{kind}": edit_json(member, text.encode())
       for member in ("convscope.json", "config.json", "weights.json", "compile.json", "optimizer.json")
       for kind, text in (("", DEEP_LIST), (" (objects)", DEEP_DICT))},
    "config with 200,000 lists": edit_json("config.json", ("[" + "[]," * 200_000 + "[]]").encode()),
    "config of 5 MiB": edit_json("config.json", b" " * (5 * MB) + b"{}"),
}


@pytest.mark.parametrize("case", list(JSON_CASES))
def test_malformed_json_entries(tmp_path, trained, case):
    good = saving.save_model(trained, tmp_path / "good.convscope")
    entries = dict(entries_of(good))
    JSON_CASES[case](entries)
    path = write_zip(tmp_path / "m.convscope", list(entries.items()))
    message = refused(saving.load_model, path)
    if "100,000 deep" in case:
        assert "its lists and objects are nested more than 64 deep" in message
    if case == "config with 200,000 lists":
        assert "it holds 200002 lists and objects, at most 100000 are allowed" in message
    if case == "config of 5 MiB":
        assert "has an entry 'config.json' of 5242882 bytes; at most 4194304 are allowed" in message


FOREIGN = ["os.system", "subprocess.Popen", "builtins.eval", "__import__", "importlib.import_module",
           "convscope.cli.main", "pickle.loads"]


@pytest.mark.parametrize("where", ["model class", "layer class", "initializer class",
                                   "regularizer class", "optimizer class", "loss", "loss class",
                                   "metric", "activation"])
def test_foreign_class_names_import_nothing(tmp_path, trained, where):
    good = saving.save_model(trained, tmp_path / "good.convscope")
    saving.load_model(good)                      # every import a good load needs happens here
    before = set(sys.modules)
    for name in FOREIGN:
        entries = dict(entries_of(good))
        config = json.loads(entries["config.json"])
        compiled = json.loads(entries["compile.json"])
        header = json.loads(entries["convscope.json"])
        dense = config["layers"][-1]
        if where == "model class":
            header["class_name"] = name
        elif where == "layer class":
            dense["class_name"] = name
        elif where == "initializer class":
            dense["config"]["kernel_initializer"] = {"class_name": name, "config": {}}
        elif where == "regularizer class":
            dense["config"]["kernel_regularizer"] = {"class_name": name, "config": {}}
        elif where == "optimizer class":
            compiled["optimizer"]["class_name"] = name
        elif where == "loss":
            compiled["loss"] = name
        elif where == "loss class":
            compiled["loss"] = {"class_name": name, "config": {}}
        elif where == "metric":
            compiled["metrics"] = [name]
        else:
            dense["config"]["activation"] = name
        entries.update({"config.json": json.dumps(config).encode(),
                        "compile.json": json.dumps(compiled).encode(),
                        "convscope.json": json.dumps(header).encode()})
        path = write_zip(tmp_path / "foreign.convscope", list(entries.items()))
        refused(saving.load_model, path)
    assert set(sys.modules) - before == set()


# -- arrays of the wrong kind --------------------------------------------------------------------

ARRAY_CASES = {
    "complex": lambda a: npy(a.astype(np.complex64)),
    "object": lambda a: npy(a.astype(object), allow_pickle=True),
    "integers": lambda a: npy(a.astype(np.int32)),
    "booleans": lambda a: npy(a > 0),
    "structured": lambda a: npy(np.zeros(a.shape, dtype=[("x", "<f4")])),
    "strings": lambda a: npy(a.astype(str)),
    "big-endian floats": lambda a: npy(a.astype(">f4")),
    "float64 for float32": lambda a: npy(a.astype(np.float64)),
    "float16": lambda a: npy(a.astype(np.float16)),
    "npy version 3": lambda a: b"\x93NUMPY\x03\x00" + npy(a)[8:],
    "npy version 9": lambda a: b"\x93NUMPY\x09\x00" + npy(a)[8:],
    "no npy magic": lambda a: a.tobytes(),
    "huge header length": lambda a: b"\x93NUMPY\x02\x00" + struct.pack("<I", 1 << 30) + bytes(64),
    "header not a dict": lambda a: b"\x93NUMPY\x01\x00\x10\x00" + b"[1, 2, 3]      \n",
    "header with a call": lambda a: npy(a).replace(b"'shape': (", b"'shape': (len('x'),", 1),
    "negative shape": lambda a: npy(a).replace(b"'shape': (3, 3,", b"'shape': (-3, 3,", 1),
    "header only": lambda a: npy(a)[:128],
    "cut inside the header": lambda a: npy(a)[:40],
}


@pytest.mark.parametrize("case", list(ARRAY_CASES))
def test_arrays_of_the_wrong_kind_in_a_model_file(tmp_path, trained, case):
    good = saving.save_model(trained, tmp_path / "good.convscope")
    entries = dict(entries_of(good))
    kernel = trained.get_weights()[0]
    entries["weights/00000.npy"] = ARRAY_CASES[case](kernel)
    path = write_zip(tmp_path / "m.convscope", list(entries.items()))
    message = refused(saving.load_model, path)
    if case == "complex":
        assert "holds the complex array 'weights/00000.npy' (dtype complex64)" in message
    if case == "object":
        assert "of Python objects (dtype object); convscope never loads pickled objects" in message


@pytest.mark.parametrize("case", list(ARRAY_CASES))
def test_arrays_of_the_wrong_kind_in_a_weights_file(tmp_path, trained, case):
    good = saving.save_weights(trained, tmp_path / "good.weights.npz")
    entries = dict(entries_of(good))
    entries["w00000.npy"] = ARRAY_CASES[case](trained.get_weights()[0])
    path = write_zip(tmp_path / "m.weights.npz", list(entries.items()))
    if case in ("big-endian floats", "float64 for float32", "float16"):
        # a weights file may hold other float types: they are cast as set_weights casts
        model = tiny_model()
        saving.load_weights(model, path)
        expected = np.load(io.BytesIO(entries["w00000.npy"])).astype(np.float32)
        assert np.array_equal(model.get_weights()[0], expected)
        return
    message = refused(lambda p: saving.load_weights(tiny_model(), p), path, "load_weights")
    if case in ("integers", "booleans", "structured", "strings"):
        assert "holds the array 'w00000.npy' of dtype" in message and "; expected floats" in message


def test_a_fortran_ordered_array_loads_as_the_same_values(tmp_path, trained):
    """A valid .npy in Fortran order holds the same array: it loads, C-contiguous and writable."""
    good = saving.save_model(trained, tmp_path / "good.convscope")
    kernel = trained.get_weights()[0]
    entries = replaced(entries_of(good), "weights/00000.npy", npy(np.asfortranarray(kernel)))
    path = write_zip(tmp_path / "fortran.convscope", entries)
    loaded = saving.load_model(path)
    assert same_model(loaded, trained)
    value = loaded.weights[0].value
    assert value.flags.c_contiguous and value.flags.writeable and value.flags.owndata


LAYOUT_CASES = {
    "a dict without format": {"names": [], "shapes": []},
    "a list": [1, 2],
    "names not a list": lambda v: {**v, "names": "conv2d/kernel"},
    "shapes with strings": lambda v: {**v, "shapes": [["3"]] * len(v["shapes"])},
    "negative shapes": lambda v: {**v, "shapes": [[-1]] * len(v["shapes"])},
    "fewer shapes than names": lambda v: {**v, "shapes": v["shapes"][:-1]},
    "format_version a string": lambda v: {**v, "format_version": "1"},
    "format_version 2": lambda v: {**v, "format_version": 2},
    "nested 100,000 deep": DEEP_LIST,
    "not JSON": "{'names': ",
}


@pytest.mark.parametrize("case", list(LAYOUT_CASES))
def test_malformed_weights_layout(tmp_path, trained, case):
    good = saving.save_weights(trained, tmp_path / "good.weights.npz")
    entries = dict(entries_of(good))
    layout = json.loads(str(np.load(io.BytesIO(entries["layout.npy"]))))
    change = LAYOUT_CASES[case]
    new = change(layout) if callable(change) else change
    text = new if isinstance(new, str) else json.dumps(new)
    entries["layout.npy"] = npy(np.array(text))
    path = write_zip(tmp_path / "m.weights.npz", list(entries.items()))
    message = refused(lambda p: saving.load_weights(tiny_model(), p), path, "load_weights")
    if case in ("names not a list", "shapes with strings", "negative shapes", "fewer shapes than names"):
        assert "has a damaged layout entry: expected 'names' (a list of strings) and 'shapes'" in message


def test_a_weights_layout_that_is_not_text(tmp_path, trained):
    good = saving.save_weights(trained, tmp_path / "good.weights.npz")
    for array in (np.zeros(3), np.array(["a", "b"]), np.zeros((), dtype=object)):
        entries = replaced(entries_of(good), "layout.npy", npy(array, allow_pickle=True))
        path = write_zip(tmp_path / "m.weights.npz", entries)
        refused(lambda p: saving.load_weights(tiny_model(), p), path, "load_weights")


# -- the zip's structure -------------------------------------------------------------------------

def structure_case(case, entries):
    raw = {n: d for n, d in entries}
    if case.startswith("name "):
        return entries + [(case[5:], b"x")], None
    if case == "duplicate name":
        return entries + [(entries[-1][0], npy(np.ones((3, 3, 1, 2), np.float32)))], None
    if case == "many tiny entries":
        return entries + [(f"t/{i}", b"") for i in range(25_000)], None
    if case == "some extra tiny entries":
        return entries + [(f"t/{i}", b"") for i in range(300)], None
    if case == "an unexpected entry":
        return entries + [("evil.py", b"import os")], None
    if case == "a missing entry":
        return [(n, d) for n, d in entries if n != "weights/00003.npy"], None
    if case == "bzip2":
        data = raw["weights/00000.npy"]
        return [(n, bz2.compress(d), zlib.crc32(d), len(d), 12, 0) if n == "weights/00000.npy"
                else (n, d) for n, d in entries], None
    if case == "encrypted":
        return [(n, deflate(d), zlib.crc32(d), len(d), 8, 1) if n == "config.json" else (n, d)
                for n, d in entries], None
    if case == "stored with a wrong size":
        return [(n, d, zlib.crc32(d), len(d) + 5, 0, 0) if n == "weights.json" else (n, d)
                for n, d in entries], None
    if case == "end record declares more entries":
        return entries, len(entries) + 1
    if case == "end record declares 30,000 entries":
        return entries, 30_000
    if case == "an entry comment":
        return entries, "comment"
    if case == "a compiled model without its optimizer":
        return [(n, d) for n, d in entries if not n.startswith("optimizer")], None
    raise AssertionError(case)


STRUCTURE_CASES = ["name ../evil.py", "name /etc/evil", "name weights/../../evil",
                   "name a\\b.npy", "name C:/evil", "name weights//00000.npy", "name ./x",
                   "name \x01control", "duplicate name", "many tiny entries",
                   "some extra tiny entries", "an unexpected entry", "a missing entry", "bzip2",
                   "encrypted", "stored with a wrong size", "end record declares more entries",
                   "end record declares 30,000 entries", "an entry comment",
                   "a compiled model without its optimizer"]

STRUCTURE_MESSAGES = {
    "many tiny entries": "is not a convscope file: its zip directory declares 250",
    "end record declares 30,000 entries": "its zip directory declares 30000 entries",
    "end record declares more entries": "is damaged: its zip directory's end record declares",
    "some extra tiny entries": "holds entries that its JSON entries do not call for: t/0, t/1,",
    "an unexpected entry": "holds entries that its JSON entries do not call for: evil.py",
    "a missing entry": "lacks the entry weights/00003.npy; the file is incomplete",
    "bzip2": "compressed with method 12; convscope writes stored (0) or deflated (8) entries only",
    "encrypted": "holds the encrypted entry 'config.json'",
    "stored with a wrong size": "the stored entry 'weights.json' declares",
    "an entry comment": "carries a comment of 2 bytes",
    "a compiled model without its optimizer": "lacks the entry 'optimizer.json', which a compiled",
}


def write_case(path, entries, declared):
    if declared == "comment":                 # zipfile itself writes an entry's comment
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in entries:
                info = zipfile.ZipInfo(name)
                info.comment = b"hi" if name == entries[-1][0] else b""
                archive.writestr(info, data)
        return path
    return write_zip(path, entries, declared_entries=declared)


@pytest.mark.parametrize("case", STRUCTURE_CASES)
def test_zip_structure(tmp_path, trained, case):
    good = saving.save_model(trained, tmp_path / "good.convscope")
    entries, declared = structure_case(case, entries_of(good))
    path = write_case(tmp_path / "m.convscope", entries, declared)
    message = refused(saving.load_model, path)
    if case.startswith("name "):
        assert "unsafe name" in message
    if case in STRUCTURE_MESSAGES:
        assert STRUCTURE_MESSAGES[case] in message
    if case == "duplicate name":
        assert f"holds the entry '{entries[-1][0]}' twice" in message
    npz = saving.save_weights(trained, tmp_path / "good.weights.npz")
    if case not in ("a missing entry", "encrypted", "stored with a wrong size", "bzip2",
                    "a compiled model without its optimizer"):
        entries, declared = structure_case(case, entries_of(npz))
        path = write_case(tmp_path / "m.weights.npz", entries, declared)
        refused(lambda p: saving.load_weights(tiny_model(), p), path, "load_weights")


def test_overlapping_entries(tmp_path, trained):
    """Two directory entries whose data share bytes (the overlapping zip bomb's trick)."""
    good = saving.save_model(trained, tmp_path / "good.convscope")
    raw = bytearray(good.read_bytes())
    with zipfile.ZipFile(good) as archive:
        infos = {i.filename: i for i in archive.infolist()}
        start = archive.start_dir
    # point the directory entry of weights/00001.npy at the local header of weights/00000.npy
    position = raw.index(b"weights/00001.npy", start) - 46
    assert raw[position:position + 4] == b"PK\x01\x02"
    struct.pack_into("<L", raw, position + 42, infos["weights/00000.npy"].header_offset)
    path = tmp_path / "overlap.convscope"
    path.write_bytes(bytes(raw))
    assert "overlaps the entry before it" in refused(saving.load_model, path)


# -- .weights.h5 -----------------------------------------------------------------------------------

@pytest.fixture
def h5py():
    return pytest.importorskip("h5py")


def h5_with(h5py, folder, trained, change, name="m.weights.h5"):
    path = saving.save_weights(trained, folder / name)
    with h5py.File(path, "r+") as handle:
        change(handle, folder)
    return path


def _replace_dataset(data=None, **kwargs):
    def change(handle, folder):
        group = handle["layers/conv2d/vars"]
        del group["0"]
        group.create_dataset("0", data=data, **kwargs)
    return change


def _external_link(handle, folder):
    other = folder / "other.h5"
    import h5py
    with h5py.File(other, "w") as out:
        out.create_dataset("kernel", data=np.ones((3, 3, 1, 2), np.float32))
    group = handle["layers/conv2d/vars"]
    del group["0"]
    group["0"] = h5py.ExternalLink(str(other), "kernel")


def _soft_link(handle, folder):
    import h5py
    group = handle["layers/conv2d/vars"]
    del group["0"]
    group["0"] = h5py.SoftLink("/layers/dense/vars/0")


def _external_storage(handle, folder):
    raw = folder / "raw.bin"
    raw.write_bytes(np.ones((3, 3, 1, 2), np.float32).tobytes())
    group = handle["layers/conv2d/vars"]
    del group["0"]
    group.create_dataset("0", shape=(3, 3, 1, 2), dtype="<f4", external=[(str(raw), 0, 72)])


def _virtual(handle, folder):
    import h5py
    source = folder / "source.h5"
    with h5py.File(source, "w") as out:
        out.create_dataset("kernel", data=np.ones((3, 3, 1, 2), np.float32))
    layout = h5py.VirtualLayout(shape=(3, 3, 1, 2), dtype="<f4")
    layout[:] = h5py.VirtualSource(str(source), "kernel", shape=(3, 3, 1, 2))
    group = handle["layers/conv2d/vars"]
    del group["0"]
    group.create_virtual_dataset("0", layout)


H5_CASES = {
    "complex kernel": _replace_dataset(np.zeros((3, 3, 1, 2), np.complex64)),
    "integer kernel": _replace_dataset(np.zeros((3, 3, 1, 2), np.int32)),
    "string kernel": _replace_dataset(np.array([b"abc"] * 18).reshape(3, 3, 1, 2)),
    "structured kernel": _replace_dataset(np.zeros((3, 3, 1, 2), dtype=[("x", "<f4")])),
    "a 2 GiB declared kernel": _replace_dataset(shape=(1 << 29,), dtype="<f4", chunks=(1 << 20,),
                                                compression="gzip"),
    "a group for a dataset": lambda handle, folder: (handle["layers/conv2d/vars"].__delitem__("0"),
                                                     handle["layers/conv2d/vars"].create_group("0")),
    "external link": _external_link,
    "soft link": _soft_link,
    "external storage": _external_storage,
    "virtual dataset": _virtual,
    "no layers": lambda handle, folder: handle.__delitem__("layers"),
    "many vars": lambda handle, folder: [handle["layers/conv2d/vars"].create_dataset(f"x{i}", data=[1.0])
                                         for i in range(100)],
}


@pytest.mark.parametrize("case", list(H5_CASES))
def test_hostile_weights_h5(tmp_path, trained, h5py, case):
    path = h5_with(h5py, tmp_path, trained, H5_CASES[case])
    message = refused(lambda p: saving.load_weights(tiny_model(), p), path, "load_weights")
    if case in ("external link", "soft link"):
        assert "convscope follows only objects stored in the file itself" in message
    if case in ("external storage", "virtual dataset"):
        assert "virtual or external dataset" in message


def test_hostile_legacy_h5(tmp_path, trained, h5py):
    for attrs in ({"layer_names": np.array([1, 2])}, {"layer_names": np.array([b"missing"])},
                  {"layer_names": np.array([[b"a"]])}, {"layer_names": np.array([b"../x"])},
                  {"layer_names": np.array([b"conv2d"])}, {"layer_names": np.array([b"\xff"])}):
        path = tmp_path / "legacy.h5"
        with h5py.File(path, "w") as handle:
            for key, value in attrs.items():
                handle.attrs[key] = value
            group = handle.create_group("conv2d")
            group.attrs["weight_names"] = np.array([b"conv2d/kernel:0", b"/conv2d/bias:0"])
            group.create_dataset("conv2d/kernel:0", data=np.zeros((3, 3, 1, 2), np.float32))
        refused(lambda p: saving.load_weights(tiny_model(), p), path, "load_weights")


def test_our_weights_h5_carry_checksums(tmp_path, trained, h5py):
    """Fletcher-32 on every dataset and a version-3 superblock (checksummed metadata): what makes
    every flipped bit of our own .weights.h5 detectable; Keras' files carry neither."""
    path = saving.save_weights(trained, tmp_path / "m.weights.h5")
    with h5py.File(path, "r") as handle:
        assert handle.id.get_create_plist().get_version()[0] >= 2
        datasets = []
        handle.visititems(lambda name, obj: datasets.append(obj)
                          if isinstance(obj, h5py.Dataset) else None)
        assert len(datasets) == 4 and all(d.fletcher32 for d in datasets)


# -- saving: modes, symlinks, temporary files, SIGKILL -------------------------------------------

SAVERS = {"convscope": ("m.convscope", saving.save_model),
          "npz": ("m.weights.npz", saving.save_weights),
          "h5": ("m.weights.h5", saving.save_weights)}


@pytest.fixture(params=list(SAVERS))
def saver(request):
    if request.param == "h5":
        pytest.importorskip("h5py")
    return SAVERS[request.param]


def load_back(path, name):
    if name.endswith(".convscope"):
        return saving.load_model(path).get_weights()
    model = tiny_model()
    saving.load_weights(model, path)
    return model.get_weights()


@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)],
                         ids=["umask 022", "umask 077", "umask 002"])
def test_a_new_file_gets_the_mode_the_umask_gives(tmp_path, trained, saver, umask, mask, mode):
    name, save = saver
    umask(mask)
    path = save(trained, tmp_path / name)
    assert stat.S_IMODE(path.stat().st_mode) == mode
    with open(tmp_path / "reference", "wb"):
        pass
    assert stat.S_IMODE((tmp_path / "reference").stat().st_mode) == mode   # as open() gives


def test_an_existing_file_keeps_its_mode(tmp_path, trained, saver, umask):
    name, save = saver
    path = save(trained, tmp_path / name)
    for mode in (0o640, 0o600, 0o604):
        os.chmod(path, mode)
        save(trained, path)
        assert stat.S_IMODE(path.stat().st_mode) == mode


def test_saving_through_symlinks_replaces_the_target(tmp_path, trained, saver):
    name, save = saver
    _rng.set_seed(12)
    other = tiny_model()
    (tmp_path / "data").mkdir()
    (tmp_path / "links").mkdir()
    target = tmp_path / "data" / name
    links = {"absolute": tmp_path / "links" / f"abs-{name}",
             "relative": tmp_path / "links" / f"rel-{name}",
             "chain": tmp_path / "links" / f"chain-{name}"}
    links["absolute"].symlink_to(target)
    links["relative"].symlink_to(Path("..") / "data" / name)
    links["chain"].symlink_to(links["relative"].name)      # chain -> relative -> target
    for kind, link in links.items():
        for model in (trained, other):
            save(model, link)
            assert link.is_symlink(), kind
            assert os.readlink(link) == {"absolute": str(target),
                                         "relative": str(Path("..") / "data" / name),
                                         "chain": links["relative"].name}[kind]
            assert target.is_file() and not target.is_symlink()
            for got, want in zip(load_back(target, name), model.get_weights()):
                assert np.array_equal(got, want)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [name]
    assert sorted(p.name for p in (tmp_path / "links").iterdir()) == sorted(p.name for p in links.values())


def test_a_symlink_keeps_the_targets_mode_and_a_loop_is_refused(tmp_path, trained, saver):
    name, save = saver
    target = save(trained, tmp_path / name)
    os.chmod(target, 0o640)
    link = tmp_path / f"link-{name}"
    link.symlink_to(target.name)
    save(trained, link)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640 and link.is_symlink()
    first, second = tmp_path / f"a-{name}", tmp_path / f"b-{name}"
    first.symlink_to(second.name)
    second.symlink_to(first.name)
    with pytest.raises(OSError, match="symbolic links form a loop"):
        save(trained, first)
    assert first.is_symlink() and second.is_symlink()


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_part_files_of_dead_savers_are_removed(tmp_path, trained, saver):
    name, save = saver
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        gone = dead_pid()
        stale = [tmp_path / f".{name}.{gone}-0.part", tmp_path / f".{name}.{gone}-17.part"]
        live = tmp_path / f".{name}.{sleeper.pid}-0.part"
        mine = tmp_path / f".{name}.{os.getpid()}-99999.part"
        other_target = tmp_path / f".other-{name}.{gone}-0.part"
        unrelated = tmp_path / f".{name}.notapid.part"
        for path in stale + [live, mine, other_target, unrelated]:
            path.write_bytes(b"half a file")
        save(trained, tmp_path / name)
        assert not any(p.exists() for p in stale)
        assert live.exists() and mine.exists() and other_target.exists() and unrelated.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_concurrent_saves_to_one_file_leave_a_whole_file(tmp_path, trained):
    path = tmp_path / "m.convscope"
    errors = []

    def save_many():
        try:
            for _ in range(5):
                saving.save_model(trained, path)
        except Exception as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=save_many) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert same_model(saving.load_model(path), trained)
    assert [p.name for p in tmp_path.iterdir()] == ["m.convscope"]


KILL_CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    from convscope.io import saving
    from convscope.layers import Dense
    from convscope.models import Sequential
    model = Sequential([Dense(1500, input_shape=(1000,)), Dense(10)])
    for version in range(1000):
        rng = np.random.default_rng(version)
        model.set_weights([rng.standard_normal(w.shape).astype(np.float32) for w in model.weights])
        saving.save_model(model, sys.argv[1])
        print(version, flush=True)
""")


def test_sigkill_during_saves_leaves_a_whole_earlier_version(tmp_path):
    """A child saves versions 0, 1, 2, ... of a 6 MB model in a loop and is SIGKILLed at several
    points: the file always loads as exactly one of the saved versions, and the next save
    removes the dead child's temporary file."""
    path = tmp_path / "big.convscope"
    env = dict(os.environ, PYTHONPATH=str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    shapes = [(1000, 1500), (1500,), (1500, 10), (10,)]
    killed_mid_save = 0
    for delay in (0.0, 0.08, 0.21, 0.34, 0.55):
        child = subprocess.Popen([sys.executable, "-c", KILL_CHILD, str(path)], env=env,
                                 stdout=subprocess.PIPE, text=True)
        first = child.stdout.readline()              # one whole save, at least
        assert first.strip().isdigit(), first
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait()
        printed = [int(first)] + [int(line) for line in child.stdout.read().split()]
        child.stdout.close()
        killed_mid_save += any(p.name.endswith(".part") for p in tmp_path.iterdir())
        loaded = saving.load_model(path)
        version = None
        # the last printed version, or the next one when the kill came between rename and print
        for candidate in (printed[-1], printed[-1] + 1):
            rng = np.random.default_rng(candidate)
            expected = [rng.standard_normal(s).astype(np.float32) for s in shapes]
            if all(np.array_equal(a, b) for a, b in zip(loaded.get_weights(), expected)):
                version = candidate
        assert version is not None, printed
    assert killed_mid_save > 0          # at least one kill landed inside a save
    saving.save_model(Sequential([Dense(2, input_shape=(3,))]), path)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
