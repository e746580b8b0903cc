"""The real-CNN benchmark's correctness check (benchmarks/real_cnns.py), not a timing.

Small versions of its models (MobileNetV2 alpha 0.35 at 32 px, a 2-stage ResNet-style net, a tiny
U-Net), built once by Keras 3 (torch backend) and saved as .keras, are run by convscope, by the
converter's PyTorch twin (native torch modules) and by ONNX Runtime on convscope's own ONNX export:
outputs, one training step (loss, gradients, SGD updates) and the FLOP counts must agree, with the
benchmark's own tolerances and comparison (`compare_torch.compare_arrays`).
"""

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if __import__("importlib").util.find_spec("keras") is None:      # Keras builds the models (in a child)
    pytest.skip("keras is not installed", allow_module_level=True)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import compare_torch  # noqa: E402
import real_cnns  # noqa: E402
from convscope.models import plan  # noqa: E402

SMALL = real_cnns.SMALL_SPECS
HAVE_ORT = all(__import__("importlib").util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))


@pytest.fixture(scope="module")
def files():
    """The small models' .keras files (one Keras child process builds the missing ones; cached)."""
    return dict(zip(SMALL, real_cnns.keras_files(list(SMALL.values()))))


@pytest.fixture(autouse=True)
def one_torch_thread():
    """PyTorch's OpenMP threads spin for seconds on a loaded shared machine: one thread here."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _runner(framework, spec, path, train, tmp_path):
    return compare_torch._Runner(framework, spec, str(path), train, 1, str(tmp_path))


def _check_arrays(runner, x, y, train):
    """What the benchmark's check child saves: output, and after one step loss, weights, gradients."""
    return compare_torch.check_arrays(runner, x, y if train else None)


@pytest.mark.parametrize("name", list(SMALL))
def test_torch_twin_and_onnx_outputs_agree_with_convscope(name, files, tmp_path):
    spec = SMALL[name]
    x, _ = compare_torch.bench_models.make_batch(spec, 3)
    reference = _check_arrays(_runner("convscope", spec, files[name], False, tmp_path), x, None, False)
    assert np.isfinite(reference["output"]).all() and reference["output"].std() > 1e-3   # not saturated
    for peer in ["torch", "torch_cl"] + (["ort"] if HAVE_ORT else []):
        arrays = _check_arrays(_runner(peer, spec, files[name], False, tmp_path), x, None, False)
        assert arrays["output"].shape == reference["output"].shape
        entry = compare_torch.compare_arrays(spec, peer, reference, arrays)
        assert entry["agree"] and entry["output_rel_diff"] <= compare_torch.CHECK_TOLERANCE, entry


def test_sgd_step_agrees_with_the_torch_twin(files, tmp_path):
    """The benchmark's own check of a training step: loss, gradients and the SGD updates."""
    spec = SMALL["resnet_small"]
    x, y = compare_torch.bench_models.make_batch(spec, 4)
    reference = _check_arrays(_runner("convscope", spec, files["resnet_small"], True, tmp_path), x, y, True)
    arrays = _check_arrays(_runner("torch", spec, files["resnet_small"], True, tmp_path), x, y, True)
    entry = compare_torch.compare_arrays(spec, "torch", reference, arrays)
    assert entry["agree"], entry
    # Each run against its own float64 oracle (its gates), both computed, within a tenth of the tolerance.
    assert "d0" in reference and "d0" in arrays and entry["gates_rel_diff"] < 1e-6
    assert entry["grad_err_f64"] <= compare_torch.REAL_GRAD_TOLERANCE / 10            # against float64
    assert entry["peer_grad_err_f64"] <= compare_torch.REAL_GRAD_TOLERANCE / 10
    assert entry["update_rel_diff"] <= compare_torch.REAL_GRAD_TOLERANCE
    # The rule judges: convscope's gradients made 5% off in one tensor fail it.
    spoiled = dict(reference, g0=reference["g0"] * 1.05)
    assert not compare_torch.compare_arrays(spec, "torch", spoiled, arrays)["agree"]
    assert max(np.abs(reference[k] - reference["b" + k[1:]]).max() for k in reference if k[0] == "w") > 1e-3
    # ... and 1% off in any one conv kernel's gradient, each alone, at 1-3x its own oracle's scale.
    model = real_cnns.load_convscope(files["resnet_small"], spec, False)
    names = [f"g{i}" for i, v in enumerate(v for layer in model.layers for v in layer.trainable_weights)
             if v.name.endswith("kernel") and v.value.ndim == 4]
    assert len(names) == 6                         # the stem, 4 in the blocks, 1 projection
    for name in names:
        spoiled = compare_torch.compare_arrays(spec, "torch", dict(reference, **{name: reference[name] * 1.01}), arrays)
        assert not spoiled["agree"] and 0.009 < spoiled["grad_err_f64"] < 0.03, (name, spoiled)


