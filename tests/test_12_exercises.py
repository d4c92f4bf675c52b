"""Chapter 12's exercise checkers (course_lib.concepts.build_or_buy.check_*): each passes the reference answer and
rejects the mistakes the exercise is about, printing FAIL with a hint and returning False when checks are not strict."""
import math
import pytest
from course_lib.concepts.build_or_buy import (Question, Quiz, check_examples_needed, check_cost_million,
                                              check_build_product, check_my_question, cost_per_request)


def rejected(capsys, result):
    out = capsys.readouterr().out
    return result is False and 'FAIL' in out and 'hint' in out


def test_ex1_examples_needed(capsys):
    assert check_examples_needed('Exercise 1', lambda p, se: math.ceil(p * (1 - p) / se ** 2 - 1e-9)) is True
    assert 'PASS' in capsys.readouterr().out
    for wrong in (lambda p, se: round(p * (1 - p) / se ** 2),       # rounds to the nearest: 933 for (0.7, 0.015)
                  lambda p, se: int(p * (1 - p) / se ** 2),         # rounds down
                  lambda p, se: math.ceil(p * (1 - p) / se),        # forgets to square the SE
                  lambda p, se: math.ceil(math.sqrt(p * (1 - p)) / se),   # forgets that the SE has a square root
                  lambda p, se: 525):                               # the worked case typed in
        assert rejected(capsys, check_examples_needed('Exercise 1', wrong))


def test_ex2_cost_million(capsys):
    ms = 7.3
    assert check_cost_million('Exercise 2', 1e6 * cost_per_request(ms / 1000, 0.5, concurrency=4), ms) is True
    for wrong in (1e6 * cost_per_request(ms, 0.5, concurrency=4),          # milliseconds used as seconds
                  1e6 * cost_per_request(ms / 1000, 0.5),                 # forgets the concurrency
                  1e6 * cost_per_request(ms / 1000, 0.5, concurrency=1 / 4),   # multiplies by it
                  cost_per_request(ms / 1000, 0.5, concurrency=4)):      # one request, not a million
        assert rejected(capsys, check_cost_million('Exercise 2', wrong, ms))


def test_ex3_build_product(capsys):
    assert check_build_product('Exercise 3', dict(n_labelled=20_000, latency_budget_ms=10, pretrained_available=False)) is True
    for wrong in (dict(n_labelled=20_000, latency_budget_ms=10),                              # a pretrained model exists: finetune
                  dict(n_labelled=500, latency_budget_ms=10, pretrained_available=False),      # too few labels: nothing
                  dict(n_labelled=50_000, latency_budget_ms=5, local_latency_ms=40, data_must_stay=True),  # build, but not for the asked reason
                  dict(labels=20_000, latency_budget_ms=10, pretrained_available=False)):     # a keyword choose_approach does not take
        assert rejected(capsys, check_build_product('Exercise 3', wrong))


def _quiz():
    return Quiz([Question('2 + 2?', ['3', '4'], 1, ['one short', 'yes']),
                 Question('A?', ['a', 'A', 'b'], 1, ['lower case', 'right', 'another letter'])])


def test_ex4_my_question(capsys):
    good = Question('Q?', ['x', 'y', 'z'], 2, ['not x because ...', 'not y because ...', 'z because ...'])
    quiz = _quiz(); quiz.questions.append(good)
    assert check_my_question('Exercise 4', quiz, good) is True
    assert rejected(capsys, check_my_question('Exercise 4', _quiz(), good))                 # never appended
    same = Question('Q?', ['x', 'y', 'z'], 2, ['see the text'] * 3)                         # one explanation copied three times
    quiz = _quiz(); quiz.questions.append(same)
    assert rejected(capsys, check_my_question('Exercise 4', quiz, same))
    blank = Question('Q?', ['x', 'y', 'z'], 0, ['because', ' ', 'no'])                      # an empty explanation
    quiz = _quiz(); quiz.questions.append(blank)
    assert rejected(capsys, check_my_question('Exercise 4', quiz, blank))
    two = Question('Q?', ['x', 'y'], 0, ['because', 'no'])                                  # two choices, not three
    quiz = _quiz(); quiz.questions.append(two)
    assert rejected(capsys, check_my_question('Exercise 4', quiz, two))
    assert rejected(capsys, check_my_question('Exercise 4', quiz, 'a question'))            # not a Question
