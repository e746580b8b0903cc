"""conv2d forward/backward against PyTorch, finite differences and the numbers of seed 003."""

import numpy as np
import pytest

from _gradcheck import assert_gradients_close, numerical_gradient
from _oracle import assert_matches, tf_same_split
from convscope import ops
from convscope.ops import compiled, direct

N_CONFIGS = 170


def _as_arg(pair, rng, data_format):
    """A (h, w) pair written as tf.nn accepts it: int, 2-list or 4-list."""
    form = rng.integers(3)
    if form == 0 and pair[0] == pair[1]:
        return int(pair[0])
    if form == 1:
        return [int(pair[0]), int(pair[1])]
    return [1, int(pair[0]), int(pair[1]), 1] if data_format == "NHWC" else [1, 1, int(pair[0]), int(pair[1])]


def conv_configs(count, seed=2026):
    rng = np.random.default_rng(seed)
    configs = []
    for index in range(count):
        kernel = tuple(int(k) for k in rng.integers(1, 8, size=2))
        strides = tuple(int(s) for s in rng.integers(1, 4, size=2))
        dilations = tuple(int(d) for d in rng.integers(1, 4, size=2)) if rng.random() < 0.4 else (1, 1)
        groups = int(rng.choice([1, 1, 2, 3]))
        in_per_group, out_per_group = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        padding = str(rng.choice(["VALID", "SAME", "explicit"]))
        size = []
        explicit = []
        for axis in range(2):
            span = dilations[axis] * (kernel[axis] - 1) + 1
            pads = (int(rng.integers(0, 4)), int(rng.integers(0, 4))) if padding == "explicit" else (0, 0)
            low = 1 if padding == "SAME" else max(1, span - sum(pads))
            size.append(int(rng.integers(low, low + 6)))
            explicit.append(pads)
        data_format = str(rng.choice(["NHWC", "NCHW"]))
        configs.append(dict(
            index=index, kernel=kernel, strides=strides, dilations=dilations, groups=groups,
            in_per_group=in_per_group, out_per_group=out_per_group, padding=padding, pads=explicit,
            size=tuple(size), batch=int(rng.integers(1, 5)), data_format=data_format,
            dtype=str(rng.choice(["float32", "float64"])), arg_seed=int(rng.integers(1 << 30))))
    return configs


def _config_id(c):
    return (f"{c['index']}-k{c['kernel'][0]}x{c['kernel'][1]}-s{c['strides'][0]}{c['strides'][1]}"
            f"-d{c['dilations'][0]}{c['dilations'][1]}-g{c['groups']}-{c['padding']}"
            f"-{c['data_format']}-n{c['batch']}-{c['size'][0]}x{c['size'][1]}-{c['dtype']}")


CONFIGS = conv_configs(N_CONFIGS)


