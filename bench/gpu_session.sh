#!/usr/bin/env bash
# The GPU work of a session, one step per device call (each fits the 10-minute limit of a call).
#
#   here:    echo /.fmdata/ >> .git/info/exclude; cp -r ../shared/data/fashion-mnist-8k .fmdata
#            (and the wheels in .whl/: diffusers, importlib_metadata, open_clip_torch; see the device README)
#   device:  bash bench/gpu_session.sh sd|fashion|ship     (carry .whl, and .fmdata for fashion/ship)
#   here:    python3 bench/bench_sd.py --render OUT/sd/bench_sd.json      (and bench_fashion.py --render …)
#
#   sd       bench/bench_sd.py --pytest: the GPU equality tests (fast paths, torch.compile, tests/test_gpu_engine.py)
#            then diffusers vs the engine, SD 1.5 and SDXL shapes               -> $OUT/sd/
#   fashion  bench/bench_fashion.py (chapter's loops vs ours) + the Fashion GPU tests  -> $OUT/fashion/
#   ship     core.fashion.train_shipped: the chapter's 25 epochs, then as many more as fit in EXTRA_S seconds,
#            with the class fidelity of the weights and of their EMA (0.999)   -> $OUT/ship/
set -euo pipefail
step=${1:?usage: gpu_session.sh sd|fashion|ship|ship-more|diag|gpu-tests|gpu-all}
out=${OUT:-out}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
# a wheel's contents as .tar.xz (diffusers: 2 MB instead of 6.4, so the tree fits the 64 MiB a call carries)
for t in .whl/tar/*.tar.xz; do [ -e "$t" ] && tar xJf "$t" -C /tmp/site; done
# the Fashion-MNIST subset, xz-compressed for the same reason (tar cJf .whl/data/fmdata.tar.xz -C .fmdata .)
if [ -e .whl/data/fmdata.tar.xz ] && [ ! -e .fmdata ]; then mkdir -p .fmdata && tar xJf .whl/data/fmdata.tar.xz -C .fmdata; fi
# the checkout's folders as the sd_explorer package, without installing it (a bare GPU image)
mkdir -p /tmp/shim/sd_explorer && echo "__path__ = ['$PWD']" > /tmp/shim/sd_explorer/__init__.py
export PYTHONPATH=/tmp/site:/tmp/shim:$PWD HF_HUB_OFFLINE=1 SD_EXPLORER_FASHION_DATA=$PWD/.fmdata
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c "import torch, diffusers, transformers; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'transformers', transformers.__version__)"
mkdir -p "$out/$step"
case $step in
  sd) python3 bench/bench_sd.py --out "$out/sd" --pytest ;;
  fashion)
    python3 -m pytest -q -o addopts= -p no:cacheprovider -m gpu tests/test_fashion_sampler.py tests/test_fashion_train.py \
      2>&1 | tail -15 | tee "$out/fashion/pytest.txt"
    python3 bench/bench_fashion.py --data .fmdata --json "$out/fashion/bench_fashion.json" ;;
  ship)
    # trains into .ship/ (ignored; kept on the machine while it stays warm), returns what fits through $OUT:
    # the results, the grid, the log, and the fp16 weights in two parts (a file there may be at most 16 MiB)
    mkdir -p .ship
    python3 -m sd_explorer.core.fashion.train_shipped --data .fmdata --out .ship \
      --classifier assets/fashion/classifier.safetensors --per-class 50 --ema 0.999 --compile \
      --skip-recipe-measure --extra-seconds "${EXTRA_S:-300}" 2>&1 | tee "$out/ship/log.txt"
    cp .ship/results.json .ship/samples_grid.png "$out/ship/"
    split -b 15M .ship/ddpm.safetensors "$out/ship/ddpm.safetensors.part-" ;;
  ship-more)
    # continue the shipped weights (fresh optimizer, EMA from them) for EPOCHS more epochs; PRIOR_STEPS are behind them
    mkdir -p .ship
    python3 -m sd_explorer.core.fashion.train_shipped --data .fmdata --out .ship --init-weights assets/fashion/ddpm.safetensors \
      --prior-steps "${PRIOR_STEPS:?}" --epochs "${EPOCHS:?}" --classifier assets/fashion/classifier.safetensors \
      --per-class 50 --ema 0.999 --compile 2>&1 | tee "$out/ship-more/log.txt"
    cp .ship/results.json .ship/samples_grid.png "$out/ship-more/"
    split -b 15M .ship/ddpm.safetensors "$out/ship-more/ddpm.safetensors.part-" ;;
  diag) python3 bench/gpu_diag.py "$out/diag/diag.json" ;;
  gpu-tests)
    python3 -m pytest -q -o addopts= -p no:cacheprovider -m gpu -rfE ${GPU_TESTS:-tests/test_gpu_engine.py \
      tests/test_fast_gpu.py tests/test_fashion_sampler.py tests/test_fashion_train.py} 2>&1 | tee "$out/gpu-tests/pytest.txt" | tail -40 ;;
  gpu-all)
    # every GPU test file in its own pytest (its own time limit, FILE_S seconds), quickest and most telling first;
    # each file's verbose log lands in $OUT as it runs, so a cut-off call still returns what finished
    for f in ${GPU_TESTS:-tests/test_gpu_engine.py tests/test_attention_gpu.py tests/test_fashion_sampler.py \
        tests/test_fashion_multiprocess.py tests/test_fashion_train.py tests/test_fast_gpu.py}; do
      name=$(basename "$f" .py)
      timeout "${FILE_S:-150}" python3 -m pytest -v -o addopts= -p no:cacheprovider -m gpu -rfE --durations=10 "$f" \
        > "$out/gpu-all/$name.txt" 2>&1 || echo "$name: exit $?" >> "$out/gpu-all/exits.txt"
      tail -3 "$out/gpu-all/$name.txt"
    done ;;
  profile)
    # session 5: where the time goes (Fashion step, sampling), then the background compile story (bench_compile.py)
    export SD_EXPLORER_COMPILE_CACHE=/tmp/sd-explorer-compile-cache
    timeout 120 python3 bench/profile_fashion.py --json "$out/profile/profile_fashion.json" 2>&1 | tail -4
    timeout 420 python3 bench/bench_compile.py --json "$out/profile/compile.json" --second --regional 2>&1 \
      | tee "$out/profile/compile.log" | tail -25
    timeout 200 python3 -m pytest -q -o addopts= -p no:cacheprovider -m gpu -rfE tests/test_fast_gpu.py \
      tests/test_attention_gpu.py 2>&1 | tee "$out/profile/pytest.txt" | tail -6 ;;
  tiny)
    # retrain the embedded tiny model (TINY_ARGS: core.tiny.train's flags); the folder comes back as a tar in parts
    timeout "${TINY_S:-420}" python3 -m sd_explorer.core.tiny.train --data .fmdata --out .tiny-new ${TINY_ARGS:?} \
      2>&1 | tee "$out/tiny/log.txt" | tail -12
    tar cf - .tiny-new | split -b 15M - "$out/tiny/tiny-new.tar.part-" ;;
  tiny-variants)
    # several retrains of tiny side by side on the one GPU (VARIANTS: name=flags;name=flags), each then measured
    # by its model card (core.tiny.card: prompt following, VAE, where words go); folders come back as tar parts
    IFS=';' read -ra vs <<< "${VARIANTS:?}"
    for v in "${vs[@]}"; do
      name=${v%%=*}; flags=${v#*=}; mkdir -p "$out/tiny-variants/$name"
      if [ "$flags" = shipped ]; then  # the shipped model's card, measured the same way in the same run
        timeout "${CARD_S:-200}" python3 -m sd_explorer.core.tiny.card --model assets/tiny-sd --data .fmdata \
          --out "$out/tiny-variants/$name/card" --device cuda > "$out/tiny-variants/$name/log.txt" 2>&1 &
        continue
      fi
      ( timeout "${TINY_S:-330}" python3 -m sd_explorer.core.tiny.train --data .fmdata --out ".tiny-$name" \
          --overwrite --device cuda $flags > "$out/tiny-variants/$name/log.txt" 2>&1 \
        && timeout "${CARD_S:-200}" python3 -m sd_explorer.core.tiny.card --model ".tiny-$name" --data .fmdata \
          --out "$out/tiny-variants/$name/card" --device cuda >> "$out/tiny-variants/$name/log.txt" 2>&1 \
        ; tar cf - ".tiny-$name" | split -b 15M - "$out/tiny-variants/$name/model.tar.part-" ) &
    done
    wait
    # at most 8 files come back: the logs as one file, the cards' card.json files beside it
    for v in "${vs[@]}"; do n=${v%%=*}; echo "== $n"; cat "$out/tiny-variants/$n/log.txt"; \
      rm "$out/tiny-variants/$n/log.txt"; done > "$out/tiny-variants/logs.txt"
    for v in "${vs[@]}"; do n=${v%%=*}; [ -e "$out/tiny-variants/$n/card/card.json" ] && \
      mv "$out/tiny-variants/$n/card/card.json" "$out/tiny-variants/$n/card.json"; rm -rf "$out/tiny-variants/$n/card"; done
    # the models of the KEEP (default 2) variants whose words sit best on their garments come back; the others' go
    python3 - "$out/tiny-variants" "${KEEP:-2}" <<'PY'
import json, pathlib, shutil, sys
root, keep = pathlib.Path(sys.argv[1]), int(sys.argv[2])
def score(d):
    try:
        return json.loads((d / "card.json").read_text())["placement"]["objects"]["object_ratio_median"]
    except (OSError, KeyError, ValueError):
        return -1.0
ranked = sorted((d for d in root.iterdir() if d.is_dir()), key=score, reverse=True)
for d in ranked[keep:]:
    for part in d.glob("model.tar.part-*"):
        part.unlink()
print("kept", [d.name for d in ranked[:keep]], "scores", {d.name: score(d) for d in ranked})
PY
    grep -v Loading "$out/tiny-variants/logs.txt" | grep -E '^== |saved|overall' | cut -c1-200 ;;
  preview)
    # issue 23 item 4: the live preview's cost to one image, then the GPU tests named in GPU_TESTS
    timeout 200 python3 bench/bench_preview.py --json "$out/preview/preview.json" 2>&1 | tail -6
    for f in ${GPU_TESTS:-tests/test_step_reports.py}; do
      timeout "${FILE_S:-150}" python3 -m pytest -q -o addopts= -p no:cacheprovider -m gpu -rfE "$f" \
        > "$out/preview/$(basename "$f" .py).txt" 2>&1; tail -2 "$out/preview/$(basename "$f" .py).txt"
    done ;;
  cold)
    # issue 23: `generate` in a fresh process as a user runs it (and with --compile default: empty, warm cache)
    timeout "${COLD_S:-420}" python3 bench/bench_cold.py --json "$out/cold/cold.json" ${COLD_ARGS:-} 2>&1 | tail -12 ;;
  compile)
    export SD_EXPLORER_COMPILE_CACHE=/tmp/sd-explorer-compile-cache
    timeout "${COMPILE_S:-300}" python3 bench/bench_compile.py --json "$out/compile/compile.json" ${COMPILE_ARGS:-} 2>&1 \
      | tee "$out/compile/compile.log" | tail -25 ;;
  *) echo "unknown step $step: sd, fashion or ship" >&2; exit 2 ;;
esac
