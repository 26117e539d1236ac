"""TUI responsiveness: key press -> token table, event-loop lag while the worker samples, cold start.

Run: ``python -m bench.bench_tui [--write]`` (CPU is fine: this measures the UI, not the GPU).
``--write`` replaces the section between ``<!-- tui:start -->`` and ``<!-- tui:end -->`` in
``docs/benchmarks.md``. Targets: key -> table <= 10 ms p99; loop lag <= 50 ms p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- tui:start -->", "<!-- tui:end -->"
PROMPT = "An oil painting of a collie in a top hat, detailed brush strokes, warm light, museum quality"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict:
    return {"n": len(values), "p50": statistics.median(values), "p99": pct(values, 99), "max": max(values)}


async def _until(pilot, condition, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark condition never held")
        await asyncio.sleep(0.005)


async def keypress_and_lag(tmp: str, sweep_steps: int) -> dict:
    from textual import events

    from sd_explorer.tui.app import ExplorerApp
    from sd_explorer.tui.config import Settings

    settings = Settings(model="tiny", device="cpu", dtype="fp32", prompt="", output_dir=tmp,
                        log_file=str(Path(tmp) / "worker.log"), steps=sweep_steps)
    app = ExplorerApp(settings, show_timings=False)
    async with app.run_test(size=(100, 32)) as pilot:
        pane = app.query_one("TokensPane")
        await _until(pilot, lambda: pane.tokenizer is not None and app.model is not None)
        # 1. key press -> token table rebuilt for the new text (end to end through the pilot)
        key_ms, table_ms = [], []
        original = pane.refresh_tokens

        def timed_refresh():
            t = time.perf_counter()
            original()
            table_ms.append(1000 * (time.perf_counter() - t))

        pane.refresh_tokens = timed_refresh
        field = app.query_one("#prompt")
        typed = ""
        for ch in PROMPT * 2:  # the second pass goes beyond the 77-token window
            typed += ch
            await pilot.pause()
            t0 = time.perf_counter()
            field.post_message(events.Key("space" if ch == " " else ch, ch))
            while pane.breakdown is None or pane.breakdown.text != typed:
                await asyncio.sleep(0)
            key_ms.append(1000 * (time.perf_counter() - t0))
        # 1b. the same path with the pane's work removed: what Textual itself costs per key
        base_ms: list[float] = []
        field.value = ""
        await pilot.pause()
        seen: list[str] = []
        pane.refresh_tokens = lambda: seen.append(field.value)
        typed = ""
        for ch in PROMPT * 2:
            typed += ch
            await pilot.pause()
            t0 = time.perf_counter()
            field.post_message(events.Key("space" if ch == " " else ch, ch))
            while not seen or seen[-1] != typed:
                await asyncio.sleep(0)
            base_ms.append(1000 * (time.perf_counter() - t0))
        pane.refresh_tokens = original
        # 2. event-loop lag while the worker samples a sweep
        lag_ms: list[float] = []
        sweep = app.query_one("SweepPane")
        app.action_show_pane("sweep")
        await pilot.pause()
        sweep.action_run()
        await _until(pilot, lambda: app.model_worker.busy("sweep"))
        while app.model_worker.busy("sweep"):
            t0 = time.perf_counter()
            await asyncio.sleep(0.01)
            lag_ms.append(1000 * (time.perf_counter() - t0) - 10.0)
        assert sweep.result is not None, "the sweep failed"
    return {"key_to_table_ms": summary(key_ms), "table_rebuild_ms": summary(table_ms),
            "key_baseline_ms": summary(base_ms),
            "loop_lag_ms": summary(lag_ms), "sweep_steps": sweep_steps,
            "sweep_s": sweep.result.timings.get("total_s")}


FIRST_PAINT = r"""
import sys, time
t0 = float(sys.argv[1])
from sd_explorer.tui.app import ExplorerApp
from sd_explorer.tui.config import Settings
class Probe(ExplorerApp):
    CSS_PATH = ExplorerApp.CSS_PATH
    def on_mount(self):
        super().on_mount()
        self.call_after_refresh(lambda: print("paint", time.time() - t0, flush=True))
        self.set_interval(0.01, self._check)
        self._tok = False
    def _check(self):
        if not self._tok and self.query_one("TokensPane").tokenizer is not None:
            self._tok = True
            print("tokens", time.time() - t0, flush=True)
        if self.model is not None and self._tok:
            print("model", time.time() - t0, flush=True)
            self.exit()
