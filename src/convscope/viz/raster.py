"""Paint a `Drawing` into a PNG with Pillow (the optional extra `convscope[viz]`)."""

from __future__ import annotations

import io
from functools import lru_cache
import numpy as np

_FONTS = {False: ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
          True: ("DejaVuSans-Bold.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")}
# Fonts with Hangul (and Latin) glyphs, for labels in Korean: (file, index in a collection); DejaVu has none.
_CJK_FONTS = {False: (("NotoSansCJK-Regular.ttc", 1), ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 1),
                      ("NanumGothic.ttf", 0), ("/usr/share/fonts/truetype/nanum/NanumGothic.ttf", 0)),
              True: (("NotoSansCJK-Bold.ttc", 1), ("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc", 1),
                     ("NanumGothicBold.ttf", 0), ("/usr/share/fonts/truetype/nanum/NanumGothicBold.ttf", 0))}


def _pillow():
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        raise ImportError("convscope.viz: writing PNG needs Pillow; install it with "
                          "`pip install convscope[viz]` (or write an .svg file instead)") from None
    return Image, ImageDraw, ImageFont


@lru_cache(maxsize=64)
def _font(size: int, bold: bool, cjk: bool = False):
    """A TrueType font of `size` pixels: for CJK text a Noto CJK / Nanum font when installed; else DejaVu
    when installed, else Pillow's built-in scalable font."""
    _, _, ImageFont = _pillow()
    candidates = (_CJK_FONTS[bold] + _CJK_FONTS[False] if cjk else ()) + tuple((name, 0) for name in _FONTS[bold])
    for name, index in candidates:
        try:
            return ImageFont.truetype(name, size, index=index)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def has_cjk(text: str) -> bool:
    """True when `text` holds a character beyond DejaVu's reach (CJK, Hangul: from U+2E80 on)."""
    return any(ord(ch) >= 0x2E80 for ch in text)


def _rgb(color: str):
    color = color.lstrip("#")
    return tuple(int(color[i:i + 2], 16) for i in (0, 2, 4))


MAX_PNG_PIXELS = 100_000_000   # 300 MB of RGB while painting, more in Pillow's PNG encoder


class PictureTooLarge(ValueError):
    """A PNG of more than `MAX_PNG_PIXELS` pixels was asked for; nothing was allocated."""

    def __init__(self, where: str, dpi: float, width: int, height: int, limit: int):
        self.dpi, self.width, self.height, self.limit = dpi, width, height, limit
        super().__init__(f"{where}: argument `dpi`={dpi:g} would make a {width:,}x{height:,}-pixel PNG "
                         f"({width * height:,} pixels), more than the limit of {limit:,} pixels; lower `dpi` "
                         "or write an .svg file")


def png_size(drawing, dpi: float):
    """(width, height) in pixels of `drawing` painted at `dpi` (96 dpi: one pixel per unit)."""
    scale = float(dpi) / 96.0
    return max(1, round(drawing.width * scale)), max(1, round(drawing.height * scale))


def check_png_size(drawing, dpi: float, where: str) -> None:
    """Raise `PictureTooLarge` when `drawing` at `dpi` has more than `MAX_PNG_PIXELS` pixels."""
    width, height = png_size(drawing, dpi)
    if width * height > MAX_PNG_PIXELS:
        raise PictureTooLarge(where, float(dpi), width, height, MAX_PNG_PIXELS)


def render_png(drawing, scale: float = 1.0) -> bytes:
    """PNG bytes of `drawing`, every coordinate multiplied by `scale` (dpi / 96)."""
    Image, ImageDraw, _ = _pillow()
    width, height = max(1, round(drawing.width * scale)), max(1, round(drawing.height * scale))
    image = Image.new("RGB", (width, height), _rgb(drawing.background or "#ffffff"))
    pen = ImageDraw.Draw(image)
    s = scale
    for kind, a in drawing.items:
        if kind == "rect":
            box = [a["x"] * s, a["y"] * s, (a["x"] + a["w"]) * s, (a["y"] + a["h"]) * s]
            fill = None if a["fill"] == "none" else _rgb(a["fill"])
            outline = _rgb(a["stroke"]) if a["stroke"] else None
            line_width = max(1, round(a["stroke_width"] * s)) if outline else 0
            if a["rx"]:
                pen.rounded_rectangle(box, radius=a["rx"] * s, fill=fill, outline=outline, width=line_width)
            else:
                pen.rectangle(box, fill=fill, outline=outline, width=line_width)
        elif kind == "line":
            pen.line([a["x1"] * s, a["y1"] * s, a["x2"] * s, a["y2"] * s], fill=_rgb(a["stroke"]),
                     width=max(1, round(a["stroke_width"] * s)))
        elif kind == "polyline":
            pen.line([(x * s, y * s) for x, y in a["points"]], fill=_rgb(a["stroke"]),
                     width=max(1, round(a["stroke_width"] * s)), joint="curve")
        elif kind == "polygon":
            pen.polygon([(x * s, y * s) for x, y in a["points"]], fill=_rgb(a["fill"]))
        elif kind == "text":
            font = _font(max(6, round(a["size"] * s)), a["weight"] == "bold", has_cjk(a["text"]))
            anchor = {"start": "ls", "middle": "ms", "end": "rs"}[a["anchor"]]
            pen.text((a["x"] * s, a["y"] * s), a["text"], fill=_rgb(a["fill"]), font=font, anchor=anchor)
        elif kind == "image":
            size = (max(1, round(a["w"] * s)), max(1, round(a["h"] * s)))
            tile = Image.fromarray(np.ascontiguousarray(a["rgb"][..., :3]), "RGB").resize(size, Image.NEAREST)
            image.paste(tile, (round(a["x"] * s), round(a["y"] * s)))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", dpi=(96 * scale, 96 * scale))
    return buffer.getvalue()