@pytest.mark.parametrize("config", CONFIGS, ids=[_config_id(c) for c in CONFIGS])
def test_conv2d_forward_and_backward_match_torch(config, kernel_path):
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    c = config
    rng = np.random.default_rng(c["index"])
    arg_rng = np.random.default_rng(c["arg_seed"])
    channels = c["groups"] * c["in_per_group"]
    out_channels = c["groups"] * c["out_per_group"]
    x_nchw = rng.standard_normal((c["batch"], channels) + c["size"]).astype(c["dtype"])
    filters = rng.standard_normal(c["kernel"] + (c["in_per_group"], out_channels)).astype(c["dtype"])
    nhwc = c["data_format"] == "NHWC"
    x = x_nchw.transpose(0, 2, 3, 1).copy() if nhwc else x_nchw
    if c["padding"] == "explicit":
        pairs = [list(p) for p in c["pads"]]
        padding = [[0, 0]] + pairs + [[0, 0]] if nhwc else [[0, 0], [0, 0]] + pairs
        torch_pads = c["pads"]
    else:
        padding = c["padding"].lower() if arg_rng.random() < 0.3 else c["padding"]
        torch_pads = ([tf_same_split(c["size"][a], c["kernel"][a], c["strides"][a], c["dilations"][a])
                       for a in range(2)] if c["padding"] == "SAME" else [(0, 0), (0, 0)])

    output, ctx = ops.conv2d_forward(x, filters, _as_arg(c["strides"], arg_rng, c["data_format"]), padding,
                                     data_format=c["data_format"],
                                     dilations=_as_arg(c["dilations"], arg_rng, c["data_format"]),
                                     groups=c["groups"])

    x_t = torch.tensor(x_nchw, requires_grad=True)
    w_t = torch.tensor(filters.transpose(3, 2, 0, 1).copy(), requires_grad=True)
    padded = functional.pad(x_t, (torch_pads[1][0], torch_pads[1][1], torch_pads[0][0], torch_pads[0][1]))
    expected = functional.conv2d(padded, w_t, stride=c["strides"], dilation=c["dilations"], groups=c["groups"])
    expected_np = expected.detach().numpy()
    if nhwc:
        expected_np = expected_np.transpose(0, 2, 3, 1)
    assert output.shape == expected_np.shape
    assert_matches(output, expected_np, c["dtype"])

    grad_output = rng.standard_normal(output.shape).astype(c["dtype"])
    grad_nchw = grad_output.transpose(0, 3, 1, 2) if nhwc else grad_output
    expected.backward(torch.tensor(np.ascontiguousarray(grad_nchw)))
    grad_input, grad_filters = ops.conv2d_backward(grad_output, ctx)
    expected_grad_x = x_t.grad.numpy().transpose(0, 2, 3, 1) if nhwc else x_t.grad.numpy()
    assert grad_input.shape == x.shape
    assert_matches(grad_input, expected_grad_x, c["dtype"])
    assert_matches(grad_filters, w_t.grad.numpy().transpose(2, 3, 1, 0), c["dtype"])

    skipped, grad_filters_only = ops.conv2d_backward(grad_output, ctx, need_input_grad=False)
    assert skipped is None
    np.testing.assert_array_equal(grad_filters_only, grad_filters)


def test_the_configurations_cover_the_acceptance_grid():
    kernels = {k for c in CONFIGS for k in c["kernel"]}
    assert kernels == set(range(1, 8))
    assert any(c["kernel"][0] != c["kernel"][1] for c in CONFIGS)
    assert {s for c in CONFIGS for s in c["strides"]} == {1, 2, 3}
    assert {d for c in CONFIGS for d in c["dilations"]} == {1, 2, 3}
    assert {c["groups"] for c in CONFIGS} == {1, 2, 3}
    assert {c["padding"] for c in CONFIGS} == {"VALID", "SAME", "explicit"}
    assert {c["batch"] for c in CONFIGS} == {1, 2, 3, 4}
    assert {c["data_format"] for c in CONFIGS} == {"NHWC", "NCHW"}
    assert {c["dtype"] for c in CONFIGS} == {"float32", "float64"}
    asymmetric_same = [c for c in CONFIGS if c["padding"] == "SAME" and any(
        len(set(tf_same_split(c["size"][a], c["kernel"][a], c["strides"][a], c["dilations"][a]))) == 2
        for a in range(2))]
    assert len(asymmetric_same) >= 10
    assert any(max(c["strides"]) > 1 and max(c["dilations"]) > 1 for c in CONFIGS)


GRADCHECK_CASES = [
    dict(shape=(2, 5, 6, 2), kernel=(3, 2), out=3, strides=1, padding="VALID", dilations=1, groups=1),
    dict(shape=(1, 6, 5, 4), kernel=(3, 3), out=4, strides=2, padding="SAME", dilations=1, groups=2),
    dict(shape=(1, 7, 7, 3), kernel=(2, 3), out=3, strides=(1, 2), padding="SAME", dilations=2, groups=3),
    dict(shape=(2, 4, 5, 2), kernel=(2, 2), out=2, strides=3,
         padding=[[0, 0], [1, 2], [0, 1], [0, 0]], dilations=1, groups=1),
]


