"""Property tests for issue 26's classes 4 (unbounded work) and 5 (a refusal that writes).

Class 4: every count, size and list a user types is bounded where it is typed: either it is refused in one line
that names the bound, or what comes out is bounded (repeats merged, values in range), whatever the input.
Class 5: a command refused for its arguments leaves nothing behind: no ``--out`` folder, no file.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from sd_explorer.core.batch_rows import MAX_ROWS, MAX_SWEEP_CELLS, check_cells, check_count
from sd_explorer.core.errors import UserError
from sd_explorer.core.fashion.cli import _parse_classes
from sd_explorer.core.inputs import parse_pairs, parse_scales
from sd_explorer.core.settings import MAX_SIDE, MAX_STEPS, SampleSettings
from sd_explorer.core.timeline import parse_steps
from tests.test_hostile_input import run_cli

MANY = settings(max_examples=150, deadline=None)
NUMBER_LISTS = st.lists(st.one_of(st.integers(-10**6, 10**6), st.sampled_from(["", " ", "x", "1e3", "nan", "-0"])),
                        max_size=400).map(lambda items: ",".join(map(str, items)))


def one_line(exc: UserError) -> str:
    text = str(exc)
    assert text and "\n" not in text and "Traceback" not in text
    return text


# ---------------------------------------------------------------- class 4: bounded where typed
@MANY
@given(text=NUMBER_LISTS, total=st.integers(1, MAX_STEPS))
def test_timeline_steps_are_bounded_by_the_run(text, total):
    """50,000 entries never finished (issue 26): now at most ``total`` distinct columns, each a step of the run."""
    try:
        steps = parse_steps(text, total)
    except UserError as exc:
        assert any(w in one_line(exc) for w in ("outside 1..", "not a whole number", "empty"))
        return
    assert 1 <= len(steps) <= total and len(set(steps)) == len(steps) and all(1 <= s <= total for s in steps)


@MANY
@given(text=st.one_of(NUMBER_LISTS, st.text(max_size=60)))
def test_fashion_classes_are_at_most_the_ten(text):
    """--class 7 x400 with -n 256 was 102,400 images: a class is one row however often it is named."""
    try:
        classes = _parse_classes(text)
    except UserError as exc:
        assert "ids 0-9" in one_line(exc)
        return
    assert 1 <= len(classes) <= 10 and len(set(classes)) == len(classes) and set(classes) <= set(range(10))


@MANY
@given(n=st.one_of(st.integers(-10**9, 10**9), st.booleans(), st.floats(allow_nan=True)))
def test_image_counts_name_their_bound(n):
    try:
        assert 1 <= check_count(n) <= MAX_ROWS
    except UserError as exc:
        assert f"from 1 to {MAX_ROWS}" in one_line(exc)


@MANY
@given(text=NUMBER_LISTS)
def test_a_sweep_is_at_most_one_batch_of_cells(text):
    try:
        scales = parse_scales(text)
        check_cells(len(scales))
    except UserError as exc:
        assert any(w in one_line(exc) for w in (f"at most {MAX_SWEEP_CELLS}", "numbers", "empty"))
        return
    assert 1 <= len(scales) <= MAX_SWEEP_CELLS


@MANY
@given(width=st.integers(-10**6, 10**6), height=st.integers(-10**6, 10**6), steps=st.integers(-10, 10**6))
def test_sizes_and_steps_name_their_bounds(width, height, steps):
    try:
        s = SampleSettings("a boot", steps=steps, width=width, height=height).validate(multiple=8)
    except UserError as exc:
        assert any(w in one_line(exc) for w in (str(MAX_SIDE), "multiple of 8", f"1 to {MAX_STEPS}", "steps", "at least"))
        return
    assert 8 <= s.width <= MAX_SIDE and 8 <= s.height <= MAX_SIDE and 1 <= s.steps <= MAX_STEPS


@MANY
@given(pairs=st.lists(st.tuples(st.integers(-5, 40000), st.integers(-5, 40000)), max_size=20))
def test_sdxl_size_pairs_are_in_range(pairs):
    text = ",".join(f"{a}x{b}" for a, b in pairs)
    try:
        parsed = parse_pairs(text, "original size")
    except UserError as exc:
        assert any(w in one_line(exc) for w in ("0 to 16384", "empty"))
        return
    assert parsed == pairs and all(0 <= v <= 16384 for p in parsed for v in p)


# ---------------------------------------------------------------- class 5: a refusal writes nothing
#: (command, the arguments that make it refuse) — each refused for its arguments, before any model or data loads
REFUSED = st.sampled_from([
    ["generate", "a boot", "--steps", "0"], ["generate", "a boot", "--size", "12x12"], ["generate", "a boot", "-n", "0"],
    ["generate", "a boot", "--seed", "-1"], ["sweep", "a boot", "--scales", "1,nan"], ["sweep", "a boot", "--scales", ""],
    ["sweep", "a boot", "--timeline", "0,99999"], ["sweep", "a boot", "--original-sizes", "256x256"],
    ["sweep", "a boot", "--strengths", "0.5"], ["sweep", "a boot", "--x", "nope=1,2"],
    ["latents", "no-such-image.png"], ["latents", "in.png", "--seed", "-3"],
    ["attention", "a boot", "--tokens", ""], ["attention", "a boot", "--tokens", "boot", "--at", "5"],
    ["attention", "a boot", "--tokens", "boot", "--at", "64,0"], ["fashion", "sample", "--class", "11"],
    ["fashion", "sample", "--grey-scale", "30"], ["fashion", "sample", "--checkpoint", "no-such-file"],
    ["fashion", "train", "--data", "no-such-folder", "--epochs", "1"],
])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(args=REFUSED, depth=st.integers(1, 3))
def test_a_refused_command_leaves_no_out_folder_behind(tmp_path_factory, capsys, args, depth):
    """Issue 26, class 5: the one-line refusal, exit 2, and the ``--out`` folder (however deep) never made."""
    root = tmp_path_factory.mktemp("refused")
    out = root.joinpath(*[f"level{i}" for i in range(depth)])
    code, lines = run_cli([*args, "--device", "cpu", "--out", str(out)], capsys)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("sd-explorer: error: "), (args, lines)
    assert sorted(p.name for p in root.iterdir()) == [], (args, list(root.rglob("*")))
