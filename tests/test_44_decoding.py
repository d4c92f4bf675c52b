"""Tests for course_lib.projects.text_generation: logits filters, decoding loops, scoring, the text interface and load_lm."""
import math
import pytest, torch, torch.nn.functional as F
from torch.testing import assert_close
from transformers import GPT2LMHeadModel
from transformers.generation.logits_process import (TopKLogitsWarper, TopPLogitsWarper, TemperatureLogitsWarper,
                                                    RepetitionPenaltyLogitsProcessor)
from course_lib.algorithms.pretraining_gpt import CharTokenizer, gpt_config, save_gpt
from course_lib.projects.text_generation import (ModelNotFoundError, load_lm, context_length, next_token_logits, greedy_decode,
                                 apply_temperature, top_k_filter, top_p_filter, apply_repetition_penalty,
                                 process_logits, sample_decode, beam_search, token_logprobs, distinct_n,
                                 tokenizer_vocab_size, continue_text, STRATEGY_NAMES)

TEXT = "To be, or not to be: that is the question.\n"


def tiny_model(vocab_size, block_size=16, pad_vocab=False, seed=0):
    torch.manual_seed(seed)
    return GPT2LMHeadModel(gpt_config(vocab_size, n_layer=1, n_head=2, n_embd=16, block_size=block_size,
                                      pad_vocab=pad_vocab)).eval()


@pytest.fixture
def lm():
    tok = CharTokenizer.from_text(TEXT)
    return tiny_model(tok.vocab_size), tok


def hf(model, ids, **kw):
    if kw.get('do_sample'): kw.setdefault('top_k', 0)
    return model.generate(ids, attention_mask=torch.ones_like(ids), pad_token_id=None, **kw)


Z = torch.randn(5, 40, generator=torch.Generator().manual_seed(1)) * 3
DUMMY = torch.zeros(5, 1, dtype=torch.long)


def test_temperature_matches_transformers_and_limits():
    for T in (0.3, 1.0, 2.5):
        assert_close(apply_temperature(Z, T), TemperatureLogitsWarper(T)(DUMMY, Z.clone()))
    assert F.softmax(apply_temperature(Z, 1e-4), -1).max(-1).values.min() > 0.99
    with pytest.raises(ValueError, match='greedy'):
        apply_temperature(Z, 0)


def test_top_k_matches_transformers_and_keeps_ties():
    for k in (1, 3, 40, 100):
        assert_close(top_k_filter(Z, k), TopKLogitsWarper(top_k=k)(DUMMY, Z.clone()))
    ties = torch.tensor([[1.0, 3.0, 3.0, 0.0]])
    assert top_k_filter(ties, 1).isfinite().tolist() == [[False, True, True, False]]
    with pytest.raises(ValueError):
        top_k_filter(Z, 0)


def test_top_p_matches_transformers_and_keeps_the_nucleus():
    for p in (0.05, 0.3, 0.8, 0.95, 1.0):
        ours, theirs = top_p_filter(Z, p), TopPLogitsWarper(top_p=p)(DUMMY, Z.clone())
        assert torch.equal(ours.isinf(), theirs.isinf())
        assert_close(ours, theirs)
        assert (ours.isfinite().sum(-1) >= 1).all()
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    assert top_p_filter(probs, 0.7).isfinite().tolist() == [[True, True, False, False]]
    assert top_p_filter(probs, 0.5).isfinite().tolist() == [[True, False, False, False]]
    with pytest.raises(ValueError):
        top_p_filter(Z, 0)


def test_repetition_penalty_ctrl_form():
    hist = torch.randint(0, 40, (5, 9), generator=torch.Generator().manual_seed(2))
    for theta in (1.0, 1.3, 3.0):
        assert_close(apply_repetition_penalty(Z, hist, theta), RepetitionPenaltyLogitsProcessor(theta)(hist, Z.clone()))
    out = apply_repetition_penalty(torch.tensor([[2.0, -2.0, 1.0]]), torch.tensor([[0, 1, 1, 0]]), 2.0)
    assert out.tolist() == [[1.0, -4.0, 1.0]]                     # each token penalized once, by sign
    with pytest.raises(ValueError):
        apply_repetition_penalty(Z, hist, 0.0)


