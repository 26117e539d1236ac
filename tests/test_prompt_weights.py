"""A1111's prompt weights and long-prompt chunks: parsing, the token table, and the encoder's states."""

from __future__ import annotations

import pytest
import torch

from sd_explorer.core.chunks import chunk_prompt
from sd_explorer.core.clip_vocab import clip_tokenizer
from sd_explorer.core.batch_rows import Row
from sd_explorer.core.conditioning import Encoder, emphasize
from sd_explorer.core.errors import UserError
from sd_explorer.core.prompt_weights import parse
from sd_explorer.core.settings import SampleSettings
from sd_explorer.core.sampler import generate, sample
from sd_explorer.core.tokens import breakdown

LONG = "a watercolour painting of a lighthouse on a cliff at dusk, " * 7 + "zebra giraffe"  # 86 tokens


def read(text):
    return [(f.text, round(f.weight, 6)) if not f.is_break else "BREAK" for f in parse(text).fragments]


@pytest.mark.parametrize("text, expected", [
    ("normal text", [("normal text", 1.0)]),
    ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
    ("((word))", [("word", 1.21)]),
    ("[word]", [("word", round(1 / 1.1, 6))]),
    ("(several words:1.3)", [("several words", 1.3)]),
    ("(unbalanced", [("unbalanced", 1.1)]),
    (r"\(literal\]", [("(literal]", 1.0)]),
    ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
    # A1111's own worked example (modules/prompt_parser.py)
    ("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
     [("a ", 1.0), ("house", 1.573), (" ", 1.1), ("on", 1.0), (" a ", 1.1), ("hill", 0.55), (", sun, ", 1.1),
      ("sky", 1.4641), (".", 1.1)]),
    ("a cat BREAK a dog", [("a cat", 1.0), "BREAK", ("a dog", 1.0)]),
    ("stray) text]", [("stray) text]", 1.0)]),
])
def test_parse_reads_a1111_syntax(text, expected):
    assert read(text) == expected


def test_unbalanced_brackets_say_how_they_were_read():
    notes = parse("(open [also) x] y) z").notes
    assert notes == ["')' at 17 closes nothing: kept as text"]
    assert parse("a (cat").notes == ["'(' at 2 is never closed: weighs the rest of the prompt x1.1"]
    assert parse("[cat").notes == ["'[' at 0 is never closed: weighs the rest of the prompt /1.1"]
    assert "'(' at 2 is never closed" in breakdown(clip_tokenizer(), "a (cat").summary()


def test_token_table_carries_each_tokens_weight():
    b = breakdown(clip_tokenizer(), "a (red:1.3) ((cat)) on [grass]")
    weights = {t.piece: round(t.weight, 4) for t in b.tokens if not t.special}
    assert weights == {"a</w>": 1.0, "red</w>": 1.3, "cat</w>": 1.21, "on</w>": 1.0, "grass</w>": 0.9091}
    assert [t.id for t in b.tokens] == [49406, 320, 736, 2368, 525, 5922, 49407]  # brackets are not tokens
    assert len(b.weighted) == 3 and "3 weighted" in b.summary()


def test_chunks_and_break():
    tok = clip_tokenizer()
    long = chunk_prompt(tok, LONG)
    assert len(long.chunks) == 2 and [c.count for c in long.chunks] == [75, 11]
    assert all(len(c.ids) == 77 and c.ids[0] == 49406 and c.ids[c.count + 1] == 49407 for c in long.chunks)
    assert chunk_prompt(tok, LONG, "truncate").chunks == long.chunks[:1]
    broken = chunk_prompt(tok, "a cat BREAK a dog")
    assert [c.count for c in broken.chunks] == [2, 2]
    assert len(chunk_prompt(tok, "a cat BREAK").chunks) == 1  # a trailing BREAK opens no empty chunk
    b = breakdown(tok, LONG)
    second = [t for t in b.tokens if t.chunk == 1 and not t.special]
    assert second[0].position == 78 and second[0].running == 76 and b.limit == 150
    with pytest.raises(UserError, match="long-prompt mode"):
        chunk_prompt(tok, "x", "wrap")


def test_emphasis_scales_tokens_and_restores_the_mean():
    torch.manual_seed(0)
    z = torch.randn(1, 77, 8, dtype=torch.float64) + 0.5
    weights = [1.0] * 77
    weights[3] = 1.5
    out = emphasize(z, weights)
    torch.testing.assert_close(out.mean(), z.mean())
    ratio = out / z
    assert ratio[0, 3, 0] / ratio[0, 4, 0] == pytest.approx(1.5)
    assert emphasize(z, [1.0] * 77) is z


