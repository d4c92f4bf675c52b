"Tests for course_lib.projects.qa_assistant: the FAQ files, the split, the FAQ assistant with its fallback, the metrics and the threshold."
import math
import pytest
import torch
from transformers import BertConfig, BertModel
from course_lib.algorithms.finetuning import load_encoder
from course_lib.projects.qa_assistant import (FALLBACK_ANSWER, NONE_LABEL, FIELDS, load_faq, load_faq_questions, split_questions, faq_texts,
                           split_sentences, FAQAssistant, qa_metrics, choose_threshold)

TOY_FAQ = [{'id': 'ship', 'question': 'How long does delivery take?', 'answer': 'Two to four days. Express takes one day.'},
           {'id': 'pay', 'question': 'Which payment methods do you accept?', 'answer': 'Cards and PayPal.'},
           {'id': 'ret', 'question': 'What is your return policy?', 'answer': 'Thirty days for unopened items.'}]


@pytest.fixture(scope='module')
def tok():
    return load_encoder()[0]


@pytest.fixture(scope='module')
def tiny():
    torch.manual_seed(0)
    return BertModel(BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=32, max_position_embeddings=64))


def test_load_faq_and_questions():
    faq = load_faq()
    ids = [e['id'] for e in faq]
    assert 40 <= len(faq) <= 60 and len(set(ids)) == len(ids) and NONE_LABEL not in ids
    assert all(e['question'] and e['answer'] for e in faq)
    qs, labels = load_faq_questions(faq_ids=ids)
    assert len(qs) == len(labels) and len(set(qs)) == len(qs)
    assert 15 <= labels.count(NONE_LABEL) <= 20
    assert set(labels) - {NONE_LABEL} <= set(ids)
    assert not set(qs) & {e['question'] for e in faq}          # held-out questions are not the FAQ wording


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='id<TAB>question<TAB>answer'): load_faq(tmp_path / 'missing.tsv')
    bad = tmp_path / 'bad.tsv'; bad.write_text('q\ta\nx\ty\n')
    with pytest.raises(ValueError, match='id<TAB>question<TAB>answer'): load_faq(bad)
    with pytest.raises(ValueError, match='question<TAB>faq_id'): load_faq_questions(bad)
    short = tmp_path / 'short.tsv'; short.write_text('id\tquestion\tanswer\na\tQ?\t\n')
    with pytest.raises(ValueError, match='non-empty'): load_faq(short)
    dup = tmp_path / 'dup.tsv'; dup.write_text('id\tquestion\tanswer\na\tQ?\tA.\na\tR?\tB.\n')
    with pytest.raises(ValueError, match='unique'): load_faq(dup)
    empty = tmp_path / 'empty.tsv'; empty.write_text('id\tquestion\tanswer\n')
    with pytest.raises(ValueError, match='no rows'): load_faq(empty)
    qf = tmp_path / 'q.tsv'; qf.write_text('question\tfaq_id\nHello?\tunknown_id\n')
    assert load_faq_questions(qf) == (['Hello?'], ['unknown_id'])
    with pytest.raises(ValueError, match='unknown_id'): load_faq_questions(qf, faq_ids=['a'])


def test_split_questions_stratified_and_deterministic():
    labels = ['a'] * 10 + ['none'] * 4
    va, te = split_questions(labels, seed=1)
    assert sorted(va + te) == list(range(14)) and not set(va) & set(te)
    assert sum(labels[i] == 'none' for i in va) == 2 and sum(labels[i] == 'none' for i in te) == 2
    assert split_questions(labels, seed=1) == (va, te)
    with pytest.raises(ValueError, match='valid_frac'): split_questions(labels, valid_frac=1.0)


def test_faq_texts_and_sentences():
    assert faq_texts(TOY_FAQ, 'question')[0] == 'How long does delivery take?'
    assert faq_texts(TOY_FAQ, 'answer')[1] == 'Cards and PayPal.'
    assert faq_texts(TOY_FAQ, 'question+answer')[2] == 'What is your return policy? Thirty days for unopened items.'
    assert set(FIELDS) == {'question', 'answer', 'question+answer'}
    with pytest.raises(ValueError, match='fields'): faq_texts(TOY_FAQ, 'title')
    assert split_sentences('Two to four days. Express takes one day.') == ['Two to four days.', 'Express takes one day.']
    assert split_sentences('No end') == ['No end']


