"""`DepthwiseConv1D`, `SeparableConv1D` and `Conv1DTranspose`: Keras' 1-D forms of the 2-D family.

Each is its 2-D layer with Keras' 1-D arguments, shapes, weight layouts and configs (`OneRow`), run by
the 2-D ops on one-row images as `Conv1D` is: a sequence batch (batch, steps, channels) is the image
batch (batch, 1, steps, channels) and a kernel (k, ...) the kernel (1, k, ...), views, not copies.
"""

from __future__ import annotations

from .. import ops
from .base import Shape
from .conv1d import as_image, check_sequence_rank, from_image, sequence_shape, steps_dim
from .conv2d import ops_format
from .conv2d_transpose import Conv2DTranspose
from .depthwise_conv2d import DepthwiseConv2D
from .separable_conv2d import SeparableConv2D


class OneRow:
    """A 2-D family layer's window on sequences: 1-tuples, "valid"/"same", one "steps" axis; `_image_args`
    gives the 2-D op the one-row view of an input and a kernel."""

    _AXES = ("steps",)

    def _check_rank(self, input_shape: Shape) -> None:
        check_sequence_rank(self, input_shape, self.data_format)

    def _lengths(self, input_shape: Shape) -> tuple:
        return (steps_dim(input_shape, self.data_format),)

    def _shaped(self, batch, sizes, channels: int) -> Shape:
        return sequence_shape(batch, sizes[0], channels, self.data_format)

    def _image_args(self, inputs, *kernels) -> tuple:
        """(one-row input, each kernel as (1, k, ...), strides, padding, ops data format, dilations)."""
        return ((as_image(inputs, self.data_format),) + tuple(kernel.value[None] for kernel in kernels)
                + ((1, self.strides[0]), self.padding.upper(), ops_format(self.data_format),
                   (1, self.dilation_rate[0])))

    def _sequence(self, y):
        return None if y is None else from_image(y, self.data_format)


class DepthwiseConv1D(OneRow, DepthwiseConv2D):
    """`depth_multiplier` kernels of `kernel_size` steps per input channel (Keras' DepthwiseConv1D).

    Weights: kernel (k, in_channels, depth_multiplier), then bias (in_channels * depth_multiplier,).
    Shape: (N, L, C) -> (N, L_out, C * depth_multiplier), L_out = ⌊(L + pads − d·(k − 1) − 1) / s⌋ + 1.
    """

    _KIND = "depthwise_conv1d"

    def __init__(self, kernel_size, strides=1, padding="valid", depth_multiplier=1, data_format=None,
                 dilation_rate=1, *args, **kwargs):     # Keras' order; the rest as DepthwiseConv2D's
        super().__init__(kernel_size, strides, padding, depth_multiplier, data_format, dilation_rate, *args,
                         **kwargs)

    def _run(self, inputs, bias, activation, keep):
        args = self._image_args(inputs, self.kernel) + (bias, activation)
        y, ctx = ops.depthwise_conv2d_forward(*args) if keep else (ops.depthwise_conv2d(*args), None)
        return self._sequence(y), ctx

    def _run_backward(self, grad_z, op_ctx, need_input_grad):
        grad_input, grad_kernel = ops.depthwise_conv2d_backward(as_image(grad_z, self.data_format), op_ctx,
                                                                need_input_grad)
        return self._sequence(grad_input), [grad_kernel.reshape(self.kernel.shape)]


class SeparableConv1D(OneRow, SeparableConv2D):
    """A depthwise 1-D convolution, then `filters` kernels of one step (Keras' SeparableConv1D).

    Weights: depthwise_kernel (k, in_channels, depth_multiplier), pointwise_kernel
    (1, in_channels * depth_multiplier, filters), then bias (filters,).
    """

    _KIND = "separable_conv1d"

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 depth_multiplier=1, *args, **kwargs):      # Keras' order; the rest as SeparableConv2D's
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate, depth_multiplier,
                         *args, **kwargs)

    def _run(self, inputs, bias, activation, keep):
        args = self._image_args(inputs, self.depthwise_kernel, self.pointwise_kernel) + (bias, activation)
        y, ctx = ops.separable_conv2d_forward(*args) if keep else (ops.separable_conv2d(*args), None)
        return self._sequence(y), ctx

    def _run_backward(self, grad_z, op_ctx, need_input_grad):
        grad_input, grad_depthwise, grad_pointwise = ops.separable_conv2d_backward(
            as_image(grad_z, self.data_format), op_ctx, need_input_grad)
        return self._sequence(grad_input), [grad_depthwise.reshape(self.depthwise_kernel.shape),
                                            grad_pointwise.reshape(self.pointwise_kernel.shape)]


class Conv1DTranspose(OneRow, Conv2DTranspose):
    """`filters` kernels of `kernel_size` steps scattered from each input step (Keras' Conv1DTranspose).

    Weights: kernel (k, filters, in_channels), then bias (filters,).  Shape: (N, L, C) -> (N, L_out,
    filters), L_out = (L − 1)·s + d·(k − 1) + 1 ("valid") or L·s ("same"), plus `output_padding`.
    """

    _KIND = "conv1d_transpose"

    def __init__(self, filters, kernel_size, strides=1, padding="valid", output_padding=None, data_format=None,
                 dilation_rate=1, *args, **kwargs):         # Keras' order; the rest as Conv2DTranspose's
        super().__init__(filters, kernel_size, strides, padding, output_padding, data_format, dilation_rate,
                         *args, **kwargs)

    def _run(self, inputs, bias, activation, keep):
        x, kernel, strides, padding, data_format, dilations = self._image_args(inputs, self.kernel)
        extra = None if self.output_padding is None else (0,) + tuple(self.output_padding)
        args = (x, kernel, None, strides, padding, data_format, dilations, extra, bias, activation)
        y, ctx = ops.conv2d_transpose_forward(*args) if keep else (ops.conv2d_transpose(*args), None)
        return self._sequence(y), ctx

    def _run_backward(self, grad_z, op_ctx, need_input_grad):
        grad_input, grad_kernel = ops.conv2d_transpose_backward(as_image(grad_z, self.data_format), op_ctx,
                                                                need_input_grad)
        return self._sequence(grad_input), [grad_kernel.reshape(self.kernel.shape)]


SeparableConvolution1D = SeparableConv1D
Convolution1DTranspose = Conv1DTranspose
