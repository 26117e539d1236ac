"""Prompt editing ``[from:to:when]`` (core.prompt_editing): the parser, the schedule, and the sampler
switching the conditioning at the switch step, on the embedded tiny model and through a graphed UNet."""

from __future__ import annotations

import pytest
import torch

from sd_explorer.core.errors import UserError
from sd_explorer.core.grid_axes import Axis
from sd_explorer.core.grid_run import run_grid
from sd_explorer.core.prompt_editing import Edit, parse_edits, schedule
from sd_explorer.core.sampler import generate
from sd_explorer.core.settings import SampleSettings

STEPS = 4


@pytest.fixture(scope="module")
def tiny():
    from sd_explorer.core.models import load_model

    return load_model("tiny", device="cpu")


def texts(text: str, steps: int = 10) -> list[tuple[int, int, str]]:
    return [(s.start, s.stop, s.text) for s in schedule(text, steps).segments]


def test_when_is_a_fraction_below_one_and_a_step_otherwise():
    assert texts("a [sneaker:boot:0.5] x") == [(0, 5, "a sneaker x"), (5, 10, "a boot x")]
    assert texts("[sneaker:boot:3]") == [(0, 3, "sneaker"), (3, 10, "boot")]
    assert texts("[sneaker:boot:0.99]") == [(0, 9, "sneaker"), (9, 10, "boot")]  # int(9.9)
    assert texts("[sneaker:boot:1]") == [(0, 1, "sneaker"), (1, 10, "boot")]  # 1 is a step, not the whole run
    assert texts("[a:b:10]") == texts("[a:b:99]") == [(0, 10, "a")]  # clamped to N: the plain "a"
    assert texts("[a:b:0]") == texts("[a:b:-2]") == [(0, 10, "b")]
    assert texts("[hat:0.3] boot") == [(0, 3, " boot"), (3, 10, "hat boot")]  # [to:when] adds
    assert texts("[hat::7] boot") == [(0, 7, "hat boot"), (7, 10, " boot")]  # [from::when] removes
    assert texts("[a:a:0.5]") == [(0, 10, "a")]  # nothing changes: one segment


def test_several_edits_and_the_change_each_switch_makes():
    sched = schedule("[red:blue:0.2] [cat:dog:0.6] [hat::8]", 10)
    assert [(s.label, s.text) for s in sched.segments] == [
        ("steps 1-2", "red cat hat"), ("steps 3-6", "blue cat hat"), ("steps 7-8", "blue dog hat"),
        ("steps 9-10", "blue dog ")]
    assert sched.switches == (2, 6, 8)
    assert [sched.change_at(k) for k in sched.switches] == ["'red' → 'blue'", "'cat' → 'dog'", "− 'hat'"]
    assert sched.change_at(3) is None and sched.at(7) == "blue dog hat"


def test_plain_brackets_and_weights_are_left_for_prompt_weights():
    for plain in ("[word]", "[[word]]", "(word:1.2)", "a (red:1.3) [top hat]", "[time: 12:30 pm]", "\\[a:b:0.5\\]",
                  "[a:b:0.5", "a photo of a sneaker"):
        assert parse_edits(plain).edits == () and texts(plain) == [(0, 10, plain)]
    assert parse_edits("[(red:1.3):blue:0.5]").edits == (Edit(0, "(red:1.3)", "blue", 0.5),)
    assert texts("([a:b:0.5]:1.2) [[x]:y:5]") == [(0, 5, "(a:1.2) [x]"), (5, 10, "(b:1.2) y")]


@pytest.mark.parametrize("text, message", [
    ("a [[x:y:0.2]:c:0.5]", "prompt edit at 3 inside the edit at 2: edits cannot nest"),
    ("[a:b:c:0.5]", "prompt edit at 0 with 4 ':'-parts: write [from:to:when]"),
])
def test_bad_edits_are_one_line(text, message):
    with pytest.raises(UserError, match=message.replace("[", r"\[")):
        SampleSettings(text).validate()
    with pytest.raises(UserError, match="the negative prompt has"):
        SampleSettings("boot", negative_prompt=text).validate()


def test_a_weight_out_of_range_inside_an_edit_is_refused():
    with pytest.raises(UserError, match=r"weighs 'b' x1e\+03"):
        SampleSettings("[a:(b:1000):0.5]").validate()


