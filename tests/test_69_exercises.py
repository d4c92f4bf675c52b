"Exercise checkers of chapter 69: the reference answer passes, the mistake each exercise is about is rejected."
import math
import pytest
from course_lib.llm import report_card as R
from exercise_helpers import passes, fails


def test_strict_mode_raises(monkeypatch):
    monkeypatch.setenv('COURSE_STRICT_CHECKS', '1')
    with pytest.raises(AssertionError):
        R.check_bits_per_byte('Exercise 2', lambda nats, n_tokens, n_bytes: nats / math.log(2) / n_tokens)


def test_ex1_delta_row(capsys):
    def good(values, reference):
        ref = values.get(reference)
        return {s: v - ref for s, v in values.items() if s != reference and v is not None and ref is not None}
    passes(capsys, R.check_delta_row('Exercise 1', good))
    def previous_column(values, reference):                                       # deltas against the column before
        names, out = list(values), {}
        for a, b in zip(names, names[1:]):
            if values[a] is not None and values[b] is not None and b != reference: out[b] = values[b] - values[a]
        return out
    fails(capsys, R.check_delta_row('Exercise 1', previous_column))
    fails(capsys, R.check_delta_row('Exercise 1', lambda v, r: {s: -d for s, d in good(v, r).items()}))     # reference - value
    fails(capsys, R.check_delta_row('Exercise 1',                                                          # missing counted as 0
                                    lambda v, r: {s: (x or 0) - (v[r] or 0) for s, x in v.items() if s != r}))
    fails(capsys, R.check_delta_row('Exercise 1', lambda v, r: {**good(v, r), r: 0.0}))                    # the reference itself
    fails(capsys, R.check_delta_row('Exercise 1', lambda v, r: [1, 2]))
    fails(capsys, R.check_delta_row('Exercise 1', lambda v, r: 1 / 0))


def test_ex2_bits_per_byte(capsys):
    passes(capsys, R.check_bits_per_byte('Exercise 2', lambda nats, n_tokens, n_bytes: nats / math.log(2) / n_bytes))
    passes(capsys, R.check_bits_per_byte('Exercise 2', lambda nats, n_tokens, n_bytes: math.log2(math.e) * nats / n_bytes))
    fails(capsys, R.check_bits_per_byte('Exercise 2', lambda nats, n_tokens, n_bytes: nats / math.log(2) / n_tokens))  # per token
    fails(capsys, R.check_bits_per_byte('Exercise 2', lambda nats, n_tokens, n_bytes: nats / n_bytes))                 # nats
    fails(capsys, R.check_bits_per_byte('Exercise 2', lambda nats, n_tokens, n_bytes: nats * math.log(2) / n_bytes))   # wrong way
    fails(capsys, R.check_bits_per_byte('Exercise 2', lambda nats, n_tokens, n_bytes: 'low'))
    fails(capsys, R.check_bits_per_byte('Exercise 2', lambda nats, n_tokens, n_bytes: 1 / 0))
