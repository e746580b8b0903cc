"""`utils.Progbar` against Keras 3.15.1's own: the same lines (bar, counts, averaged and stateful values,
their formats) for the same updates, the times masked; and its argument checks."""

import re

import numpy as np
import pytest

from convscope.utils import Progbar



def _lines(text: str) -> list:
    """The printed lines without colour codes, backspaces, carriage returns and times."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text).replace("\b", "").replace("─", "━")   # Keras' bar: colours
    lines = [line.rstrip() for line in re.split(r"[\r\n]", text)]
    lines = [re.sub(r"\d+(ms|us|s)/\w+", "RATE", line) for line in lines if line.strip()]
    return [re.sub(r"(?<= )\d+(:\d\d)*s\b", "TIME", line) for line in lines]


def _run(make, steps, capsys):
    bar = make()
    for step in steps:
        if step[0] == "add":
            bar.add(step[1], step[2])
        else:
            bar.update(*step)
    return _lines(capsys.readouterr().out)


CASES = [
    (dict(target=10, interval=0, stateful_metrics=["acc"]),
     [(2, [("loss", 0.5), ("acc", 0.25)]), (5, [("loss", 0.25), ("acc", 0.5)]), (6, [("loss", 2.0)]),
      ("add", 4, [("loss", 1e-5), ("acc", -0.75)])]),
    (dict(target=None, interval=0, unit_name="sample"),
     [(3, [("loss", 4.0)]), (7, [("loss", 1.0), ("mae", -2e-4)]), (9, [("loss", 3.0)], True)]),
    (dict(target=120, width=30, interval=0, stateless_metrics=["loss"]),
     [(1, [("loss", 1.0), ("lr", 0.01)]), (60, [("loss", 3.0), ("lr", 0.001)]), (120, [("loss", 2.0)])]),
    (dict(target=4, verbose=2), [(1, [("loss", 0.5), ("delta", -0.5)]), (3, [("loss", 0.0005)]),
                                 (4, [("loss", 0.25)])]),
    (dict(target=4, verbose=0), [(1, [("loss", 0.5)]), (4, [("loss", 0.25)])]),
    (dict(target=5, interval=3600), [(1, [("loss", 0.5)]), (2, [("loss", 1.5)]), (5, [("loss", 0.25)])]),
    (dict(target=np.array(6), interval=0), [(np.array(2), [("loss", np.float32(0.5))]),
                                            (np.int64(6), [("loss", 1.0)])]),
]


@pytest.mark.parametrize("kwargs,steps", CASES)
def test_the_lines_are_keras_lines(keras, capsys, kwargs, steps):
    from keras.src.utils import io_utils
    io_utils.enable_interactive_logging()
    theirs = _run(lambda: keras.utils.Progbar(**kwargs), steps, capsys)
    ours = _run(lambda: Progbar(**kwargs), steps, capsys)
    assert ours == theirs
    if kwargs.get("verbose", 1):
        assert ours          # something was printed: the comparison is not of two empty lists


def test_values_are_averaged_over_the_steps_they_cover(capsys):
    bar = Progbar(10, interval=0, stateful_metrics=["acc"])
    bar.update(2, [("loss", 1.0), ("acc", 0.5)])
    bar.update(6, [("loss", 4.0), ("acc", 0.75)])      # 4 steps at 4.0 after 2 at 1.0: (2 + 16) / 6 = 3
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(" 6/10 " + "━" * 12 + "─" * 8 + " ")      # 60% done, the rest in the light line
    assert line.endswith(" - loss: 3.0000 - acc: 0.7500")


@pytest.mark.parametrize("kwargs,error,pattern", [
    (dict(target=5, stateful_metrics=["a"], stateless_metrics=["b"]), ValueError,
     r"Progbar: give only one of `stateful_metrics`"),
    (dict(target=5, verbose=3), ValueError, r"Progbar: argument `verbose` must be 0, 1 or 2, got 3"),
    (dict(target="10"), TypeError, r"Progbar: argument `target` must be a number or None, got '10'"),
    (dict(target=5, width=0), ValueError, r"Progbar: argument `width` must be positive, got 0"),
    (dict(target=5, stateful_metrics="acc"), TypeError,
     r"Progbar: argument `stateful_metrics` must be an iterable of metric names, got 'acc'"),
])
def test_bad_arguments_are_refused_by_name(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        Progbar(**kwargs)
