"""Pilot tests: each pane driven by keys on the real app over ``tiny`` (CPU, 2 steps)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from textual.widgets import DataTable, Input, Label, ProgressBar

from tests.test_tui_support import SIZE, make_app, sync, wait_for, write_gradient
from sd_explorer.tui.progress import CellsDone, StepPreview


def table_pieces(app) -> list[str]:
    table = app.query_one("#token-table", DataTable)
    return [str(table.get_row_at(i)[1]) for i in range(table.row_count)]


@sync
async def test_typing_updates_tokens_while_model_loads(tmp_path):
    app = make_app(tmp_path, prompt="")
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one("TokensPane")
        await wait_for(pilot, lambda: pane.tokenizer is not None, what="tokenizer")
        assert app.focused is app.query_one("#prompt", Input)
        await pilot.press(*"A photograph of a puppy")
        # the table follows the keystrokes whether or not the model finished loading
        assert table_pieces(app) == ["<|startoftext|>", "a</w>", "photograph</w>", "of</w>", "a</w>",
                                     "puppy</w>", "<|endoftext|>"]
        assert [str(c) for c in app.query_one("#token-table", DataTable).get_row_at(2)[:4]] == [
            "2", "photograph</w>", "photograph", "8853"]
        assert "5/75 tokens" in str(app.query_one("#count", Label).render())
        await pilot.press("backspace", *"ies")
        assert table_pieces(app)[-2] == "puppies</w>"
        # beyond the window: a second 75-token chunk, with its own start/end and the running count n/150
        app.query_one("#prompt", Input).value = "cat " * 80
        await pilot.pause()
        table = app.query_one("#token-table", DataTable)
        assert table.row_count == 84  # start + 75 + end, start + 5 + end
        assert [str(c) for c in table.get_row_at(77)] == ["77", "<|startoftext|>", "", "49406", "", "",
                                                          "chunk 2 start"]
        assert [str(c) for c in table.get_row_at(78)][5] == "76/150"
        assert "80/150 tokens in 2 chunks" in str(app.query_one("#count", Label).render())
        # weights: each token's weight in its column; an unclosed bracket says how it was read
        app.query_one("#prompt", Input).value = "a (red:1.3) [cat] (dog"
        await pilot.pause()
        assert [str(table.get_row_at(i)[4]) for i in range(table.row_count)] == ["", "", "1.3", "0.909", "1.1", ""]
        assert "'(' at 18 is never closed" in str(app.query_one("#count", Label).render())
        # the negative prompt has its own breakdown
        await pilot.press("tab", *"blurry")
        assert table_pieces(app) == ["<|startoftext|>", "blurry</w>", "<|endoftext|>"]
        assert app.prompts[1] == "blurry"  # the one app-level prompt every pane samples from


@sync
async def test_token_table_reads_emoji_numbers_dropped_tokens_apart_and_jumps_to_its_ends(tmp_path):
    """Past 8 chunks tokens are dropped: they are numbered on their own ("–", "dropped k/n"), never at
    the end token's position; emoji pieces read as text; home/end jump to the table's ends; the count
    line, cut to the column, ends in an ellipsis."""
    app = make_app(tmp_path, prompt="")
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one("TokensPane")
        await wait_for(pilot, lambda: pane.tokenizer is not None, what="tokenizer")
        app.query_one("#prompt", Input).value = "👟 🦩 " + "red, " * 300 + "zebra"  # 604 tokens: 4 dropped
        await pilot.pause()
        table = app.query_one("#token-table", DataTable)
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        assert rows[1][:4] == ["1", "ðŁĳŁ</w>", "👟", "41183"]
        assert [r[2] for r in rows[2:4]] == ["part 1/2 of 🦩", "part 2/2 of 🦩"]
        dropped = [r for r in rows if r[6].startswith("dropped")]
        assert len(dropped) == 4 and {r[0] for r in dropped} == {"–"}
        assert [r[6] for r in dropped] == [f"dropped {k}/4" for k in range(1, 5)]
        assert dropped[-1][1:3] == ["zebra</w>", "zebra"] and dropped[0][5] == "601/600"
        positions = [r[0] for r in rows if r[0] != "–"]
        assert len(positions) == len(set(positions))  # every position once
        count = app.query_one("#count", Label)
        assert "4 dropped beyond 8 chunks of 75: ', red , zebra'" in str(count.render())
        app.query_one("#prompt", Input).value = "red, " * 300 + "a " * 40 + "zebra"
        await pilot.pause()
        # the count line wraps to at most 4 rows (a note stays whole at 80 columns) and then ends in an ellipsis
        lines = [count.render_line(y).text.rstrip() for y in range(count.size.height)]
        assert 1 <= len(lines) <= 4 and all(len(line) <= 80 for line in lines)
        full = str(count.render())
        assert sum(len(line) for line in lines) >= len(full) - 4 * 2 or lines[-1].endswith("…")
        table.focus()
        await pilot.press("end")
        assert table.cursor_row == table.row_count - 1
        await pilot.press("home")
        assert table.cursor_row == 0
        await pilot.press("end", "enter")  # a dropped token has no heat map: no crash, a notice
        await pilot.pause()
        assert "never reaches the text encoder" in app.notices[-1].message


@sync
async def test_sweep_renders_cells_and_saves_png(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f3")
        scales = app.query_one("#scales", Input)
        scales.value = "1, 3, 7"
        pane = app.query_one("SweepPane")
        previews = []
        shown = pane.job_progress

        def record(ev):  # what each cell shows after every step: the live x0 preview
            shown(ev)
            if isinstance(ev.payload, StepPreview):  # not the batch's start / end
                previews.append([c.image.size for c in pane.cells])

        pane.job_progress = record
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: pane.result is not None, what="sweep result")
        cells = pane.cells
        assert len(cells) == 3
        latent_side = pane.result.latents.shape[-1]
        assert previews and all(sizes == [(latent_side, latent_side)] * 3 for sizes in previews)
        assert [c.caption for c in cells] == ["1 · no CFG", "3", "7"]
        assert all(c.image is not None and c.image.size == pane.result.images[0].size for c in cells)
        bar = app.query_one("#progress", ProgressBar)
        assert bar.total >= 2 and bar.progress == bar.total  # PNDM runs one extra warm-up step
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: pane.last_saved is not None, what="saved grid")
        saved = Path(pane.last_saved)
        assert saved.parent == tmp_path and saved.suffix == ".png" and saved.is_file()
        with Image.open(saved) as png:
            assert "CFG scales: 1, 3, 7" in png.info["parameters"]
            assert "\nGrid: 1 · no CFG | 3 | 7" in png.info["parameters"]  # as the CLI's grids
        await pilot.press("ctrl+s")  # a second save never overwrites the first
        await wait_for(pilot, lambda: Path(pane.last_saved) != saved, what="second save")
        assert saved.is_file() and Path(pane.last_saved).is_file()


@sync
async def test_a_sweep_cancelled_while_queued_says_so_at_once_and_ctrl_s_keeps_the_last_grid(tmp_path):
    """Issue 27, item 4: a sweep queued behind another job and cancelled stayed "cancelling…" until that job
    ended, and ctrl+s then said "Nothing to save yet" although an earlier sweep had finished."""
    import threading

    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f3")
        app.query_one("#scales", Input).value = "1, 3"
        pane = app.query_one("SweepPane")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: pane.result is not None, what="first sweep")
        first = pane.result
        release = threading.Event()
        pane.worker.runner.submit("blocker", lambda job: release.wait(300))  # a long job ahead (a training run)
        try:
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: "queued behind" in str(pane.query_one("#status", Label).render()),
                           what="the sweep queued")
            await pilot.press("escape")
            await wait_for(pilot, lambda: str(pane.query_one("#status", Label).render()).startswith("cancelled"),
                           what="cancelled while the other job still runs")
            assert pane.worker.runner.busy("blocker")
            assert "ctrl+s saves the last finished grid" in str(pane.query_one("#status", Label).render())
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: pane.last_saved is not None, what="saved grid")
        finally:
            release.set()
        with Image.open(pane.last_saved) as png:
            assert "CFG scales: 1, 3" in png.info["parameters"]
        assert pane.last_finished is first


@sync
async def test_a_seed_axis_says_its_seeds_and_the_cfg_field_sets_the_scale(tmp_path):
    """Issue 27: with X = seed the values field still said "guidance scales", the CFG in use was in no field, and
    the status said "seed 0" for seeds 1, 2."""
    from textual.widgets import Select

    app = make_app(tmp_path, prompt="a photo of a sneaker")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f3")
        pane = app.query_one("SweepPane")
        cfg = pane.query_one("#cfg", Input)
        assert cfg.disabled and pane.query_one("#scales", Input).border_title == "guidance scales"
        app.query_one("#x-axis", Select).value = "seed"
        await pilot.pause()
        assert not cfg.disabled and pane.query_one("#scales", Input).border_title == "X: seed values"
        pane.query_one("#scales", Input).value = "1, 2"
        pane.query_one("#steps", Input).value = "2"
        cfg.value = "3"
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: pane.result is not None, what="seed grid")
        assert [c.caption for c in pane.cells] == ["seed 1", "seed 2"]
        assert pane.result.scales == [3.0, 3.0] and "CFG scale: 3, Seed: 2," in pane.result.parameters(1)
        assert "seeds 1, 2, 2 steps" in str(pane.query_one("#status", Label).render())
        cfg.value = "nan"
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: any("CFG" in n.message or "guidance" in n.message for n in app.notices),
                       what="the refusal")


@sync
async def test_two_axis_grid_fills_in_batch_by_batch(tmp_path):
    """X: prompt S/R (batched), Y: steps (one run each): a 2x2 grid in two batches, each cell its single run."""
    from textual.widgets import Select

    app = make_app(tmp_path, prompt="a photo of a sneaker")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f3")
        pane = app.query_one("SweepPane")
        app.query_one("#x-axis", Select).value = "prompt_sr"
        app.query_one("#scales", Input).value = "sneaker|bag"
        app.query_one("#y-axis", Select).value = "steps"
        app.query_one("#y-values", Input).value = "1-2"
        filled = []
        shown = pane.job_progress

        def record(ev):
            shown(ev)
            if isinstance(ev.payload, CellsDone):
                filled.append([c.image is not None and c.image.size[0] > 8 for c in pane.cells])

        pane.job_progress = record
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: pane.result is not None, what="grid result")
        assert [c.caption for c in pane.cells] == ["sneaker · steps 1", "bag · steps 1", "sneaker · steps 2",
                                                  "bag · steps 2"]
        assert pane.query_one("#scales", Input).border_title == "X: prompt s/r values"
        assert pane.query_one("#y-values", Input).border_title == "Y: steps values"
        assert not pane.query_one("#cfg", Input).disabled  # no axis is the scale: the CFG field is the scale
        assert filled[0] == [True, True, False, False] and filled[1] == [True] * 4  # row by row
        assert pane.result.grid.y_name == "Steps" and pane.result.timings["batches"] == 2
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: pane.last_saved is not None, what="saved grid")
        with Image.open(pane.last_saved) as png:
            assert 'X Type: Prompt S/R, X Values: "sneaker, bag", Y Type: Steps, Y Values: "1, 2"' in png.info["parameters"]
        app.query_one("#y-values", Input).value = "1-2 (+0)"
        await pilot.press("ctrl+r")
        assert any("step (+N)" in n.message for n in app.notices)


@sync
async def test_bad_scales_notify_and_nothing_runs(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f3")
        app.query_one("#scales", Input).value = "1, lots"
        await pilot.press("ctrl+r")
        assert not app.model_worker.busy("sweep")
        assert any("'lots' is not a number or a range" in n.message for n in app.notices)


@sync
async def test_cancel_mid_sweep_leaves_app_responsive(tmp_path):
    app = make_app(tmp_path, steps=400)
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one("SweepPane")
        await pilot.press("f3", "ctrl+r")
        await wait_for(pilot, lambda: app.query_one("#progress", ProgressBar).progress >= 1, what="first step")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not app.model_worker.busy("sweep"), what="cancel")
        assert "cancelled" in str(app.query_one("#status", Label).render())
        assert pane.result is None
        assert app.model_worker.runner.alive
        # still responsive: typing updates tokens, and the worker takes new jobs
        await pilot.press("f2", *" dog")
        assert "dog</w>" in table_pieces(app)
        app.query_one("#steps", Input).value = "2"
        await pilot.press("f3", "ctrl+r")
        await wait_for(pilot, lambda: pane.result is not None, what="sweep after cancel")


@sync
async def test_latents_pane_shows_four_channels_for_an_image_file(tmp_path):
    image = write_gradient(tmp_path / "gradient.png")
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f4")
        assert app.focused is app.query_one("#path", Input)
        await pilot.press(*str(tmp_path / "grad"))
        await pilot.press("right")  # accept the completion
        assert app.query_one("#path", Input).value == str(image)
        await pilot.press("enter")
        pane = app.query_one("LatentsPane")
        await wait_for(pilot, lambda: pane.report is not None, what="round trip")
        report = pane.report
        for c in range(4):
            view = app.query_one(f"#c{c}")
            assert view.image is not None and view.image.size == tuple(report.latents.shape[-1:-3:-1])
            lo, hi = report.channel_ranges[c]
            assert view.caption == f"c{c} {lo:.2f}..{hi:.2f}"
        assert app.query_one("#recon").caption == f"round trip {report.psnr:.1f} dB"
        sizes = str(app.query_one("#sizes", Label).render())
        assert f"{report.input_values:,} values" in sizes and f"{report.latent_values:,} values" in sizes


@sync
async def test_latents_bad_file_is_a_notification(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f4", *str(bad), "enter")
        pane = app.query_one("LatentsPane")
        await wait_for(pilot, lambda: not app.model_worker.busy("latents"), what="failure")
        assert pane.report is None
        assert any("not an image" in n.message for n in app.notices)
        assert app.model_worker.runner.alive


@sync
async def test_latents_takes_the_selected_sweep_image(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f3", "ctrl+r")
        sweep = app.query_one("SweepPane")
        await wait_for(pilot, lambda: sweep.result is not None, what="sweep")
        sweep.cells[2].focus()
        await pilot.press("f4", "ctrl+g")
        pane = app.query_one("LatentsPane")
        await wait_for(pilot, lambda: pane.report is not None, what="round trip")
        assert pane.source == "sweep image (4)"
        assert pane.report.image.size == sweep.result.images[2].size


@sync
async def test_training_few_steps_updates_loss_and_progress(tmp_path, fashion_dir):
    app = make_app(tmp_path, data=str(fashion_dir))
    async with app.run_test(size=SIZE) as pilot:
        app.query_one("TrainingPane").sample_steps = 5  # DDIM steps for the per-class grids
        await pilot.press("f5")  # no run yet: the noising row, and the shipped model (when installed)
        await wait_for(pilot, lambda: not app.model_worker.busy("fashion-show"), what="shipped")
        noising = app.query_one("#noising")
        assert noising.image is not None and noising.image.size == (8 * 33 - 1, 32)
        app.query_one("#epochs", Input).value = "1"
        app.query_one("#batch", Input).value = "16"
        app.query_one("#arch").value = "tiny"
        await pilot.press("ctrl+r")
        pane = app.query_one("TrainingPane")
        await wait_for(pilot, lambda: len(pane.losses) >= 2, what="two loss updates")
        assert all(loss > 0 for loss in pane.losses)
        bar = app.query_one("#step-bar", ProgressBar)
        assert bar.total == 512 and 0 < bar.progress < 512
        assert "img/s" in str(app.query_one("#rate", Label).render())
        assert pane.stats.device == "cpu"
        assert pane.trainer is not None and pane.trainer.model is not None  # its TrainerReady message came
        await pilot.press("ctrl+b")
        assert pane.pause_event.is_set()
        await pilot.press("ctrl+b")
        assert not pane.pause_event.is_set()
        await pilot.press("escape")
        await wait_for(pilot, lambda: not app.model_worker.busy("train"), what="stop")
        assert "stopped" in str(app.query_one("#state", Label).render())
        ckpts = list((tmp_path / "fashion").glob("*.safetensors"))
        assert ckpts, "stop writes a resumable checkpoint"
        assert app.query_one("#ckpt", Input).value == str(ckpts[0])
        # load it: a grid of samples per class and the chapter's noising row appear
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: not app.model_worker.busy("fashion-show"), what="samples")
        samples = app.query_one("#samples")
        assert samples.image is not None and samples.image.size == (10 * 33 - 1, 2 * 33 - 1)
        assert samples.caption.startswith(ckpts[0].name)  # the caption names the model it sampled
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: pane.last_saved is not None, what="saved weights")
        assert pane.last_saved.is_file() and pane.last_saved.suffix == ".safetensors"


@sync
async def test_bad_model_keeps_app_running(tmp_path):
    app = make_app(tmp_path, model=str(tmp_path / "no-such-model"))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: not app.model_worker.busy("load"), what="load failure")
        assert "failed to load" in app.sub_title
        assert any("no such folder" in n.message or "diffusers" in n.message for n in app.notices)
        pane = app.query_one("TokensPane")
        await wait_for(pilot, lambda: pane.tokenizer is not None, what="fallback tokenizer")
        await pilot.press(*"hi")
        assert pane.breakdown.count >= 1
        await pilot.press("f3", "ctrl+r")
        await wait_for(pilot, lambda: not app.model_worker.busy("sweep"), what="sweep failure")
        assert any("No model is loaded" in n.message for n in app.notices)


@sync
async def test_training_pane_shows_the_shipped_model_first(tmp_path, fashion_dir):
    from sd_explorer.core.fashion.model import SHIPPED_WEIGHTS

    if not SHIPPED_WEIGHTS.is_file():
        pytest.skip(f"{SHIPPED_WEIGHTS} is not shipped yet")
    app = make_app(tmp_path, data=str(fashion_dir))
    async with app.run_test(size=SIZE) as pilot:
        app.query_one("TrainingPane").sample_steps = 5
        await pilot.press("f5")
        await wait_for(pilot, lambda: not app.model_worker.busy("fashion-show"), what="shipped")
        samples, noising = app.query_one("#samples"), app.query_one("#noising")
        assert samples.image is not None and "shipped model" in samples.caption
        assert noising.image is not None


@sync
async def test_sdxl_shows_both_tokenizers_side_by_side(tmp_path):
    from tests.sd_factory import save_sdxl_pipeline

    folder = save_sdxl_pipeline(tmp_path / "sdxl")
    app = make_app(tmp_path, model=str(folder), prompt="")
    async with app.run_test(size=(160, 30)) as pilot:
        pane = app.query_one("TokensPane")
        await wait_for(pilot, lambda: len(pane.breakdowns) == 2, what="two tokenizers")
        await pilot.press(*"a cat")
        first, second = app.query_one("#token-table", DataTable), app.query_one("#token-table-2", DataTable)
        for table in (first, second):
            assert [str(table.get_row_at(i)[1]) for i in range(table.row_count)] == [
                "<|startoftext|>", "a</w>", "cat</w>", "<|endoftext|>"]
        assert "CLIP ViT-L: 2/75 tokens" in str(app.query_one("#count", Label).render())
        assert "OpenCLIP bigG: 2/75 tokens" in str(app.query_one("#count-2", Label).render())
        assert first.region.y == second.region.y and first.region.x < second.region.x  # side by side (from 150 columns)


@sync
async def test_hours_long_cpu_training_says_so_once(tmp_path):
    from sd_explorer.core.fashion.trainer import StepStats

    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f5")
        pane = app.query_one("TrainingPane")
        app.query_one("#arch").value = "chapter"  # the CPU default is the CPU recipe's small UNet
        first = StepStats(1, 800, 0, 25, 1.07, 13.0, 4 * 3600.0, "cpu")
        pane.show_step(first, [(1, 1.07)])
        pane.show_step(StepStats(2, 800, 0, 25, 1.0, 13.0, 4 * 3600.0, "cpu"), [(1, 1.07), (2, 1.0)])
        await pilot.pause()
        warnings = [n.message for n in app.notices if "CPU recipe" in n.message]
        assert len(warnings) == 1 and warnings[0].startswith("About 4:00:00 on the CPU")
        assert "ETA 4:00:00 · cpu" in str(app.query_one("#rate", Label).render())
        pane.stats = None  # a new run of minutes: no word
        app.query_one("#arch").value = "small"
        pane.show_step(StepStats(1, 1536, 0, 12, 1.07, 300.0, 280.0, "cpu"), [(1, 1.07)])
        await pilot.pause()
        assert len([n for n in app.notices if "CPU recipe" in n.message]) == 1


@sync
async def test_a_stopped_run_reports_its_checkpoint_by_message(tmp_path):
    """The training job never writes the pane: the checkpoint a stop leaves arrives as a milestone, then the
    cancellation; the pane offers it for ctrl+o."""
    from sd_explorer.core.jobs import Job, JobEvent
    from sd_explorer.tui.job_kinds import JobKind
    from sd_explorer.tui.messages import job_message
    from sd_explorer.tui.progress import CheckpointSaved

    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f5")
        pane = app.query_one("TrainingPane")
        job = Job(kind=JobKind.TRAIN, fn=lambda job: None, id=99)
        pane.post_message(job_message(JobEvent("progress", job, payload=CheckpointSaved("/runs/ckpt-7"))))
        pane.post_message(job_message(JobEvent("failed", job, error_kind="cancelled", message="Cancelled.")))
        await pilot.pause()
        assert app.query_one("#ckpt", Input).value == "/runs/ckpt-7"
        assert "checkpoint written" in str(app.query_one("#state", Label).render())


@sync
async def test_the_training_pane_gets_its_trainer_by_message_and_pause_and_stop_still_work(tmp_path):
    """The job never writes the pane: its Trainer arrives as a TrainerReady milestone, handled on the UI
    thread; ctrl+b pauses and resumes, escape stops, and the stop offers the trainer's last checkpoint."""
    import threading
    from types import SimpleNamespace

    from sd_explorer.tui.progress import TrainerReady

    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f5")
        pane = app.query_one("TrainingPane")
        trainer = SimpleNamespace(model=object(), last_checkpoint=None)
        handled_on = []
        shown = pane.job_progress

        def record(ev):
            handled_on.append(threading.current_thread() is threading.main_thread())
            shown(ev)

        pane.job_progress = record

        def run(job):  # a stand-in for train_job: announce the trainer, then train until stopped
            job.progress(TrainerReady(trainer))
            while not job.cancel.wait(0.01):
                if not pane.pause_event.is_set():
                    trainer.last_checkpoint = "/runs/ckpt-3"
            job.check()

        from sd_explorer.tui.panes.training import PREVIEWS

        for kind in PREVIEWS:  # as ctrl+r does: training jumps ahead of the pane's previews (minutes on a busy CPU)
            app.model_worker.cancel(kind)
        pane.job = pane.submit("train", run)
        await wait_for(pilot, lambda: pane.trainer is trainer, what="the trainer's message")
        assert handled_on == [True]
        await pilot.press("ctrl+b")
        assert pane.pause_event.is_set() and "paused" in str(app.query_one("#state", Label).render())
        await pilot.press("ctrl+b")
        assert not pane.pause_event.is_set()
        await wait_for(pilot, lambda: trainer.last_checkpoint is not None, what="a checkpoint")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not app.model_worker.busy("train"), what="stop")
        await pilot.pause()
        assert app.query_one("#ckpt", Input).value == "/runs/ckpt-3"
        assert "checkpoint written" in str(app.query_one("#state", Label).render())
        assert pane.model_source == "training run (stopped)"