def test_a_peer_without_a_float64_oracle_judges_convscope_by_its_own(files, tmp_path):
    """Keras-TF saves no float64 gradients: convscope is judged by its own-gates oracle, and the two float32
    runs' gradients may differ (a gate set differently) without failing the check; convscope's own
    gradients off by 1% still fail it."""
    spec = SMALL["resnet_small"]
    x, y = compare_torch.bench_models.make_batch(spec, 4)
    reference = _check_arrays(_runner("convscope", spec, files["resnet_small"], True, tmp_path), x, y, True)
    peer = {k: v for k, v in reference.items() if not k.startswith("d")}        # no oracle of its own
    peer["g0"] = reference["g0"] * 1.04                                         # as through a flipped gate
    peer["w0"] = peer["b0"] + (reference["w0"] - reference["b0"]) * 1.04        # in its step too
    entry = compare_torch.compare_arrays(spec, "tf", reference, peer)
    assert entry["agree"] and entry["grad_rel_diff"] > compare_torch.REAL_GRAD_TOLERANCE, entry
    assert entry["update_rel_diff"] > compare_torch.REAL_GRAD_TOLERANCE
    assert entry["grad_err_f64"] <= compare_torch.REAL_GRAD_TOLERANCE / 10
    spoiled = dict(reference, g0=reference["g0"] * 1.01)
    assert not compare_torch.compare_arrays(spec, "tf", spoiled, peer)["agree"]


def test_adam_step_gradients_match_float64(files, tmp_path):
    """MobileNetV2's step against the twin in float64 through convscope's own ReLU6 gates (the oracle the
    check child saves; at this batch PyTorch float32 flips a gate and is 0.11 from float64 on float64's
    own gates, 5e-5 on its own), and the loss against the twin's float64 loss."""
    spec = SMALL["mobilenetv2_small"]
    x, y = compare_torch.bench_models.make_batch(spec, 16)
    reference = _check_arrays(_runner("convscope", spec, files["mobilenetv2_small"], True, tmp_path), x, y, True)
    peer = _runner("torch", spec, files["mobilenetv2_small"], True, tmp_path)
    module = peer.twin.module.double().train()
    logits = module(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).double())
    loss64 = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y).double())
    assert abs(reference["loss"] - loss64.item()) <= compare_torch.CHECK_TOLERANCE * loss64.item()
    grads = {k: reference[k] for k in reference if k[0] == "g"}
    oracle = {k: reference["d" + k[1:]] for k in grads}
    assert compare_torch._relative_diff(grads, oracle) <= compare_torch.REAL_GRAD_TOLERANCE / 10
    assert len(oracle) == len(peer.twin.arrays()) > 100


def test_float64_oracle_takes_the_float32_runs_gates(files, monkeypatch):
    """A gate flipped by rounding is accepted against float64 through float32's own gates and flagged
    against float64's: one BatchNormalization's beta moved, per channel, so that the element where float32
    and float64 differ most lies halfway between them (float32 on one side of the ReLU, float64 on the other)."""
    import copy
    import re
    spec = SMALL["resnet_small"]
    x, y = compare_torch.bench_models.make_batch(spec, 4)
    nchw = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).double()

    def float64_outputs(twin):
        twin = copy.deepcopy(twin)
        with real_cnns.recorded_gates(twin) as outputs:
            twin.module.double().train()(nchw)
        return outputs

    model = real_cnns.load_convscope(files["resnet_small"], spec, True)
    twin = real_cnns.to_torch(model)
    names = [layer.name for layer in model.layers]
    norm = model.layers[names.index(twin.gates[0][0]) - 1]          # the BN before the first ReLU
    probe = real_cnns.TorchTwin(twin.module, False, [], [(norm.name, re.sub(r"\W", "_", norm.name))])
    twice = real_cnns.load_convscope(files["resnet_small"], spec, True)
    with monkeypatch.context() as patch:       # the batch norm's own output: its training plan unfused
        patch.setattr(plan, "_norm_relu_run", lambda *args: 0)
        twice._steps(training=True, keep=True)
    with real_cnns.recorded_gates(probe, twice) as z32:
        twice.train_on_batch(x, y)
    z32, z64 = (z.transpose(1, 0, 2, 3).reshape(z.shape[1], -1) for z in (z32[0], float64_outputs(probe)[0]))
    worst = np.abs(z32 - z64).argmax(axis=1)
    middle = (z32[np.arange(len(worst)), worst] + z64[np.arange(len(worst)), worst]) / 2
    norm.beta.assign((np.asarray(norm.beta.value) - middle).astype(np.float32))

    twin = real_cnns.to_torch(model)
    with real_cnns.recorded_gates(twin, model) as gates:
        model.train_on_batch(x, y)
    flips = sum(int(((a > 0) != (b > 0)).sum()) for a, b in zip(gates, float64_outputs(twin)))
    assert flips >= 4, flips                      # the construction did flip gates (16 here, Dec 2026)
    keyed = lambda arrays: {f"g{i}": a for i, a in enumerate(arrays)}       # noqa: E731
    got = keyed(real_cnns.trainable_arrays(model, "grad"))
    own = compare_torch._relative_diff(got, keyed(real_cnns.float64_gradients(twin, x, y, gates)))
    theirs = compare_torch._relative_diff(got, keyed(real_cnns.float64_gradients(twin, x, y)))
    assert own <= compare_torch.REAL_GRAD_TOLERANCE / 10 < compare_torch.REAL_GRAD_TOLERANCE < theirs, (own, theirs)


