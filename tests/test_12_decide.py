"Tests for course_lib.concepts.build_or_buy: the build / buy / finetune / prompt decision and the headless quiz."
import pytest
import torch
from course_lib.concepts.build_or_buy import OPTIONS, Decision, choose_approach, Question, Answer, Quiz


def test_enough_labels_and_a_pretrained_model_means_finetune():
    d = choose_approach(2000, latency_budget_ms=100, local_latency_ms=20)
    assert isinstance(d, Decision) and d.approach == 'finetune'
    assert 'build' in d.ruled_out and d.reasons
    assert d.approach in OPTIONS and 'recommendation: finetune' in str(d)


def test_few_labels_buy_unless_privacy_then_prompt():
    assert choose_approach(10, 1000).approach == 'buy'
    d = choose_approach(10, 1000, data_must_stay=True)
    assert d.approach == 'prompt' and 'buy' in d.ruled_out and 'finetune' in d.ruled_out


def test_api_latency_and_cost_rule_out_buy():
    assert 'buy' in choose_approach(10, 100, api_latency_ms=300).ruled_out
    assert 'buy' in choose_approach(10, 1000, budget_per_request=0.001, api_cost_per_request=0.01).ruled_out
    assert 'buy' not in choose_approach(10, 1000, budget_per_request=0.1, api_cost_per_request=0.01).ruled_out
    assert 'buy' not in choose_approach(10, 1000, api_cost_per_request=0.01).ruled_out   # no budget: no limit


def test_no_pretrained_model_needs_many_labels_to_build():
    assert choose_approach(50_000, 5, pretrained_available=False).approach == 'build'
    d = choose_approach(500, 5, pretrained_available=False)
    assert d.approach is None and set(d.ruled_out) == set(OPTIONS) and 'relax' in d.reasons[0]


def test_slow_local_model_rules_out_prompt_and_finetune():
    d = choose_approach(50_000, latency_budget_ms=5, local_latency_ms=40)
    assert d.approach == 'build' or d.approach == 'buy'
    assert 'prompt' in d.ruled_out and 'finetune' in d.ruled_out
    d = choose_approach(50_000, latency_budget_ms=5, local_latency_ms=40, data_must_stay=True)
    assert d.approach == 'build'


def test_fresh_knowledge_adds_retrieval_and_thresholds_are_parameters():
    d = choose_approach(500, 1000, needs_fresh_knowledge=True)
    assert any('retrieval' in e for e in d.extras)
    assert choose_approach(40, 1000, min_finetune_examples=30).approach == 'finetune'
    assert choose_approach(40, 1000, data_must_stay=True).approach == 'prompt'


def test_invalid_inputs_raise():
    with pytest.raises(ValueError): choose_approach(-1, 100)
    with pytest.raises(ValueError): choose_approach(10, 0)


def make_quiz():
    return Quiz([Question('2 + 2?', ['3', '4'], 1, ['one short', 'yes']),
                 Question('Capital letter A?', ['a', 'A', 'b'], 1, ['lower case', 'right', 'another letter'])])


def test_question_validates_its_parts():
    with pytest.raises(ValueError): Question('q', ['a', 'b'], 1, ['only one explanation'])
    with pytest.raises(ValueError): Question('q', ['a', 'b'], 2, ['x', 'y'])
    with pytest.raises(ValueError): Question('q', ['a'], 0, ['x'])


def test_quiz_answer_headless_by_index_or_text():
    quiz = make_quiz()
    a = quiz.answer(0, 1)
    assert isinstance(a, Answer) and a.correct and a.explanation == 'yes' and str(a).startswith('Correct')
    b = quiz.answer(0, '3')
    assert not b.correct and b.explanation == 'one short' and str(b).startswith('Not quite')
    with pytest.raises(ValueError): quiz.answer(0, '5')
    with pytest.raises(ValueError): quiz.answer(1, 7)
    assert quiz.score([1, 'A']) == 1.0 and quiz.score([0, 1]) == 0.5 and len(quiz) == 2
    with pytest.raises(ValueError): quiz.score([1])