Probe(Settings(model="tiny", device="cpu", dtype="fp32", prompt="a puppy")).run(headless=True, size=(80, 24))
"""


def cold_start(runs: int = 3) -> dict:
    times: dict[str, list[float]] = {"paint": [], "tokens": [], "model": []}
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            probe = Path(tmp) / "first_paint.py"  # Textual resolves CSS paths from the class's file
            probe.write_text(FIRST_PAINT)
            out = subprocess.run([sys.executable, str(probe), repr(time.time())], cwd=ROOT, env=env,
                                 capture_output=True, text=True, timeout=300)
        if out.returncode:
            raise RuntimeError(out.stderr[-2000:])
        for line in out.stdout.splitlines():
            name, value = line.split()
            times[name].append(float(value))
    return {k: summary(v) for k, v in times.items() if v}


def markdown(result: dict) -> str:
    k, t, lag, cs = result["key_to_table_ms"], result["table_rebuild_ms"], result["loop_lag_ms"], result["cold_start_s"]
    b = result["key_baseline_ms"]
    ok = lambda v, target: "meets" if v <= target else "MISSES"  # noqa: E731
    return "\n".join([
        START,
        "## TUI responsiveness (`bench/bench_tui.py`)",
        "",
        f"Machine: {result['machine']}; model `tiny` on the CPU, fp32; terminal 100x32 (Textual pilot).",
        "",
        "| Measure | p50 | p99 | max | n | Target |",
        "| :- | -: | -: | -: | -: | :- |",
        f"| Key press -> token table updated (key event to new table) | {k['p50']:.1f} ms | {k['p99']:.1f} ms | {k['max']:.1f} ms | {k['n']} | <= 10 ms p99: {ok(k['p99'], 10)} |",
        f"| of which: tokenize + rebuild the table (handler) | {t['p50']:.2f} ms | {t['p99']:.2f} ms | {t['max']:.2f} ms | {t['n']} | |",
        f"| baseline: the same key path with the pane's work removed (Textual alone) | {b['p50']:.1f} ms | {b['p99']:.1f} ms | {b['max']:.1f} ms | {b['n']} | |",
        f"| Event-loop lag while the worker samples ({result['sweep_steps']}-step sweep, 4 scales) | {lag['p50']:.1f} ms | {lag['p99']:.1f} ms | {lag['max']:.1f} ms | {lag['n']} | <= 50 ms p99: {ok(lag['p99'], 50)} |",
        f"| Cold start -> first paint | {cs['paint']['p50']:.2f} s | | {cs['paint']['max']:.2f} s | {cs['paint']['n']} | report |",
        f"| Cold start -> token table ready | {cs['tokens']['p50']:.2f} s | | {cs['tokens']['max']:.2f} s | {cs['tokens']['n']} | report |",
        f"| Cold start -> model loaded (header shows it) | {cs['model']['p50']:.2f} s | | {cs['model']['max']:.2f} s | {cs['model']['n']} | report |",
        "",
        "Key press is measured from posting the key event to the focused prompt until the pane holds the",
        "new breakdown (Textual's dispatch, Input.Changed, tokenizing, the table); the second row is the pane's own work. Loop lag is how",
        "late a 10 ms `asyncio.sleep` wakes up while the worker thread runs the sweep. Cold start runs a",
        "fresh interpreter each time (imports included). The model worker runs at nice +5 so the UI",
        "thread wins a busy CPU. On this shared 2-core machine the numbers follow its load: in runs at",
        "load average 5-7 (2026-11-25) key p99 was 15-17 ms and loop-lag p99 18-54 ms.",
        "Before `tui/gc_tuning.py` (then `tui/heap.py`, 2026-11-25) the max lag was 0.3-0.9 s, once or twice per sweep: full",
        "garbage collections over ~500,000 objects with the GIL held (found with `gc.callbacks`); freezing",
        "the heap after the model loads and raising the full-collection threshold removed them (the max above).",
        END,
    ])


def write_section(text: str) -> None:
    sys.path.insert(0, str(ROOT))
    from bench.doc_section import write_section as write

    write(text, START, END, DOC)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--sweep-steps", type=int, default=60)
    parser.add_argument("--cold-runs", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(keypress_and_lag(tmp, args.sweep_steps))
    result["cold_start_s"] = cold_start(args.cold_runs)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    result["machine"] = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs "
                         f"(load average {load} at the end), Python {platform.python_version()}")
    print(json.dumps(result, indent=2))
    if args.write:
        write_section(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
