"""A tiny vector drawing: rectangles, lines, text and pixel images, written as SVG.

Every picture of `convscope.viz` is first built as a `Drawing` (a list of
primitives in pixel coordinates); `to_svg()` writes it as SVG text and
`convscope.viz.raster` paints the same primitives into a PNG with Pillow, so
both formats show exactly the same picture.  Pixel images inside an SVG are
embedded as PNG data URIs encoded here with the standard library only.
"""

from __future__ import annotations

import base64
import struct
import zlib
from html import escape
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..io._atomic import atomic_write as write_atomically

FONT_FAMILY = "DejaVu Sans, Helvetica, Arial, 'Noto Sans CJK KR', sans-serif"


def text_width(text: str, size: float) -> float:
    """Generous estimate of the width of `text` in pixels (wide CJK glyphs count double)."""
    return sum(size * (1.0 if ord(ch) > 0x2E80 else 0.62) for ch in text)


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an H x W x 3 (or H x W x 4) uint8 array, with zlib from the standard library."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
        raise ValueError(f"encode_png: argument `rgb` must have shape (H, W, 3) or (H, W, 4), got {rgb.shape}")
    height, width, channels = rgb.shape
    rows = np.concatenate([np.zeros((height, 1), np.uint8), rgb.reshape(height, width * channels)], axis=1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    color_type = 2 if channels == 3 else 6
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + chunk(b"IEND", b""))


def png_data_uri(rgb: np.ndarray) -> str:
    """`data:image/png;base64,...` for an RGB array, for inline SVG and HTML."""
    return "data:image/png;base64," + base64.b64encode(encode_png(rgb)).decode("ascii")


def atomic_write(path, data: bytes) -> Path:
    """Write `data` to `path` atomically (`io/_atomic.py`: a temporary file beside it, renamed into place).

    The folder must exist (none is created unasked: a FileNotFoundError names it); an error names
    `path`, never the temporary file; links are written through and modes kept as `open` would.
    """
    path = Path(path)
    with write_atomically(path) as stream:
        stream.write(data)
    return path


