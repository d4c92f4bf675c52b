"Chapter 46's exercise checkers accept the reference answers and reject the mistakes each exercise is about."
import pytest
import torch
from course_lib.algorithms.finetuning import load_encoder
from course_lib.projects.qa_assistant import (FAQAssistant, load_faq, check_refusal_rates, check_hit_rates,
                                              check_extended_faq)


def assert_fails(capsys, result):
    assert result is False
    assert 'FAIL' in capsys.readouterr().out

SCORES = torch.tensor([0.81, 0.42, 0.46, 0.30, 0.52, 0.50])
LABELS = ['ship', 'return', 'pay', 'none', 'none', 'none']

def test_refusal_rates_checker(capsys):
    oos = torch.tensor([l == 'none' for l in LABELS])
    below = SCORES < 0.5
    ref = (below[oos].float().mean().item(), below[~oos].float().mean().item())
    assert check_refusal_rates('Exercise 1', *ref, SCORES, LABELS, 0.5) is True
    at_or_below = SCORES <= 0.5                                         # a score AT the threshold is answered
    assert_fails(capsys, check_refusal_rates('Exercise 1', at_or_below[oos].float().mean().item(),
                                             at_or_below[~oos].float().mean().item(), SCORES, LABELS, 0.5))
    over_all = ((below & oos).float().mean().item(), (below & ~oos).float().mean().item())   # wrong denominator
    assert_fails(capsys, check_refusal_rates('Exercise 1', *over_all, SCORES, LABELS, 0.5))
    assert_fails(capsys, check_refusal_rates('Exercise 1', ref[1], ref[0], SCORES, LABELS, 0.5))  # swapped

RANKED = [['ship', 'track', 'cost'], ['pay', 'refund', 'invoice'], ['gift', 'wrap', 'ship'], ['cost', 'ship', 'pay']]
GOLD = ['ship', 'invoice', 'wrap_paper', 'ship']

def test_hit_rates_checker(capsys):
    assert check_hit_rates('Exercise 2', 1 / 4, 3 / 4, RANKED, GOLD) is True
    assert_fails(capsys, check_hit_rates('Exercise 2', 3 / 4, 3 / 4, RANKED, GOLD))       # top-1 counted as "anywhere"
    assert_fails(capsys, check_hit_rates('Exercise 2', 1 / 4, 2 / 4, RANKED, GOLD))       # hit@3 skips position 1
    assert_fails(capsys, check_hit_rates('Exercise 2', 1 / 4, 3 / 3, RANKED, GOLD))       # divided by the hits


@pytest.fixture(scope='module')
def encoder():
    tok, enc = load_encoder()
    return tok, enc.eval()

def test_extended_faq_checker_rejects_never_refusing(capsys, encoder):
    tok, enc = encoder
    faq = load_faq()
    faq2 = faq + [{'id': 'coffee', 'question': 'Do you sell coffee?',
                   'answer': 'No, we only sell tea, herbal infusions and teaware. We have no plans to add coffee.'}]
    tau = 0.49
    good = FAQAssistant(enc, tok, faq2, threshold=tau, fields='question+answer')
    assert check_extended_faq('Exercise 3', good, tau) is True
    never_refuses = FAQAssistant(enc, tok, faq2, threshold=None, fields='question+answer')
    assert_fails(capsys, check_extended_faq('Exercise 3', never_refuses, tau))
    tiny_threshold = FAQAssistant(enc, tok, faq2, threshold=0.05, fields='question+answer')
    assert_fails(capsys, check_extended_faq('Exercise 3', tiny_threshold, tau))
    no_entry = FAQAssistant(enc, tok, faq, threshold=tau, fields='question+answer')
    assert_fails(capsys, check_extended_faq('Exercise 3', no_entry, tau))
