"Exercise checkers of chapter 72: the reference answer passes, the mistake each exercise is about is rejected."
import re
import pytest
from course_lib.llm import grounded_assistant as G
from course_lib.projects.semantic_search import content_words
from exercise_helpers import passes, fails


def test_strict_mode_raises(monkeypatch):
    monkeypatch.setenv('COURSE_STRICT_CHECKS', '1')
    with pytest.raises(AssertionError):
        G.check_confident_wrong('Exercise 2', lambda rows: 0.0)


# -- Exercise 1: the support share -----------------------------------------------------------------------------------
def support_ref(answer, passage):
    words = content_words(re.sub(r'\[\d+\]', '', answer))
    if not words: return 0.0
    have = set(content_words(passage))
    return sum(w in have for w in words) / len(words)


def test_ex1_support_share(capsys):
    passes(capsys, G.check_support_share('Exercise 1', support_ref))
    def reversed_direction(answer, passage):                  # the share of the PASSAGE found in the answer
        return support_ref(passage, answer)
    fails(capsys, G.check_support_share('Exercise 1', reversed_direction))
    def citation_kept(answer, passage):                       # '[1]' left in: its '1' counts as a word
        words = content_words(answer)
        return sum(w in set(content_words(passage)) for w in words) / len(words) if words else 0.0
    fails(capsys, G.check_support_share('Exercise 1', citation_kept))
    def all_words(answer, passage):                           # stop words counted too
        words = re.findall(r'[a-z0-9]+', re.sub(r'\[\d+\]', '', answer).lower())
        have = set(re.findall(r'[a-z0-9]+', passage.lower()))
        return sum(w in have for w in words) / len(words) if words else 0.0
    fails(capsys, G.check_support_share('Exercise 1', all_words))
    fails(capsys, G.check_support_share('Exercise 1', lambda a, p: 1 / 0))


# -- Exercise 2: the confident-wrong rate ----------------------------------------------------------------------------
def test_ex2_confident_wrong(capsys):
    passes(capsys, G.check_confident_wrong('Exercise 2', lambda rows: sum((not r['refused']) and not r['correct']
                                                                          for r in rows) / len(rows)))
    answered = lambda rows: [r for r in rows if not r['refused']]
    fails(capsys, G.check_confident_wrong('Exercise 2', lambda rows:                   # over answered questions only
                                          sum(not r['correct'] for r in answered(rows)) / len(answered(rows))))
    fails(capsys, G.check_confident_wrong('Exercise 2', lambda rows:                   # out-of-scope answers forgotten
                                          sum(r['answerable'] and not r['refused'] and not r['correct'] for r in rows) / len(rows)))
    fails(capsys, G.check_confident_wrong('Exercise 2', lambda rows:                   # accuracy's complement
                                          1 - sum(r['correct'] for r in rows) / len(rows)))
    fails(capsys, G.check_confident_wrong('Exercise 2', lambda rows: rows[99]))


# -- Exercise 3: a verified citation ---------------------------------------------------------------------------------
def verified_ref(reply, passages):
    cited = G.parse_citations(reply)
    if not cited or any(not 1 <= n <= len(passages) for n in cited): return False
    text = ' '.join(f"{passages[n - 1]['title']} {passages[n - 1]['text']}" for n in set(cited))
    return G.support_share(reply, text) >= 0.8


def test_ex3_verified_citation(capsys):
    passes(capsys, G.check_verified_citation('Exercise 3', verified_ref))
    fails(capsys, G.check_verified_citation('Exercise 3', lambda reply, p: bool(G.parse_citations(reply))))   # trusts the number
    def any_passage(reply, passages):                         # supported by SOME passage, whichever is cited
        return bool(G.parse_citations(reply)) and any(G.support_share(reply, f"{c['title']} {c['text']}") >= 0.8 for c in passages)
    fails(capsys, G.check_verified_citation('Exercise 3', any_passage))
    def no_range(reply, passages):                            # a cited number out of range is not checked
        cited = [n for n in G.parse_citations(reply) if 1 <= n <= len(passages)]
        if not G.parse_citations(reply): return False
        if not cited: return True
        return G.support_share(reply, ' '.join(passages[n - 1]['text'] for n in cited)) >= 0.8
    fails(capsys, G.check_verified_citation('Exercise 3', no_range))
    fails(capsys, G.check_verified_citation('Exercise 3', lambda reply, p: p[5]))


# -- Exercise 4: copy mode's choice ----------------------------------------------------------------------------------
def choice_ref(logps, sentences, margin):
    best = max(range(len(sentences)), key=lambda i: logps[i])
    return sentences[best] if logps[best] - logps[-1] > margin else G.REFUSAL_TEXT


def test_ex4_copy_choice(capsys):
    import math
    passes(capsys, G.check_copy_choice('Exercise 4', choice_ref))
    def argmax_all(logps, sentences, margin):                 # the refusal competes, the margin is ignored
        i = max(range(len(logps)), key=lambda j: logps[j])
        return G.REFUSAL_TEXT if i == len(sentences) else sentences[i]
    fails(capsys, G.check_copy_choice('Exercise 4', argmax_all))
    fails(capsys, G.check_copy_choice('Exercise 4', lambda l, s, m: s[0] if l[0] - l[-1] > m else G.REFUSAL_TEXT))  # first, not best
    def probabilities(logps, sentences, margin):              # the margin applied to probabilities
        best = max(range(len(sentences)), key=lambda i: logps[i])
        return sentences[best] if math.exp(logps[best]) - math.exp(logps[-1]) > margin else G.REFUSAL_TEXT
    fails(capsys, G.check_copy_choice('Exercise 4', probabilities))
    def at_least(logps, sentences, margin):                   # a tie answers
        best = max(range(len(sentences)), key=lambda i: logps[i])
        return sentences[best] if logps[best] - logps[-1] >= margin else G.REFUSAL_TEXT
    fails(capsys, G.check_copy_choice('Exercise 4', at_least))
    def reversed_sign(logps, sentences, margin):
        best = max(range(len(sentences)), key=lambda i: logps[i])
        return sentences[best] if logps[-1] - logps[best] > margin else G.REFUSAL_TEXT
    fails(capsys, G.check_copy_choice('Exercise 4', reversed_sign))
    fails(capsys, G.check_copy_choice('Exercise 4', lambda l, s, m: l[9]))
