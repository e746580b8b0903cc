"""What DepthwiseConv2D, SeparableConv2D and Conv2DTranspose share: the window arguments, weight
options named by role (`depthwise_initializer`, ...), the output shape of a Conv2D-like window, and
one forward/backward around an op with a bias and an activation (fused where Conv2D fuses them)."""

from __future__ import annotations

from typing import Any, Dict

from .. import backend, initializers
from ..ops import shapes
from .base import Shape, check_bool, check_kept_for_backward, resolve_optional, serialize_optional
from .conv2d import channel_dim, check_image_rank, image_shape, init_window, spatial_dims, window_output_sizes
from .kernel_bias import KernelBiasLayer, Preactivation, resolve_activation
from .spec import Window


class ConvFamilyLayer(KernelBiasLayer):
    """A windowed layer computing activation(op(x) + bias); subclasses give `_run` and `_run_backward`."""

    _CONFIG_DEFAULTS = {
        "data_format": "channels_last",
        "activation": "linear",
        "bias_initializer": initializers.serialize(initializers.Zeros()),
    }
    _AXES = ("rows", "cols")         # the window's axes, as error messages name them

    def _init_window(self, where: str, kernel_size, strides, padding, data_format, dilation_rate) -> None:
        init_window(self, where, len(self._AXES), kernel_size, strides, padding, data_format, dilation_rate)

    # -- the layout (images here; `conv1d_family.OneRow` gives sequences) --------------------
    def _check_rank(self, input_shape: Shape) -> None:
        check_image_rank(self, input_shape, self.data_format)

    def _lengths(self, input_shape: Shape) -> tuple:
        """The input's length along each of `_AXES`."""
        return spatial_dims(input_shape, self.data_format)

    def _shaped(self, batch, sizes, channels: int) -> Shape:
        """The output shape for `sizes` along `_AXES` and `channels`."""
        return image_shape(batch, sizes[0], sizes[1], channels, self.data_format)

    def _init_activation_bias(self, where: str, activation, use_bias, bias_initializer, bias_regularizer,
                              activity_regularizer, bias_constraint) -> None:
        """Activation and bias options (the kernels' are named by role: `weight_options`)."""
        self.activation = resolve_activation(activation, where)
        self.use_bias = check_bool(use_bias, "use_bias", where)
        self.bias_initializer, self.bias_regularizer, self.bias_constraint = weight_options(
            where, "bias", bias_initializer, bias_regularizer, bias_constraint)
        self.activity_regularizer = resolve_optional("regularizers", activity_regularizer, where,
                                                     "activity_regularizer")
        self.kernel = None
        self.bias = None

    def _window_config(self) -> Dict[str, Any]:
        return {"kernel_size": self.kernel_size, "strides": self.strides, "padding": self.padding,
                "data_format": self.data_format, "dilation_rate": self.dilation_rate}

    def _activation_bias_config(self) -> Dict[str, Any]:
        return {"activation": self.activation.name, "use_bias": self.use_bias,
                **weight_config("bias", self.bias_initializer, self.bias_regularizer, self.bias_constraint),
                "activity_regularizer": serialize_optional("regularizers", self.activity_regularizer)}

    def _window(self) -> Window:
        return Window(self.kernel_size, self.strides, self.padding, self.dilation_rate)

    def _input_channels(self, input_shape: Shape, expected) -> int:
        """The input's channels (known, and `expected`'s when the layer is built)."""
        input_shape = tuple(input_shape)
        self._check_rank(input_shape)
        channels = channel_dim(input_shape, self.data_format)
        if channels is None:
            raise ValueError(f"{self._describe()}: the channel axis of the input must be known, got shape "
                             f"{input_shape}")
        if expected is not None and channels != expected:
            raise ValueError(f"{self._describe()}: expected an input with {expected} channels (the layer is "
                             f"built for them), got shape {input_shape}")
        return channels

    def _conv_output_shape(self, input_shape: Shape, out_channels: int) -> Shape:
        """A Conv2D-like window's output shape; a window larger than the padded input is refused."""
        out = window_output_sizes(self, input_shape, self._AXES, self._lengths(input_shape))
        return self._shaped(input_shape[0], out, out_channels)

    # -- one call -----------------------------------------------------------------------
    def _run(self, inputs, bias, activation: str, keep: bool):
        """(op output with `activation(. + bias)` applied, op ctx or None when not `keep`)."""
        raise NotImplementedError

    def _run_backward(self, grad_z, op_ctx, need_input_grad: bool):
        """(input gradient or None, [gradient of each kernel, in `_kernels()` order])."""
        raise NotImplementedError

    def _kernels(self) -> list:
        return [self.kernel]

    def forward(self, inputs, training: bool = False):
        keep = backend.keeps_for_backward()
        fused = self._fused_activation(self.data_format == "channels_last")
        if fused is not None:       # bias and ReLU applied by the op
            y, op_ctx = self._run(inputs, self._bias_value(), fused, keep)
            return y, (Preactivation(op_ctx, None if fused == "relu" else y, y) if keep else None)
        z, op_ctx = self._run(inputs, None, "linear", keep)
        if self.bias is not None:
            z += self.bias.value.reshape(self._bias_shape(z.ndim))     # z is a fresh array: add in place
        y = self.activation.forward(z)
        return y, (Preactivation(op_ctx, z, y) if keep else None)

    def backward(self, ctx: Preactivation, grad_output, need_input_grad: bool = True,
                 from_preactivation: bool = False):
        """(input gradient or None when not `need_input_grad`, [(kernel, grad), ..., (bias, grad)])."""
        check_kept_for_backward(self, ctx)
        channels_last = self.data_format == "channels_last"
        grad_z, grad_bias = self._activation_backward(ctx, grad_output, from_preactivation, channels_last)
        grad_input, kernel_grads = self._run_backward(grad_z, ctx.inputs, need_input_grad)
        if self.bias is not None and grad_bias is None:
            channel = grad_z.ndim - 1 if channels_last else 1
            grad_bias = grad_z.sum(axis=tuple(a for a in range(grad_z.ndim) if a != channel))
        if not self.trainable:
            return grad_input, []
        pairs = list(zip(self._kernels(), kernel_grads))
        return grad_input, pairs + ([(self.bias, grad_bias)] if self.bias is not None else [])

    def _bias_shape(self, rank: int):
        channels = self.bias.shape[0]
        return (1, channels) + (1,) * (rank - 2) if self.data_format == "channels_first" else (channels,)




