"""CLIP's tokenizer, built from the installed vocabulary, gives the chapter's ids exactly."""

import pytest
from hypothesis import given, settings, strategies as st

from sd_explorer.core.clip_vocab import clip_tokenizer
from sd_explorer.core.tokens import breakdown


def test_chapter_ids():
    b = breakdown(clip_tokenizer(), "A photograph of a puppy")
    assert [t.id for t in b.tokens] == [49406, 320, 8853, 539, 320, 6829, 49407]
    assert [t.piece for t in b.tokens][1:6] == ["a</w>", "photograph</w>", "of</w>", "a</w>", "puppy</w>"]
    assert [t.special for t in b.tokens] == [True, False, False, False, False, False, True]
    assert b.input_ids[:7] == [49406, 320, 8853, 539, 320, 6829, 49407]
    assert b.input_ids[7:] == [49407] * 70 and len(b.input_ids) == 77
    assert (b.count, b.limit, b.window) == (5, 75, 77)


def test_tokens_beyond_the_window_are_marked_dropped_when_truncating():
    b = breakdown(clip_tokenizer(), "cat " * 75 + "zebra giraffe", mode="truncate")
    assert b.count == 77 and len(b.dropped) == 2
    assert b.dropped_text == "zebra giraffe"
    assert [t.position for t in b.dropped] == [76, 77]  # where they would have stood
    assert "zebra" not in clip_tokenizer().decode(b.input_ids)
    assert "2 dropped" in b.summary()


def test_tokens_beyond_the_window_start_a_second_chunk_by_default():
    b = breakdown(clip_tokenizer(), "cat " * 75 + "zebra giraffe")
    assert (b.count, b.limit, b.chunks, b.dropped) == (77, 150, 2, [])
    assert len(b.input_ids) == 154 and b.input_ids[77] == 49406 and b.input_ids[78:81] == [22548, 22826, 49407]
    assert "77/150 tokens in 2 chunks" in b.summary()


# lone surrogates ("\ud800", what a non-UTF-8 argv byte decodes to) are refused, not tokenized: see the next test
PLAIN = st.text(alphabet=st.characters(blacklist_characters="()[]\\:", blacklist_categories=("Cs",)), max_size=300).filter(lambda t: "BREAK" not in t)


@settings(max_examples=60, deadline=None)
@given(PLAIN)
def test_breakdown_agrees_with_the_pipeline_for_any_text(text):
    """Without weight syntax, the truncated window is exactly the pipeline's ids."""
    tok = clip_tokenizer()
    b = breakdown(tok, text, mode="truncate")
    kept_ids = [t.id for t in b.tokens if not t.dropped]
    assert b.input_ids[: len(kept_ids)] == kept_ids
    assert len(b.input_ids) == 77 and b.input_ids[0] == 49406
    assert b.tokens[0].special and sum(t.special for t in b.tokens) == 2
    assert len(b.kept) <= 75


def test_a_lone_surrogate_is_refused_in_one_line():
    """Hypothesis found it: ``\\ud800`` is no text the tokenizer can take; the prompt check names the fix."""
    from sd_explorer.core.errors import UserError

    with pytest.raises(UserError, match="not valid UTF-8 text: retype it"):
        breakdown(clip_tokenizer(), "a boot \ud800", mode="truncate")


def test_every_piece_reads_as_text_and_multi_byte_characters_say_which_part():
    """Emoji are byte pieces (``ðŁĳŁ</w>``): the breakdown decodes them; a character split over pieces
    is named by each of its parts. The ids stay the tokenizer's."""
    b = breakdown(clip_tokenizer(), "a photograph of 👟 🦩 café")
    rows = [(t.piece, t.id, t.text) for t in b.tokens]
    assert rows[1:4] == [("a</w>", 320, "a"), ("photograph</w>", 8853, "photograph"), ("of</w>", 539, "of")]
    assert rows[4] == ("ðŁĳŁ</w>", 41183, "👟")
    assert rows[5:7] == [("ðŁ¦", 6040, "part 1/2 of 🦩"), ("©</w>", 358, "part 2/2 of 🦩")]
    assert rows[7] == ("cafÃ©</w>", 15304, "café")
    assert rows[0][2] == rows[-1][2] == ""  # start and end tokens


def test_dropped_tokens_read_as_text():
    b = breakdown(clip_tokenizer(), "cat " * 75 + "👟 zebra", mode="truncate")
    assert b.dropped_text == "👟 zebra" and [t.text for t in b.dropped] == ["👟", "zebra"]
