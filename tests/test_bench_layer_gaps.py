"""benchmarks/layer_gaps.py: ONNX Runtime's node names attributed to convscope's stages (not a timing)."""

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import layer_gaps  # noqa: E402


def test_a_node_belongs_to_the_longest_layer_name_it_starts_with():
    names = ["block_1", "block_10_expand", "block_1_expand", "block_1_expand_relu", "Conv1"]
    layer_of = layer_gaps.layer_of
    assert layer_of("block_1_expand_relu_nchwc", names) == "block_1_expand_relu"
    assert layer_of("block_10_expand_relu_nchwc", names) == "block_10_expand"     # not block_1
    assert layer_of("block_1_add", names) == "block_1"
    assert layer_of("Conv1", names) == "Conv1"
    assert layer_of("Conv10", names) is None
    assert layer_of("ReorderInput", names) is None
    dense = ["dense", "dense_1", "dense_10"]
    assert layer_of("fused dense/Gemm", dense) == "dense"                       # ONNX Runtime's fused node
    assert layer_of("dense_1/Softmax", dense) == "dense_1"
    assert layer_of("dense_1/Gemm", ["dense", "dense_1/Gemm_x"]) == "dense"     # no layer "dense_1": the prefix


def test_nodes_go_to_the_stage_that_ran_their_layer():
    layers = [("conv", "Conv2D", None), ("bn", "BatchNormalization", "conv"), ("relu", "ReLU", "conv"),
              ("pool", "MaxPooling2D", None)]
    rows = layer_gaps.join({"conv": 3.0, "pool": 1.0},
                           {"relu_nchwc": 2.0, "conv": 0.5, "pool": 0.25, "ReorderOutput": 0.1}, layers)
    assert sorted(rows) == sorted([("conv", "Conv2D", 3.0, 2.5), ("pool", "MaxPooling2D", 1.0, 0.25),
                                   (layer_gaps.OTHER, "", 0.0, 0.1)])
    text = layer_gaps.report(rows, top=2)
    assert "conv" in text and "... 1 more stages" in text and "all stages" in text


@pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in ("keras", "torch", "onnx", "onnxruntime")),
                    reason="building the model needs Keras (torch backend); the ONNX side onnx and onnxruntime")
@pytest.mark.parametrize("name", ["mobilenetv2_small", "resnet_small", "unet_small"])
def test_every_onnx_runtime_node_but_its_reorders_names_a_stage(name):
    """On small versions of the benchmark's real CNNs, each of ONNX Runtime's nodes maps to one of
    convscope's stages, except the layout reorders it inserts itself."""
    path = str(layer_gaps.real_cnns.keras_file(layer_gaps.real_cnns.SMALL_SPECS[name]))
    ours = layer_gaps.child_convscope(path, 2, 1)
    theirs = layer_gaps.child_ort(path, 2, 1, 1)
    assert ours["stages"] and theirs["nodes"]
    names = [layer for layer, _, _ in ours["layers"]]
    unmatched = [node for node in theirs["nodes"] if layer_gaps.layer_of(node, names) is None]
    assert all(node.startswith(("Reorder", "ReorderInput", "ReorderOutput")) for node in unmatched), unmatched
    rows = layer_gaps.join(ours["stages"], theirs["nodes"], ours["layers"])
    assert {row[0] for row in rows} >= set(ours["stages"])
    assert sum(row[3] for row in rows) == pytest.approx(sum(theirs["nodes"].values()))


def test_a_seed_model_is_saved_once_with_the_benchmarks_weights(tmp_path, monkeypatch):
    """`seed_file`: bench_models' seed 001 with compare_torch's weights, saved by convscope in the cache folder
    and loaded back with the same predictions; a second call takes the file already there."""
    import numpy as np
    from convscope.models import load_model
    monkeypatch.setattr(layer_gaps.real_cnns, "cache_dir", lambda: tmp_path / "cache")
    path = layer_gaps.seed_file("seed001")
    assert path.parent == tmp_path / "cache" and path.exists()
    spec = layer_gaps.bench_models.SPECS["seed001"]
    built = layer_gaps.bench_models.build_convscope(spec, layer_gaps.bench_models.make_weights(spec, 0), train=False)
    x = np.random.default_rng(0).random((2, 28, 28, 1), dtype=np.float32)
    np.testing.assert_array_equal(load_model(str(path), compile=False).predict(x, verbose=0),
                                  built.predict(x, verbose=0))
    stamp = path.stat().st_mtime_ns
    assert layer_gaps.seed_file("seed001") == path and path.stat().st_mtime_ns == stamp
