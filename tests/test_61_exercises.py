"Exercise checkers of chapter 61: the reference answer passes, the mistake each exercise is about is rejected."
import math
from collections import Counter
import pytest
from course_lib.llm import byte_tokenizer as B


def passes(capsys, ok):
    out = capsys.readouterr().out
    assert ok is True and 'PASS' in out, out


def fails(capsys, ok):
    out = capsys.readouterr().out
    assert ok is False and 'FAIL' in out and 'hint' in out, out


def test_ex1_user_turn(capsys):
    def right(tk, text):
        s = tk.special_ids
        return [s['<|user|>']] + tk.encode(text) + [s['<|end|>'], s['<|assistant|>']]
    passes(capsys, B.check_user_turn('Exercise 1', right))
    fails(capsys, B.check_user_turn('Exercise 1',                     # string template, specials allowed: injection
                                    lambda tk, t: tk.encode('<|user|>' + t + '<|end|><|assistant|>', allowed_special='all')))
    fails(capsys, B.check_user_turn('Exercise 1',                     # the markers as plain text: no special ids at all
                                    lambda tk, t: tk.encode('<|user|>' + t + '<|end|><|assistant|>')))
    fails(capsys, B.check_user_turn('Exercise 1', lambda tk, t: right(tk, t)[:-1]))   # forgot <|assistant|>


def test_ex2_bits_per_byte(capsys):
    passes(capsys, B.check_text_bpb('Exercise 2', lambda t, l, enc: l * len(enc(t)) / (math.log(2) * len(t.encode()))))
    fails(capsys, B.check_text_bpb('Exercise 2', lambda t, l, enc: l / math.log(2)))                     # per token
    fails(capsys, B.check_text_bpb('Exercise 2', lambda t, l, enc: l * len(enc(t)) / (math.log(2) * len(t))))   # per char
    fails(capsys, B.check_text_bpb('Exercise 2', lambda t, l, enc: l * len(enc(t)) / len(t.encode())))   # nats, not bits
    fails(capsys, B.check_text_bpb('Exercise 2', lambda t, l, enc: 1 / 0))


def test_ex3_training_pairs(capsys):
    def right(text):
        c = Counter()
        for p in B.pre_tokenize(text):
            b = p.encode(); c.update(zip(b, b[1:]))
        return c
    passes(capsys, B.check_training_pairs('Exercise 3', right))
    fails(capsys, B.check_training_pairs('Exercise 3', lambda t: Counter(zip(t.encode(), t.encode()[1:]))))  # across pieces
    fails(capsys, B.check_training_pairs('Exercise 3',                                                      # characters, not bytes
                                         lambda t: Counter(p for w in B.pre_tokenize(t) for p in zip(map(ord, w), map(ord, w[1:])))))
    fails(capsys, B.check_training_pairs('Exercise 3', lambda t: Counter(B.pre_tokenize(t))))               # pieces, not pairs


def test_ex4_roundtrip_counter(capsys):
    passes(capsys, B.check_roundtrip_counter('Exercise 4',
                                             lambda tk, ts: sum(tk.decode_bytes(tk.encode(t)) != t.encode() for t in ts)))
    fails(capsys, B.check_roundtrip_counter('Exercise 4',                           # errors='ignore' hides the stray byte
                                            lambda tk, ts: sum(tk.decode_bytes(tk.encode(t)).decode('utf-8', 'ignore') != t for t in ts)))
    fails(capsys, B.check_roundtrip_counter('Exercise 4', lambda tk, ts: 0))        # assumes every tokenizer is lossless
    fails(capsys, B.check_roundtrip_counter('Exercise 4',                           # counts successes
                                            lambda tk, ts: sum(tk.decode_bytes(tk.encode(t)) == t.encode() for t in ts)))
