"""Chapter 10's exercise checkers (course_lib.concepts.large_models.check_*): each passes the reference answer and
rejects the mistakes the exercise is about, printing FAIL with a hint and returning False when checks are not strict."""
import math
import pytest
from course_lib.concepts.large_models import (load_timeline, check_gpt3_flops, check_doubling_months,
                                              check_chinchilla_ratio, check_llama_memory)


@pytest.fixture(scope='module')
def rows():
    return load_timeline().set_index('name')


def rejected(capsys, result):
    out = capsys.readouterr().out
    return result is False and 'FAIL' in out and 'hint' in out


def test_ex1_gpt3_flops(rows, capsys):
    n, d = rows.loc['GPT-3', 'parameters'], rows.loc['GPT-3', 'training_tokens']
    assert check_gpt3_flops('Exercise 1', 6 * n * d) is True
    assert 'PASS' in capsys.readouterr().out
    for wrong in (2 * n * d,          # forward pass only: forgets the backward pass
                  4 * n * d,          # backward pass only
                  n * d):             # no FLOPs per weight at all
        assert rejected(capsys, check_gpt3_flops('Exercise 1', wrong))


def test_ex2_doubling_months(capsys):
    ref = lambda n1, t1, n2, t2: 12 * (t2 - t1) * math.log(2) / math.log(n2 / n1)
    assert check_doubling_months('Exercise 2', ref) is True
    wrongs = [lambda n1, t1, n2, t2: (t2 - t1) * math.log(2) / math.log(n2 / n1),           # years, not months
              lambda n1, t1, n2, t2: 12 * (t2 - t1) * math.log10(2) / math.log(n2 / n1),    # mixed log bases
              lambda n1, t1, n2, t2: 12 * (t2 - t1) * math.log(2) / math.log(n1 / n2),      # ratio upside down
              lambda n1, t1, n2, t2: 12 * (t2 - t1) / (n2 / n1),                            # linear, not exponential
              lambda n1, t1, n2, t2: 4.6]                                                    # one case's answer typed in
    for wrong in wrongs:
        assert rejected(capsys, check_doubling_months('Exercise 2', wrong))
    def crashes(*args): raise ZeroDivisionError('oops')
    assert rejected(capsys, check_doubling_months('Exercise 2', crashes))


def test_ex3_chinchilla_ratio(rows, capsys):
    n, d = rows.loc['Chinchilla', 'parameters'], rows.loc['Chinchilla', 'training_tokens']
    assert check_chinchilla_ratio('Exercise 3', d / n) is True
    for wrong in (n / d,                                                          # upside down
                  rows.loc['GPT-3', 'training_tokens'] / rows.loc['GPT-3', 'parameters'],   # the wrong row
                  21.0):                                                          # a rule-of-thumb-ish guess
        assert rejected(capsys, check_chinchilla_ratio('Exercise 3', wrong))


def test_ex4_llama_memory(rows, capsys):
    n = rows.loc['Llama 3.1 405B', 'parameters']
    gb = 2 * n / 1e9
    assert check_llama_memory('Exercise 4', gb, math.ceil(gb / 80)) is True
    for wrong_gb, wrong_gpus in ((gb, math.floor(gb / 80)),                 # rounds the GPUs down
                                 (4 * n / 1e9, math.ceil(4 * n / 1e9 / 80)),  # 32-bit floats
                                 (2 * n / 2 ** 30, math.ceil(2 * n / 2 ** 30 / 80)),  # GiB, not GB
                                 (n / 1e9, math.ceil(n / 1e9 / 80))):       # 1 byte per parameter
        assert rejected(capsys, check_llama_memory('Exercise 4', wrong_gb, wrong_gpus))
