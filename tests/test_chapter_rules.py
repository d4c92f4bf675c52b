"""Rules every chapter keeps (issue 15): each exercise is checked by a function of the chapter's module that a test
feeds wrong answers, and no code cell is a wall of 60 lines or more."""
import json, re
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted(p for p in (ROOT / 'nbs').glob('[1-8][0-9]_*.ipynb'))
BASE_CHECKERS = {'check', 'check_close', 'check_equal', 'check_true', 'check_range'}
CALL = re.compile(r"\b(check\w*)\(\s*['\"](Exercise \d+[a-z]?)")


def code_cells(path):
    return [''.join(c['source']) for c in json.loads(path.read_text(encoding='utf-8'))['cells'] if c['cell_type'] == 'code']


def exercise_checks(path):
    "{exercise: {checker names its check cells call}}"
    out = {}
    for src in code_cells(path):
        for name, ex in CALL.findall(src): out.setdefault(ex, set()).add(name)
    return out


@pytest.mark.parametrize('path', CHAPTERS, ids=lambda p: p.stem)
def test_every_exercise_has_a_tested_checker_function(path):
    checks = exercise_checks(path)
    if not checks: pytest.skip('no exercises')
    only_base = sorted(ex for ex, names in checks.items() if not names - BASE_CHECKERS)
    assert not only_base, (f'{path.stem}: {only_base} are checked only inline; move the check into a check_* function '
                           f'of the chapter module so a test can feed it wrong answers')
    tests = ' '.join(t.read_text(encoding='utf-8') for t in ROOT.glob(f'tests/test_{path.stem[:2]}_*.py'))
    untested = sorted({n for names in checks.values() for n in names - BASE_CHECKERS if n not in tests})
    assert not untested, f'{path.stem}: no test in tests/test_{path.stem[:2]}_*.py calls {untested}'


@pytest.mark.parametrize('path', CHAPTERS, ids=lambda p: p.stem)
def test_no_code_cell_is_a_wall(path):
    longest = max((len(s.splitlines()), i) for i, s in enumerate(code_cells(path)))
    assert longest[0] < 60, f'{path.stem}: code cell {longest[1]} has {longest[0]} lines; split it into steps'


def test_the_rules_catch_an_inline_check_and_a_wall(tmp_path):
    nb = {'cells': [{'cell_type': 'code', 'source': "check_close('Exercise 1', x, 1.0)"},
                    {'cell_type': 'code', 'source': '\n'.join(['x = 1'] * 70)}]}
    p = tmp_path / '99_fake.ipynb'; p.write_text(json.dumps(nb))
    with pytest.raises(AssertionError, match='inline'): test_every_exercise_has_a_tested_checker_function(p)
    with pytest.raises(AssertionError, match='70 lines'): test_no_code_cell_is_a_wall(p)