@sync
async def test_work_queued_behind_another_panes_job_says_so(tmp_path):
    import threading

    image = write_gradient(tmp_path / "gradient.png")
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.model is not None, what="model")
        release = threading.Event()
        app.model_worker.submit("train", lambda job: release.wait(60))  # long work from elsewhere
        await pilot.press("f4")
        app.query_one("#path", Input).value = str(image)
        await pilot.press("enter")
        await pilot.pause()
        queued = [n.message for n in app.notices if n.title == "Worker busy"]
        assert queued == ["Queued behind training: it starts when that finishes (escape in its pane stops it)."]
        await pilot.press("f3", "ctrl+r")
        status = str(app.query_one("SweepPane").query_one("#status", Label).render())
        assert "queued behind training, an encode" in status
        assert len([n for n in app.notices if n.title == "Worker busy"]) == 1  # the grid says it itself
        latents = app.query_one("LatentsPane")  # its own queued encode is not news to it; others' work is
        assert latents.waiting_for() == "training, an encode, a sweep"
        assert latents.waiting_for(include_own=False) == "training, a sweep"
        release.set()
        sweep = app.query_one("SweepPane")
        await wait_for(pilot, lambda: sweep.result is not None and app.query_one("LatentsPane").report is not None,
                       what="both jobs after the queue")