def test_process_logits_order_and_identity():
    hist = torch.randint(0, 40, (5, 4))
    assert torch.equal(process_logits(Z, hist), Z)
    expected = top_p_filter(top_k_filter(apply_temperature(apply_repetition_penalty(Z, hist, 1.2), 0.7), 10), 0.9)
    assert_close(process_logits(Z, hist, 0.7, 10, 0.9, 1.2), expected)


def test_context_and_next_token_logits(lm):
    model, tok = lm
    assert context_length(model) == 16
    ids = torch.tensor([tok.encode(TEXT[:30])])
    lg = next_token_logits(model, ids)
    assert lg.shape == (1, tok.vocab_size) and lg.dtype == torch.float32
    assert_close(lg, model(ids[:, -16:]).logits[:, -1])          # cropped to the context


def test_next_token_logits_drops_vocab_padding():
    tok = CharTokenizer.from_text(TEXT)
    model = tiny_model(tok.vocab_size, pad_vocab=True)
    assert model.config.vocab_size == 64 > tok.vocab_size
    ids = torch.tensor([tok.encode('To be')])
    assert next_token_logits(model, ids, tok.vocab_size).shape == (1, tok.vocab_size)
    out = greedy_decode(model, ids, 20, vocab_size=tok.vocab_size)
    assert int(out.max()) < tok.vocab_size
    tok.decode(out[0])                                           # every id decodes


def test_greedy_matches_generate(lm):
    model, tok = lm
    ids = torch.tensor([tok.encode('To be')])
    n = 16 - ids.shape[1]
    assert torch.equal(greedy_decode(model, ids, n), hf(model, ids, do_sample=False, max_new_tokens=n))
    assert torch.equal(greedy_decode(model, ids, n, repetition_penalty=1.5),
                       hf(model, ids, do_sample=False, max_new_tokens=n, repetition_penalty=1.5))
    long = greedy_decode(model, ids, 40)                         # past the context: cropped, no error
    assert long.shape == (1, ids.shape[1] + 40)


def test_sampling_reproducible_and_matches_generate(lm):
    model, tok = lm
    ids = torch.tensor([tok.encode('To be')])
    a = sample_decode(model, ids, 10, temperature=0.9, top_k=5, seed=4)
    assert torch.equal(a, sample_decode(model, ids, 10, temperature=0.9, top_k=5, seed=4))
    assert a.shape == (1, ids.shape[1] + 10) and torch.equal(a[:, :ids.shape[1]], ids)
    kw = dict(temperature=0.8, top_k=8, top_p=0.9, repetition_penalty=1.2)
    torch.manual_seed(5); ours = sample_decode(model, ids, 10, seed=None, **kw)
    torch.manual_seed(5); theirs = hf(model, ids, do_sample=True, max_new_tokens=10, **kw)
    assert torch.equal(ours, theirs)
    top1 = sample_decode(model, ids, 10, top_k=1, seed=0)        # top-1 sampling is greedy
    assert torch.equal(top1, greedy_decode(model, ids, 10))


def test_beam_search_matches_generate(lm):
    model, tok = lm
    ids = torch.tensor([tok.encode('To be')])
    n = 16 - ids.shape[1]
    assert torch.equal(beam_search(model, ids, 1, n)[0], greedy_decode(model, ids, n))
    for B, alpha in [(3, 1.0), (3, 0.0), (5, 2.0)]:
        seq, score = beam_search(model, ids, B, n, length_penalty=alpha)
        out = hf(model, ids, do_sample=False, num_beams=B, max_new_tokens=n, length_penalty=alpha,
                 return_dict_in_generate=True, output_scores=True)
        assert torch.equal(seq, out.sequences[:1])
        assert math.isclose(score, out.sequences_scores[0].item(), rel_tol=1e-4, abs_tol=1e-4)
        total = token_logprobs(model, seq, start=ids.shape[1]).sum().item()
        assert math.isclose(score, total / n ** alpha, rel_tol=1e-4, abs_tol=1e-4)
    with pytest.raises(ValueError):
        beam_search(model, ids.repeat(2, 1), 2, 3)