@pytest.mark.parametrize("case", GRADCHECK_CASES, ids=lambda c: f"{c['shape']}-{c['padding']}-g{c['groups']}")
@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
def test_conv2d_gradients_match_finite_differences(case, data_format):
    rng = np.random.default_rng(7)
    x = rng.standard_normal(case["shape"])
    if data_format == "NCHW":
        x = x.transpose(0, 3, 1, 2).copy()
    padding = case["padding"]
    if data_format == "NCHW" and not isinstance(padding, str):
        padding = [padding[0], padding[3], padding[1], padding[2]]
    filters = rng.standard_normal(case["kernel"] + (case["shape"][3] // case["groups"], case["out"]))
    args = dict(strides=case["strides"], padding=padding, data_format=data_format,
                dilations=case["dilations"], groups=case["groups"])
    output, ctx = ops.conv2d_forward(x, filters, **args)
    weights = rng.standard_normal(output.shape)

    def loss():
        return float(np.sum(ops.conv2d(x, filters, **args) * weights))

    grad_input, grad_filters = ops.conv2d_backward(weights, ctx)
    assert_gradients_close(grad_input, numerical_gradient(loss, x))
    assert_gradients_close(grad_filters, numerical_gradient(loss, filters))


def test_cross_correlation_without_kernel_flip():
    """Seed 003: CNN layers compute cross-correlation, sum f(x, y) g(i + x, j + y)."""
    image = np.arange(16, dtype=np.float64).reshape(1, 4, 4, 1)
    kernel = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]).reshape(3, 3, 1, 1)
    # Only the top-left tap is set, so each output is the top-left pixel of its window (no flip).
    out = ops.conv2d(image, kernel, 1, "VALID")
    np.testing.assert_array_equal(out[0, :, :, 0], [[0.0, 1.0], [4.0, 5.0]])


def test_seed_003_output_sizes():
    """Seed 003: SAME gives ceil(13/5) = 3; (4 + 2*1 - 3)/1 + 1 = 4 with padding 1."""
    x = np.ones((1, 13, 13, 1), dtype=np.float32)
    assert ops.conv2d(x, np.ones((6, 6, 1, 1), np.float32), 5, "SAME").shape == (1, 3, 3, 1)
    x = np.ones((1, 4, 4, 1), dtype=np.float32)
    explicit = [[0, 0], [1, 1], [1, 1], [0, 0]]
    assert ops.conv2d(x, np.ones((3, 3, 1, 1), np.float32), 1, explicit).shape == (1, 4, 4, 1)


def test_same_padding_puts_the_odd_pixel_bottom_right():
    """TF's stride-2 SAME, 3-kernel, 4 rows: total padding 1, put after the last row,
    so output 0 sums rows 0..2 and output 1 rows 2..3 plus the zero (PyTorch would pad before)."""
    x = np.arange(1, 5, dtype=np.float64).reshape(1, 4, 1, 1)
    kernel = np.ones((3, 1, 1, 1))
    out = ops.conv2d(x, kernel, [2, 1], "SAME")
    np.testing.assert_array_equal(out.ravel(), [1 + 2 + 3, 3 + 4])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_is_kept(dtype):
    x = np.ones((1, 5, 5, 2), dtype=dtype)
    out, ctx = ops.conv2d_forward(x, np.ones((3, 3, 2, 4), dtype=dtype), 1, "SAME")
    grad_x, grad_w = ops.conv2d_backward(np.ones_like(out), ctx)
    assert out.dtype == grad_x.dtype == grad_w.dtype == np.dtype(dtype)


def test_integer_input_with_float32_filters_gives_float32():
    out = ops.conv2d(np.ones((1, 3, 3, 1), dtype=np.int64), np.ones((2, 2, 1, 1), np.float32), 1, "VALID")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, 4.0)