def test_the_edge_edits_equal_the_plain_prompts_bit_for_bit(tiny):
    """``[a:b:N]`` is the plain ``a`` and ``[a:b:0]`` the plain ``b``: images and latents, generate and a sweep cell."""
    def run(prompt: str):
        return generate(tiny, SampleSettings(prompt, steps=STEPS, seed=3))

    def cell(prompt: str):
        return run_grid(tiny, SampleSettings(prompt, steps=STEPS, seed=3), Axis("scale", [1.0, 7.5]))

    a, b = "a photo of a sneaker", "a photo of an ankle boot"
    for edited, plain in ((f"[{a}:{b}:{STEPS}]", a), (f"[{a}:{b}:0]", b)):
        ours, ref = run(edited), run(plain)
        assert torch.equal(ours.latents, ref.latents) and ours.images[0].tobytes() == ref.images[0].tobytes()
        assert ours.switches == [] and ours.parameters(0).splitlines()[0] == edited  # the PNG keeps it as typed
        grid, ref_grid = cell(edited), cell(plain)
        assert torch.equal(grid.latents, ref_grid.latents)
        assert grid.images[1].tobytes() == ref_grid.images[1].tobytes()
    mid = run(f"[{a}:{b}:0.5]")
    assert mid.switches == [STEPS // 2] and mid.edits[0].change_at(2) == f"prompt {a!r} → {b!r}"
    assert not torch.equal(mid.latents, run(a).latents) and not torch.equal(mid.latents, run(b).latents)


def test_the_switch_happens_at_step_k(tiny):
    """The run equals the plain ``a`` up to step k, then differs: the conditioning changed there."""
    seen: dict[str, list] = {}

    def keep(name):
        seen[name] = []
        return lambda info: seen[name].append(info.latents.clone())

    generate(tiny, SampleSettings("a sneaker", steps=STEPS, seed=1), callback=keep("a"))
    generate(tiny, SampleSettings("[a sneaker:a pair of trousers:2]", steps=STEPS, seed=1), callback=keep("edit"))
    assert all(torch.equal(x, y) for x, y in zip(seen["a"][:2], seen["edit"][:2]))
    assert not torch.equal(seen["a"][2], seen["edit"][2])


def test_img2img_counts_steps_in_the_full_schedule(tiny):
    """Strength 0.5 of 4 steps runs steps 2 and 3 (and PNDM's extra call): ``[a:b:2]`` reads ``b`` throughout
    there, ``[a:b:3]`` switches at the loop's second step; the timeline's frames carry those step numbers."""
    from PIL import Image

    from sd_explorer.core.timeline import Timeline

    def run(prompt, callback=None):
        return generate(tiny, SampleSettings(prompt, steps=STEPS, seed=6, init_image=Image.new("RGB", (64, 64), "gray"),
                                             strength=0.5), callback=callback)

    assert torch.equal(run("[a sneaker:a shirt:2]").latents, run("a shirt").latents)
    timeline = Timeline(tiny)
    result = run("[a sneaker:a shirt:3]", timeline)
    assert [f.step for f in timeline.frames][:2] == [2, 3] and result.switches == [3]
    assert [f.describe(len(timeline.frames), result.edits).endswith("prompt 'a sneaker' → 'a shirt'")
            for f in timeline.frames][:3] == [False, True, False]


def test_negative_prompt_edits_and_rows_with_their_own_prompts(tiny):
    s = SampleSettings("a sneaker", negative_prompt="[a boot:a shirt:0.5]", steps=STEPS, seed=2)
    result = generate(tiny, s)
    assert result.switches == [2] and result.edits[0].change_at(2) == "negative 'a boot' → 'a shirt'"
    grid = run_grid(tiny, SampleSettings("[a sneaker:a boot:0.5]", steps=STEPS, seed=2),
                    Axis.parse("prompt_sr", "sneaker|shirt"))
    single = generate(tiny, SampleSettings("[a shirt:a boot:0.5]", steps=STEPS, seed=2))
    # the row's own prompt, resolved per row (a batch of 2 vs 1: fp32 rounding apart)
    torch.testing.assert_close(grid.latents[1:2], single.latents, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(grid.latents[0], grid.latents[1], atol=1e-2)
    assert [e.prompt.texts for e in grid.edits] == [("a sneaker", "a boot"), ("a shirt", "a boot")]


def test_a_longer_segment_is_padded_and_batches_keep_single_run_padding(tiny):
    long = "a photo of a sneaker " * 20  # 100 tokens: 2 chunks
    edited = f"[a boot:{long}:0.5]"
    grid = run_grid(tiny, SampleSettings("x", steps=STEPS, seed=4), Axis("negative", ["", "x"]),
                    Axis.parse("prompt_sr", f"x|{edited}"))
    single = generate(tiny, SampleSettings(edited, negative_prompt="x", steps=STEPS, seed=4))
    torch.testing.assert_close(grid.latents[3:4], single.latents, atol=1e-4, rtol=1e-4)
    assert grid.timings["batches"] == 2  # the edited cells (1 chunk, then 2) apart from the plain ones


class ReplayedGraph:
    """Stands in for ``torch.cuda.CUDAGraph`` on the CPU: a replay re-runs the captured call on the static
    input buffers and writes the static outputs, as a real graph reads and writes only those."""

    def __init__(self, fn, inputs, outputs):
        self.fn, self.inputs, self.outputs = fn, inputs, outputs

    def replay(self):
        self.outputs.copy_(self.fn(*self.inputs))


def test_a_graphed_unet_really_uses_the_switched_conditioning(tiny, monkeypatch):
    """The CUDA-graph path (``core.graph_cache`` under ``core.fast.FastUNet``) replays one graph per input
    signature; a switched cond of the same shape is copied into the graph's static input, so the graphed run
    equals the eager one exactly and differs from the unswitched prompt."""
    from sd_explorer.core import fast, graph_cache
    from sd_explorer.core.cuda_graphs import CapturedGraph

    def capture(fn, inputs, pool=None, error_mode="global"):
        outputs = fn(*inputs)
        return CapturedGraph(ReplayedGraph(fn, inputs, outputs), tuple(inputs), outputs, 0.0)

    monkeypatch.setattr(graph_cache, "capture", capture)
    monkeypatch.setattr(graph_cache, "warm_up", lambda fn, times=1, stream=None: fn())
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: None)
    monkeypatch.setattr(torch.cuda, "graph_pool_handle", lambda: None)
    settings = SampleSettings("[a sneaker:a pair of trousers:0.5]", steps=STEPS, seed=5)
    eager = generate(tiny, settings)
    unet = fast.FastUNet(tiny.unet, fast.FastOptions(graphs=True, channels_last=False, fuse_qkv=False, sdpa=False))
    monkeypatch.setattr(tiny, "unet_forward", unet)
    calls: list[int] = []
    graphed = generate(tiny, settings, callback=lambda info: calls.append(info.index))
    assert len(unet.graphed.graphs) == 1 and unet.graphed.replays == len(calls)  # one signature, every call replayed
    plain = generate(tiny, SampleSettings("a sneaker", steps=STEPS, seed=5))
    assert torch.equal(graphed.latents, eager.latents)
    assert not torch.equal(graphed.latents, plain.latents)


@pytest.mark.parametrize("command", [
    ["generate"], ["sweep", "--scales", "1,4"], ["sweep", "--x", "seed=1,2"], ["attention", "--tokens", "c"],
    ["tokens"]])
def test_the_cli_refuses_a_bad_edit_in_one_line(command, tmp_path, capsys):
    from sd_explorer.core.cli import main

    args = [command[0], "a [[x:y:0.2]:c:0.5]", *command[1:]]
    assert main([*args, "--out", str(tmp_path / "out")] if command[0] != "tokens" else args) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors == ["sd-explorer: error: the prompt has a prompt edit at 3 inside the edit at 2: edits cannot nest; "
                      "write them side by side, e.g. [a:b:0.3] [c:d:0.6]."]
    assert not (tmp_path / "out").exists()


def test_the_cli_samples_edits_and_keeps_the_prompt_as_typed(tmp_path, capsys):
    from sd_explorer.core.cli import main

    prompt = "[a sneaker:an ankle boot:0.5]"
    assert main(["generate", prompt, "--model", "tiny", "--steps", "2", "--out", str(tmp_path)]) == 0
    from PIL import Image

    png = capsys.readouterr().out.split()[0]
    assert Image.open(png).text["parameters"].splitlines()[0] == prompt
    assert main(["tokens", "a photo of " + prompt]) == 0
    out = capsys.readouterr().out
    assert "steps 1-15 of 30: 'a photo of a sneaker'" in out and "steps 16-30 of 30: 'a photo of an ankle boot'" in out
    assert " 14777  ankle</w>" in out


def test_heat_map_words_come_from_every_segment(tiny):
    from sd_explorer.core.attention import token_positions

    prompt = "[a sneaker:an ankle boot:0.5]"
    assert token_positions(tiny, prompt, "sneaker") == [2] and token_positions(tiny, prompt, "boot") == [3]
    with pytest.raises(UserError, match="pick one of a, sneaker, an, ankle, boot"):
        token_positions(tiny, prompt, "hat")