def weight_options(where: str, role: str, initializer, regularizer, constraint):
    """(initializer, regularizer, constraint) of the weight `role` ("depthwise", "bias", ...), errors
    naming `<role>_initializer` etc."""
    return (initializers.get(initializer, where, f"{role}_initializer"),
            resolve_optional("regularizers", regularizer, where, f"{role}_regularizer"),
            resolve_optional("constraints", constraint, where, f"{role}_constraint"))


def weight_config(role: str, initializer, regularizer, constraint) -> Dict[str, Any]:
    return {f"{role}_initializer": serialize_optional("initializers", initializer),
            f"{role}_regularizer": serialize_optional("regularizers", regularizer),
            f"{role}_constraint": serialize_optional("constraints", constraint)}


def check_transpose_arguments(where: str, output_padding, strides, dilation_rate):
    """A transposed convolution's `output_padding` (None, or one int per axis below its stride) and Keras' rule
    against strides with a dilation; returns the normalized output_padding."""
    if output_padding is not None:
        output_padding = shapes.normalize_tuple(output_padding, len(strides), "output_padding", where,
                                                allow_zero=True)
        if any(p >= s for p, s in zip(output_padding, strides)):
            raise ValueError(f"{where}: argument `output_padding` must be strictly less than `strides` on each "
                             f"axis; got output_padding={output_padding} and strides={strides}")
    if max(strides) > 1 and max(dilation_rate) > 1:
        raise ValueError(f"{where}: `strides > 1` is not supported together with `dilation_rate > 1`; "
                         f"got strides={strides} and dilation_rate={dilation_rate}")
    return output_padding