GOOD = dict(input=np.zeros((1, 5, 5, 4)), filters=np.zeros((3, 3, 4, 2)), strides=1, padding="VALID")


@pytest.mark.parametrize("changes, error, pattern", [
    (dict(input=np.zeros((5, 5, 4))), ValueError, r"conv2d: argument `input` must be a rank-4 array, got rank 3"),
    (dict(filters=np.zeros((3, 3, 4))), ValueError, r"conv2d: argument `filters` must be a rank-4 array"),
    (dict(filters=np.zeros((3, 3, 3, 2))), ValueError,
     r"conv2d: argument `filters` of shape \(3, 3, 3, 2\) has 3 input channels per group \(axis 2\), which "
     r"must divide the input's 4 channels \(groups = in_channels / filters.shape\[2\]\), got input of shape "
     r"\(1, 5, 5, 4\) \(NHWC\)$"),
    (dict(filters=np.zeros((3, 3, 2, 3))), ValueError,
     r"conv2d: argument `filters` of shape \(3, 3, 2, 3\) has 3 output channels \(axis 3\), which must be a "
     r"multiple of groups = in_channels / filters.shape\[2\] = 4 / 2 = 2$"),
    (dict(filters=np.zeros((3, 3, 3, 2)), groups=1), ValueError,
     r"conv2d: argument `filters` must have in/groups = 4 input channels.*got filters of shape "
     r"\(3, 3, 3, 2\); leave `groups` out to infer it as in_channels / filters.shape\[2\]$"),
    (dict(filters=np.zeros((3, 3, 1, 4)), groups=2), ValueError,
     r"conv2d: argument `filters` must have in/groups = 2 input channels on axis 2 \(input has 4 "
     r"channels, groups=2\), got filters of shape \(3, 3, 1, 4\)"),
    (dict(groups=3), ValueError, r"conv2d: argument `groups` \(3\) must divide the input channels, got 4"),
    (dict(groups=2, filters=np.zeros((3, 3, 2, 3))), ValueError,
     r"conv2d: argument `groups` \(2\) must divide the output channels of `filters`, got 3"),
    (dict(groups=0), ValueError, r"conv2d: argument `groups` must be None \(inferred from `filters`\) or a "
                                 r"positive int, got 0"),
    (dict(groups=1.5), TypeError, r"conv2d: argument `groups` must be None \(inferred from `filters`\) or a "
                                  r"positive int, got 1.5"),
    (dict(padding="FULL"), ValueError, r"conv2d: argument `padding` must be 'SAME', 'VALID' or explicit.*'FULL'"),
    (dict(padding=[[1, 1], [1, 1], [1, 1], [0, 0]]), ValueError,
     r"conv2d: argument `padding` must be \[0, 0\] on the batch and channel axes"),
    (dict(padding=[[0, 0], [-1, 1], [1, 1], [0, 0]]), ValueError,
     r"conv2d: argument `padding` must be non-negative"),
    (dict(padding=[[0, 0], [1, 1, 1]]), ValueError, r"conv2d: argument `padding` must be 'SAME'"),
    (dict(data_format="NWHC"), ValueError, r"conv2d: argument `data_format` must be 'NHWC' or 'NCHW', got 'NWHC'"),
    (dict(strides=0), ValueError, r"conv2d: argument `strides` must be positive, got 0"),
    (dict(strides=[1, 2, 2]), ValueError, r"conv2d: argument `strides` must be an int or a list of 1, 2 or 4"),
    (dict(strides=[2, 1, 1, 1]), ValueError, r"conv2d: argument `strides` must be 1 on the batch and channel"),
    (dict(strides="2"), TypeError, r"conv2d: argument `strides` must contain ints"),
    (dict(dilations=[1, 0]), ValueError, r"conv2d: argument `dilations` must be positive"),
    (dict(filters=np.zeros((7, 3, 4, 2))), ValueError,
     r"conv2d: argument `filters` gives a window of size \(7, 3\).*larger than the padded input of size \(5, 5\)"),
    (dict(filters=np.zeros((3, 3, 4, 2)), dilations=3), ValueError,
     r"conv2d: argument `filters` gives a window.*output height of -1"),
    (dict(input=np.zeros((1, 5, 5, 4), dtype=object)), TypeError, r"conv2d: argument `input` must be a numeric array"),
])
def test_bad_arguments_are_named(changes, error, pattern):
    args = dict(GOOD, **changes)
    with pytest.raises(error, match=pattern):
        ops.conv2d(**args)


