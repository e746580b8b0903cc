"""Side-by-side speed of convscope and its peers (PyTorch; optionally Keras-TF, ONNX Runtime).

    python benchmarks/compare_torch.py --model all --batch 128 --steps 20 --rounds 3 \
        --threads 2 --peers torch --mode train,infer --json results.json

Every measurement runs in its own child process (this script with `--worker`):
two frameworks' thread pools in one process disturb each other.  The rounds
alternate the frameworks' order.  Before any timing, each framework computes
the same inference batch and one deterministic training step (Dropout rates set
to 0) from the same float32 weights; the run stops if they disagree.

Printed per figure: the median step time with min-max over rounds (each
round's figure is the median of its steps: `--steps`, or more until 0.25 s for
short ones), the ratio convscope / peer, the
peak memory of the child (peak RSS minus its RSS after imports: what the model
and its steps added, including runtimes loaded on first use such as numba's
JIT), the child's whole peak RSS ("proc MB", with the framework's own libraries)
and the achieved GEMM GFLOP/s beside the float32 matmul peak measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from statistics import median
from typing import Dict, List, Optional

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_models  # noqa: E402  (the benchmark's sibling modules)
import real_cnns  # noqa: E402

SPECS = {**bench_models.SPECS, **real_cnns.SPECS}
MODEL_GROUPS = {"all": list(bench_models.SPECS), "real": list(real_cnns.SPECS)}

FRAMEWORKS = ("convscope", "torch", "torch_cl", "tf", "ort")
PEERS = FRAMEWORKS[1:]
# Older OpenBLAS builds needed these; they slow the current NumPy's OpenBLAS down.
OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
CHECK_TOLERANCE = 1e-4   # max |difference| / max |reference| of outputs and loss
# Gradients behind BatchNormalization lose digits to its backward's cancellation: on seed 001
# PyTorch float32 itself is 4.3e-4 (max relative) away from PyTorch float64 at the first conv.
GRAD_TOLERANCE = 2e-3
TF_PYTHON = "CONVSCOPE_BENCH_TF_PYTHON"    # the environment variable naming the tf peer's Python (--tf-python)
STEP_TOLERANCE = 2e-4    # max |weight difference| after one Adam step of the same rule (a step is ~1e-3)
# Real CNNs (real_cnns.py): 20-60 convolutions with a BatchNormalization each.  Their outputs keep
# CHECK_TOLERANCE.  Training gradients go back through every BN's batch statistics, whose backward
# cancels digits at each layer (see GRAD_TOLERANCE), so the float32 error grows with depth: each
# framework's gradients are judged against float64 run through the ReLU/ReLU6 gates of its own float32
# step (`check_arrays`; against float64's own gates one input rounded across 0 or 6 reads as 4e-2 on
# ResNet-20 and 0.17 on MobileNetV2 96), and convscope's must be within 5e-3 of each tensor's largest
# float64 gradient or no further than twice PyTorch float32's own error.  Dec 2026, batch 8: convscope
# 5e-4 (ResNet-20) and 2e-4 (MobileNetV2 96), PyTorch 2e-3 and 1.1e-4; a 1% error of one tensor fails.
REAL_GRAD_TOLERANCE = 5e-3
# A child times at least `--steps` steps and, for short steps, more until MIN_TIMED_SECONDS (at most
# MAX_STEPS), the same rule for every framework: a median of 3 steps of 0.5 ms moved by 2x between rounds.
MIN_TIMED_SECONDS = 0.25
MAX_STEPS = 500
# Environment of the children for `--isa avx2` on an AVX-512 machine: numba compiles convscope's kernels
# for Haswell (AVX2 + FMA, 256-bit tiles: ops/simd.vector_bits reads NUMBA_CPU_FEATURES), OpenBLAS takes
# its Haswell kernel, PyTorch its AVX2 kernels and oneDNN AVX2 code.  ONNX Runtime has no such switch.
AVX2_ENV = {"NUMBA_CPU_NAME": "haswell",
            "NUMBA_CPU_FEATURES": "+64bit,+avx,+avx2,+bmi,+bmi2,+cmov,+cx16,+f16c,+fma,+fxsr,+lzcnt,+mmx,"
                                  "+movbe,+popcnt,+sse,+sse2,+sse3,+sse4.1,+sse4.2,+ssse3,+xsave",
                      "OPENBLAS_CORETYPE": "Haswell", "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


# --- the child process --------------------------------------------------------------------

def _rss_bytes(field: str) -> int:
    """VmRSS (now) or VmHWM (peak) of this process from /proc, or the peak from getrusage."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _limit_threads(framework: str, threads: int):
    """Set every thread pool this process uses to `threads`; returns the BLAS pools' info."""
    info = []
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
        threadpool_limits(limits=threads)
        info = threadpool_info()
    except ImportError:
        pass
    if framework.startswith("torch"):
        import torch
        torch.set_num_threads(threads)
    elif framework == "tf":
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    return info


