"Tests for course_lib.concepts.build_or_buy: the build / buy / finetune / prompt decision and the headless quiz."
import pytest
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