# -- groups inferred from the filters' shape, as tf.nn.conv2d does -------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
@pytest.mark.parametrize("groups, in_per_group, out_per_group, kernel, strides, padding", [
    (2, 2, 3, (3, 3), 1, "SAME"),
    (3, 1, 2, (2, 3), 2, "VALID"),
    (4, 3, 1, (3, 1), (1, 2), "SAME"),
    (6, 1, 1, (1, 1), 1, "VALID"),        # the call: filters (1, 1, 1, 6) on 6 channels
])
def test_groups_are_inferred_from_the_filters_as_tf_nn_conv2d(groups, in_per_group, out_per_group, kernel,
                                                               strides, padding, data_format, dtype, kernel_path):
    """No `groups=`: in_channels / filters.shape[2] groups, the numbers of PyTorch's conv2d(groups=...)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(groups * 10 + in_per_group)
    size = (7, 6)
    x_nchw = rng.standard_normal((2, groups * in_per_group) + size).astype(dtype)
    filters = rng.standard_normal(kernel + (in_per_group, groups * out_per_group)).astype(dtype)
    nhwc = data_format == "NHWC"
    x = x_nchw.transpose(0, 2, 3, 1).copy() if nhwc else x_nchw
    pair = (strides, strides) if isinstance(strides, int) else strides
    pads = ([tf_same_split(size[a], kernel[a], pair[a]) for a in range(2)] if padding == "SAME"
            else [(0, 0), (0, 0)])

    output = ops.conv2d(x, filters, strides, padding, data_format)
    forward, ctx = ops.conv2d_forward(x, filters, strides, padding, data_format)

    x_t = torch.tensor(x_nchw, requires_grad=True)
    w_t = torch.tensor(filters.transpose(3, 2, 0, 1).copy(), requires_grad=True)
    padded = torch.nn.functional.pad(x_t, (pads[1][0], pads[1][1], pads[0][0], pads[0][1]))
    expected = torch.nn.functional.conv2d(padded, w_t, stride=pair, groups=groups)
    to_format = (lambda a: a.transpose(0, 2, 3, 1)) if nhwc else (lambda a: a)
    assert ctx["groups"] == groups
    assert_matches(output, to_format(expected.detach().numpy()), dtype)
    assert_matches(forward, to_format(expected.detach().numpy()), dtype)
    grad_nchw = rng.standard_normal(tuple(expected.shape)).astype(dtype)
    expected.backward(torch.tensor(grad_nchw))
    grad_input, grad_filters = ops.conv2d_backward(np.ascontiguousarray(to_format(grad_nchw)), ctx)
    assert_matches(grad_input, to_format(x_t.grad.numpy()), dtype)
    assert_matches(grad_filters, w_t.grad.numpy().transpose(2, 3, 1, 0), dtype)
    # the same groups given explicitly: the same call
    np.testing.assert_array_equal(ops.conv2d(x, filters, strides, padding, data_format, groups=groups), output)


@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
def test_large_batches_run_in_blocks_with_the_same_result(monkeypatch, data_format):
    from convscope.ops import conv
    rng = np.random.default_rng(12)
    x = rng.standard_normal((7, 3, 6, 5) if data_format == "NCHW" else (7, 6, 5, 3))
    filters = rng.standard_normal((3, 2, 3, 4))
    whole = ops.conv2d_forward(x, filters, 1, "SAME", data_format)[0]
    monkeypatch.setattr(conv, "COLUMN_BUDGET_BYTES", 2 * 6 * 5 * 3 * 2 * 3 * 8)  # two images per block
    np.testing.assert_array_equal(ops.conv2d(x, filters, 1, "SAME", data_format), whole)


def test_backward_rejects_a_gradient_of_the_wrong_shape():
    _, ctx = ops.conv2d_forward(np.zeros((1, 5, 5, 1)), np.zeros((3, 3, 1, 2)), 1, "VALID")
    with pytest.raises(ValueError, match=r"conv2d_backward: argument `grad_output` must have the forward "
                                         r"output's shape \(1, 3, 3, 2\), got \(1, 3, 3, 1\)"):
        ops.conv2d_backward(np.zeros((1, 3, 3, 1)), ctx)


# -- the fast paths: many channels (transposed-convolution input gradient), 1x1, one channel, blocks --
FAST_PATH_CASES = [
    # (kernel, strides, dilations, padding, groups, in_per_group, out_per_group)
    ((3, 3), 1, 1, "SAME", 1, 16, 5),               # transposed convolution, SAME
    ((2, 2), 1, 1, "SAME", 1, 17, 3),               # even kernel: padding only after
    ((3, 2), 1, (2, 1), "VALID", 1, 16, 4),         # dilated, unpadded
    ((3, 3), 1, 1, "SAME", 2, 16, 3),               # grouped transposed convolution
    ((2, 3), 1, 1, [(3, 0), (1, 4)], 1, 16, 2),     # padding wider than the kernel: col2im instead
    ((3, 3), 2, 1, "SAME", 1, 16, 3),               # stride 2: col2im
    ((1, 1), 1, 1, "VALID", 1, 4, 6),               # pointwise: the input is the column matrix
    ((1, 1), 1, 1, "VALID", 2, 3, 2),               # pointwise, grouped
    ((1, 1), 2, 1, "SAME", 1, 3, 2),                # 1x1 with stride: not pointwise
    ((5, 5), 1, 1, "SAME", 1, 1, 4),                # one channel: columns gathered offset-major
    ((3, 2), 2, 2, "VALID", 3, 1, 2),               # one channel per group, strided and dilated
]


@pytest.mark.parametrize("budget", ["one block", "one image per block", "two output rows per band",
                                    "one output row per band"])
@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
@pytest.mark.parametrize("case", FAST_PATH_CASES, ids=lambda c: f"k{c[0]}-s{c[1]}-d{c[2]}-{c[3]}-g{c[4]}-c{c[5]}")
def test_fast_paths_match_torch(case, data_format, budget, monkeypatch):
    torch = pytest.importorskip("torch")
    from convscope.ops import conv
    kernel, strides, dilations, padding, groups, in_per_group, out_per_group = case
    rng = np.random.default_rng(31)
    size = (6, 7)
    x_nchw = rng.standard_normal((3, groups * in_per_group) + size)
    filters = rng.standard_normal(kernel + (in_per_group, groups * out_per_group))
    pair = lambda v: (v, v) if isinstance(v, int) else v  # noqa: E731
    if isinstance(padding, str):
        torch_pads = ([tf_same_split(size[a], kernel[a], pair(strides)[a], pair(dilations)[a]) for a in range(2)]
                      if padding == "SAME" else [(0, 0), (0, 0)])
        op_padding = padding
    else:
        torch_pads = padding
        spatial = [list(p) for p in padding]
        op_padding = [[0, 0]] + spatial + [[0, 0]] if data_format == "NHWC" else [[0, 0], [0, 0]] + spatial
    x = x_nchw.transpose(0, 2, 3, 1).copy() if data_format == "NHWC" else x_nchw
    args = (x, filters, strides, op_padding, data_format, dilations, groups)
    probe = ops.conv2d_forward(*args)[1]
    row_bytes = probe["image_column_bytes"] // probe["out_hw"][0]
    budgets = {"one block": conv.COLUMN_BUDGET_BYTES, "one image per block": probe["image_column_bytes"],
               "two output rows per band": 2 * row_bytes, "one output row per band": 1}
    monkeypatch.setattr(conv, "COLUMN_BUDGET_BYTES", budgets[budget])
    band_rows = {band[1].stop - band[1].start for band in conv._row_bands(probe, conv._direct_blocks(probe))}
    if budget == "two output rows per band":
        assert max(band_rows) == min(2, probe["out_hw"][0])
    if budget == "one output row per band":
        assert band_rows == {1}
    output, ctx = ops.conv2d_forward(*args)

    x_t = torch.tensor(x_nchw, requires_grad=True)
    w_t = torch.tensor(filters.transpose(3, 2, 0, 1).copy(), requires_grad=True)
    padded = torch.nn.functional.pad(x_t, (torch_pads[1][0], torch_pads[1][1], torch_pads[0][0], torch_pads[0][1]))
    expected = torch.nn.functional.conv2d(padded, w_t, stride=strides, dilation=dilations, groups=groups)
    grad_nchw = rng.standard_normal(tuple(expected.shape))
    expected.backward(torch.tensor(grad_nchw))
    to_format = (lambda a: a.transpose(0, 2, 3, 1)) if data_format == "NHWC" else (lambda a: a)
    assert_matches(output, to_format(expected.detach().numpy()), "float64")
    grad_input, grad_filters = ops.conv2d_backward(np.ascontiguousarray(to_format(grad_nchw)), ctx)
    assert_matches(grad_input, to_format(x_t.grad.numpy()), "float64")
    assert_matches(grad_filters, w_t.grad.numpy().transpose(2, 3, 1, 0), "float64")


def test_the_fast_path_cases_reach_each_input_gradient_strategy():
    from convscope.ops import conv
    strategies = set()
    for kernel, strides, dilations, padding, groups, in_per_group, out_per_group in FAST_PATH_CASES:
        if not isinstance(padding, str):
            padding = [[0, 0]] + [list(p) for p in padding] + [[0, 0]]
        _, ctx = ops.conv2d_forward(np.zeros((1, 6, 7, groups * in_per_group)),
                                    np.zeros(kernel + (in_per_group, groups * out_per_group)),
                                    strides, padding, "NHWC", dilations, groups)
        strategies.add("pointwise" if ctx["pointwise"] else
                       "transposed" if conv._transposed_geometry(ctx) is not None else "col2im")
    assert strategies == {"pointwise", "transposed", "col2im"}
    assert conv.TRANSPOSED_MIN_CHANNELS == 16


def test_forward_keeps_no_columns_between_the_passes():
    """The context holds the input (the padded input where the direct kernel does not pad its blocks) and the
    filters, not the kh*kw times larger im2col matrix."""
    x = np.zeros((8, 10, 10, 4), dtype=np.float32)
    filters = np.zeros((3, 3, 4, 8), dtype=np.float32)
    _, ctx = ops.conv2d_forward(x, filters, 1, "SAME")
    held = sum(value.nbytes for value in ctx.values() if isinstance(value, np.ndarray))
    in_blocks = compiled.active() and direct.VECTOR_BITS >= 256         # the direct kernel pads its blocks
    assert ctx["pads_in_blocks"] == in_blocks
    kept = x.nbytes if in_blocks else 8 * 12 * 12 * 4 * 4
    assert held == kept + filters.nbytes


@pytest.mark.parametrize("channels", [1, 3, 16])
def test_blocks_on_parallel_threads_match_blocks_in_order(channels, monkeypatch):
    """With 2 BLAS threads the blocks run on 2 threads (BLAS single-threaded meanwhile); same numbers."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from convscope.ops import conv, parallel as threads
    monkeypatch.setattr(conv, "COLUMN_BUDGET_BYTES", 1)  # many blocks (bands of one row in the forward)
    pools = []
    real_pool = threads._pool
    monkeypatch.setattr(threads, "_pool", lambda workers: pools.append(workers) or real_pool(workers))
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 6, 7, channels))
    filters = rng.standard_normal((3, 2, channels, 4))
    grad = rng.standard_normal((5, 6, 7, 4))
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        output, ctx = ops.conv2d_forward(x, filters, 1, "SAME")
        parallel = (output,) + ops.conv2d_backward(grad, ctx)
        assert pools == [1, 1]          # one pool thread beside the calling thread, in each pass
        assert {info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"} == {2}
        monkeypatch.setattr(threads, "_blas", lambda: None)  # as without threadpoolctl: blocks in order
        output, ctx = ops.conv2d_forward(x, filters, 1, "SAME")
        in_order = (output,) + ops.conv2d_backward(grad, ctx)
        assert pools == [1, 1]
    for ours, reference in zip(parallel, in_order):
        np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pads, value", [(((1, 1), (1, 1)), 0.0), (((0, 2), (3, 0)), -np.inf),
                                         (((2, 0), (0, 1)), 1.5), (((0, 1), (0, 1)), 0.0)])
