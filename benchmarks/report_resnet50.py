"""How long `convscope.report` takes on Keras' ResNet50 (a graph of 177 layers), how big the page is,
and how long Chromium takes to open it.

    python benchmarks/report_resnet50.py [--size 224] [--keep DIR]

Keras builds ResNet50 (weights=None, random weights) in a child process and saves it as .keras;
convscope loads it, then `report(model, sample=<one random image>, history=<3 epochs>)` is
timed (the model's loading is not), the file's size printed, and headless Chromium
(/usr/bin/chromium, through Playwright) opens it: the time from navigation until the page's
script has drawn everything (`window.convscopeReport` set), with the console errors it saw.
Targets (issue 16): build < 30 s on the 2-core VM, page < 5 MB, open < 3 s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
BUILD = r"""
import os, sys
os.environ.setdefault("KERAS_BACKEND", "torch")
import keras
size, path = int(sys.argv[1]), sys.argv[2]
model = keras.applications.ResNet50(weights=None, input_shape=(size, size, 3), classes=1000)
model.save(path)
print(len(model.layers))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224, help="input side (default 224)")
    parser.add_argument("--keep", help="folder to write resnet50.keras and report.html into (default: temporary)")
    args = parser.parse_args()
    sys.path.insert(0, str(SRC))
    folder = Path(args.keep or tempfile.mkdtemp(prefix="convscope-report-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    saved = folder / "resnet50.keras"
    if not saved.exists():
        layers = subprocess.run([sys.executable, "-c", BUILD, str(args.size), str(saved)], check=True,
                                capture_output=True, text=True).stdout.split()[-1]
        print(f"Keras ResNet50: {layers} layers, saved to {saved}")

    import numpy as np
    from convscope.models import load_model
    from convscope.viz import report
    model = load_model(saved, compile=False)
    image = np.random.default_rng(0).uniform(0, 255, (args.size, args.size, 3)).astype(np.float32)
    history = {"loss": [2.1, 1.4, 1.1], "accuracy": [0.31, 0.55, 0.64],
               "val_loss": [2.0, 1.5, 1.3], "val_accuracy": [0.33, 0.5, 0.58]}
    page = folder / "report.html"
    start = time.perf_counter()
    report(model, sample=image, history=history, to_file=page)
    built = time.perf_counter() - start
    size = page.stat().st_size
    print(f"report built in {built:.1f} s; {size / 1e6:.2f} MB ({len(model.layers)} layers)")

    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                             args=["--headless=new", "--no-sandbox", "--disable-gpu"])
        for round_ in range(2):
            tab = browser.new_page(viewport={"width": 1366, "height": 900})
            errors = []
            tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            tab.on("pageerror", lambda e: errors.append(str(e)))
            start = time.perf_counter()
            tab.goto(page.resolve().as_uri())
            tab.wait_for_function("window.convscopeReport !== undefined")
            opened = time.perf_counter() - start
            print(f"Chromium opened it in {opened:.2f} s (round {round_ + 1}); console errors: {errors or 'none'}")
            tab.close()
        browser.close()
    if not args.keep:
        print(f"(files in {folder})")


if __name__ == "__main__":
    main()
