"""Cold start as a user meets it (issue 23): ``sd-explorer generate`` in a fresh process, wall clock.

    python3 bench/bench_cold.py --json OUT/cold.json [--runs 3] [--compile]

1. An SD 1.5-shaped diffusers folder (random weights, real shapes, fp16 safetensors) is written once with
   ``save_pretrained``, and the packages' bytecode is warmed by one import (a user's pip install has compiled
   it; a carried ``--no-compile`` install has not, which would bill the compiler to the first run).
2. Each run is ``python -m sd_explorer.core generate PROMPT --model FOLDER --steps 50 --seed N`` in a new
   process; its stderr is read line by line and each line stamped with the seconds since the process was
   started, so the timeline says where the time went (imports, loading, graph capture, sampling, saving).
3. One more run under ``python -X importtime`` gives the import breakdown: the heaviest top-level packages and
   the modules that pulled in what one image does not need.
``--compile``: the same with ``--compile default``, first with an empty compile cache, then with it warm.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
PROMPT = "An oil painting of a collie in a top hat"


def build_folder(folder: Path) -> None:
    import torch
    from sd_shapes import sd15_model, sd15_pipeline

    model = sd15_model("cuda", torch.float16)
    sd15_pipeline(model).save_pretrained(str(folder), safe_serialization=True)
    del model
    torch.cuda.empty_cache()


def timed_run(cmd: list[str], env: dict) -> dict:
    """Run ``cmd``; every stderr line with its time since the start; the wall clock."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stderr:
        lines.append([round(time.perf_counter() - t0, 3), line.rstrip()[:300]])
    out = proc.stdout.read()
    rc = proc.wait()
    return {"wall_s": round(time.perf_counter() - t0, 3), "rc": rc, "stderr": lines[-40:], "stdout": out[-500:]}


def import_breakdown(path: Path) -> dict:
    """``-X importtime`` output -> the top packages by self time and the heaviest cumulative imports."""
    rows = []
    for line in path.read_text().splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, total, name = line.split(":", 1)[1].split("|", 2)
        rows.append((int(own), int(total), name.rstrip()))
    by_package: dict[str, int] = {}
    for own, _, name in rows:
        parts = name.strip().split(".")
        key = ".".join(parts[:3]) if parts[0] in ("diffusers", "transformers") else parts[0]
        by_package[key] = by_package.get(key, 0) + own
    heavy = sorted(((total, name.strip(), (len(name) - len(name.lstrip())) // 2) for _, total, name in rows),
                   reverse=True)[:40]
    return {"total_s": round(sum(own for own, _, _ in rows) / 1e6, 3),
            "by_package_s": {k: round(v / 1e6, 3) for k, v in sorted(by_package.items(), key=lambda kv: -kv[1])[:30]},
            "heaviest": [[round(t / 1e6, 3), name, depth] for t, name, depth in heavy]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--folder", default=str(Path(tempfile.gettempdir()) / "sd15-shaped"))
    args = ap.parse_args()
    out: dict = {"when": time.strftime("%Y-%m-%d %H:%M"), "runs": {}}
    save = lambda: Path(args.json).write_text(json.dumps(out, indent=1))  # noqa: E731
    folder = Path(args.folder)
    t = time.perf_counter()
    if not (folder / "model_index.json").exists():
        build_folder(folder)
    out["build_folder_s"] = round(time.perf_counter() - t, 1)
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    subprocess.run([sys.executable, "-c", "import diffusers, transformers, sd_explorer.core.models; "
                    "from diffusers import UNet2DConditionModel, AutoencoderKL; from transformers import CLIPTextModel"],
                   env=env, check=True)  # bytecode
    import torch

    out["env"] = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0), "python": sys.version.split()[0]}
    outdir = Path(tempfile.mkdtemp(prefix="cold-out-"))
    base = [sys.executable, "-m", "sd_explorer.core", "generate", PROMPT, "--model", str(folder), "--steps", "50",
            "--out", str(outdir)]
    for i in range(args.runs):
        out["runs"].setdefault("default", []).append(timed_run(base + ["--seed", str(i)], env))
        print("default", out["runs"]["default"][-1]["wall_s"], flush=True)
        save()
    trace = outdir / "importtime.txt"
    with open(trace, "w") as err:
        subprocess.run([sys.executable, "-X", "importtime"] + base[1:] + ["--seed", "9"], cwd=ROOT, env=env,
                       stderr=err, stdout=subprocess.DEVNULL)
    out["imports"] = import_breakdown(trace)
    save()
    if args.compile:
        cache = Path(tempfile.mkdtemp(prefix="cold-compile-cache-"))
        cenv = dict(env, SD_EXPLORER_COMPILE_CACHE=str(cache))
        for label in ("compile, empty cache", "compile, warm cache"):
            out["runs"][label] = [timed_run(base + ["--seed", "5", "--compile", "default"], cenv)]
            print(label, out["runs"][label][-1]["wall_s"], flush=True)
            save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
