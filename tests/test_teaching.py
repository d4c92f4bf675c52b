# course: instructor only
import json, re
from pathlib import Path
import pytest
from course_lib.teach.notebooks import has_solution, find_exercises, strip_solutions, student_notebook, release_student, grade_notebook, exercise_key
from course_lib.teach.notebooks import list_notebooks, read_notebook as read, execute_notebook
from course_lib.cli import main

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = list_notebooks(ROOT / 'nbs')
CHAPTERS = [p for p in NOTEBOOKS if re.match(r'[1-5]\d_', p.name)]




@pytest.mark.parametrize('path', NOTEBOOKS, ids=lambda p: p.name)
def test_every_solution_has_a_check_and_is_never_exported(path):
    nb = read(path)
    exercises = find_exercises(nb)
    unchecked = [e['name'] for e in exercises if not e['check_cells']]
    assert not unchecked, f"{path.name}: solutions without a check cell: {unchecked}"
    for e in exercises:
        for i in e['solution_cells']:
            assert '#| export' not in nb.cells[i].source, f"{path.name}: an exported cell holds a solution"
    assert len({e['name'] for e in exercises}) == len(exercises)


@pytest.mark.parametrize('path', CHAPTERS, ids=lambda p: p.name)
def test_every_chapter_has_at_least_three_checked_exercises(path):
    exercises = [e for e in find_exercises(read(path)) if e['solution_cells'] and e['check_cells']]
    assert len(exercises) >= 3, f"{path.name} has {len(exercises)} exercises with solution and check"


@pytest.mark.parametrize('path', NOTEBOOKS, ids=lambda p: p.name)
def test_a_chapter_that_changes_torch_threads_gives_them_back(path):
    # `make test-notebooks` runs every chapter in one process: a chapter left at one thread slowed the
    # MiniLM chapters that came after it by 1.4-1.7x.
    # Exported cells are library code: core.fit_torch_threads lowers the count to what the machine grants, on purpose.
    code = '\n'.join(c.source for c in read(path).cells if c.cell_type == 'code' and not c.source.startswith('#| export'))
    calls = re.findall(r'torch\.set_num_threads\(([^)]*)\)', code)
    if not calls: return
    saved = re.findall(r'(\w+)\s*=\s*torch\.get_num_threads\(\)', code)
    assert saved and calls[-1].strip() in saved, \
        f"{path.name} calls torch.set_num_threads but never restores it: save torch.get_num_threads() first and set it back at the end"


@pytest.mark.parametrize('path', NOTEBOOKS, ids=lambda p: p.name)
def test_no_cell_is_hidden_from_the_test_run(path):
    # make test-notebooks runs every cell with `course run` (nbdev_test used to skip cells flagged notest or
    # eval: false): a flag like that would now run, so none may exist until the executor learns to skip them
    flagged = [i for i, c in enumerate(read(path).cells) if c.cell_type == 'code'
               and re.search(r'^#\|\s*(notest|eval:\s*false)', c.source, re.M)]
    assert not flagged, f"{path.name}: cells {flagged} are flagged notest/eval: false, which `course run` would execute"


def test_library_contains_no_solutions():
    for py in (ROOT / 'course_lib').rglob('*.py'):
        assert not re.search(r'^\s*### BEGIN SOLUTION', py.read_text(), re.M), py


def test_strip_solutions_keeps_indentation_and_rejects_unclosed_blocks():
    src = "def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\nprint(1)"
    assert strip_solutions(src, 'Exercise 2') == ("def f(x):\n    # YOUR CODE HERE\n"
                                                  "    raise NotImplementedError(\"Exercise 2: write your solution here\")\nprint(1)")
    with pytest.raises(ValueError, match='without a matching'):
        strip_solutions("### BEGIN SOLUTION\nx = 1", 'Exercise 1')
    assert exercise_key('Exercise 3 (mode restored)') == 'Exercise 3'


def _run_allowing_errors(path):
    nb = read(path)
    execute_notebook(nb, path.parent, {'COURSE_PROFILE': 'smoke', 'MPLBACKEND': 'Agg'}, 600, allow_errors=True,
                     unset=('COURSE_STRICT_CHECKS',))
    errors = [i for i, c in enumerate(nb.cells) if c.cell_type == 'code' and any(o.get('output_type') == 'error' for o in c.get('outputs', []))]
    return nb, errors


def test_student_copy_stubs_fail_their_checks_and_everything_else_runs(tmp_path):
    written = release_student(tmp_path / 'student', root=ROOT, manifest=tmp_path / 'manifest.json', values=False)
    assert {p.name for p in written} == {p.name for p in NOTEBOOKS}
    assert (tmp_path / 'student' / 'data' / 'README.md').exists() and (tmp_path / 'student' / 'course_lib' / 'train' / 'learner.py').exists()
    for p in written:
        assert not any(has_solution(c.source) for c in read(p).cells if c.cell_type == 'code'), p
    path = tmp_path / 'student' / 'nbs' / '40_digits_mlp.ipynb'
    nb, errors = _run_allowing_errors(path)
    exercises = find_exercises(read(ROOT / 'nbs' / '40_digits_mlp.ipynb'))
    allowed = {i for e in exercises for i in e['solution_cells'] + e['check_cells']}
    assert errors and set(errors) <= allowed, f"cells other than exercises failed: {sorted(set(errors) - allowed)}"
    grade = grade_notebook(path, manifest=tmp_path / 'manifest.json')    # the reference runs once, as the answer key
    assert grade['total'] == len(exercises) and grade['passed'] == 0
    shipped = {p.name for p in (tmp_path / 'student' / 'tests').glob('*.py')}
    assert 'test_teaching.py' not in shipped and 'test_grading.py' not in shipped and 'test_exercises.py' in shipped


def test_grading_the_reference_notebook_passes_everything(tmp_path):
    out = tmp_path / 'grade.json'
    code = main(['grade', str(ROOT / 'nbs' / '40_digits_mlp.ipynb'), '--json', str(out)])
    result = json.loads(out.read_text())
    assert code == 0 and result['passed'] == result['total'] >= 3
