"Exercise checkers of chapter 71: the reference answer passes, the mistake each exercise is about is rejected."
import pytest
import torch
from course_lib.llm import grounded_retrieval as G
from course_lib.projects.qa_assistant import split_sentences
from exercise_helpers import passes, fails


def test_strict_mode_raises(monkeypatch):
    monkeypatch.setenv('COURSE_STRICT_CHECKS', '1')
    with pytest.raises(AssertionError):
        G.check_recall_at_k('Exercise 1', lambda ranked, relevant, k: 1.0)


# -- Exercise 1: recall@k ------------------------------------------------------------------------------------------
def recall_ref(ranked, relevant, k, skip_oos=True, cut=None, precision=False):
    pairs = [(r, set(rel)) for r, rel in zip(ranked, relevant) if rel or not skip_oos]
    cut = k if cut is None else cut
    if precision: return sum(sum(i in rel for i in r[:cut]) / k for r, rel in pairs) / len(pairs)
    return sum(any(i in rel for i in r[:cut]) for r, rel in pairs) / len(pairs)


def test_ex1_recall_at_k(capsys):
    passes(capsys, G.check_recall_at_k('Exercise 1', recall_ref))
    fails(capsys, G.check_recall_at_k('Exercise 1', lambda r, rel, k: recall_ref(r, rel, k, skip_oos=False)))  # all questions
    fails(capsys, G.check_recall_at_k('Exercise 1', lambda r, rel, k: recall_ref(r, rel, k, cut=k + 1)))       # off by one
    fails(capsys, G.check_recall_at_k('Exercise 1', lambda r, rel, k: recall_ref(r, rel, k, precision=True)))  # precision@k
    fails(capsys, G.check_recall_at_k('Exercise 1', lambda r, rel, k: recall_ref(r, rel, k, cut=1)))           # top 1 only
    fails(capsys, G.check_recall_at_k('Exercise 1', lambda r, rel, k: 1 / 0))                                  # an exception


# -- Exercise 2: reciprocal rank fusion ----------------------------------------------------------------------------
def rrf_ref(rankings, n, c, start=1, use_c=True, power=1):
    out = torch.zeros(n, dtype=torch.float64)
    for ranking in rankings:
        for rank, i in enumerate(ranking, start=start): out[i] += 1 / ((c if use_c else 0) + rank) ** power
    return out


def test_ex2_rrf(capsys):
    passes(capsys, G.check_rrf('Exercise 2', rrf_ref))
    fails(capsys, G.check_rrf('Exercise 2', lambda r, n, c: rrf_ref(r, n, c, start=0)))        # ranks from 0
    fails(capsys, G.check_rrf('Exercise 2', lambda r, n, c: rrf_ref(r, n, c, use_c=False)))    # no constant c
    fails(capsys, G.check_rrf('Exercise 2', lambda r, n, c: rrf_ref(r, n, c) / len(r)))        # averaged, not summed
    fails(capsys, G.check_rrf('Exercise 2', lambda r, n, c: rrf_ref(r, n - 1, c) if n > 4 else rrf_ref(r, n, c)))  # wrong length
    fails(capsys, G.check_rrf('Exercise 2', lambda r, n, c: None.x))                            # an exception


# -- Exercise 3: the chunking rule ---------------------------------------------------------------------------------
def windows(text, n):                                   # fixed word windows: cuts inside sentences
    words = text.split()
    return [' '.join(words[i:i + n]) for i in range(0, len(words), n)]


def test_ex3_chunk_text(capsys):
    passes(capsys, G.check_chunk_text('Exercise 3', G.chunk_text))
    fails(capsys, G.check_chunk_text('Exercise 3', windows))
    fails(capsys, G.check_chunk_text('Exercise 3', lambda t, n: split_sentences(t)))            # one sentence per piece
    fails(capsys, G.check_chunk_text('Exercise 3', lambda t, n: G.chunk_text(t, n)[:-1] or G.chunk_text(t, n)))  # last piece lost
    fails(capsys, G.check_chunk_text('Exercise 3', lambda t, n: G.chunk_text(t, n + 1)))        # allows max_words + 1
    fails(capsys, G.check_chunk_text('Exercise 3', lambda t, n: [t]))                           # never cut
    fails(capsys, G.check_chunk_text('Exercise 3', lambda t, n: 1 / 0))