@pytest.mark.parametrize("layout, channels", [("strided", 6), ("contiguous", 1), ("contiguous", 3),
                                              ("contiguous", 16), ("contiguous", 64)])
def test_the_compiled_padding_fills_as_numpy_does(pads, value, dtype, layout, channels, monkeypatch):
    """`conv._fill_padded`'s kernels (rows written once; C-contiguous arrays of few channels as flat runs of
    each row) against its NumPy assignments and `np.pad`, for a strided input and contiguous ones of 1-64
    channels."""
    from convscope.ops import compiled, conv
    if not compiled.available():
        pytest.skip("the compiled padding needs numba")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 5, 8, channels + 1)).astype(dtype)
    x = x[:, :, ::2, 1:] if layout == "strided" else np.ascontiguousarray(x[:, :, :4, 1:])
    x[0, 1, 2, channels - 1] = np.nan
    ran = []
    for name in ("fill_pixels", "fill_rows"):
        kernel = getattr(conv, name)
        monkeypatch.setattr(conv, name, lambda *args, kernel=kernel, name=name: ran.append(name) or kernel(*args))
    shape = conv.padded_shape(x.shape, pads)
    got, expected = np.full(shape, 7, dtype), np.full(shape, 7, dtype)
    with compiled.use_compiled(True):
        conv._fill_padded(got, x, pads, value)
    with compiled.use_compiled(False):
        conv._fill_padded(expected, x, pads, value)
    flat = layout == "contiguous" and channels <= conv.FLAT_FILL_MAX_CHANNELS
    assert ran == ["fill_rows" if flat else "fill_pixels"]
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got, np.pad(x, ((0, 0),) + tuple(pads) + ((0, 0),), constant_values=value))
    (top, _), (left, _) = pads
    np.testing.assert_array_equal(got[:, top:top + 5, left:left + 4], x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pads", [((1, 1), (1, 1)), ((0, 2), (3, 0)), ((2, 0), (0, 1))])
def test_the_compiled_crop_cuts_the_border_as_slicing_does(pads, dtype):
    """`conv.crop_spatial` (ZeroPadding2D's gradient) against NumPy's slice, a strided input too."""
    from convscope.ops import compiled, conv
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 9, 14, 5)).astype(dtype)[:, :, ::2]
    x[1, 3, 2, 0] = np.nan
    (top, bottom), (left, right) = pads
    expected = x[:, top:x.shape[1] - bottom, left:x.shape[2] - right]
    for flag in ([True, False] if compiled.available() else [False]):
        with compiled.use_compiled(flag):
            got = conv.crop_spatial(x, pads)
            through_op = ops.zero_pad2d_backward(ops.zero_pad2d(got, pads), pads)
        assert got.flags.c_contiguous and got.dtype == dtype
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(through_op, expected)
