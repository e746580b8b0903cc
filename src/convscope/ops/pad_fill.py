"""Padded images written by compiled kernels: each padded row written once, the border from a value and the
interior copied from the image (NumPy's assignment of the interior copies a pixel's channels at a time).
`conv._fill_padded` chooses between them; the direct convolution's claimed images are padded by them one
at a time (`direct.conv_pool_block`)."""

from __future__ import annotations

from . import compiled

FLAT_FILL_MAX_CHANNELS = 16        # padding images of at most this many channels a row at a time, not a pixel
                                   # (measurements: benchmarks/README.md, 'Measurements behind the code's choices')


@compiled.kernel
def fill_pixels(block, x_block, top, left, value):
    """block (padded images) = x_block with a border of `value`, each padded row of each image written once
    (`top`: the block's rows above x_block's first, negative for a block that starts below it; `left`: its
    columns left of x_block's first)."""
    images, height, width, channels = x_block.shape
    for n in range(images):
        for i in range(block.shape[1]):
            row = block[n, i]
            inside = top <= i < top + height
            for j in range(block.shape[2]):
                if inside and left <= j < left + width:
                    source = x_block[n, i - top, j - left]
                    for k in range(channels):
                        row[j, k] = source[k]
                else:
                    for k in range(channels):
                        row[j, k] = value


@compiled.kernel
def fill_rows(block, x_block, top, left, value):
    """`fill_pixels` for C-contiguous arrays of few channels (`FLAT_FILL_MAX_CHANNELS`): each padded
    row as one flat run of values (border, copied interior, border), where the pixel-by-pixel loop spends its
    time outside the copy of a pixel's few channels.  Three views per row, taken from flat views of the
    arrays (a reshape and three slices per row made a 28-float row cost twice its copy; measurements:
    benchmarks/README.md, 'Measurements behind the code's choices'); indices from ranges (the loops vectorize)."""
    images, height, width, channels = x_block.shape
    rows, length = block.shape[1], block.shape[2] * channels
    inner, start = width * channels, left * channels
    out, source = block.reshape(block.size), x_block.reshape(x_block.size)
    for n in range(images):
        for i in range(rows):
            row = out[(n * rows + i) * length:(n * rows + i + 1) * length]
            if top <= i < top + height:
                at = (n * height + i - top) * inner
                body, copied = row[start:start + inner], source[at:at + inner]
                for j in range(start):
                    row[j] = value
                for j in range(inner):
                    body[j] = copied[j]
                for j in range(start + inner, length):
                    row[j] = value
            else:
                for j in range(length):
                    row[j] = value