def test_assistant_retrieves_and_falls_back(tok, tiny):
    bot = FAQAssistant(tiny, tok, TOY_FAQ, threshold=None, device='cpu')
    assert 'FAQAssistant(3 entries' in repr(bot)
    r = bot.ask('Which payment methods do you accept?')      # the exact FAQ wording finds itself at cosine 1
    assert r['faq_id'] == 'pay' and not r['fallback'] and r['answer'] == 'Cards and PayPal.'
    assert math.isclose(r['score'], 1.0, abs_tol=1e-4)
    scores, pos = bot.retrieve(['What is your return policy?', 'How long does delivery take?'], k=2)
    assert scores.shape == pos.shape == (2, 2) and pos[:, 0].tolist() == [2, 0]
    ids, top = bot.predict([e['question'] for e in TOY_FAQ])
    assert ids == ['ship', 'pay', 'ret'] and top.shape == (3,)
    bot.threshold = 1.01                                      # nothing can reach it: always refuse
    r = bot.ask('Which payment methods do you accept?')
    assert r['fallback'] and r['faq_id'] == NONE_LABEL and r['answer'] == FALLBACK_ANSWER
    assert bot.predict(['How long does delivery take?'])[0] == [NONE_LABEL]
    assert bot.predict(['How long does delivery take?'], use_fallback=False)[0] == ['ship']
    bot.threshold = None
    sent = bot.ask('How long does delivery take?', best_sentence=True)['answer']
    assert sent in split_sentences(TOY_FAQ[0]['answer'])


def test_assistant_bad_input(tok, tiny):
    bot = FAQAssistant(tiny, tok, TOY_FAQ, fields='question+answer', device='cpu')
    with pytest.raises(ValueError, match='empty'): bot.ask('   ')
    with pytest.raises(TypeError, match='string'): bot.ask(42)
    with pytest.raises(ValueError, match='empty'): FAQAssistant(tiny, tok, [])
    with pytest.raises(ValueError, match='id, question, answer'): FAQAssistant(tiny, tok, [{'id': 'x', 'question': 'q'}])


def test_assistant_with_minilm_on_a_paraphrase():
    tok, enc = load_encoder()
    bot = FAQAssistant(enc, tok, load_faq(), threshold=None, fields='question+answer', device='cpu')
    assert bot.ask('What do you charge for postage?')['faq_id'] == 'shipping_cost'


def test_qa_metrics_counts():
    m = qa_metrics(['a', 'b', 'c', 'a', 'b'], torch.tensor([0.9, 0.4, 0.7, 0.3, 0.8]), ['a', 'b', 'x', 'none', 'none'],
                   threshold=0.5)
    assert m['top1_accuracy'] == 2 / 3 and m['answered_correctly'] == 1 / 3
    assert m['answerable_wrongly_refused'] == 1 / 3 and m['out_of_scope_refused'] == 1 / 2
    assert m['overall_success'] == 2 / 5 and (m['n_answerable'], m['n_out_of_scope']) == (3, 2)
    off = qa_metrics(['a', 'b'], [0.1, 0.2], ['a', 'none'])
    assert off['answerable_wrongly_refused'] == 0 and off['out_of_scope_refused'] == 0
    assert math.isnan(qa_metrics(['a'], [0.5], ['a'], 0.3)['out_of_scope_refused'])
    with pytest.raises(ValueError, match='must match'): qa_metrics(['a'], [0.1, 0.2], ['a'])
    with pytest.raises(ValueError, match='no questions'): qa_metrics([], [], [])


def test_choose_threshold_separates_and_breaks_ties_in_the_middle():
    preds, labels = ['a', 'b', 'x', 'y'], ['a', 'b', 'none', 'none']
    tau, table = choose_threshold(preds, [0.8, 0.7, 0.3, 0.2], labels)
    assert 0.3 < tau <= 0.7 and len(table) == 101
    best = [r for r in table if r['threshold'] == tau][0]
    assert best['overall_success'] == 1.0 and best['out_of_scope_refused'] == 1.0
    tau2, _ = choose_threshold(preds, [0.8, 0.7, 0.3, 0.2], labels, thresholds=[0.1, 0.4, 0.5, 0.6, 0.9])
    assert tau2 == 0.5                                       # 0.4, 0.5 and 0.6 tie: the middle one
    with pytest.raises(ValueError, match='empty'): choose_threshold(preds, [0.8, 0.7, 0.3, 0.2], labels, thresholds=[])


def test_confident_wrong_and_cost_threshold():
    from course_lib.projects.qa_assistant import expected_cost
    preds = ['a', 'b', 'c', 'a', 'b', 'a']
    scores = [0.9, 0.4, 0.45, 0.3, 0.8, 0.95]
    labels = ['a', 'b', 'x', 'none', 'none', 'a']
    m = qa_metrics(preds, scores, labels, 0.5)
    assert m['confident_wrong'] == 1 / 6 and m['misrouted_caught'] == 1.0 and m['n_misrouted'] == 1
    assert abs(expected_cost(m, 3.0) - (1 * 2 / 6 + 3 * 1 / 6)) < 1e-12   # 2 answerable refused, 1 wrong answer
    t1, _ = choose_threshold(preds, scores, labels, wrong_cost=1.0)
    t5, table = choose_threshold(preds, scores, labels, wrong_cost=5.0)
    assert t5 > 0.8 and t1 <= t5 and all('cost' in r for r in table)      # costly wrong answers: refuse the 0.8 one
    with pytest.raises(ValueError, match='wrong_cost'): choose_threshold(preds, scores, labels, wrong_cost=-1)
