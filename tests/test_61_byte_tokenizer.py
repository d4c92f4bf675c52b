"Chapter 61: corpus loader, shop generator, byte-level BPE with special tokens, save/load, bits per byte."
import math, random, time
from collections import Counter
import pytest
import torch
from course_lib.llm import byte_tokenizer as B
from course_lib.algorithms.tokenization import train_bpe, merge_pair


@pytest.fixture(scope='module')
def tok():
    text = ' '.join(B.load_corpus('train', ['shop', 'chinese_poems', 'fortunes_en'], max_chars=40_000).values())
    return B.train_byte_bpe(text, 700)


def test_corpus_sources_and_split():
    for s in B.CORPUS_SOURCES:
        docs = B.load_documents(s)
        assert len(docs) >= 9 and all(d['text'] and d['title'] for d in docs)
        held = B.validation_indices(s, len(docs))
        assert held == B.validation_indices(s, len(docs)) and 1 <= len(held) <= len(docs) // 5 + 1
    train, valid = B.load_corpus('train', 'shakespeare'), B.load_corpus('validation', 'shakespeare')
    docs = B.load_documents('shakespeare')
    assert len(docs) == 9 and sum(len(d['text']) for d in docs) > 1_000_000
    held = B.validation_indices('shakespeare', 9)
    for i, d in enumerate(docs):                                   # held out by whole document
        assert (d['text'] in valid['shakespeare']) == (i in held) and (d['text'] in train['shakespeare']) == (i not in held)
    assert len(B.load_corpus('train', ['fortunes_zh'], max_chars=1000)['fortunes_zh']) == 1000
    with pytest.raises(ValueError, match='train'): B.load_corpus('test')
    with pytest.raises(ValueError, match='unknown corpus source'): B.load_documents('wikipedia')


def test_real_text_languages():
    en = B.load_corpus('train', ['gutenberg_en', 'fortunes_en'])
    zh = B.load_corpus('train', ['fortunes_zh'])['fortunes_zh']
    assert len(en['gutenberg_en']) > 3_000_000 and len(en['fortunes_en']) > 1_000_000
    assert sum('\u4e00' <= c <= '\u9fff' for c in zh) > 200_000


def test_shop_documents_deterministic_and_consistent():
    a, b = B.make_shop_documents(seed=3, n_orders=20), B.make_shop_documents(seed=3, n_orders=20)
    assert a == b and a != B.make_shop_documents(seed=4, n_orders=20)
    cat = B.make_shop_catalog(seed=3, n_orders=50)
    by_sku = {p['sku']: p for p in cat['products']}
    for o in cat['orders']:
        assert o['subtotal'] == sum(by_sku[s]['price'] * q for s, q in o['items'])
        assert o['shipping'] == (990 if o['express'] else 0 if o['subtotal'] > 4000 else 490)
        assert o['total'] == o['subtotal'] + o['shipping']
    assert sum(d['title'].startswith('policy/') for d in a) == 2 * 50
    assert any('Kettle & Leaf' in d['text'] for d in a)


def test_pre_tokenize_keeps_everything():
    for s in ['', 'x__init__', 'a  b\n\n c', '12.90 EUR', '茶' * 100, ' ' * 70, "it's 'll"]:
        assert ''.join(B.pre_tokenize(s)) == s
        assert all(len(p) <= B.MAX_PIECE_CHARS for p in B.pre_tokenize(s))
    assert B.pre_tokenize('123') == ['1', '2', '3']


def test_trainer_matches_chapter_32():
    text = ('the cat sat on the mat, the hat. ' * 30) + 'a bat ate the rat. ' * 20
    assert B.train_byte_bpe(text, 256 + 60 + len(B.SPECIAL_TOKENS)).merges == train_bpe(text, 256 + 60).merges