def test_quiz_widget_builds_one_box_per_question():
    ipywidgets = pytest.importorskip('ipywidgets')
    view = make_quiz().widget()
    assert isinstance(view, ipywidgets.VBox) and len(view.children) == 2
    radio = view.children[1].children[1].children[0]
    assert isinstance(radio, ipywidgets.RadioButtons) and list(radio.options) == ['a', 'A', 'b']
    assert len(view.children[1].children[1].children) == 2          # the radio buttons and the output, nothing else


# --- issue 15: the baseline and chapter 34's numbers -----------------------------------------------------------------
import json
from pathlib import Path
from course_lib.concepts.build_or_buy import (load_topic_splits, majority_baseline, recorded_metrics, chapter34_results,
                                              CH34_METRICS, embed_texts)

NB12 = Path(__file__).resolve().parent.parent / 'nbs' / '12_build_or_buy.ipynb'


def test_majority_baseline_is_the_bar_not_one_eighth():
    "The topic task is imbalanced: always answering the commonest training class beats 1/8 'chance' by far."
    t = load_topic_splits()
    base = majority_baseline(t['train'][1], t['test'][1])
    assert len(t['classes']) == 8 and 0.28 < base < 0.34 and base > 2 / 8
    assert majority_baseline([0, 0, 1], [1, 1, 0, 0]) == 0.5          # the TRAINING majority, scored on test
    assert majority_baseline([1, 1, 0], [0, 0, 0, 1]) == 0.25


def test_topic_split_is_stratified_and_disjoint():
    t = load_topic_splits()
    sizes = {s: len(t[s][0]) for s in ('train', 'valid', 'test')}
    assert sum(sizes.values()) == 2921 and set(t['train'][0]).isdisjoint(t['test'][0])


def _report(folder, profile, metrics, status='ok', path='nbs/34_finetuning.ipynb'):
    (folder / profile).mkdir(parents=True, exist_ok=True)
    (folder / profile / 'report.json').write_text(json.dumps(
        {'profile': profile, 'notebooks': [{'path': path, 'status': status, 'seconds': 1.0, 'metrics': metrics}]}))


def test_chapter34_results_read_from_the_run_report(tmp_path):
    metrics = {k: 0.1 * i for i, k in enumerate(CH34_METRICS.values(), 1)}
    _report(tmp_path, 'workshop', metrics)
    r = chapter34_results(tmp_path)
    assert r['approximate'] is False and r['profile'] == 'workshop' and 'report.json' in r['source']
    assert [r[k] for k in CH34_METRICS] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert recorded_metrics('34_finetuning', tmp_path)['metrics'] == metrics


def test_chapter34_results_fall_back_and_say_so(tmp_path):
    assert chapter34_results(tmp_path)['approximate'] is True                      # no report at all
    _report(tmp_path, 'smoke', {k: 0.5 for k in CH34_METRICS.values()}, status='error')
    assert chapter34_results(tmp_path)['approximate'] is True                      # a failed run does not count
    _report(tmp_path, 'smoke', {'minilm_finetune.test_accuracy': 0.5})
    assert chapter34_results(tmp_path)['approximate'] is True                      # metrics missing
    assert recorded_metrics('12_build_or_buy', tmp_path) is None


def test_notebook_no_longer_types_in_chapter34_numbers():
    "The chapter used to type in chapter 34's accuracies and compare them with 1/8 'chance'."
    src = '\n'.join(''.join(c['source']) for c in json.loads(NB12.read_text(encoding='utf-8'))['cells'])
    for old in ('0.621', '0.725', '0.287', '0.667', '0.742', '0.196', '0.713', '0.292', '0.671', '0.754', '0.492',
                '0.158', 'chance is', 'barely beats chance'):
        assert old not in src, old
    assert 'chapter34_results()' in src and 'majority_baseline(' in src


def test_embed_texts_mean_pools_over_real_tokens_only():
    tok, enc = pytest.importorskip('course_lib.concepts.build_or_buy').load_minilm()
    one = embed_texts(tok, enc, ['a short one'])
    padded = embed_texts(tok, enc, ['a short one', 'a much longer sentence that forces padding of the first one'])
    assert one.shape == (1, 384) and torch.allclose(one[0], padded[0], atol=1e-5)
    assert torch.allclose(padded.norm(dim=-1), torch.ones(2), atol=1e-5)
