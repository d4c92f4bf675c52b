"Chapter 44's exercise checkers accept the reference answers and reject the mistakes each exercise is about."
import pytest
import torch
from course_lib.projects.text_generation import check_top_k, check_repetition_penalty, check_distinct_n


def assert_fails(capsys, result):
    assert result is False
    assert 'FAIL' in capsys.readouterr().out


def top_k_ref(logits, k):
    kth = logits.sort(dim=-1, descending=True).values[..., k - 1:k]
    return torch.where(logits >= kth, logits, torch.full_like(logits, float('-inf')))

def top_k_scatter(logits, k):                      # keeps exactly k: drops ties with the k-th largest
    out = torch.full_like(logits, float('-inf'))
    idx = logits.topk(k, dim=-1).indices
    return out.scatter(-1, idx, logits.gather(-1, idx))

def top_k_strict(logits, k):                       # > instead of >=: drops the k-th itself
    kth = logits.sort(dim=-1, descending=True).values[..., k - 1:k]
    return torch.where(logits > kth, logits, torch.full_like(logits, float('-inf')))

def top_k_zeroed(logits, k):                       # 0 instead of -inf: still sampled after softmax
    kth = logits.sort(dim=-1, descending=True).values[..., k - 1:k]
    return torch.where(logits >= kth, logits, torch.zeros_like(logits))

def test_top_k_checker(capsys):
    assert check_top_k('Exercise 1', top_k_ref) is True
    for wrong in (top_k_scatter, top_k_strict, top_k_zeroed):
        assert_fails(capsys, check_top_k('Exercise 1', wrong))


def pen_ref(logits, ids, penalty):
    out = logits.clone()
    for i in set(ids): out[i] = out[i] / penalty if out[i] > 0 else out[i] * penalty
    return out

def pen_every_occurrence(logits, ids, penalty):    # no set: a token seen twice is penalized twice
    out = logits.clone()
    for i in ids: out[i] = out[i] / penalty if out[i] > 0 else out[i] * penalty
    return out

def pen_divide_all(logits, ids, penalty):          # dividing a negative logit makes the token MORE likely
    out = logits.clone()
    for i in set(ids): out[i] = out[i] / penalty
    return out

def pen_in_place(logits, ids, penalty):
    for i in set(ids): logits[i] = logits[i] / penalty if logits[i] > 0 else logits[i] * penalty
    return logits

def test_repetition_penalty_checker(capsys):
    assert check_repetition_penalty('Exercise 2', pen_ref) is True
    for wrong in (pen_every_occurrence, pen_divide_all, pen_in_place):
        assert_fails(capsys, check_repetition_penalty('Exercise 2', wrong))


def distinct_ref(tokens, n):
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams)

def distinct_off_by_one(tokens, n):                # misses the last n-gram
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n)]
    return len(set(grams)) / max(len(grams), 1)

def distinct_over_tokens(tokens, n):               # divides by the number of tokens
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(tokens)

def test_distinct_n_checker(capsys):
    assert check_distinct_n('Exercise 3', distinct_ref, 'greedy', 'greedy') is True
    assert_fails(capsys, check_distinct_n('Exercise 3', distinct_ref, 'top-p 0.9', 'greedy'))   # wrong strategy named
    for wrong in (distinct_off_by_one, distinct_over_tokens):
        assert_fails(capsys, check_distinct_n('Exercise 3', wrong, 'greedy', 'greedy'))