def test_twin_is_native_modules_with_keras_weights(files):
    from torch import nn
    model = real_cnns.load_convscope(files["mobilenetv2_small"], SMALL["mobilenetv2_small"], False)
    twin = real_cnns.to_torch(model)
    assert isinstance(twin.module, torch.fx.GraphModule) and twin.softmax_output
    convs = [m for m in twin.module.modules() if isinstance(m, nn.Conv2d)]
    keras_convs = [layer for layer in model.layers if type(layer).__name__ in ("Conv2D", "DepthwiseConv2D")]
    assert len(convs) == len(keras_convs)
    depthwise = [m for m in convs if m.groups > 1]
    assert depthwise and all(m.groups == m.in_channels == m.out_channels for m in depthwise)
    assert sum(isinstance(m, nn.ReLU6) for m in twin.module.modules()) == sum(
        type(layer).__name__ == "ReLU" for layer in model.layers)
    # Each ReLU6 module is a gate, named with the convscope layer whose output it computes.
    relus = [layer.name for layer in model.layers if type(layer).__name__ == "ReLU"]
    assert sorted(layer for layer, _ in twin.gates) == sorted(relus)
    assert all(isinstance(twin.module.get_submodule(name), nn.ReLU6) for _, name in twin.gates)
    # Every trainable weight comes back in Keras' layout unchanged.
    for ours, theirs in zip(real_cnns.trainable_arrays(model), twin.arrays()):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.skipif(not HAVE_ORT, reason="onnx / onnxruntime not installed")
def test_onnx_export_is_nchw_inside(files, tmp_path):
    """A fair ONNX: one Transpose to NCHW (and one back for a dense output), not one around every op."""
    import onnx
    for name in SMALL:
        model = real_cnns.load_convscope(files[name], SMALL[name], False)
        path = tmp_path / f"{name}.onnx"
        real_cnns.onnx_session(model, path, 1)
        ops = [node.op_type for node in onnx.load(str(path)).graph.node]
        assert ops.count("Transpose") <= 2 and ops.count("Conv") >= 3, (name, ops.count("Transpose"))
        assert "BatchNormalization" not in ops          # folded into the convolutions


@pytest.mark.parametrize("name", list(SMALL))
def test_flops_match_torch_flop_counter(name, files):
    from torch.utils.flop_counter import FlopCounterMode
    spec = SMALL[name]
    model = real_cnns.load_convscope(files[name], spec, False)
    module = real_cnns.to_torch(model).module
    x = torch.zeros((2, 3) + spec.input_shape[:2])
    with FlopCounterMode(display=False) as counter:
        module(x)
    assert real_cnns.flops(model, "infer", 2) == counter.get_total_flops()
    # torch's counter takes a grouped (depthwise) conv's backward as `groups` full convs (34x the forward
    # of a 32-channel depthwise 3x3): training counts are compared on nets without groups.
    grouped = any(getattr(m, "groups", 1) > 1 for m in module.modules())
    if "train" in spec.tasks and not grouped:
        with FlopCounterMode(display=False) as counter:
            module(x).sum().backward()
        assert real_cnns.flops(model, "train", 2) == counter.get_total_flops()