def _import_framework(framework: str, real: bool = False) -> None:
    """Import the framework's modules, so the memory baseline includes its libraries."""
    modules = {"convscope": ["convscope.models"], "torch": ["torch"], "torch_cl": ["torch"],
               "tf": ["tensorflow", "keras"], "ort": ["torch", "onnxruntime"]}
    if real:    # real CNNs: convscope loads the file for the converter and the ONNX export
        modules.update(torch=["convscope.models", "torch"], torch_cl=["convscope.models", "torch"],
                       ort=["convscope.models", "onnx", "onnxruntime"])
    for module in modules[framework]:
        __import__(module)
    if framework == "convscope":    # its JIT runtime is a library too (PyTorch's load at import)
        _load_convscope_runtime()


def _load_convscope_runtime() -> None:
    """Load numba's runtime as `convscope.ops.compiled.load_runtime` does (an older tree, timed as
    the baseline, lacks it: one compiled op loads it there)."""
    from convscope.ops import compiled
    if hasattr(compiled, "load_runtime"):
        compiled.load_runtime()
    elif compiled.active():
        from convscope import ops
        ops.bias_activation_forward(np.ones((1, 2), np.float32), np.zeros(2, np.float32), "relu")


class _Runner:
    """One framework's model, ready to run `infer(x)` or `train(x, y)` steps on NumPy data."""

    def __init__(self, framework: str, spec, weights, train: bool, threads: int, workdir: str):
        self.framework = framework
        self.real = isinstance(spec, real_cnns.RealSpec)
        if self.real:
            self._init_real(spec, weights, train, threads, workdir)
        elif framework == "convscope":
            self.model = bench_models.build_convscope(spec, weights, train)
        elif framework == "tf":
            self.model = bench_models.build_keras(spec, weights, train)
            import tensorflow as tf
            self._tf = tf
            self._predict = tf.function(lambda t: self.model(t, training=False))
        else:
            import torch
            self._torch = torch
            self.model, self.softmax_output = bench_models.build_torch(spec, weights)
            self.channels_last = framework == "torch_cl"
            if self.channels_last:
                self.model = self.model.to(memory_format=torch.channels_last)
            if train:
                self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3, eps=1e-7)
            if framework == "ort":
                self._session_for = self._make_ort_factory(spec, threads, workdir)

    def _init_real(self, spec, path: str, train: bool, threads: int, workdir: str):
        """A real CNN from its `.keras` file: convscope's model, its PyTorch twin, its ONNX export or Keras-TF."""
        framework = self.framework
        if framework == "tf":
            import keras
            import tensorflow as tf
            self._tf = tf
            self.model = keras.saving.load_model(path, compile=False)
            if train:
                rule = keras.optimizers.SGD if spec.optimizer == "sgd" else keras.optimizers.Adam
                self.model.compile(optimizer=rule(**real_cnns.OPTIMIZERS[spec.optimizer]),
                                   loss="categorical_crossentropy")
            self._predict = tf.function(lambda t: self.model(t, training=False))
            return
        model = real_cnns.load_convscope(path, spec, train and framework == "convscope")
        if framework == "convscope":
            self.model = model
        elif framework == "ort":
            session = real_cnns.onnx_session(model, os.path.join(workdir, f"{spec.name}_{os.getpid()}.onnx"), threads)
            name = session.get_inputs()[0].name
            self._session_for = lambda batch: session
            self._ort_input = name
        else:
            import torch
            self._torch = torch
            self.twin = real_cnns.to_torch(model)
            self.model, self.softmax_output = self.twin.module, self.twin.softmax_output
            self.channels_last = framework == "torch_cl"
            if self.channels_last:
                self.model = self.model.to(memory_format=torch.channels_last)
            if train:
                self.optimizer = real_cnns.torch_optimizer(spec, self.model)

    # -- data -------------------------------------------------------------------------------
    def prepare(self, x: np.ndarray, y: Optional[np.ndarray] = None):
        """The framework's own input objects, made before timing (layout changes included)."""
        if self.framework == "convscope":
            return x, y
        if self.framework == "tf":
            return self._tf.constant(x), (None if y is None else self._tf.constant(y))
        if self.framework == "ort":    # the real CNNs' ONNX files take the model's NHWC input
            return (x if self.real else np.ascontiguousarray(x.transpose(0, 3, 1, 2))), y
        torch = self._torch
        tx = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        if self.channels_last:
            tx = tx.contiguous(memory_format=torch.channels_last)
        return tx, (None if y is None else torch.from_numpy(y))

    # -- steps ------------------------------------------------------------------------------
    def infer(self, x) -> np.ndarray:
        if self.framework == "convscope":
            return self.model.predict(x, batch_size=len(x), verbose=0)   # keeps nothing for backward
        if self.framework == "tf":
            return self._predict(x).numpy()
        if self.framework == "ort":
            session = self._session_for(x.shape[0])
            return session.run(None, {getattr(self, "_ort_input", "input"): x})[0]
        torch = self._torch
        self.model.eval()
        with torch.inference_mode():
            out = self.model(x)
            if self.softmax_output:
                out = torch.softmax(out, dim=1)
            elif out.dim() == 4:
                out = out.permute(0, 2, 3, 1)
        return out.numpy()

    def train(self, x, y) -> float:
        if self.framework in ("convscope", "tf"):
            loss = self.model.train_on_batch(x, y)
            return float(np.ravel(loss)[0])
        torch = self._torch
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        logits = self.model(x)
        loss = torch.nn.functional.cross_entropy(logits, y)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def weights(self) -> List[np.ndarray]:
        """Trainable weights in Keras layouts, layer by layer, to compare after a step."""
        return self._trainable("value")

    def gradients(self) -> List[np.ndarray]:
        """The last step's gradients in Keras layouts (convscope, PyTorch)."""
        return self._trainable("grad")

    def keras_gradients(self, x, y) -> List[np.ndarray]:
        """Keras-TF's gradients of the crossentropy at the current weights (its `train_on_batch` hides them)."""
        tf = self._tf
        import keras
        with tf.GradientTape() as tape:
            loss = keras.losses.CategoricalCrossentropy()(y, self.model(x, training=True))
        variables = [v for layer in self.model.layers for v in layer.trainable_weights]
        return [g.numpy() for g in tape.gradient(loss, variables)]

    def _trainable(self, what: str) -> List[np.ndarray]:
        if self.real and self.framework.startswith("torch"):
            return self.twin.arrays(what)
        if self.framework == "convscope":
            return [np.array(getattr(v, what)) for layer in self.model.layers for v in layer.trainable_weights]
        if self.framework == "tf":
            return [v.numpy() for layer in self.model.layers for v in layer.trainable_weights]
        arrays = []
        for module in self.model:
            params = [(p if what == "value" else p.grad).detach().numpy()
                      for p in module.parameters(recurse=False)]
            if not params:
                continue
            if params[0].ndim == 4:
                params[0] = params[0].transpose(2, 3, 1, 0)
            elif params[0].ndim == 2:
                params[0] = params[0].T
            arrays.extend(params)
        return arrays

    def _make_ort_factory(self, spec, threads: int, workdir: str):
        """Export the PyTorch model (softmax included) to ONNX and open one session per batch size."""
        import onnxruntime
        torch = self._torch
        model, softmax_output = self.model, self.softmax_output

        class Exported(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = model

            def forward(self, x):
                out = self.model(x)
                return torch.softmax(out, dim=1) if softmax_output else out.permute(0, 2, 3, 1)

        sessions: Dict[int, object] = {}

        def session_for(batch: int):
            if batch not in sessions:
                path = os.path.join(workdir, f"{spec.name}_{batch}_{os.getpid()}.onnx")
                example = torch.zeros((batch, spec.input_shape[2]) + tuple(spec.input_shape[:2]))
                model.eval()
                with warnings.catch_warnings():  # the TorchScript exporter needs no onnxscript
                    warnings.simplefilter("ignore", DeprecationWarning)
                    torch.onnx.export(Exported(), (example,), path, input_names=["input"],
                                      output_names=["output"], dynamo=False)
                options = onnxruntime.SessionOptions()
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
                sessions[batch] = onnxruntime.InferenceSession(path, options,
                                                               providers=["CPUExecutionProvider"])
            return sessions[batch]

        return session_for


def run_worker(job: Dict) -> Dict:
    """Build one framework's model in this process and time (or check) it as `job` says."""
    framework, task = job["framework"], job["task"]
    blas = _limit_threads(framework, job["threads"])
    real = job.get("model") in real_cnns.SPECS
    _import_framework(framework, real)
    baseline = _rss_bytes("VmRSS")
    if task == "peak":
        return {"gflops": _matmul_peak(job["matmul_size"]), "blas": blas, "machine": machine_info()}
    spec = SPECS[job["model"]]
    if real:
        weights = job["weights"]     # the .keras file (the real CNNs have no Dropout to switch off)
    else:
        if task == "check":
            spec = bench_models.without_dropout(spec)
        stored = np.load(job["weights"])
        weights = [[stored[f"{i}_{j}"] for j in range(int(stored[f"{i}_count"]))]
                   for i in range(len(spec.layers))]
    train = "train" in spec.tasks and task in ("train", "check", "profile")
    runner = _Runner(framework, spec, weights, train, job["threads"], job["workdir"])
    x, y = bench_models.make_batch(spec, job["batch"])
    fx, fy = runner.prepare(x, y if train else None)
    if task == "profile":
        from convscope.utils.profiling import profile
        result = profile(runner.model, fx, fy, repeats=job["steps"], warmup=job["warmup"],
                         training="train" in spec.tasks, print_table=False)
        return {"table": result.table(), "profile": result.to_dict()}
    if task == "check":
        np.savez(job["out"], **check_arrays(runner, x, y if train else None))
        return {"checked": True}
    step = (lambda: runner.train(fx, fy)) if task == "train" else (lambda: runner.infer(fx))
    if job.get("prime"):
        step()
        return {"primed": True}
    for _ in range(job["warmup"]):
        step()
    times = []
    while len(times) < job["steps"] or (sum(times) < MIN_TIMED_SECONDS and len(times) < MAX_STEPS):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {"times": times, "median": median(times),
            "peak_bytes": max(_rss_bytes("VmHWM") - baseline, 0), "process_peak_bytes": _rss_bytes("VmHWM")}


def check_arrays(runner: _Runner, x: np.ndarray, y: Optional[np.ndarray] = None) -> Dict[str, np.ndarray]:
    """What a check child saves: the inference output of `x` and, given labels `y` (not for ONNX Runtime),
    one training step's loss, weights before ("b*") and after ("w*") it and gradients ("g*"); for a real
    CNN's convscope and PyTorch runs also the float64 oracle of those gradients ("d*").

    That oracle goes through the ReLU/ReLU6 gates of the very float32 step it judges: an activation input
    within float32's forward error of 0 (or 6) that rounds to the other side than in float64 sends the
    gradient down another, equally valid branch (ResNet-20's check batch: one input, 2.3e-6 from 0).
    Each framework gets its own gates, PyTorch too, so both errors measure arithmetic alone; the two
    oracles' difference (the frameworks' gates differing) is reported beside them by `compare_arrays`.
    Max pooling's argmax is not pinned: no real CNN that trains here has max pooling."""
    fx, fy = runner.prepare(x, y)
    arrays = {"output": runner.infer(fx), "loss": np.nan}
    if y is None or runner.framework == "ort":
        return arrays
    gradients = runner.keras_gradients(fx, fy) if runner.framework == "tf" else None  # before the step
    arrays.update({f"b{i}": w for i, w in enumerate(runner.weights())})
    if runner.real and runner.framework != "tf":
        import copy
        peer = runner.framework.startswith("torch")
        twin = copy.deepcopy(runner.twin) if peer else real_cnns.to_torch(runner.model)   # weights before the step
        with real_cnns.recorded_gates(runner.twin if peer else twin, None if peer else runner.model) as gates:
            arrays["loss"] = runner.train(fx, fy)
        arrays.update({f"d{i}": g for i, g in enumerate(real_cnns.float64_gradients(twin, x, y, gates))})
    else:
        arrays["loss"] = runner.train(fx, fy)
    arrays.update({f"w{i}": w for i, w in enumerate(runner.weights())})
    arrays.update({f"g{i}": g for i, g in enumerate(gradients or runner.gradients())})
    return arrays


def machine_info() -> Dict:
    """CPU model, the SIMD width convscope's kernels are compiled for, and the widest the CPU has."""
    model, flags = platform.processor() or "unknown", set()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    cpu_simd = "AVX-512" if "avx512f" in flags else "AVX2" if {"avx2", "fma"} <= flags else "SSE/other"
    try:
        from convscope.ops import simd
        kernel_bits = simd.vector_bits()
    except Exception:           # numba missing: convscope runs its NumPy paths
        kernel_bits = None
    return {"cpu_model": model, "cpu_simd": cpu_simd, "convscope_simd_bits": kernel_bits,
            "numba_cpu_name": os.environ.get("NUMBA_CPU_NAME")}


def _matmul_peak(size: int) -> float:
    """Best GFLOP/s of float32 square matmuls of `size` with NumPy's BLAS."""
    rng = np.random.default_rng(0)
    a = rng.random((size, size), dtype=np.float32)
    b = rng.random((size, size), dtype=np.float32)
    out = np.empty_like(a)
    np.matmul(a, b, out=out)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    return 2.0 * size ** 3 / best / 1e9


# --- the parent: orchestration -------------------------------------------------------------

def child_env(threads: int, isa: str = "native") -> Dict[str, str]:
    """The environment of every child: `threads` threads for every pool, OpenBLAS overrides removed
    (`isa="avx2"`: the AVX2 code paths of convscope, OpenBLAS and PyTorch, `AVX2_ENV`)."""
    env = dict(os.environ)
    for name in OPENBLAS_OVERRIDES + tuple(AVX2_ENV):
        env.pop(name, None)
    if isa == "avx2":
        env.update(AVX2_ENV)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(threads)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["KERAS_BACKEND"] = "tensorflow"
    return env


def spawn(job: Dict, env: Dict[str, str]) -> Dict:
    """Run `job` in a fresh child process of this script; its result is the last stdout line.

    The framework "baseline" is convscope imported from `job["baseline_src"]` (another source tree,
    e.g. a git worktree of the commit before a change), so both versions are timed in one run."""
    if job["framework"] == "baseline":
        env = dict(env, PYTHONPATH=os.pathsep.join(filter(None, [job["baseline_src"], env.get("PYTHONPATH")])))
        job = dict(job, framework="convscope")
    python = env.get(TF_PYTHON, sys.executable) if job["framework"] == "tf" else sys.executable
    proc = subprocess.run([python, str(Path(__file__).resolve()), "--worker", json.dumps(job)],
                          env=env, capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"worker {job['framework']} {job.get('model', '')} {job['task']} failed "
                           f"(exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def available_peers(peers: List[str], tf_python: Optional[str] = None) -> List[str]:
    """The requested peers whose packages import here — the tf peer's in `tf_python` when given (the others
    are reported and skipped)."""
    modules = {"torch": ["torch"], "torch_cl": ["torch"], "tf": ["tensorflow", "keras"],
               "ort": ["torch", "onnxruntime", "onnx"]}
    import importlib.util
    found = []
    for peer in peers:
        if peer == "tf" and tf_python:
            try:
                probe = subprocess.run([tf_python, "-c", "import tensorflow, keras, convscope"], capture_output=True)
                imports = probe.returncode == 0
            except OSError:
                imports = False
            missing = [] if imports else [f"tensorflow/keras/convscope in {tf_python}"]
        else:
            missing = [m for m in modules[peer] if importlib.util.find_spec(m) is None]
        if missing:
            print(f"peer {peer!r} skipped: {', '.join(missing)} not installed")
        else:
            found.append(peer)
    return found


def check_agreement(spec, frameworks: List[str], base_job: Dict, env, workdir: str) -> List[Dict]:
    """Each framework's inference output and one training step, compared with convscope's."""
    outputs = {}
    for framework in frameworks:
        path = os.path.join(workdir, f"check_{spec.name}_{framework}.npz")
        spawn(dict(base_job, framework=framework, task="check", batch=8, out=path), env)
        outputs[framework] = np.load(path)
    return [compare_arrays(spec, framework, outputs["convscope"], outputs[framework])
            for framework in frameworks[1:]]


def compare_arrays(spec, peer: str, reference, other) -> Dict:
    """One peer's check arrays ("output", "loss", weights "w*" after the step, gradients "g*", weights
    "b*" before it) against convscope's: the relative differences and whether they are within tolerance."""
    real = isinstance(spec, real_cnns.RealSpec)
    grad_tolerance = REAL_GRAD_TOLERANCE if real else GRAD_TOLERANCE
    files = list(reference.keys()) if isinstance(reference, dict) else reference.files
    other_files = list(other.keys()) if isinstance(other, dict) else other.files
    scale = max(float(np.abs(reference["output"]).max()), 1e-30)
    output_diff = float(np.abs(reference["output"] - other["output"]).max()) / scale
    entry = {"model": spec.name, "peer": peer, "output_rel_diff": output_diff}
    agree = output_diff <= CHECK_TOLERANCE
    if not np.isnan(other["loss"]):
        entry["loss_rel_diff"] = abs(float(reference["loss"] - other["loss"])) / abs(float(reference["loss"]))
        agree = agree and entry["loss_rel_diff"] <= CHECK_TOLERANCE
        weights = [k for k in files if k.startswith("w")]
        entry["step_max_weight_diff"] = max(float(np.abs(reference[k] - other[k]).max()) for k in weights)
        grads = [k for k in files if k.startswith("g") and k in other_files]
        oracle = {k: other["d" + k[1:]] for k in grads if "d" + k[1:] in other_files}
        own = {k: reference["d" + k[1:]] for k in grads if "d" + k[1:] in files}
        if real and grads and len(oracle) == len(grads):
            # Deep nets: each float32 gradient against the float64 one through its own run's gates (`check_arrays`;
            # a check file without them: the peer's).  convscope agrees when it is within REAL_GRAD_TOLERANCE
            # of it, or no further than twice the peer's own float32 error (on an ill-conditioned net, e.g.
            # BNs over a few pixels, both are far from float64 alike).
            own = own if len(own) == len(grads) else oracle
            entry["grad_err_f64"] = _relative_diff({k: reference[k] for k in grads}, own)
            entry["peer_grad_err_f64"] = _relative_diff({k: other[k] for k in grads}, oracle)
            entry["gates_rel_diff"] = _relative_diff(oracle, own)   # the two oracles: where the gates differ
            allowed = max(grad_tolerance, 2 * entry["peer_grad_err_f64"])
            agree = agree and entry["grad_err_f64"] <= allowed
        elif real and grads and len(own) == len(grads):
            # A peer with no float64 oracle (Keras-TF): convscope judged by its own; the two float32 runs'
            # gradients and updates may differ through gates they set differently (`grad_rel_diff` and
            # `update_rel_diff`, not judged: Keras-TF's gradient call and its step can flip different ones).
            entry["grad_err_f64"] = _relative_diff({k: reference[k] for k in grads}, own)
            agree = agree and entry["grad_err_f64"] <= grad_tolerance
        if real and getattr(spec, "optimizer", "") == "sgd":
            # A first SGD step moves w by -lr * g in both: the difference of the updates relative to each
            # tensor's largest (floored), bounded by the two gradients' errors against their float64
            # oracles and the oracles' own difference (the two float32 runs' gates) when known.
            updates = {k: reference[k] - reference["b" + k[1:]] for k in weights}
            entry["update_rel_diff"] = _relative_diff({k: other[k] - other["b" + k[1:]] for k in weights}, updates)
            bound = sum(entry.get(k, 0.0) for k in ("grad_err_f64", "peer_grad_err_f64", "gates_rel_diff"))
            if "peer_grad_err_f64" in entry or "grad_err_f64" not in entry:    # else not judged, as the gradients
                agree = agree and entry["update_rel_diff"] <= max(grad_tolerance, 2 * bound)
        if grads:
            # Keras' Adam adds epsilon to sqrt(v) before bias correction, PyTorch's after, so
            # near-zero gradients move differently: compare the gradients themselves.
            entry["grad_rel_diff"] = (_relative_diff({k: other[k] for k in grads}, {k: reference[k] for k in grads})
                                      if real else
                                      max(float(np.abs(reference[k] - other[k]).max())
                                          / max(float(np.abs(reference[k]).max()), 1e-30) for k in grads))
            if "grad_err_f64" not in entry:
                agree = agree and entry["grad_rel_diff"] <= grad_tolerance
        else:
            agree = agree and entry["step_max_weight_diff"] <= STEP_TOLERANCE
    entry["agree"] = bool(agree)
    return entry


def _relative_diff(other: Dict, reference: Dict) -> float:
    """Largest difference of a tensor over its largest reference value, floored at 1e-3 of the largest
    over all tensors: a conv bias before a BatchNormalization in training has a zero gradient in exact
    arithmetic, so its float32 values are rounding noise to be judged on the model's scale."""
    largest = {k: float(np.abs(v).max()) for k, v in reference.items()}
    floor = max(max(largest.values()) * 1e-3, 1e-30)
    return max(float(np.abs(reference[k] - other[k]).max()) / max(largest[k], floor) for k in reference)


def plan(args, spec) -> List[Dict]:
    """The (task, batch) figures measured for one model."""
    if isinstance(spec, real_cnns.RealSpec):    # the issue's batches per model
        return [{"task": task, "batch": batch} for task, batch in spec.figures if task in args.mode]
    figures = []
    if "train" in args.mode and "train" in spec.tasks:
        figures.append({"task": "train", "batch": spec.fixed_batch or args.batch})
    if "infer" in args.mode and "infer" in spec.tasks:
        batches = [spec.fixed_batch] if spec.fixed_batch else sorted({args.batch, *args.infer_batches})
        figures.extend({"task": "infer", "batch": b} for b in batches)
    return figures


def summarize(samples: List[Dict]) -> Dict:
    medians = [s["median"] for s in samples]
    return {"median_s": median(medians), "min_s": min(medians), "max_s": max(medians),
            "round_medians_s": medians, "peak_mb": max(s["peak_bytes"] for s in samples) / 2 ** 20,
            "process_peak_mb": max(s["process_peak_bytes"] for s in samples) / 2 ** 20}


def format_table(results: List[Dict], peak_gflops: float) -> str:
    header = (f"{'model':14} {'task':5} {'batch':>5} {'framework':10} {'median ms':>10} {'min-max ms':>17} "
              f"{'convscope/x':>11} {'best-round':>10} {'peak MB':>8} {'proc MB':>8} {'GFLOP/s':>8} {'% peak':>6}")
    lines = [header, "-" * len(header)]
    for r in results:
        ratio = f"{r['ratio']:.2f}x" if r.get("ratio") is not None else ""
        best = f"{r['ratio_best']:.2f}x" if r.get("ratio_best") is not None else ""
        lines.append(f"{r['model']:14} {r['task']:5} {r['batch']:>5} {r['framework']:10} "
                     f"{r['median_s'] * 1e3:>10.2f} {r['min_s'] * 1e3:>8.2f}-{r['max_s'] * 1e3:<8.2f} "
                     f"{ratio:>11} {best:>10} {r['peak_mb']:>8.1f} {r['process_peak_mb']:>8.1f} {r['gflops']:>8.1f} "
                     f"{100 * r['gflops'] / peak_gflops:>5.0f}%" + ("" if r.get("checked", True) else "  disagree"))
    return "\n".join(lines)


def write_json_atomically(path: Path, payload: Dict) -> None:
    """Write to a temporary name beside `path`, then rename into place."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(payload, out, indent=1)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def run_benchmark(args) -> Dict:
    env = child_env(args.threads, args.isa)
    if args.tf_python:
        env[TF_PYTHON] = args.tf_python
    removed = [name for name in OPENBLAS_OVERRIDES if name in os.environ]
    if removed:
        print(f"unset for the children (they slow current OpenBLAS): {', '.join(removed)}")
    peers = available_peers(args.peers, args.tf_python)
    frameworks = ["convscope"] + (["baseline"] if args.baseline_src else []) + peers
    names = list(dict.fromkeys(n for item in args.model for n in MODEL_GROUPS.get(item, [item])))
    results: List[Dict] = []
    agreement: List[Dict] = []
    profiles: List[Dict] = []
    load_before = _load_average()
    if load_before is not None and load_before > args.threads:
        print(f"warning: load average {load_before:.1f} > {args.threads} threads before the run; "
              "other processes will inflate the timings")
    with tempfile.TemporaryDirectory(prefix="convscope-bench-") as workdir:
        peak_job = {"framework": "convscope", "task": "peak", "threads": args.threads,
                    "matmul_size": args.matmul_size}
        peak_runs = [spawn(peak_job, env)]
        blas, machine = peak_runs[0]["blas"], peak_runs[0]["machine"]
        blas_kernel = ", ".join(f"{p.get('internal_api')} {p.get('version')} {p.get('architecture')}"
                                for p in blas if p.get("user_api") == "blas") or "unknown"
        print(f"CPU: {machine['cpu_model']} ({machine['cpu_simd']}); convscope's kernels: "
              f"{machine['convscope_simd_bits']}-bit SIMD (--isa {args.isa})")
        for pool in blas:
            print(f"NumPy BLAS: {pool.get('internal_api')} {pool.get('version')} kernel "
                  f"{pool.get('architecture')} threads {pool.get('num_threads')}")
        if not blas:
            print("NumPy BLAS: unknown (install threadpoolctl to read and set its threads)")
        for name in names:
            spec = SPECS[name]
            if isinstance(spec, real_cnns.RealSpec):
                weights_path = str(real_cnns.keras_file(spec, seed=args.seed))
                real_model = real_cnns.load_convscope(weights_path, spec, False)
                count_flops = lambda task, batch, m=real_model: real_cnns.flops(m, task, batch)  # noqa: E731
            else:
                weights_path = os.path.join(workdir, f"{name}_weights.npz")
                arrays = bench_models.make_weights(spec, seed=args.seed)
                np.savez(weights_path, **{f"{i}_{j}": a for i, layer in enumerate(arrays) for j, a in enumerate(layer)},
                         **{f"{i}_count": np.array(len(layer)) for i, layer in enumerate(arrays)})
                count_flops = lambda task, batch, s=spec: bench_models.flops(s, task, batch)  # noqa: E731
            base_job = {"model": name, "threads": args.threads, "weights": weights_path, "workdir": workdir,
                        "steps": args.steps, "warmup": args.warmup, "baseline_src": args.baseline_src}
            checks = check_agreement(spec, frameworks, base_job, env, workdir)
            for entry in checks:
                detail = ", ".join(f"{k} {v:.2e}" for k, v in entry.items() if isinstance(v, float))
                print(f"{name}: convscope vs {entry['peer']}: {'outputs agree' if entry['agree'] else 'DISAGREE'}"
                      f" ({detail})")
            agreement.extend(checks)
            if not all(entry["agree"] for entry in checks):
                if not args.keep_going:
                    raise SystemExit(f"{name}: outputs disagree; nothing timed")
                print(f"{name}: timed anyway (--keep-going); its figures are marked 'disagree'")
            if args.profile:
                job = dict(base_job, framework="convscope", task="profile",
                           batch=spec.fixed_batch or args.batch)
                profiled = spawn(job, env)
                print(profiled["table"])
                profiles.append(profiled["profile"])
            for figure in plan(args, spec):     # each figure's kernels compiled once, untimed: numba's disk cache
                for framework in frameworks:    # then serves the timed children (their peak counts no compiler)
                    if framework in ("convscope", "baseline"):
                        spawn(dict(base_job, framework=framework, prime=True, **figure), env)
            samples: Dict = {}
            for round_index in range(args.rounds):
                order = frameworks if round_index % 2 == 0 else frameworks[::-1]
                for figure in plan(args, spec):
                    for framework in order:
                        if framework == "ort" and figure["task"] == "train":
                            continue
                        job = dict(base_job, framework=framework, **figure)
                        samples.setdefault((figure["task"], figure["batch"], framework), []).append(spawn(job, env))
                peak_runs.append(spawn(peak_job, env))
            for (task, batch, framework), runs in samples.items():
                entry = {"model": name, "task": task, "batch": batch, "framework": framework,
                         "checked": all(e["agree"] for e in checks),
                         "flops": count_flops(task, batch), **summarize(runs),
                         "cpu": machine["cpu_model"], "simd": f"{machine['cpu_simd']} CPU, --isa {args.isa}",
                         "convscope_simd_bits": machine["convscope_simd_bits"], "blas": blas_kernel}
                entry["gflops"] = entry["flops"] / entry["median_s"] / 1e9
                results.append(entry)
    for entry in results:
        if entry["framework"] != "convscope":
            own = next(r for r in results if r["framework"] == "convscope" and
                       (r["model"], r["task"], r["batch"]) == (entry["model"], entry["task"], entry["batch"]))
            entry["ratio"] = own["median_s"] / entry["median_s"]
            entry["ratio_best"] = own["min_s"] / entry["min_s"]
    peak = max(run["gflops"] for run in peak_runs)
    load_after = _load_average()
    results.sort(key=lambda r: (names.index(r["model"]), r["task"] != "train", r["batch"],
                                frameworks.index(r["framework"])))
    print(f"\nfloat32 matmul peak ({args.matmul_size}^2, NumPy, {args.threads} threads): {peak:.1f} GFLOP/s")
    print("convscope/x: convscope's median time over the peer's (below 1: convscope is faster); "
          "best-round: the same with each one's fastest round (less sensitive to other load); "
          "GFLOP/s counts conv and dense GEMMs only")
    print(format_table(results, peak))
    return {"command": " ".join(["python", "benchmarks/compare_torch.py"] + sys.argv[1:]),
            "machine": {"platform": platform.platform(), "processor": platform.processor(),
                        "cpu_count": os.cpu_count(), "python": platform.python_version(),
                        "numpy": np.__version__},
            "cpu": machine, "isa": args.isa, "threads": args.threads, "blas": blas, "matmul_peak_gflops": peak,
            "load_average": {"before": load_before, "after": load_after},
            "agreement": agreement, "results": results, "profiles": profiles}


def _load_average() -> Optional[float]:
    """The 1-minute load average (None where the platform has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _csv(kind, choices=None):
    def parse(text: str):
        items = [kind(item.strip()) for item in text.split(",") if item.strip()]
        bad = [item for item in items if choices is not None and item not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list from {choices}, got {text!r}")
        return items
    return parse


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Time convscope beside PyTorch and other peers.")
    parser.add_argument("--model", type=_csv(str, list(SPECS) + list(MODEL_GROUPS)), default=["all"],
                        help="seed000, seed001, seed004, mobilenetv2, resnet50, resnet_cifar, mobilenetv2_96, "
                             "unet; all (the seeds) or real (the real CNNs) (comma-separated)")
    parser.add_argument("--batch", type=int, default=128, help="batch of the training step and main inference")
    parser.add_argument("--infer-batches", type=_csv(int), default=[1, 32, 512],
                        help="further inference batch sizes")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per child after warm-up")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of alternating child processes")
    parser.add_argument("--threads", type=int, default=2, help="threads of every framework and BLAS")
    parser.add_argument("--peers", type=_csv(str, PEERS), default=["torch"],
                        help="peers to compare with: torch, torch_cl (channels_last), tf, ort")
    parser.add_argument("--tf-python", help="the Python of an environment with tensorflow-cpu, keras and "
                        "convscope (pip install -e . --no-deps) for the tf peer, when it is not this one's")
    parser.add_argument("--mode", type=_csv(str, ["train", "infer"]), default=["train", "infer"])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--profile", action="store_true",
                        help="also print convscope's per-layer profile of each model at --batch")
    parser.add_argument("--seed", type=int, default=0, help="seed of the shared weights")
    parser.add_argument("--baseline-src", metavar="DIR",
                        help="also time convscope imported from DIR (the src/ folder of another checkout, "
                             "e.g. `git worktree add /tmp/before HEAD~1` then /tmp/before/src) as 'baseline'")
    parser.add_argument("--keep-going", action="store_true",
                        help="time a model whose agreement check failed (its figures are marked 'disagree')")
    parser.add_argument("--isa", choices=["native", "avx2"], default="native",
                        help="avx2: run convscope's kernels, OpenBLAS and PyTorch on their AVX2 paths "
                             "(to measure that machine kind on an AVX-512 CPU)")
    parser.add_argument("--matmul-size", type=int, default=2048, help="side of the peak-matmul matrices")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("batch", "steps", "rounds", "threads", "matmul_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive int, got {getattr(args, name)}")
    if args.warmup < 0:
        parser.error(f"--warmup must be 0 or more, got {args.warmup}")
    if any(b < 1 for b in args.infer_batches):
        parser.error(f"--infer-batches must be positive ints, got {args.infer_batches}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        result = run_worker(json.loads(args.worker))
        print(json.dumps(result))
        return 0
    payload = run_benchmark(args)
    if args.json:
        write_json_atomically(args.json, payload)
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