def test_trainer_against_naive_recount():
    text = "she sells sea shells by the sea shore; 茶叶茶壶茶杯 12 3_4 " * 5
    pieces = Counter(B.pre_tokenize(text))
    words = {w: list(w.encode()) for w in pieces}
    merges = {}
    for new_id in range(256, 256 + 40):                             # recount every pair after every merge
        counts = Counter()
        for w, ids in words.items():
            for p in zip(ids, ids[1:]): counts[p] += pieces[w]
        if not counts: break
        pair = max(counts, key=lambda p: (counts[p], -p[0], -p[1]))
        merges[pair] = new_id
        words = {w: merge_pair(ids, pair, new_id) for w, ids in words.items()}
    assert B.train_byte_bpe(text, 256 + 40 + len(B.SPECIAL_TOKENS)).merges == merges


def test_vocab_layout_and_special_tokens(tok):
    assert tok.vocab_size == 700 and len(tok.special_ids) == len(B.SPECIAL_TOKENS)
    assert min(tok.special_ids.values()) == 256 + len(tok.merges) and max(tok.special_ids.values()) == 699
    assert tok.bos_id == tok.special_ids['<|bos|>'] and tok.eos_id == tok.special_ids['<|eos|>']
    assert tok.pad_id == tok.special_ids['<|pad|>']
    text = 'hi ' + ''.join(B.SPECIAL_TOKENS) + ' <|assistant|>x<|end|>'
    ids = tok.encode(text)
    assert not set(ids) & set(tok.special_tokens) and tok.decode(ids) == text
    assert tok.encode(text, allowed_special={'<|end|>'}).count(tok.special_ids['<|end|>']) == 2
    assert not set(tok.encode(text, allowed_special={'<|end|>'})) & (set(tok.special_tokens) - {tok.special_ids['<|end|>']})
    all_ids = tok.encode(text, allowed_special='all')
    assert all_ids.count(tok.special_ids['<|assistant|>']) == 2 and tok.decode(all_ids) == text
    with pytest.raises(ValueError, match='unknown special'): tok.encode('x', allowed_special={'<|nope|>'})
    with pytest.raises(ValueError, match='not in this tokenizer'): tok.decode([700])
    with pytest.raises(TypeError, match='str'): tok.encode(b'bytes')
    with pytest.raises(ValueError, match='at least'): B.train_byte_bpe('abc', 260)


def test_no_text_produces_a_special_id(tok):
    rng = random.Random(0)
    pieces = list(B.SPECIAL_TOKENS) + ['<|', '|>', '<', '|', '>', 'a', '茶', ' ']
    for _ in range(300):
        s = ''.join(rng.choice(pieces) for _ in range(rng.randrange(1, 12)))
        assert max(tok.encode(s)) < min(tok.special_tokens)


def test_roundtrip_every_code_point(tok):
    t0 = time.perf_counter()
    chars = ''.join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    assert len(chars) == 0x110000 - 2048
    chunks = [chars[i:i + 4096] for i in range(0, len(chars), 4096)]
    assert B.roundtrip_failures(tok, chunks) == 0
    assert time.perf_counter() - t0 < 60


def test_roundtrip_random_and_mixed(tok):
    texts = B.random_texts(500, seed=1) + ['Dragon Well (龙井) 12.90 EUR 🍵', 'e\u0301\u200b\U0010FFFF\x00', '', '\r\n\t ']
    assert B.roundtrip_failures(tok, texts) == 0
    for t in texts: assert tok.decode(tok.encode(t), errors='strict') == t
    rng = random.Random(2)
    for _ in range(200):                                           # random code points, surrogates excluded
        s = ''.join(chr(rng.choice([rng.randrange(0xD800), rng.randrange(0xE000, 0x110000)])) for _ in range(20))
        assert tok.decode(tok.encode(s)) == s


def test_decode_partial_character(tok):
    ids = list('茶'.encode())[:2]
    assert tok.decode(ids) == '\ufffd' and tok.decode_bytes(ids) == '茶'.encode()[:2]
    with pytest.raises(UnicodeDecodeError): tok.decode(ids, errors='strict')