def test_weight_one_everywhere_is_the_plain_prompt_exactly(sd1):
    plain = Encoder(sd1).encode("a photo of a cat")[0]
    assert torch.equal(Encoder(sd1).encode("a photo of a (cat:1.0)")[0], plain)
    assert torch.equal(Encoder(sd1).encode("(a photo of a cat:1)")[0], plain)
    weighted = Encoder(sd1).encode("a photo of a (cat:1.5)")[0]
    assert weighted.shape == plain.shape and not torch.equal(weighted, plain)
    ids = sd1.tokenizer("a photo of a cat", padding="max_length", max_length=77, return_tensors="pt").input_ids
    assert torch.equal(plain, sd1.text_encoder(ids)[0])  # the pipeline's own encoding


def test_weighted_state_follows_a1111(sd1):
    plain = Encoder(sd1).encode("a photo of a cat")[0]
    weighted = Encoder(sd1).encode("a photo of a (cat:1.5)")[0]
    expected = plain.clone()
    expected[0, 5] *= 1.5
    expected *= plain.mean() / expected.mean()
    torch.testing.assert_close(weighted, expected)


def test_long_prompt_chunks_are_encoded_separately_and_concatenated(sd1):
    hidden = Encoder(sd1).encode(LONG)[0]
    assert hidden.shape[1] == 154
    second = torch.tensor([chunk_prompt(sd1.tokenizer, LONG).chunks[1].ids])
    torch.testing.assert_close(hidden[:, 77:], sd1.text_encoder(second)[0], atol=0, rtol=0)
    truncated = Encoder(sd1, "truncate").encode(LONG)[0]
    assert truncated.shape[1] == 77 and torch.equal(truncated, hidden[:, :77])
    two = Encoder(sd1).encode("a cat BREAK a dog")[0]
    assert torch.equal(two[:, :77], Encoder(sd1).encode("a cat")[0])
    assert torch.equal(two[:, 77:], Encoder(sd1).encode("a dog")[0])


def test_negative_prompt_is_padded_to_the_prompts_chunks(sd1):
    enc = Encoder(sd1)
    cond = enc.batch(LONG, [Row(7.5, "blurry"), Row(1.0)], 64, 64)
    assert cond.hidden.shape[:2] == (3, 154)
    assert torch.equal(cond.hidden[0, :77], enc.encode("blurry")[0][0])
    assert torch.equal(cond.hidden[0, 77:], enc.encode("")[0][0])  # the empty prompt's chunk


def test_long_prompt_runs_and_truncation_equals_diffusers(sd1):
    from tests.test_sampler import diffusers_pipe

    long = generate(sd1, SampleSettings(LONG, steps=3, seed=1, negative_prompt="blurry"))
    truncated = generate(sd1, SampleSettings(LONG, steps=3, seed=1, negative_prompt="blurry", long_prompt="truncate"))
    assert long.dropped_tokens == "" and truncated.dropped_tokens.endswith("zebra giraffe")
    assert not torch.allclose(long.latents, truncated.latents)
    ref = diffusers_pipe(sd1)(LONG, negative_prompt="blurry", num_inference_steps=3, output_type="latent",
                              generator=torch.Generator("cpu").manual_seed(1)).images
    torch.testing.assert_close(truncated.latents, ref, atol=1e-5, rtol=1e-5)


def test_weights_reach_the_batched_sweep(sd1_f64):
    rows = [Row(4.0, prompt="a photo of a (cat:1.4)"), Row(4.0, prompt="a photo of a cat")]
    grid = sample(sd1_f64, SampleSettings("unused", steps=3, seed=2), rows)
    single = generate(sd1_f64, SampleSettings("a photo of a (cat:1.4)", steps=3, seed=2, guidance_scale=4.0))
    torch.testing.assert_close(grid.latents[:1], single.latents, atol=1e-9, rtol=1e-9)
    assert not torch.allclose(grid.latents[0], grid.latents[1])


def test_sdxl_weights_and_chunks_in_both_encoders(sdxl):
    enc = Encoder(sdxl)
    plain, pooled = enc.encode("a photo of a cat")
    assert torch.equal(enc.encode("a photo of a (cat:1.0)")[0], plain)
    hidden, pooled_long = enc.encode(LONG)
    assert hidden.shape[1:] == (154, 48)  # 16 + 32 per token, two chunks
    assert torch.equal(pooled_long, Encoder(sdxl, "truncate").encode(LONG)[1])  # the first chunk's pooled output
    broken = enc.encode("a cat BREAK a dog")[0]
    assert torch.equal(broken[:, 77:], enc.encode("a dog")[0])
    cond = enc.batch(LONG, [Row(5.0)], 64, 64)  # empty negative: zeroed, at the prompt's length
    assert cond.hidden.shape[:2] == (2, 154) and not cond.hidden[0].any()
    result = generate(sdxl, SampleSettings(LONG + " (red:1.2)", steps=2, seed=3, guidance_scale=5.0))
    assert result.latents.shape[0] == 1 and torch.isfinite(result.latents).all()