def test_token_logprobs_one_pass_and_sliding(lm):
    model, tok = lm
    ids = torch.tensor([tok.encode(TEXT[:12])])
    lp = token_logprobs(model, ids, start=3)
    ref = -F.cross_entropy(model(ids).logits[0, 2:-1], ids[0, 3:], reduction='none')
    assert_close(lp, ref)
    long = torch.tensor([tok.encode(TEXT[:30])])                 # longer than the 16-token context
    lp = token_logprobs(model, long, start=1)
    assert lp.shape == (29,) and (lp <= 0).all()
    t = 20
    window = F.log_softmax(model(long[:, t - 16:t]).logits[0, -1], -1)[long[0, t]]
    assert_close(lp[t - 1], window)
    with pytest.raises(ValueError):
        token_logprobs(model, ids, start=0)


def test_distinct_n():
    assert distinct_n('abab', 2) == 2 / 3
    assert distinct_n('the the the'.split(), 1) == 1 / 3
    assert distinct_n(torch.tensor([1, 2, 3, 4]), 2) == 1.0
    assert math.isnan(distinct_n(['one'], 2))
    with pytest.raises(ValueError):
        distinct_n('abc', 0)


def test_continue_text_strategies(lm):
    model, tok = lm
    model.train()
    for strategy in STRATEGY_NAMES:
        text = continue_text(model, tok, 'To be', 12, strategy, top_p=0.9, seed=1)
        assert isinstance(text, str) and len(text) == 12 and set(text) <= set(tok.chars)
    assert model.training                                        # mode restored
    assert continue_text(model, tok, 'To be', 8, 'sample', seed=3) == continue_text(model, tok, 'To be', 8, 'sample', seed=3)
    assert continue_text(model, tok, 'To be', 8) == tok.decode(greedy_decode(model.eval(), torch.tensor([tok.encode('To be')]), 8)[0, 5:])
    assert tokenizer_vocab_size(tok) == tok.vocab_size
    with pytest.raises(ValueError, match='strategy'):
        continue_text(model, tok, 'To be', 5, 'nucleus')
    with pytest.raises(ValueError):
        continue_text(model, tok, '', 5)


def test_load_lm_local_folder(lm, tmp_path):
    model, tok = lm
    save_gpt(model, tok, tmp_path / 'gpt')
    m2, t2 = load_lm(tmp_path / 'gpt')
    assert isinstance(t2, CharTokenizer) and t2.chars == tok.chars and not m2.training
    ids = torch.tensor([tok.encode('To be')])
    assert_close(m2(ids).logits, model(ids).logits)
    m3, _ = load_lm(str(tmp_path / 'gpt'))
    assert_close(m3(ids).logits, model(ids).logits)


def test_load_lm_missing_hub_name_offline():
    with pytest.raises(ModelNotFoundError, match='Fix') as e:
        load_lm('no-such-user/no-such-model-44', local_files_only=True)
    assert 'no-such-user/no-such-model-44' in str(e.value)
    assert isinstance(e.value, OSError)


def test_load_lm_transformers_format_folder(tmp_path):
    from transformers import PreTrainedTokenizerFast
    from course_lib.algorithms.tokenization import train_hf_bpe
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=train_hf_bpe(TEXT * 20, 300))
    model = tiny_model(len(hf_tok))
    model.save_pretrained(tmp_path / 'hf'); hf_tok.save_pretrained(tmp_path / 'hf')
    m2, t2 = load_lm(tmp_path / 'hf')
    assert not m2.training and tokenizer_vocab_size(t2) == len(hf_tok)
    ids = torch.tensor([t2.encode('To be')])
    assert_close(m2(ids).logits, model(ids).logits)
    for strategy in STRATEGY_NAMES:
        assert isinstance(continue_text(m2, t2, 'To be', 5, strategy), str)