@sync
async def test_sdxl_grid_of_size_and_crop_with_a_long_weighted_prompt(tmp_path, sdxl_folder):
    """An SDXL-shaped model: X original size, Y crop, a prompt of two chunks with weights, in one batch."""
    from textual.widgets import Select

    prompt = "a (collie:1.2) in a [top hat], " * 12  # 84 tokens: two chunks
    app = make_app(tmp_path, model=str(sdxl_folder), prompt=prompt, steps=2)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.model is not None, what="model")
        pane = app.query_one("TokensPane")
        await wait_for(pilot, lambda: len(pane.breakdowns) == 2, what="two tokenizers")
        assert "84/150 tokens in 2 chunks" in str(app.query_one("#count-2", Label).render())
        await pilot.press("f3")
        sweep = app.query_one("SweepPane")
        app.query_one("#x-axis", Select).value = "original_size"
        app.query_one("#scales", Input).value = "256x256,1024x1024"
        app.query_one("#y-axis", Select).value = "crop"
        app.query_one("#y-values", Input).value = "0x0,32x0"
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: sweep.result is not None, what="SDXL grid")
        assert [c.caption for c in sweep.cells] == ["orig 256x256 · crop 0,0", "orig 1024x1024 · crop 0,0",
                                                   "orig 256x256 · crop 32,0", "orig 1024x1024 · crop 32,0"]
        assert sweep.result.timings["batches"] == 1 and "Crop top-left: 32,0" in sweep.result.parameters(3)