class Drawing:
    """A picture as a list of primitives; `to_svg()`, `to_png()`, `save(path)`.

    Coordinates are pixels at 96 dpi, y downwards; text `y` is the baseline.
    `css_class` is written as the SVG `class` so tests and the HTML report can
    find tiles, layer boxes and arrows.
    """

    def __init__(self, width: float, height: float, background: str = "#ffffff"):
        self.width = float(width)
        self.height = float(height)
        self.background = background
        self.items: List[Tuple[str, dict]] = []

    def rect(self, x, y, w, h, fill="none", stroke=None, stroke_width=1.0, rx=0.0, css_class=None):
        self.items.append(("rect", dict(x=x, y=y, w=w, h=h, fill=fill, stroke=stroke,
                                        stroke_width=stroke_width, rx=rx, css_class=css_class)))

    def line(self, x1, y1, x2, y2, stroke="#000000", stroke_width=1.0, css_class=None):
        self.items.append(("line", dict(x1=x1, y1=y1, x2=x2, y2=y2, stroke=stroke,
                                        stroke_width=stroke_width, css_class=css_class)))

    def polyline(self, points: Sequence[Tuple[float, float]], stroke="#000000", stroke_width=1.5,
                 css_class=None):
        self.items.append(("polyline", dict(points=[(float(a), float(b)) for a, b in points],
                                            stroke=stroke, stroke_width=stroke_width, css_class=css_class)))

    def polygon(self, points: Sequence[Tuple[float, float]], fill="#000000", css_class=None):
        self.items.append(("polygon", dict(points=[(float(a), float(b)) for a, b in points],
                                           fill=fill, css_class=css_class)))

    def text(self, x, y, text, size=12.0, anchor="start", fill="#000000", weight="normal",
             css_class=None):
        self.items.append(("text", dict(x=x, y=y, text=str(text), size=size, anchor=anchor,
                                        fill=fill, weight=weight, css_class=css_class)))

    def image(self, x, y, w, h, rgb: np.ndarray, css_class=None, title: Optional[str] = None):
        """A pixel image (H x W x 3 uint8) stretched to w x h with nearest-neighbour cells."""
        self.items.append(("image", dict(x=x, y=y, w=w, h=h, rgb=np.asarray(rgb, np.uint8),
                                         css_class=css_class, title=title)))

    def arrow(self, x1, y1, x2, y2, stroke="#333333", stroke_width=1.2, head=7.0):
        """A straight arrow from (x1, y1) to (x2, y2): a line and a filled head."""
        length = max(np.hypot(x2 - x1, y2 - y1), 1e-9)
        ux, uy = (x2 - x1) / length, (y2 - y1) / length
        bx, by = x2 - ux * head, y2 - uy * head
        self.line(x1, y1, bx, by, stroke=stroke, stroke_width=stroke_width, css_class="edge")
        self.polygon([(x2, y2), (bx - uy * head * 0.45, by + ux * head * 0.45),
                      (bx + uy * head * 0.45, by - ux * head * 0.45)], fill=stroke, css_class="edge-head")

    # -- output -----------------------------------------------------------------------
    def to_svg(self) -> str:
        """The drawing as a standalone SVG document (UTF-8 text)."""
        w, h = _num(self.width), _num(self.height)
        out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
               f'font-family="{escape(FONT_FAMILY)}">']
        if self.background:
            out.append(f'<rect x="0" y="0" width="{w}" height="{h}" fill="{self.background}"/>')
        for kind, a in self.items:
            cls = f' class="{escape(a["css_class"])}"' if a.get("css_class") else ""
            if kind == "rect":
                stroke = (f' stroke="{a["stroke"]}" stroke-width="{_num(a["stroke_width"])}"'
                          if a["stroke"] else "")
                rx = f' rx="{_num(a["rx"])}"' if a["rx"] else ""
                out.append(f'<rect{cls} x="{_num(a["x"])}" y="{_num(a["y"])}" width="{_num(a["w"])}" '
                           f'height="{_num(a["h"])}" fill="{a["fill"]}"{stroke}{rx}/>')
            elif kind == "line":
                out.append(f'<line{cls} x1="{_num(a["x1"])}" y1="{_num(a["y1"])}" x2="{_num(a["x2"])}" '
                           f'y2="{_num(a["y2"])}" stroke="{a["stroke"]}" '
                           f'stroke-width="{_num(a["stroke_width"])}"/>')
            elif kind == "polyline":
                points = " ".join(f"{_num(px)},{_num(py)}" for px, py in a["points"])
                out.append(f'<polyline{cls} points="{points}" fill="none" stroke="{a["stroke"]}" '
                           f'stroke-width="{_num(a["stroke_width"])}" stroke-linejoin="round"/>')
            elif kind == "polygon":
                points = " ".join(f"{_num(px)},{_num(py)}" for px, py in a["points"])
                out.append(f'<polygon{cls} points="{points}" fill="{a["fill"]}"/>')
            elif kind == "text":
                anchor = {"start": "start", "middle": "middle", "end": "end"}[a["anchor"]]
                out.append(f'<text{cls} x="{_num(a["x"])}" y="{_num(a["y"])}" font-size="{_num(a["size"])}" '
                           f'text-anchor="{anchor}" fill="{a["fill"]}" font-weight="{a["weight"]}">'
                           f'{escape(a["text"])}</text>')
            elif kind == "image":
                title = f"<title>{escape(a['title'])}</title>" if a.get("title") else ""
                out.append(f'<image{cls} x="{_num(a["x"])}" y="{_num(a["y"])}" width="{_num(a["w"])}" '
                           f'height="{_num(a["h"])}" preserveAspectRatio="none" '
                           f'style="image-rendering:pixelated" href="{png_data_uri(a["rgb"])}">{title}</image>')
        out.append("</svg>")
        return "\n".join(out)

    def to_png(self, dpi: float = 96, where: str = "to_png") -> bytes:
        """PNG bytes painted by Pillow (`pip install convscope[viz]`), scaled by dpi / 96.

        Refuses (`raster.PictureTooLarge`, before allocating) more than `raster.MAX_PNG_PIXELS` pixels.
        """
        from .raster import check_png_size, render_png
        check_png_size(self, dpi, where)
        return render_png(self, scale=float(dpi) / 96.0)

    def save(self, path, dpi: float = 96, where: str = "save") -> Path:
        """Write SVG or PNG, chosen by the file extension, atomically; returns the path."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".svg":
            data = self.to_svg().encode("utf-8")
        elif suffix == ".png":
            data = self.to_png(dpi, where)
        else:
            raise ValueError(f"{where}: argument `to_file` must end in .svg or .png, got {str(path)!r}")
        return atomic_write(path, data)

    def _repr_svg_(self) -> str:
        return self.to_svg()


class Figure:
    """What the plotting functions return: the drawing, where it was written, and notebook display.

    `figure.to_svg()` is the SVG text; `figure.path` is the written file or None.
    """

    def __init__(self, drawing: Drawing, path: Optional[Path] = None, **info):
        self.drawing = drawing
        self.path = path
        self.info = info

    def to_svg(self) -> str:
        return self.drawing.to_svg()

    def to_png(self, dpi: float = 96) -> bytes:
        return self.drawing.to_png(dpi)

    def save(self, path, dpi: float = 96) -> Path:
        self.path = self.drawing.save(path, dpi)
        return self.path

    def _repr_svg_(self) -> str:
        return self.drawing.to_svg()

    def __repr__(self) -> str:
        where = f", path={str(self.path)!r}" if self.path else ""
        return f"<Figure {int(self.drawing.width)}x{int(self.drawing.height)}{where}>"


def finish(drawing: Drawing, to_file, dpi: float, where: str, **info) -> Figure:
    """Write the drawing when `to_file` is given and wrap it in a `Figure`."""
    path = drawing.save(to_file, dpi, where) if to_file is not None else None
    return Figure(drawing, path, **info)


def _num(value: float) -> str:
    """Short decimal text for SVG attributes."""
    text = f"{float(value):.2f}".rstrip("0").rstrip(".")
    return text if text not in ("-0", "") else "0"
