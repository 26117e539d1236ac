"""Pilot tests: prompt editing ``[from:to:when]`` in the token table (each segment's tokens under its steps)
and in the sweep's timeline (the step where the prompt switches says so)."""

from __future__ import annotations

from textual.widgets import DataTable, Input, Label

from tests.test_tui_support import SIZE, make_app, sync, wait_for

EDITED = "a photo of [a sneaker:an ankle boot:0.5]"


def rows(table: DataTable) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


@sync
async def test_the_token_table_lists_each_segments_tokens_under_its_steps(tmp_path):
    app = make_app(tmp_path, prompt="", steps=25)
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one("TokensPane")
        await wait_for(pilot, lambda: pane.tokenizer is not None, what="tokenizer")
        app.query_one("#prompt", Input).value = EDITED
        await pilot.pause()
        table = app.query_one("#token-table", DataTable)
        shown = rows(table)
        assert shown[0] == ["", "steps 1-12", "a photo of a sneaker", "", "", "", "of 25"]
        assert [r[1] for r in shown[1:8]] == ["<|startoftext|>", "a</w>", "photo</w>", "of</w>", "a</w>",
                                              "sneaker</w>", "<|endoftext|>"]
        assert shown[8] == ["", "steps 13-25", "a photo of an ankle boot", "", "", "", "of 25"]
        assert [r[1] for r in shown[13:17]] == ["an</w>", "ankle</w>", "boot</w>", "<|endoftext|>"]
        line = str(app.query_one("#count", Label).render())
        assert line == "prompt: edits over 25 steps — steps 1-12: 5/75 · steps 13-25: 6/75"
        table.focus()
        table.move_cursor(row=8)
        await pilot.press("enter")  # a segment's row names no token: nothing happens
        assert not app.notices
        # a plain bracket and a weight stay what they were; a nested edit is one line on the count line
        app.query_one("#prompt", Input).value = "a [red] (cat:1.2)"
        await pilot.pause()
        assert [r[4] for r in rows(table)] == ["", "", "0.909", "1.2", ""]
        app.query_one("#prompt", Input).value = "[[a:b:0.2]:c:0.5]"
        await pilot.pause()
        assert "prompt edit at 1 inside the edit at 0" in str(app.query_one("#count", Label).render())


@sync
async def test_the_timeline_marks_the_step_where_the_prompt_switches(tmp_path):
    app = make_app(tmp_path, prompt="[a sneaker:a pair of trousers:0.5]", steps=4)
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one("SweepPane")
        await wait_for(pilot, lambda: app.model is not None, what="model")
        await pilot.press("f3", "ctrl+r")
        await wait_for(pilot, lambda: pane.result is not None and pane.insight is not None, what="sweep")
        assert pane.result.switches == [2]
        marked = [i for i, s in enumerate(pane.insight.steps) if "prompt" in s]
        assert marked == [2]
        assert pane.insight.steps[2].endswith(" · prompt 'a sneaker' → 'a pair of trousers'")
        pane.cells[0].focus()
        await pilot.press("pageup", "pageup", "pageup")  # the images, then back from the last step to step 3
        assert pane.step == 2
        label = str(pane.query_one("#status", Label).render())
        assert label.startswith("step 3/5 · t=") and "prompt 'a sneaker' → 'a pair of trousers'" in label
