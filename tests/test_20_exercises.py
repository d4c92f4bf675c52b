"""Chapter 20's exercise checkers: the reference answer passes, each plausible wrong answer is rejected with FAIL."""
import pytest, torch
import torch.nn.functional as F
from course_lib.maths.losses import (check_huber_grad, check_label_smoothing, check_uniform_perplexity,
                                     check_bce_logits_grad, cross_entropy, perplexity)


def passes(capsys, checker, answer):
    assert checker('Exercise X', answer) is True
    out = capsys.readouterr().out
    assert 'PASS Exercise X' in out and 'FAIL' not in out


def rejected(capsys, checker, answer):
    assert checker('Exercise X', answer) is False
    out = capsys.readouterr().out
    assert 'FAIL Exercise X' in out and 'hint:' in out


def test_huber_grad(capsys):
    passes(capsys, check_huber_grad, lambda p, t, d=1.0: (p - t).clamp(-d, d))
    rejected(capsys, check_huber_grad, lambda p, t, d=1.0: (t - p).clamp(-d, d))            # sign error
    rejected(capsys, check_huber_grad, lambda p, t, d=1.0: (p - t).clamp(-1, 1))            # forgot delta
    rejected(capsys, check_huber_grad, lambda p, t, d=1.0: 2 * (p - t))                     # the MSE gradient
    rejected(capsys, check_huber_grad, lambda p, t, d=1.0: torch.sign(p - t) * d)           # the MAE gradient * delta
    rejected(capsys, check_huber_grad, lambda p, t, d=1.0: 1 / 0)                           # crashes: FAIL, not an error


def smoothed(eps_per_class):
    def fn(logits, target, eps=0.1):
        C = logits.shape[1]
        soft = (1 - eps) * F.one_hot(target, C).float() + eps_per_class(eps, C)
        return cross_entropy(logits, soft)
    return fn


def test_label_smoothing(capsys):
    passes(capsys, check_label_smoothing, smoothed(lambda eps, C: eps / C))
    rejected(capsys, check_label_smoothing, smoothed(lambda eps, C: eps / (C - 1)))         # eps spread over the others only
    rejected(capsys, check_label_smoothing, lambda z, t, eps=0.1: cross_entropy(z, t))      # no smoothing at all
    def no_mean(z, t, eps=0.1):                                                             # forgot the mean over examples
        soft = (1 - eps) * F.one_hot(t, z.shape[1]).float() + eps / z.shape[1]
        return cross_entropy(z, soft, reduction='sum')
    rejected(capsys, check_label_smoothing, no_mean)
    def naive_log(z, t, eps=0.1):                                                           # log(softmax): inf at ±100
        soft = (1 - eps) * F.one_hot(t, z.shape[1]).float() + eps / z.shape[1]
        return -(soft * torch.log(torch.softmax(z, 1))).sum(1).mean()
    rejected(capsys, check_label_smoothing, naive_log)


def test_uniform_perplexity(capsys):
    passes(capsys, check_uniform_perplexity, lambda V, toks: perplexity(torch.zeros(len(toks), V), toks))
    rejected(capsys, check_uniform_perplexity,                                             # cross-entropy, not its exp
             lambda V, toks: cross_entropy(torch.zeros(len(toks), V), toks))
    rejected(capsys, check_uniform_perplexity,                                             # random logits: not uniform
             lambda V, toks: perplexity(torch.randn(len(toks), V) * 3, toks))
    rejected(capsys, check_uniform_perplexity, lambda V, toks: torch.tensor(1.0 / V))      # the probability, not PPL


def test_bce_logits_grad(capsys):
    passes(capsys, check_bce_logits_grad, lambda z, y: torch.sigmoid(z) - y)
    rejected(capsys, check_bce_logits_grad, lambda z, y: y - torch.sigmoid(z))              # sign error
    rejected(capsys, check_bce_logits_grad, lambda z, y: torch.sigmoid(z) * (1 - torch.sigmoid(z)))   # sigmoid's own slope
    def through_probs(z, y):                                                                # chain rule through p: 0/0 at ±100
        p = torch.sigmoid(z)
        return -(y / p - (1 - y) / (1 - p)) * p * (1 - p)
    rejected(capsys, check_bce_logits_grad, through_probs)
