import json
import pytest, torch
from course_lib.teach.exercises import check, check_close, check_equal, check_true, check_range, ExerciseCheckFailed


def test_checks_pass_and_fail_with_expected_and_hint(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv('COURSE_STRICT_CHECKS', raising=False)
    results = tmp_path / 'results.jsonl'
    monkeypatch.setenv('COURSE_EXERCISE_RESULTS', str(results))
    assert check_close('Exercise 1', torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0]))
    assert not check_close('Exercise 2', torch.tensor([1.0, 2.5]), torch.tensor([1.0, 2.0]), hint='look again')
    assert not check_close('Exercise 3', torch.zeros(3), torch.zeros(2))
    assert check_equal('Exercise 4', 3, 3) and not check_equal('Exercise 5', torch.tensor([1]), torch.tensor([2]))
    assert check_true('Exercise 6', True, 'it holds') and check_range('Exercise 7', 0.98, low=0.97)
    assert not check_range('Exercise 8', 0.5, low=0.97, what='accuracy')
    out = capsys.readouterr().out
    assert 'PASS Exercise 1' in out and 'FAIL Exercise 2' in out and 'hint:     look again' in out
    assert 'expected: shape (2,)' in out and 'accuracy >= 0.97' in out
    lines = [json.loads(l) for l in results.read_text().splitlines()]
    assert [l['passed'] for l in lines] == [True, False, False, True, False, True, True, False]


def test_strict_mode_raises(monkeypatch):
    monkeypatch.setenv('COURSE_STRICT_CHECKS', '1')
    monkeypatch.delenv('COURSE_EXERCISE_RESULTS', raising=False)
    with pytest.raises(ExerciseCheckFailed, match='Exercise 9'):
        check('Exercise 9', False, 'something')


def test_call_answer_turns_a_crash_into_a_fail_line(capsys, monkeypatch):
    from course_lib.teach.exercises import call_answer
    monkeypatch.delenv('COURSE_STRICT_CHECKS', raising=False)
    assert call_answer('Exercise 9', lambda x: x + 1, 1) == (True, 2)
    assert call_answer('Exercise 9', lambda x: 1 / 0, 1, hint='divide by something else') == (False, None)
    out = capsys.readouterr().out
    assert 'FAIL Exercise 9' in out and 'ZeroDivisionError' in out and 'divide by something else' in out
