"""Where inference time goes, stage by stage, against ONNX Runtime on the same model.

A stage is one op of convscope's inference plan: a layer and the layers fused into it (a conv -> BN ->
ReLU, a MobileNetV2 block), timed by `convscope.utils.profiling.profile`.  ONNX Runtime runs convscope's own
ONNX export with its profiler on; each node's time goes to the stage of the layer that names it (ONNX
Runtime names a fused node after one of the nodes it fused, with suffixes such as `_nchwc`; the longest
layer name the node's name starts with wins).  Nodes that name no layer (its layout reorders) make a row
of their own.

Each framework runs in its own child process, as in compare_torch.py: ONNX Runtime's threads spin after a
run, as OpenBLAS's do, and would slow the other's calls.  Rounds alternate the two; the figures are medians
over rounds of each child's median over its repeats.  The whole-model times at the end are sums of the
stages (no Python between the stages counted), so read the rows, not the totals, against compare_torch's.

    python benchmarks/layer_gaps.py --model resnet50 --batch 32
    python benchmarks/layer_gaps.py --model mobilenetv2 --batch 1 --rounds 5 --top 15
    python benchmarks/layer_gaps.py --model seed001 --batch 1 --rounds 5

The models are real_cnns.py's (its `.keras` files, built by Keras once in the cache folder) and the seeds'
(bench_models.py's, with the benchmark's weights, saved by convscope in the same folder).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from statistics import median
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_models  # noqa: E402  (the benchmark's sibling modules)
import real_cnns  # noqa: E402

OTHER = "(ONNX Runtime only: layout reorders)"


def layer_of(node: str, names: List[str]) -> Optional[str]:
    """The longest of `names` that `node` starts with, followed by the end or a non-alphanumeric character
    ('block_1' does not name 'block_10_expand'); None when none does.  ONNX Runtime's "fused " before a fused
    node's name is left out, and a node named "layer/Op" (the export's node names) is that layer's."""
    if node.startswith("fused "):
        node = node[len("fused "):]
    if "/" in node and node.split("/", 1)[0] in names:
        return node.split("/", 1)[0]
    best = None
    for name in names:
        if node.startswith(name) and (len(node) == len(name) or not node[len(name)].isalnum()):
            if best is None or len(name) > len(best):
                best = name
    return best


def stages(layers: List[Tuple[str, str, Optional[str]]]) -> Dict[str, str]:
    """{layer name: its stage's name} from profile rows (name, class, fused_into): a fused layer's stage
    is the layer whose op ran it."""
    return {name: fused_into or name for name, _, fused_into in layers}


def join(ours: Dict[str, float], theirs: Dict[str, float], layers) -> List[Tuple[str, str, float, float]]:
    """(stage, class of its first layer, convscope ms, ONNX Runtime ms) for every stage, ONNX Runtime's
    nodes attributed as `layer_of` says (the unmatched ones in the `OTHER` row)."""
    stage_of, kind = stages(layers), {name: cls for name, cls, _ in layers}
    names = list(stage_of)
    ort_ms: Dict[str, float] = defaultdict(float)
    for node, ms in theirs.items():
        layer = layer_of(node, names)
        ort_ms[stage_of[layer] if layer else OTHER] += ms
    rows = [(stage, kind[stage], ms, ort_ms.pop(stage, 0.0)) for stage, ms in ours.items()]
    rows += [(stage, "", 0.0, ms) for stage, ms in ort_ms.items()]
    return rows


def _input(model, batch: int):
    import numpy as np
    return np.random.default_rng(0).random((batch,) + tuple(model.input_shape[1:]), dtype=np.float32)


def child_convscope(path: str, batch: int, repeats: int) -> Dict:
    """Each stage's median forward ms over `repeats` (`profile`), and the layers (name, class, fused_into)."""
    from convscope.models import load_model
    from convscope.utils.profiling import profile
    model = load_model(path, compile=False)
    result = profile(model, _input(model, batch), training=False, repeats=repeats, print_table=False)
    layers = [(t.name, t.class_name, t.fused_into) for t in result.layers]
    times = {t.name: t.forward_s * 1e3 for t in result.layers if t.fused_into is None and t.forward_s}
    return {"layers": layers, "stages": times}


def child_ort(path: str, batch: int, repeats: int, threads: int) -> Dict:
    """Each ONNX Runtime node's median ms over `repeats` runs (after one warm-up) of convscope's export."""
    import onnxruntime
    from convscope.models import load_model
    model = load_model(path, compile=False)
    x = _input(model, batch)
    with tempfile.TemporaryDirectory() as folder:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(folder, "profile")
        model.export(os.path.join(folder, "model.onnx"), format="onnx")
        session = onnxruntime.InferenceSession(os.path.join(folder, "model.onnx"), options,
                                               providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: x}
        for _ in range(repeats + 1):
            session.run(None, feed)
        with open(session.end_profiling()) as trace:
            events = json.load(trace)
    runs: Dict[str, List[float]] = defaultdict(list)
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            runs[event["name"][:-len("_kernel_time")]].append(event["dur"] / 1e3)
    return {"nodes": {node: median(times[1:] or times) for node, times in runs.items()}}


