"Tests for course_lib.algorithms.tokenization: BPE from scratch, the tokenizers comparison helpers, word2vec pieces."
import math
import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close
from course_lib.algorithms.tokenization import (pre_tokenize, pair_counts, merge_pair, BPETokenizer, train_bpe, train_hf_bpe,
                                     chars_per_token, noise_distribution, sgns_loss, SkipGram, skipgram_pairs,
                                     nearest_words)

TEXT = ("the cat sat on the mat. the cat ate the rat! 42 cats can't stop; " * 30) + "你好，世界。你好。"


def test_pre_tokenize_keeps_leading_spaces_and_splits():
    assert pre_tokenize("Hello world, it's 2024!") == ['Hello', ' world', ',', ' it', "'s", ' 2024', '!']
    assert ''.join(pre_tokenize(TEXT)) == TEXT


def test_pair_counts_and_merge():
    assert pair_counts([1, 2, 1, 2, 3]) == {(1, 2): 2, (2, 1): 1, (2, 3): 1}
    assert merge_pair([1, 2, 1, 2, 3], (1, 2), 9) == [9, 9, 3]
    assert merge_pair([5, 5, 5], (5, 5), 7) == [7, 5]
    assert merge_pair([], (1, 2), 3) == [] and merge_pair([1], (1, 2), 3) == [1]


def test_train_bpe_roundtrip_and_sizes():
    tok = train_bpe(TEXT, 280)
    assert tok.vocab_size == 280 and len(tok.merges) == 24
    for s in (TEXT, 'completely unseen: Zebra ünïcödé 大模型 🙂', ''):
        assert tok.decode(tok.encode(s)) == s
    assert len(tok.encode(' the cat')) == 2                      # frequent words became single tokens
    assert len(tok.token_bytes(256)) == 2 and all(len(tok.token_bytes(i)) >= 2 for i in range(256, 280))
    assert 'vocab_size=280' in repr(tok)
    with pytest.raises(ValueError, match='at least 256'): train_bpe(TEXT, 100)
    with pytest.raises(ValueError, match='not in this tokenizer'): tok.decode([5000])


def test_train_bpe_stops_when_nothing_left_to_merge():
    tok = train_bpe('ab ab ab', 1000)
    assert tok.vocab_size < 1000 and tok.encode('ab ab') == [tok.encode('ab')[0], tok.encode(' ab')[0]]


def test_bytes_only_tokenizer():
    t = BPETokenizer({})
    assert t.encode('大') == list('大'.encode('utf-8')) and t.vocab_size == 256
    assert t.decode([0xe5]) == '\ufffd'                            # half a character: replacement, no crash


def test_matches_tokenizers_library():
    ours, hf = train_bpe(TEXT, 290), train_hf_bpe(TEXT, 290)
    assert hf.get_vocab_size() == 290
    a, b = chars_per_token(ours.encode, TEXT), chars_per_token(lambda s: hf.encode(s).ids, TEXT)
    assert abs(a / b - 1) < 0.05
    with pytest.raises(ValueError, match='no tokens'): chars_per_token(ours.encode, '')


def test_noise_distribution():
    p = noise_distribution(torch.tensor([16.0, 1.0, 0.0]))
    assert_close(p, torch.tensor([8.0, 1.0, 0.0]) / 9)
    with pytest.raises(ValueError, match='non-negative'): noise_distribution(torch.tensor([-1.0, 2.0]))


def test_sgns_loss_is_bce():
    s = torch.randn(4, 3)
    target = torch.tensor([[1.0, 0, 0]] * 4)
    assert_close(sgns_loss(s, None), F.binary_cross_entropy_with_logits(s, target, reduction='none').sum(1).mean())


def test_skipgram_shapes_and_start_loss():
    torch.manual_seed(0)
    sg = SkipGram(10, 8, torch.ones(10) / 10, n_neg=4)
    scores = sg(torch.tensor([[1, 2], [3, 4], [5, 6]]))
    assert scores.shape == (3, 5) and (scores == 0).all()         # output vectors start at zero, as in word2vec
    assert_close(sgns_loss(scores), torch.tensor(5 * math.log(2)))
    with pytest.raises(ValueError, match='distribution over the 10'): SkipGram(10, 8, torch.ones(9) / 9)


