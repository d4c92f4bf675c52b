"Exercise checkers of chapter 32: the reference answer passes, the mistake each exercise is about is rejected."
from collections import Counter
import pytest
import torch
import torch.nn.functional as F
from course_lib.algorithms import tokenization as T


def passes(capsys, ok):
    out = capsys.readouterr().out
    assert ok is True and 'PASS' in out, out


def fails(capsys, ok):
    out = capsys.readouterr().out
    assert ok is False and 'FAIL' in out and 'hint' in out, out


def test_ex1_most_frequent_pair(capsys):
    passes(capsys, T.check_most_frequent_pair('Exercise 1', lambda ids: max(T.pair_counts(ids).items(), key=lambda kv: kv[1])[0]))
    fails(capsys, T.check_most_frequent_pair('Exercise 1', lambda ids: Counter(ids).most_common(1)[0][0]))  # a token, not a pair
    fails(capsys, T.check_most_frequent_pair('Exercise 1',                                            # pairs at even offsets only
                                             lambda ids: Counter(zip(ids[::2], ids[1::2])).most_common(1)[0][0]))
    fails(capsys, T.check_most_frequent_pair('Exercise 1', lambda ids: max(T.pair_counts(ids).items(), key=lambda kv: kv[1])[1]))  # the count


def test_ex2_merge_result(capsys):
    passes(capsys, T.check_merge_result('Exercise 2', [256, 97, 98]))
    fails(capsys, T.check_merge_result('Exercise 2', [256, 256, 98]))    # overlapping merges
    fails(capsys, T.check_merge_result('Exercise 2', [97, 256, 98]))     # right to left


def test_ex3_byte_tokens(capsys):
    passes(capsys, T.check_byte_tokens('Exercise 3', len('大模型'.encode('utf-8'))))
    fails(capsys, T.check_byte_tokens('Exercise 3', len('大模型')))        # characters, not bytes


def test_ex4_sgns_one(capsys):
    passes(capsys, T.check_sgns_one('Exercise 4', lambda v, up, un: -(F.logsigmoid(up @ v) + F.logsigmoid(-(un @ v)).sum())))
    fails(capsys, T.check_sgns_one('Exercise 4', lambda v, up, un: -(F.logsigmoid(up @ v) + F.logsigmoid(un @ v).sum())))  # sign
    fails(capsys, T.check_sgns_one('Exercise 4', lambda v, up, un: -(F.logsigmoid(up @ v) + F.logsigmoid(-(un @ v)).mean())))  # mean over K
