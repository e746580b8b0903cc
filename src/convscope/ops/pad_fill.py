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
    time outside the copy of a pixel's few channels."""
    images, height, width, channels = x_block.shape
    length, inner, start = block.shape[2] * channels, width * channels, left * channels
    for n in range(images):
        for i in range(block.shape[1]):
            row = block[n, i].reshape(length)
            if top <= i < top + height:
                source = x_block[n, i - top].reshape(inner)
                head, body, tail = row[:start], row[start:start + inner], row[start + inner:]
                for j in range(head.shape[0]):
                    head[j] = value
                for j in range(inner):              # indices from a range: the loop vectorizes
                    body[j] = source[j]
                for j in range(tail.shape[0]):
                    tail[j] = value
            else:
                for j in range(length):
                    row[j] = value
