"""The pictures refuse a dpi above `MAX_DPI`, and a PNG above `MAX_PNG_PIXELS`, before allocating it."""

import pytest

from convscope.layers import Dense, Input
from convscope.models import Sequential
from convscope.viz import plot_history, plot_model
from convscope.viz import raster
from convscope.viz._model import MAX_DPI


def _long_model(layers=150):
    return Sequential([Input(shape=(4,))] + [Dense(2) for _ in range(layers)])


@pytest.fixture
def no_painting(monkeypatch):
    """Fail if Pillow is asked for anything: a refused picture must be refused before it is painted."""
    def refuse():
        raise AssertionError("Pillow was asked to paint a picture that should have been refused")
    monkeypatch.setattr(raster, "_pillow", refuse)


@pytest.mark.parametrize("dpi", [MAX_DPI + 1, 100_000, float("inf")])
def test_plot_model_refuses_a_dpi_above_the_limit(tmp_path, no_painting, dpi):
    target = tmp_path / "model.png"
    with pytest.raises(ValueError, match=rf"^plot_model: argument `dpi` must be at most {MAX_DPI} \(the "
                                         rf"picture's pixels grow with its square\), got {dpi!r}$"):
        plot_model(_long_model(2), to_file=target, dpi=dpi)
    assert not target.exists()


def test_plot_history_refuses_a_dpi_above_the_limit(tmp_path):
    with pytest.raises(ValueError, match=rf"^plot_history: argument `dpi` must be at most {MAX_DPI} "):
        plot_history({"loss": [1.0, 0.5]}, to_file=tmp_path / "h.png", dpi=5000)


def test_a_png_of_too_many_pixels_is_refused_before_painting(tmp_path, no_painting):
    model = _long_model()
    drawing = plot_model(model, to_file=None).drawing
    width, height = round(drawing.width * MAX_DPI / 96), round(drawing.height * MAX_DPI / 96)
    assert width * height > raster.MAX_PNG_PIXELS
    target = tmp_path / "long.png"
    with pytest.raises(raster.PictureTooLarge) as refused:
        plot_model(model, to_file=target, dpi=MAX_DPI)
    assert str(refused.value) == (
        f"plot_model: argument `dpi`={MAX_DPI} would make a {width:,}x{height:,}-pixel PNG "
        f"({width * height:,} pixels), more than the limit of {raster.MAX_PNG_PIXELS:,} pixels; lower `dpi` "
        "or write an .svg file")
    assert isinstance(refused.value, ValueError)
    assert (refused.value.width, refused.value.height) == (width, height)
    assert not target.exists()
    svg = plot_model(model, to_file=tmp_path / "long.svg", dpi=MAX_DPI)    # an SVG has no pixels to count
    assert svg.path.exists()


def test_figure_to_png_refuses_too_many_pixels(no_painting):
    figure = plot_model(_long_model(2), to_file=None)
    dpi = 96 * 20_000 / figure.drawing.width          # 20,000 pixels wide
    with pytest.raises(raster.PictureTooLarge, match=r"^to_png: argument `dpi`=[0-9.]+ would make a 20,000x"):
        figure.to_png(dpi)