def test_skipgram_pairs():
    p = skipgram_pairs(torch.tensor([0, 1, 2, 3]), window=1)
    assert sorted(map(tuple, p.tolist())) == sorted([(1, 0), (2, 1), (3, 2), (0, 1), (1, 2), (2, 3)])
    assert len(skipgram_pairs(torch.arange(10), 2)) == 2 * (9 + 8)
    with pytest.raises(ValueError, match='window'): skipgram_pairs(torch.arange(5), 0)


def test_nearest_words():
    emb = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [-1.0, 0.0]])
    words = ['a', 'b', 'c', 'd']
    near = nearest_words(emb, words, 'a', k=2)
    assert [w for w, _ in near] == ['b', 'c'] and near[0][1] == pytest.approx(0.9 / math.hypot(0.9, 0.1))
    with pytest.raises(KeyError, match='not in the vocabulary'): nearest_words(emb, words, 'z')


def test_word2vec_learns_cooccurrence():
    torch.manual_seed(0)
    # two "topics": words 0-4 only appear together, words 5-9 only appear together
    seq = torch.cat([torch.randint(0, 5, (2000,)) if i % 2 == 0 else torch.randint(5, 10, (2000,)) for i in range(10)])
    pairs = skipgram_pairs(seq, 2)
    sg = SkipGram(10, 8, noise_distribution(torch.bincount(seq, minlength=10).float()), n_neg=3)
    opt = torch.optim.Adam(sg.parameters(), lr=0.05)
    for _ in range(300):
        idx = torch.randint(0, len(pairs), (256,))
        loss = sgns_loss(sg(pairs[idx])); opt.zero_grad(); loss.backward(); opt.step()
    words = [str(i) for i in range(10)]
    assert all(int(w) < 5 for w, _ in nearest_words(sg.inp.weight.detach(), words, '0', k=3))


ALL_CHARS = ''.join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)


def test_underscore_survives():
    tok = train_bpe(TEXT + ' __init__ snake_case', 300)
    for s in ('x__init__', '_', '__', 'a_b c_d', ' _x', '_\n_'):
        assert ''.join(pre_tokenize(s)) == s
        assert tok.decode(tok.encode(s)) == s


def test_pre_tokenize_keeps_every_code_point():
    for i in range(0, len(ALL_CHARS), 65536):
        chunk = ALL_CHARS[i:i + 65536]
        assert ''.join(pre_tokenize(chunk)) == chunk, f'characters lost in U+{ord(chunk[0]):04X}..'


def test_roundtrip_every_code_point_in_chunks():
    for tok in (BPETokenizer({}), train_bpe(TEXT, 300)):
        for i in range(0, len(ALL_CHARS), 4096):
            chunk = ALL_CHARS[i:i + 4096]
            assert tok.decode(tok.encode(chunk)) == chunk, f'round trip fails in U+{ord(chunk[0]):04X}..'


def test_roundtrip_random_strings():
    import random
    rng = random.Random(0)
    tok = train_bpe(TEXT, 300)
    pools = [ALL_CHARS, ' _\n\t.,;:!?\'"-_0123456789abcXYZ', '你好世界_ é🙂 ']
    for _ in range(300):
        s = ''.join(rng.choice(rng.choice(pools)) for _ in range(rng.randint(0, 40)))
        assert tok.decode(tok.encode(s)) == s, repr(s)


def test_naive_and_incremental_training_learn_the_same_merges():
    from course_lib.algorithms.tokenization import train_bpe_naive
    for text, V in ((TEXT, 300), ('low low low lower lowest newest newest', 262), ('aaaa b_b_b __x__', 270)):
        assert train_bpe_naive(text, V).merges == train_bpe(text, V).merges
    toy = train_bpe('low low low lower lowest newest newest', 262)
    assert [toy.token_bytes(i) for i in (256, 257)] == [b'lo', b'low']          # the tie lo/ow goes to the smaller ids
    with pytest.raises(ValueError, match='at least 256'): train_bpe_naive(TEXT, 10)
