"""Chapter 11's exercise checkers pass the reference answers and reject the mistakes the exercises are about."""
import math
import pytest
from course_lib.concepts.compute_cost import (training_memory_bytes, check_max_params, check_tokens_for_budget,
                                              check_kv_batch, check_gpu_time)


def rejected(capsys, result):
    out = capsys.readouterr().out
    return result is False and 'FAIL' in out and 'hint' in out


def test_max_params(capsys):
    assert check_max_params('Exercise 1', lambda g, p='bf16-mixed', o='adamw': g / training_memory_bytes(1, p, o)['total'])
    wrong = [lambda g, p='bf16-mixed', o='adamw': g / 2,                                  # weights only, 2 bytes each
             lambda g, p='bf16-mixed', o='adamw': g / 16,                                 # the AdamW figure for every setup
             lambda g, p='bf16-mixed', o='adamw': g / training_memory_bytes(1)['total'],  # ignores precision and optimizer
             lambda g, p='bf16-mixed', o='adamw': 1 / 0]                                  # crashes: FAIL, not an exception
    for fn in wrong: assert rejected(capsys, check_max_params('Exercise 1', fn))


def test_tokens_for_budget(capsys):
    assert check_tokens_for_budget('Exercise 2', lambda c, n: c / (6 * n))
    for fn in (lambda c, n: c / (2 * n),        # forward pass only
               lambda c, n: c / n,              # forgot the factor
               lambda c, n: 6 * c / n):         # multiplied instead of divided
        assert rejected(capsys, check_tokens_for_budget('Exercise 2', fn))


def test_kv_batch(capsys):
    n = 124_439_808
    per_seq = 2 * 12 * 1024 * 768 * 2                    # keys and values, 12 layers, 1024 tokens, width 768, bf16
    right = math.floor(n * 2 / per_seq) + 1
    assert check_kv_batch('Exercise 3', right, n)
    for wrong in (right - 1,                              # the last batch where the cache is still smaller
                  math.floor(n * 2 / (per_seq / 2)) + 1,  # keys only, no values
                  math.floor(n * 4 / per_seq) + 1):       # fp32 weights
        assert rejected(capsys, check_kv_batch('Exercise 3', wrong, n))


def test_gpu_time(capsys):
    h = 3.14e23 / (989e12 * 0.4 * 3600)
    assert check_gpu_time('Exercise 4', h, math.ceil(h / 720))
    for hours, gpus in ((h, math.floor(h / 720)),                        # rounded down: misses the 30 days
                        (h * 0.4, math.ceil(h * 0.4 / 720)),              # MFU ignored (peak speed)
                        (h / 24, math.ceil(h / 24 / 720)),                # days, not hours
                        (h, math.ceil(h / 30))):                          # 30 hours instead of 30 days
        assert rejected(capsys, check_gpu_time('Exercise 4', hours, gpus))
