"Chapter 41's exercise checkers accept the reference answers and reject the mistakes each exercise is about."
import pytest
import torch
from course_lib.projects.four_points import check_possible_accuracies, check_boundary, check_n_needed, accuracy_interval


def assert_fails(capsys, result):
    assert result is False
    assert 'FAIL' in capsys.readouterr().out


def test_possible_accuracies_checker(capsys):
    assert check_possible_accuracies('Exercise 1', lambda n: [k / n for k in range(n + 1)]) is True
    assert_fails(capsys, check_possible_accuracies('Exercise 1', lambda n: [k / n for k in range(n)]))          # no 1.0
    assert_fails(capsys, check_possible_accuracies('Exercise 1', lambda n: [k / n for k in range(1, n + 1)]))   # no 0.0
    assert_fails(capsys, check_possible_accuracies('Exercise 1', lambda n: [k / (n + 1) for k in range(n + 1)]))
    assert_fails(capsys, check_possible_accuracies('Exercise 1', lambda n: 1 / 0))                            # crashes


def test_boundary_checker(capsys):
    w, b = torch.tensor([0.7, 1.3]), torch.tensor(-0.2)
    assert check_boundary('Exercise 2', lambda w, b, x1: -(w[0] * x1 + b) / w[1], w, b) is True
    assert_fails(capsys, check_boundary('Exercise 2', lambda w, b, x1: (w[0] * x1 + b) / w[1], w, b))     # sign
    assert_fails(capsys, check_boundary('Exercise 2', lambda w, b, x1: -(w[0] * x1) / w[1], w, b))        # no bias
    assert_fails(capsys, check_boundary('Exercise 2', lambda w, b, x1: -(w[1] * x1 + b) / w[0], w, b))    # w1, w2 swapped


def test_n_needed_checker(capsys):
    width = lambda n: (lambda lo_hi: lo_hi[1] - lo_hi[0])(accuracy_interval(int(0.9 * n), n))
    n_ref = next(n for n in range(10, 10_000, 10) if width(n) < 0.1)
    assert check_n_needed('Exercise 3', n_ref) is True
    assert_fails(capsys, check_n_needed('Exercise 3', n_ref - 10))                       # the last one that is too wide
    assert_fails(capsys, check_n_needed('Exercise 3', n_ref + 10))
    half = next(n for n in range(10, 10_000, 10) if (width(n) / 2) < 0.1)               # half-width < 0.1
    assert_fails(capsys, check_n_needed('Exercise 3', half))
