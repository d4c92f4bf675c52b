"Chapter 43's exercise checkers accept the reference answers and reject the mistakes each exercise is about."
import pytest
import torch
from course_lib.projects.lstm_classifier import check_encode_with_unk, check_pad_batch, check_f1_per_class


def assert_fails(capsys, result):
    assert result is False
    assert 'FAIL' in capsys.readouterr().out


def test_encode_with_unk_checker(capsys):
    assert check_encode_with_unk('Exercise 1', lambda tokens, stoi: [stoi.get(t, 1) for t in tokens]) is True
    assert_fails(capsys, check_encode_with_unk('Exercise 1', lambda tokens, stoi: [stoi[t] for t in tokens if t in stoi]))
    assert_fails(capsys, check_encode_with_unk('Exercise 1', lambda tokens, stoi: [stoi.get(t, 0) for t in tokens]))
    assert_fails(capsys, check_encode_with_unk('Exercise 1', lambda tokens, stoi: [stoi[t] for t in tokens]))   # KeyError


def pad_ref(seqs, pad_id=0):
    lengths = torch.tensor([len(s) for s in seqs])
    out = torch.full((len(seqs), int(lengths.max())), pad_id, dtype=torch.long)
    for i, s in enumerate(seqs): out[i, :len(s)] = s
    return out, lengths

def pad_left(seqs, pad_id=0):
    out, lengths = pad_ref(seqs, pad_id)
    for i, s in enumerate(seqs): out[i] = torch.cat([torch.full((out.shape[1] - len(s),), pad_id), s])
    return out, lengths

def pad_ignores_pad_id(seqs, pad_id=0): return pad_ref(seqs, 0)

def pad_padded_lengths(seqs, pad_id=0):
    out, _ = pad_ref(seqs, pad_id)
    return out, torch.full((len(seqs),), out.shape[1])

def test_pad_batch_checker(capsys):
    assert check_pad_batch('Exercise 2', pad_ref) is True
    for wrong in (pad_left, pad_ignores_pad_id, pad_padded_lengths):
        assert_fails(capsys, check_pad_batch('Exercise 2', wrong))


CM = torch.tensor([[5, 1, 0], [2, 7, 1], [0, 3, 4]])            # rows: true class, columns: predicted

def test_f1_checker(capsys):
    tp = CM.diag().double()
    assert check_f1_per_class('Exercise 3', 2 * tp / (CM.sum(0) + CM.sum(1)).double(), CM) is True
    assert_fails(capsys, check_f1_per_class('Exercise 3', tp / CM.sum(0).double(), CM))                 # precision
    assert_fails(capsys, check_f1_per_class('Exercise 3', tp / CM.sum(1).double(), CM))                 # recall
    assert_fails(capsys, check_f1_per_class('Exercise 3', tp / (CM.sum(0) + CM.sum(1) - tp).double(), CM))  # Jaccard
    macro = (2 * tp / (CM.sum(0) + CM.sum(1)).double()).mean()
    assert_fails(capsys, check_f1_per_class('Exercise 3', macro, CM))                                   # one number
