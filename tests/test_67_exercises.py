"Exercise checkers of chapter 67: the reference answer passes, the mistake each exercise is about is rejected."
import pytest
import torch
import torch.nn.functional as F
from course_lib.llm import dpo as D
from exercise_helpers import passes, fails


def test_strict_mode_raises(monkeypatch):
    monkeypatch.setenv('COURSE_STRICT_CHECKS', '1')
    with pytest.raises(AssertionError):
        D.check_dpo_loss('Exercise 1', lambda pc, pr, rc, rr, b: -F.logsigmoid(b * (pc - pr)).mean())


def test_ex1_dpo_loss(capsys):
    good = lambda pc, pr, rc, rr, b: -F.logsigmoid(b * ((pc - rc) - (pr - rr))).mean()
    passes(capsys, D.check_dpo_loss('Exercise 1', good))
    passes(capsys, D.check_dpo_loss('Exercise 1', lambda pc, pr, rc, rr, b: D.dpo_loss(pc, pr, rc, rr, b)[0].item()))
    fails(capsys, D.check_dpo_loss('Exercise 1', lambda pc, pr, rc, rr, b: -F.logsigmoid(b * (pc - pr)).mean()))        # no reference
    fails(capsys, D.check_dpo_loss('Exercise 1', lambda pc, pr, rc, rr, b: -F.logsigmoid(-b * ((pc - rc) - (pr - rr))).mean()))  # sign
    fails(capsys, D.check_dpo_loss('Exercise 1', lambda pc, pr, rc, rr, b: -F.logsigmoid((pc - rc) - (pr - rr)).mean()))  # no beta
    fails(capsys, D.check_dpo_loss('Exercise 1', lambda pc, pr, rc, rr, b: -F.logsigmoid(b * ((pc - rc) - (pr - rr))).sum()))  # sum
    fails(capsys, D.check_dpo_loss('Exercise 1', lambda pc, pr, rc, rr, b: torch.sigmoid(-b * ((pc - rc) - (pr - rr))).mean()))  # no log
    fails(capsys, D.check_dpo_loss('Exercise 1', lambda pc, pr, rc, rr, b: 1 / 0))


def test_ex2_reply_logprob(capsys):
    def good(logits, ids, n):
        lp = F.log_softmax(logits, -1); pos = torch.arange(n, len(ids))
        return lp[pos - 1, ids[pos]].sum()
    passes(capsys, D.check_reply_logprob('Exercise 2', good))
    passes(capsys, D.check_reply_logprob('Exercise 2', lambda lg, ids, n: -F.cross_entropy(lg[n - 1:-1], ids[n:], reduction='sum')))
    fails(capsys, D.check_reply_logprob('Exercise 2', lambda lg, ids, n: good(lg, ids, 1)))                  # prompt tokens too
    def unshifted(logits, ids, n):                                                                            # off by one
        lp = F.log_softmax(logits, -1); pos = torch.arange(n, len(ids))
        return lp[pos, ids[pos]].sum()
    fails(capsys, D.check_reply_logprob('Exercise 2', unshifted))
    def raw_logits(logits, ids, n):                                                                           # no log_softmax
        pos = torch.arange(n, len(ids)); return logits[pos - 1, ids[pos]].sum()
    fails(capsys, D.check_reply_logprob('Exercise 2', raw_logits))
    fails(capsys, D.check_reply_logprob('Exercise 2', lambda lg, ids, n: good(lg, ids, n).mean() / (len(ids) - n)))  # a mean
    fails(capsys, D.check_reply_logprob('Exercise 2', lambda lg, ids, n: 1 / 0))


def test_ex3_reward_accuracy(capsys):
    def good(pc, pr, rc, rr, b):
        c, r = b * (pc - rc), b * (pr - rr)
        return ((c > r).double() + 0.5 * (c == r).double()).mean().item()
    passes(capsys, D.check_reward_accuracy('Exercise 3', good))
    passes(capsys, D.check_reward_accuracy('Exercise 3', lambda pc, pr, rc, rr, b: D.reward_accuracy(b * (pc - rc), b * (pr - rr))))
    fails(capsys, D.check_reward_accuracy('Exercise 3', lambda pc, pr, rc, rr, b: good(pc, pr, 0 * rc, 0 * rr, b)))  # no reference
    fails(capsys, D.check_reward_accuracy('Exercise 3',                                                           # ties count 0
                                          lambda pc, pr, rc, rr, b: (b * (pc - rc) > b * (pr - rr)).double().mean().item()))
    fails(capsys, D.check_reward_accuracy('Exercise 3', lambda pc, pr, rc, rr, b: good(pr, pc, rr, rc, b)))     # flipped
    fails(capsys, D.check_reward_accuracy('Exercise 3', lambda pc, pr, rc, rr, b: 'high'))
    fails(capsys, D.check_reward_accuracy('Exercise 3', lambda pc, pr, rc, rr, b: 1 / 0))
