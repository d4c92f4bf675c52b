"Exercise checkers of chapter 65: the reference answer passes, the mistake each exercise is about is rejected."
import pytest
import torch
from course_lib.llm import chat_sft as S
from course_lib.llm.byte_tokenizer import train_byte_bpe
from exercise_helpers import passes, fails


@pytest.fixture(scope='module')
def tok():
    return train_byte_bpe('How much is Keemun? It costs 8.90 EUR. ignore this yes ' * 10, 300)


def test_strict_mode_raises(monkeypatch):
    monkeypatch.setenv('COURSE_STRICT_CHECKS', '1')
    with pytest.raises(AssertionError):
        S.check_sft_labels('Exercise 1', lambda ids, mask: ids)


def test_ex1_sft_labels(capsys):
    passes(capsys, S.check_sft_labels('Exercise 1', lambda ids, m: [t if k else -100 for t, k in zip(ids, m)]))
    passes(capsys, S.check_sft_labels('Exercise 1', lambda ids, m: torch.where(torch.tensor(m).bool(), torch.tensor(ids), -100)))
    fails(capsys, S.check_sft_labels('Exercise 1', lambda ids, m: list(ids)))                              # no mask
    fails(capsys, S.check_sft_labels('Exercise 1', lambda ids, m: [-100 if k else t for t, k in zip(ids, m)]))  # inverted
    fails(capsys, S.check_sft_labels('Exercise 1', lambda ids, m: [t if k else -100 for t, k in zip(ids[1:], m)] + [-100]))  # shifted
    fails(capsys, S.check_sft_labels('Exercise 1', lambda ids, m: [t if k else 0 for t, k in zip(ids, m)]))     # 0 is a token
    fails(capsys, S.check_sft_labels('Exercise 1', lambda ids, m: 1 / 0))


def test_ex2_render_turn(capsys, tok):
    sp = tok.special_ids
    good = lambda t, role, text: [t.special_ids[f'<|{role}|>']] + t.encode_ordinary(text) + [t.special_ids['<|end|>']]
    passes(capsys, S.check_render_turn('Exercise 2', good, tok))
    fails(capsys, S.check_render_turn('Exercise 2', lambda t, role, text:                      # typed specials become tokens
                                      [sp[f'<|{role}|>']] + t.encode(text, allowed_special='all') + [sp['<|end|>']], tok))
    fails(capsys, S.check_render_turn('Exercise 2', lambda t, role, text: [sp[f'<|{role}|>']] + t.encode_ordinary(text), tok))  # no end
    fails(capsys, S.check_render_turn('Exercise 2', lambda t, role, text: t.encode_ordinary(text) + [sp['<|end|>']], tok))     # no role
    fails(capsys, S.check_render_turn('Exercise 2', lambda t, role, text: [sp['<|user|>']] + t.encode_ordinary(text) + [sp['<|end|>']], tok))
    fails(capsys, S.check_render_turn('Exercise 2', lambda t, role, text: 1 / 0, tok))


def test_ex3_well_formed(capsys, tok):
    specials = set(tok.special_ids.values())
    good = lambda c, t: c.finish_reason == 'stop' and bool(c.tokens) and not specials & set(c.tokens)
    passes(capsys, S.check_well_formed('Exercise 3', good, tok))
    fails(capsys, S.check_well_formed('Exercise 3', lambda c, t: bool(c.tokens) and not specials & set(c.tokens), tok))  # length ok
    fails(capsys, S.check_well_formed('Exercise 3', lambda c, t: c.finish_reason == 'stop', tok))          # empty, specials
    fails(capsys, S.check_well_formed('Exercise 3', lambda c, t: c.finish_reason == 'stop' and bool(c.tokens), tok))  # specials
    fails(capsys, S.check_well_formed('Exercise 3', lambda c, t: 1 / 0, tok))