def _run_child(framework: str, args) -> Dict:
    job = dict(framework=framework, path=str(args.path), batch=args.batch, repeats=args.repeats,
               threads=args.threads)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), OPENBLAS_NUM_THREADS=str(args.threads))
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(job)], capture_output=True,
                          text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"layer_gaps: the {framework} child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(args) -> Tuple[List, Dict[str, float], Dict[str, float]]:
    """(layers, convscope's ms per stage, ONNX Runtime's ms per node): medians over `args.rounds` rounds,
    the two children in alternating order."""
    ours: Dict[str, List[float]] = defaultdict(list)
    theirs: Dict[str, List[float]] = defaultdict(list)
    layers = None
    for index in range(args.rounds):
        for framework in (("convscope", "ort") if index % 2 == 0 else ("ort", "convscope")):
            result = _run_child(framework, args)
            if framework == "convscope":
                layers = result["layers"]
                for stage, ms in result["stages"].items():
                    ours[stage].append(ms)
            else:
                for node, ms in result["nodes"].items():
                    theirs[node].append(ms)
    return layers, {k: median(v) for k, v in ours.items()}, {k: median(v) for k, v in theirs.items()}


def report(rows, top: int) -> str:
    """The stages by how much longer convscope took than ONNX Runtime, then the totals by layer class."""
    rows = sorted(rows, key=lambda row: row[3] - row[2])
    lines = [f"{'stage (first layer)':34s} {'class':22s} {'convscope':>10s} {'ORT':>9s} {'ratio':>6s} {'gap ms':>8s}"]
    for stage, kind, ours, theirs in rows[:top]:
        ratio = f"{ours / theirs:6.2f}" if theirs else "     -"
        lines.append(f"{stage[:34]:34s} {kind[:22]:22s} {ours:10.2f} {theirs:9.2f} {ratio} {ours - theirs:8.2f}")
    if len(rows) > top:
        lines.append(f"... {len(rows) - top} more stages")
    by_kind: Dict[str, List[float]] = defaultdict(lambda: [0.0, 0.0])
    for _, kind, ours, theirs in rows:
        by_kind[kind or "(ORT only)"][0] += ours
        by_kind[kind or "(ORT only)"][1] += theirs
    lines.append("")
    lines.append("by the class of the stage's first layer (ms): convscope, ONNX Runtime")
    for kind, (ours, theirs) in sorted(by_kind.items(), key=lambda item: item[1][1] - item[1][0]):
        lines.append(f"  {kind:24s} {ours:9.2f} {theirs:9.2f}")
    total_ours, total_theirs = sum(r[2] for r in rows), sum(r[3] for r in rows)
    lines.append(f"  {'all stages':24s} {total_ours:9.2f} {total_theirs:9.2f}")
    return "\n".join(lines)


def seed_file(name: str, seed: int = 0) -> Path:
    """bench_models' seed model `name` with compare_torch's weights, saved by convscope as a `.keras` file in
    real_cnns' cache folder (a temporary name renamed into place by `save`)."""
    spec = bench_models.SPECS[name]
    path = real_cnns.cache_dir() / f"{name}-seed{seed}-convscope.keras"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        bench_models.build_convscope(spec, bench_models.make_weights(spec, seed), train=False).save(str(path))
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet50", choices=sorted(real_cnns.SPECS) + ["seed000", "seed001"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls in each child")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--top", type=int, default=25, help="stages to list")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        job = json.loads(args.child)
        if job["framework"] == "convscope":
            result = child_convscope(job["path"], job["batch"], job["repeats"])
        else:
            result = child_ort(job["path"], job["batch"], job["repeats"], job["threads"])
        print(json.dumps(result))
        return 0
    for name in ("batch", "rounds", "repeats", "threads", "top"):
        if getattr(args, name) < 1:
            parser.error(f"argument --{name} must be at least 1, got {getattr(args, name)}")
    args.path = (seed_file(args.model) if args.model in bench_models.SPECS
                 else real_cnns.keras_file(real_cnns.SPECS[args.model]))
    from compare_torch import machine_info
    info = machine_info()
    print(f"{args.model}, batch {args.batch}, {args.threads} threads, {args.rounds} rounds x {args.repeats} "
          f"calls; {info['cpu_model']} ({info['cpu_simd']}, convscope's kernels {info['convscope_simd_bits']}-bit)")
    layers, ours, theirs = measure(args)
    print(report(join(ours, theirs, layers), args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