def test_converter_and_helpers_name_what_they_refuse(files):
    import convscope
    from convscope import layers
    seq = convscope.models.Sequential([layers.Dense(2, input_shape=(3,))])
    with pytest.raises(TypeError, match="real_cnns.to_torch: argument `model` must be a convscope functional "
                                        "Model, got Sequential"):
        real_cnns.to_torch(seq)
    inputs = layers.Input((8, 8, 3))
    outputs = layers.ReLU(negative_slope=0.1, name="leaky")(layers.Conv2D(4, 3)(inputs))
    with pytest.raises(ValueError, match="layer 'leaky' \\(ReLU\\) has a negative_slope or threshold"):
        real_cnns.to_torch(convscope.models.Model(inputs, outputs))
    with pytest.raises(TypeError, match="real_cnns.keras_files: argument `specs` must be a non-empty list of RealSpec"):
        real_cnns.keras_files(["resnet50"])
    model = real_cnns.load_convscope(files["resnet_small"], SMALL["resnet_small"], False)
    with pytest.raises(ValueError, match="real_cnns.flops: argument `task` must be 'train' or 'infer', got 'fit'"):
        real_cnns.flops(model, "fit", 1)


def test_gate_helpers_name_what_they_refuse(files):
    spec = SMALL["resnet_small"]
    model = real_cnns.load_convscope(files["resnet_small"], spec, True)
    twin = real_cnns.to_torch(model)
    first = twin.gates[0]
    assert len(twin.gates) == sum(type(layer).__name__ == "Activation" for layer in model.layers) == 5
    x, y = compare_torch.bench_models.make_batch(spec, 2)
    with pytest.raises(ValueError, match=f"real_cnns.recorded_gates: no output of '{first[1]}' \\(layer "
                                         f"'{first[0]}'\\) was seen in the block"):
        with real_cnns.recorded_gates(twin, model):
            pass
    assert all("forward" not in vars(layer) for layer in model.layers)    # convscope's layers given back
    with pytest.raises(ValueError, match="real_cnns.float64_gradients: argument `gates` must hold one array "
                                         "per gate of the twin \\(5\\), got 4"):
        real_cnns.float64_gradients(twin, x, y, [np.zeros(1)] * 4)
    with real_cnns.recorded_gates(twin, model) as gates:
        model.train_on_batch(x, y)
    with pytest.raises(ValueError, match=f"real_cnns.float64_gradients: the gate of '{first[1]}' recorded shape "
                                         "\\(1, 16, 16, 16\\), the float64 run gives \\(2, 16, 16, 16\\)"):
        real_cnns.float64_gradients(twin, x, y, [gates[0][:1]] + gates[1:])


def test_command_line_takes_the_real_models():
    args = compare_torch.parse_args(["--model", "real,seed000", "--mode", "train", "--isa", "avx2"])
    assert args.model == ["real", "seed000"] and args.isa == "avx2"
    assert compare_torch.plan(args, real_cnns.SPECS["resnet_cifar"]) == [{"task": "train", "batch": 128}]
    assert compare_torch.plan(args, real_cnns.SPECS["resnet50"]) == []
    env = compare_torch.child_env(2, "avx2")
    assert env["NUMBA_CPU_NAME"] == "haswell" and "+avx2" in env["NUMBA_CPU_FEATURES"]
    assert "avx512f" not in env["NUMBA_CPU_FEATURES"] and env["OPENBLAS_CORETYPE"] == "Haswell"
    assert "NUMBA_CPU_NAME" not in compare_torch.child_env(2)


def test_machine_info_and_the_avx2_environment():
    """Every result's machine fields; `--isa avx2` children compile convscope's kernels for 256-bit SIMD."""
    import subprocess
    info = compare_torch.machine_info()
    assert info["cpu_simd"] in ("AVX-512", "AVX2", "SSE/other") and info["cpu_model"]
    pytest.importorskip("numba")
    assert info["convscope_simd_bits"] in (128, 256, 512)
    proc = subprocess.run([sys.executable, "-c", "from convscope.ops import simd; print(simd.vector_bits())"],
                          capture_output=True, text=True, env=compare_torch.child_env(1, "avx2"), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.split()[-1]) == 256


def test_the_tf_peer_runs_in_the_python_given_when_its_imports_work_there(tmp_path, capsys):
    """`--tf-python`: the peer is kept when that interpreter imports tensorflow, keras and convscope (a stand-in
    that exits 0), and reported and skipped when they fail (exit 1) or the path is no program."""
    works, fails = tmp_path / "works", tmp_path / "fails"
    for script, code in ((works, 0), (fails, 1)):
        script.write_text(f"#!/bin/sh\nexit {code}\n")
        script.chmod(0o755)
    assert compare_torch.available_peers(["tf"], str(works)) == ["tf"]
    assert compare_torch.available_peers(["tf"], str(fails)) == []
    assert compare_torch.available_peers(["tf"], str(tmp_path / "missing")) == []
    assert f"tensorflow/keras/convscope in {tmp_path / 'missing'}" in capsys.readouterr().out