def test_save_load_json(tok, tmp_path):
    path = tok.save(tmp_path / 'tok.json')
    assert path.read_text().startswith('{')
    tok2 = B.ByteTokenizer.load(path)
    text = B.load_corpus('validation', ['shop', 'fortunes_zh'], max_chars=3000)
    for t in text.values(): assert tok2.encode(t) == tok.encode(t)
    assert tok2.special_ids == tok.special_ids and tok2.vocab_size == tok.vocab_size
    bad = tmp_path / 'bad.json'; bad.write_text('{"format": "other"}')
    with pytest.raises(ValueError, match='not a ByteTokenizer'): B.ByteTokenizer.load(bad)
    import json
    state = json.loads(path.read_text()); state['pattern'] = 'x'; bad.write_text(json.dumps(state))
    with pytest.raises(ValueError, match='different pre-tokenizer'): B.ByteTokenizer.load(bad)


def test_custom_special_tokens():
    t = B.train_byte_bpe('abc abc', 256 + 3 + 2, special_tokens=('<s>', '</s>'))
    assert t.special_ids == {'<s>': 259, '</s>': 260} and t.encode('<s>') != [259]
    assert t.encode('<s>x</s>', allowed_special='all') == [259, 120, 260]
    with pytest.raises(ValueError, match='distinct'): B.ByteTokenizer({}, ('<a>', '<a>'))


def test_encoding_speed(tok):
    text = B.load_corpus('validation', ['fortunes_en', 'fortunes_zh'])
    fresh = B.ByteTokenizer(tok.merges)
    t0 = time.perf_counter()
    for t in text.values(): fresh.encode(t)
    assert time.perf_counter() - t0 < 20


def test_compression_and_hf(tok):
    text = B.load_corpus('validation', ['fortunes_en'], max_chars=20_000)['fortunes_en']
    s = B.compression_stats(tok.encode, text)
    assert s['bytes_per_token'] > 1.5 and math.isclose(s['tokens_per_char'], s['tokens'] / len(text))
    with pytest.raises(ValueError, match='no tokens'): B.compression_stats(tok.encode, '')


def test_bits_per_byte():
    assert math.isclose(B.bits_per_byte(math.log(256), 5, 5), 8.0)
    assert math.isclose(B.bits_per_byte(2.0, 100, 100), 2 / math.log(2))
    assert math.isclose(B.bits_per_byte(4.0, 50, 200), 1.0 / math.log(2))
    with pytest.raises(ValueError, match='positive'): B.bits_per_byte(1.0, 10, 0)


def test_bigram_loss():
    ids = [0, 1] * 200
    assert B.bigram_loss(ids, ids, 2) < 0.01                          # a perfectly predictable sequence
    uni = B.bigram_loss([0, 1, 2, 3] * 50, [3, 3, 3, 3], 4, mix=1e9)  # huge mix -> unigram ~ 1/4
    assert abs(uni - math.log(4)) < 0.01
    with pytest.raises(ValueError): B.bigram_loss([1], [1, 2], 4)


def test_train_course_tokenizer_small():
    t = B.train_course_tokenizer(vocab_size=400, max_chars_per_source=5000)
    assert t.vocab_size == 400 and t.decode(t.encode('茶 tea')) == '茶 tea'


def test_corpus_bytes_is_the_utf8_of_load_corpus():
    from course_lib.llm.byte_tokenizer import corpus_bytes, load_corpus
    ids = corpus_bytes('validation', sources=['shop', 'fortunes_zh'], max_bytes_per_source=500)
    texts = load_corpus('validation', sources=['shop', 'fortunes_zh'])
    expect = texts['shop'].encode()[:500] + b'\n\n' + texts['fortunes_zh'].encode()[:500]
    assert ids.dtype == torch.long and bytes(ids.tolist()) == expect
    assert len(corpus_bytes('validation', sources='shop')) == len(texts['shop'].encode())
