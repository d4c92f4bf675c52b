"Every exercise checker of chapter 50 passes the reference answer and rejects the mistakes the exercise is about."
from collections import Counter
from itertools import combinations
import pytest, torch
import torch.nn.functional as F
from course_lib.applications.language import (check_clipped_overlap, check_nearest_centroid, check_oracle_summary,
                                              rouge1, lead_k)


def verdict(capsys, result):
    out = capsys.readouterr().out
    if result is True and out.startswith('PASS'): return 'pass'
    if result is False and 'FAIL' in out and 'hint' in out: return 'fail'
    return f'unclear: {result!r} {out!r}'


def clipped_overlap(cand, ref):
    c, r = Counter(cand), Counter(ref)
    return sum(min(n, c[w]) for w, n in r.items())


def test_ex1_clipped_overlap(capsys):
    assert verdict(capsys, check_clipped_overlap('Exercise 1', clipped_overlap)) == 'pass'
    wrong = {'unclipped': lambda cand, ref: sum(1 for w in cand if w in ref),
             'set overlap': lambda cand, ref: len(set(cand) & set(ref)),
             'clipped by the candidate only': lambda cand, ref: sum(Counter(cand)[w] for w in set(ref)),
             'crashes': lambda cand, ref: 1 / 0}
    for name, fn in wrong.items():
        assert verdict(capsys, check_clipped_overlap('Exercise 1', fn)) == 'fail', name


@pytest.fixture
def embeddings():
    "Three classes whose centroids have very different norms, so that forgetting to normalise changes predictions."
    g = torch.Generator().manual_seed(0)
    dirs = F.normalize(torch.randn(3, 16, generator=g), dim=1)
    spread = torch.tensor([0.2, 1.5, 0.6])
    tr_y = torch.arange(3).repeat_interleave(30)
    tr = F.normalize(dirs[tr_y] + spread[tr_y, None] * torch.randn(90, 16, generator=g), dim=1)
    te = F.normalize(torch.randn(200, 16, generator=g), dim=1)
    return tr, tr_y, te


def nearest_centroid(tr, tr_y, te):
    cents = F.normalize(torch.stack([tr[tr_y == c].mean(0) for c in range(3)]), dim=1)
    return (te @ cents.T).argmax(1)


def test_ex2_nearest_centroid(capsys, embeddings):
    tr, tr_y, te = embeddings
    assert verdict(capsys, check_nearest_centroid('Exercise 2', nearest_centroid(tr, tr_y, te), tr, tr_y, te)) == 'pass'
    unnormalised = (te @ torch.stack([tr[tr_y == c].mean(0) for c in range(3)]).T).argmax(1)
    assert not torch.equal(unnormalised, nearest_centroid(tr, tr_y, te))          # the fixture makes the mistake show
    euclid_far = (torch.cdist(te, torch.stack([tr[tr_y == c].mean(0) for c in range(3)]))).argmax(1)
    wrong = {'centroids not normalised': unnormalised, 'always class 0': torch.zeros(len(te), dtype=torch.long),
             'farthest centroid': euclid_far, 'another model reused': torch.randint(0, 3, (len(te),), generator=torch.Generator().manual_seed(1)),
             'wrong length': nearest_centroid(tr, tr_y, te)[:-1]}
    for name, pred in wrong.items():
        assert verdict(capsys, check_nearest_centroid('Exercise 2', pred, tr, tr_y, te)) == 'fail', name


DOCS = [['river stone bridge tower.', 'river stone bridge.', 'garden lamp.', 'nothing here.'],
        ['garden lamp.', 'river stone bridge.', 'river stone bridge tower.', 'nothing here.']]
REFS = ['the river stone bridge tower garden lamp', 'river stone bridge tower and garden lamp']   # greedy and score order both fail


def oracle_summary(sentences, reference, k):
    best = max(combinations(range(len(sentences)), k),
               key=lambda idx: rouge1(' '.join(sentences[i] for i in idx), reference)['recall'])
    return [sentences[i] for i in best]


def test_ex3_oracle_summary(capsys):
    assert verdict(capsys, check_oracle_summary('Exercise 3', oracle_summary, DOCS, REFS, 2)) == 'pass'
    def by_score_order(sentences, reference, k):                 # the best set, but in score order
        ranked = sorted(range(len(sentences)), key=lambda i: -rouge1(sentences[i], reference)['recall'])
        best = max(combinations(range(len(sentences)), k),
                   key=lambda idx: rouge1(' '.join(sentences[i] for i in idx), reference)['recall'])
        return [sentences[i] for i in sorted(best, key=ranked.index)]
    def greedy(sentences, reference, k):                         # the k best single sentences
        top = sorted(range(len(sentences)), key=lambda i: -rouge1(sentences[i], reference)['recall'])[:k]
        return [sentences[i] for i in sorted(top)]
    def precision(sentences, reference, k):                      # optimises the wrong ROUGE component
        best = max(combinations(range(len(sentences)), k),
                   key=lambda idx: rouge1(' '.join(sentences[i] for i in idx), reference)['precision'])
        return [sentences[i] for i in best]
    assert by_score_order(DOCS[1], REFS[1], 2) != oracle_summary(DOCS[1], REFS[1], 2)   # the fixture makes the mistake show
    wrong = {'score order': by_score_order, 'greedy': greedy, 'precision': precision,
             'lead-k': lambda s, r, k: lead_k(s, k), 'one sentence too many': lambda s, r, k: oracle_summary(s, r, k) + [s[0]]}
    for name, fn in wrong.items():
        assert verdict(capsys, check_oracle_summary('Exercise 3', fn, DOCS, REFS, 2)) == 'fail', name
