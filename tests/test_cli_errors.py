"""The CLI's error paths for the files it writes (issue 16): one line naming the option, exit 2, no
folder created unasked, no internal names (`to_file`, temporary files) in the message."""

import os
import subprocess
import sys

import pytest

from convscope.cli import main

MODEL_PY = """
from convscope.models import Sequential
from convscope.layers import Conv2D, Flatten, Dense, Input

model = Sequential([Input(shape=(8, 8, 1)), Conv2D(2, (3, 3), activation="relu"), Flatten(),
                    Dense(10, activation="softmax")])
"""

TRAIN = ["--limit", "16", "--epochs", "1", "--verbose", "0"]


@pytest.fixture
def model_py(tmp_path):
    path = tmp_path / "model.py"
    path.write_text(MODEL_PY)
    return str(path)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(err, command, start):
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith(f"convscope {command}: error: {start}"), err
    for internal in ("to_file", "filepath", ".part", ".tmp", "Traceback"):
        assert internal not in err, err


def test_png_without_pillow_is_one_line_naming_the_option(tmp_path, model_py):
    """Pillow blocked in a fresh interpreter (sys.modules['PIL'] = None makes its import fail)."""
    script = ("import sys; sys.modules['PIL'] = None; from convscope.cli import main; "
              f"sys.exit(main(['plot', {model_py!r}]))")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    _one_line(result.stderr, "plot", "-o model.png: writing a PNG needs Pillow")
    assert "write an .svg file" in result.stderr
    assert not (tmp_path / "model.png").exists()


@pytest.mark.parametrize("command, option, name", [("plot", "-o", "m.svg"), ("report", "-o", "r.html"),
                                                   ("train", "--save", "m.keras")])
def test_a_missing_folder_is_refused_not_created(capsys, tmp_path, model_py, command, option, name):
    target = tmp_path / "missing" / "deeper" / name
    extra = TRAIN if command == "train" else []
    code, out, err = run(capsys, command, model_py, option, target, *extra)
    assert code == 2 and out == ""                  # refused before any work (no training either)
    _one_line(err, command, f"{option} {target}: the folder '{target.parent}' does not exist")
    assert not (tmp_path / "missing").exists()
    (tmp_path / "file").write_text("")
    code, _, err = run(capsys, command, model_py, option, tmp_path / "file" / name, *extra)
    assert code == 2
    _one_line(err, command, f"{option} {tmp_path / 'file' / name}: the folder '{tmp_path / 'file'}' is not a folder")


@pytest.mark.parametrize("command, option, expected", [
    ("plot", "-o", "-o must name a picture file ending in .svg or .png, got"),
    ("report", "-o", "-o must name an HTML report file ending in .html or .htm, got"),
    ("train", "--save", "--save must name a saved model file ending in .convscope, .keras, .h5 or .hdf5, got")])
def test_a_wrong_suffix_names_the_option(capsys, tmp_path, model_py, command, option, expected):
    extra = TRAIN if command == "train" else []
    code, out, err = run(capsys, command, model_py, option, tmp_path / "r.txt", *extra)
    assert code == 2 and out == ""
    _one_line(err, command, f"{expected} '{tmp_path / 'r.txt'}'")
    (tmp_path / "folder.svg").mkdir()
    code, _, err = run(capsys, "plot", model_py, "-o", tmp_path / "folder.svg")
    assert code == 2
    _one_line(err, "plot", f"-o {tmp_path / 'folder.svg'} is a folder; name a file to write")


def test_a_failed_write_names_the_file_not_the_temporary_one(capsys, tmp_path, model_py):
    """A 256-byte name is one byte past the file system's limit (its temporary sibling is cut to fit, so
    the work is done and the final rename fails): a real failure."""
    for command, suffix in (("plot", ".svg"), ("report", ".html")):
        target = tmp_path / ("a" * (256 - len(suffix)) + suffix)
        code, out, err = run(capsys, command, model_py, "-o", target)
        assert code == 2 and out == ""
        _one_line(err, command, f"-o {target}: cannot write the file: {os.strerror(36)}")
    assert sorted(os.listdir(tmp_path)) == ["model.py"]


@pytest.mark.parametrize("command, option, name", [("plot", "-o", "m.svg"), ("report", "-o", "r.html"),
                                                   ("train", "--save", "m.convscope")])
def test_a_refused_rename_names_the_option_and_leaves_no_temporary_file(capsys, tmp_path, monkeypatch,
                                                                        model_py, command, option, name):
    """The final rename refused (as on a folder without write permission, which root would not see)."""
    real_replace = os.replace

    def refuse(source, destination, *args, **kwargs):
        if os.path.basename(os.fsdecode(destination)) == name:
            raise PermissionError(13, "Permission denied", source, destination)
        return real_replace(source, destination, *args, **kwargs)

    monkeypatch.setattr(os, "replace", refuse)
    extra = TRAIN if command == "train" else []
    code, _, err = run(capsys, command, model_py, option, tmp_path / name, *extra)
    assert code == 2
    _one_line(err, command, f"{option} {tmp_path / name}: cannot write the file: Permission denied")
    assert sorted(os.listdir(tmp_path)) == ["model.py"]


def test_atomic_write_errors_name_the_requested_file(tmp_path):
    """io/_atomic (the saves' writer) reports the file asked for, not its `.part` sibling."""
    from convscope.io._atomic import atomic_write
    target = tmp_path / "model.convscope"
    target.mkdir()
    with pytest.raises(IsADirectoryError) as caught:
        with atomic_write(target) as handle:
            handle.write(b"data")
    assert str(caught.value) == f"[Errno 21] cannot write '{target}': Is a directory"
    assert sorted(os.listdir(tmp_path)) == ["model.convscope"]