@sync
async def test_two_token_tables_stack_when_they_would_not_fit_side_by_side(tmp_path, sdxl_folder):
    """SDXL's two tables stand side by side from 150 columns, one above the other below it (a cut note column
    otherwise), and follow the terminal when it is resized."""
    from sd_explorer.tui.panes.tokens import TokenColumn

    app = make_app(tmp_path, model=str(sdxl_folder))
    async with app.run_test(size=(100, 24)) as pilot:
        pane = app.query_one("TokensPane")
        await wait_for(pilot, lambda: len(pane.tokenizers) == 2 and len(pane.query(TokenColumn)) == 2, what="tables")
        await pilot.pause()
        first, second = pane.query(TokenColumn)
        assert second.region.y > first.region.y and second.region.width == first.region.width >= 90
        await pilot.resize_terminal(160, 24)
        await pilot.pause()
        assert second.region.y == first.region.y and second.region.x > first.region.x


@sync
async def test_a_key_typed_into_a_field_reached_with_tab_adds_to_it(tmp_path):
    """Issue 27, item 9: x (the timeline's x0/x_t key) typed into the guidance-scales field reached with tab
    erased the field: tab selected its whole value and the key replaced it. Fields no longer select on focus."""
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.model is not None, what="model")
        await pilot.press("f3")
        scales = app.query_one("#scales", Input)
        before = scales.value
        while app.focused is not scales:
            await pilot.press("tab")
        await pilot.press("x")
        assert scales.value == before + "x"
        assert all(not field.select_on_focus for field in app.query(Input))
