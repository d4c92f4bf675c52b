# course: instructor only
"Grading cannot be gamed: tampered submissions of a tiny course grade as failed, in the grader's own process."
import json, os, sys, time
from pathlib import Path
import nbformat, pytest
from course_lib.teach.notebooks import (release_student, grade_notebook, judge, read_notebook, write_notebook,
                                        execute_notebook, kernel_env, KERNEL_ENV_KEEP)
from course_lib.cli import main

REFERENCE = [
    ('markdown', '**Exercise 1**: relu. **Exercise 2**: double.'),
    ('code', 'import torch\nfrom course_lib.teach.exercises import check_close, check_equal\ntorch.manual_seed(0)\nx = torch.randn(6)'),
    ('code', 'def relu(x):\n    ### BEGIN SOLUTION\n    return x.clamp(min=0)\n    ### END SOLUTION'),
    ('code', "check_close('Exercise 1', relu(x), torch.relu(x))"),
    ('code', 'def double(n):\n    ### BEGIN SOLUTION\n    return 2 * n\n    ### END SOLUTION'),
    ('code', "check_equal('Exercise 2', double(21), 42)"),
    ('code', "print('the lesson goes on')"),
]
GOOD = {2: 'def relu(x):\n    return torch.where(x > 0, x, torch.zeros_like(x))', 4: 'def double(n):\n    return n + n'}


@pytest.fixture(scope='module')
def course(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('grading')
    root = tmp / 'course'; (root / 'nbs').mkdir(parents=True); (root / 'settings.ini').write_text('[DEFAULT]\n')
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(s) if t == 'markdown' else nbformat.v4.new_code_cell(s) for t, s in REFERENCE]
    write_notebook(nb, root / 'nbs' / 'lesson.ipynb')
    release_student(tmp / 'student', root=root, manifest=tmp / 'manifest.json')
    return tmp


def submit(course, name, edits: dict, drop=()):
    "A submission: the student copy with cells replaced (`edits`) and removed (`drop`)."
    nb = read_notebook(course / 'student' / 'nbs' / 'lesson.ipynb')
    for i, src in edits.items(): nb.cells[i].source = src
    nb.cells = [c for i, c in enumerate(nb.cells) if i not in drop]
    folder = course / name; folder.mkdir()
    write_notebook(nb, folder / 'lesson.ipynb')
    return folder / 'lesson.ipynb'


def grade(course, path, *extra):
    out = path.parent / 'grade.json'
    code = main(['grade', str(path), '--manifest', str(course / 'manifest.json'), '--json', str(out), *extra])
    result = json.loads(out.read_text())['notebooks'][0]
    return code, {e['name']: e for e in result['exercises']}, result


def test_manifest_stays_with_the_instructor_and_holds_the_reference_values(course):
    manifest = json.loads((course / 'manifest.json').read_text())
    entry = manifest['notebooks']['lesson.ipynb']
    assert entry['exercises'] == ['Exercise 1', 'Exercise 2']
    assert [r['kind'] for r in entry['records']] == ['close', 'equal'] and entry['records'][1]['expected'] == 42
    assert not list((course / 'student').rglob('manifest*.json'))
    assert (course / 'student' / '.student-copy').exists()


def test_a_correct_submission_passes_and_exits_zero(course):
    code, ex, _ = grade(course, submit(course, 'good', GOOD))
    assert code == 0 and all(e['passed'] for e in ex.values()), ex


def test_the_untouched_student_copy_fails_every_exercise(course):
    code, ex, _ = grade(course, course / 'student' / 'nbs' / 'lesson.ipynb')
    assert code == 1 and not any(e['passed'] for e in ex.values())


def test_a_deleted_exercise_counts_as_failed(course):
    code, ex, result = grade(course, submit(course, 'deleted', GOOD, drop=(4, 5)))
    assert code == 1 and result['total'] == 2 and ex['Exercise 1']['passed'] and not ex['Exercise 2']['passed']
    assert 'never ran' in ex['Exercise 2']['why']


@pytest.mark.parametrize('cheat', [
    # the checker replaced by one that always passes: nothing is recorded
    'import course_lib.teach.exercises as E\nE.check = lambda *a, **k: True\ndef relu(x):\n    return x',
    # a checker that records "passed" with a generous tolerance: the grader uses the reference's tolerance
    "import course_lib.teach.exercises as E\nE.check_close = lambda ex, a, e, **k: E.check(ex, True, _values={'kind': 'close', "
    "'actual': E.encode_value(torch.as_tensor(a).double()), 'expected': E.encode_value(torch.as_tensor(e).double()), 'atol': 1e9, 'rtol': 0})\n"
    'check_close = E.check_close\ndef relu(x):\n    return x',
])
def test_a_redefined_checker_does_not_pass_a_wrong_answer(course, cheat):
    code, ex, _ = grade(course, submit(course, f'cheat{abs(hash(cheat)) % 1000}', {**GOOD, 2: cheat}))
    assert code == 1 and not ex['Exercise 1']['passed'], ex


def test_an_edited_check_cell_is_replaced_by_the_reference(course):
    wrong = {**GOOD, 2: 'def relu(x):\n    return x', 3: "check_close('Exercise 1', torch.relu(x), torch.relu(x))"}
    code, ex, _ = grade(course, submit(course, 'edited_check', wrong))
    assert code == 1 and not ex['Exercise 1']['passed'] and 'differs from the reference' in ex['Exercise 1']['why']


def test_an_infinite_loop_hits_the_time_limit(course):
    start = time.perf_counter()
    code, ex, result = grade(course, submit(course, 'loop', {**GOOD, 4: 'while True:\n    pass'}), '--time-limit', '25')
    assert time.perf_counter() - start < 90
    assert code == 1 and ex['Exercise 1']['passed'] and not ex['Exercise 2']['passed']
    assert 'time limit' in result['error']


def test_network_is_blocked_and_the_graders_environment_does_not_leak(course, monkeypatch):
    monkeypatch.setenv('GRADER_SECRET_TOKEN', 'do-not-leak')
    probe = ("import json, os, sys\nfrom course_lib.offline import network_blocked\n"
             "json.dump({'secret': os.environ.get('GRADER_SECRET_TOKEN'), 'blocked': network_blocked(), 'exe': sys.executable,\n"
             "           'env': sorted(os.environ)}, open('probe.json', 'w'))\n"
             "import urllib.request\n"
             "def double(n):   # looks the answer up online\n"
             "    return int(urllib.request.urlopen(f'http://192.0.2.1/double?n={n}', timeout=5).read())")
    path = submit(course, 'network', {**GOOD, 4: probe})
    code, ex, _ = grade(course, path)
    seen = json.loads((path.parent / 'probe.json').read_text())
    assert seen['blocked'] and seen['secret'] is None and Path(seen['exe']) == Path(sys.executable)
    allowed = set(KERNEL_ENV_KEEP) | {'COURSE_BLOCK_NETWORK', 'HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE', 'MPLBACKEND', 'COURSE_PROGRESS',
                                      'COURSE_PROFILE', 'COURSE_EXERCISE_RESULTS'}
    assert set(seen['env']) - allowed <= {'JPY_PARENT_PID', 'PYDEVD_USE_FRAME_EVAL', 'JPY_SESSION_NAME', 'CLICOLOR', 'FORCE_COLOR',
                                          'CLICOLOR_FORCE', 'PAGER', 'GIT_PAGER', 'TERM'}, seen['env']
    # the check cell's call raised NetworkBlockedError: exercise 2 fails, the run exits non-zero
    assert code == 1 and not ex['Exercise 2']['passed'] and ex['Exercise 1']['passed']


def test_judge_compares_values_not_the_notebooks_verdict():
    ref = {'exercise': 'Exercise 1', 'kind': 'close', 'passed': True, 'expected': {'shape': [2], 'values': [1.0, 2.0]},
           'actual': {'shape': [2], 'values': [1.0, 2.0]}, 'atol': 1e-5, 'rtol': 1e-4}
    assert judge({**ref, 'actual': {'shape': [2], 'values': [1.0, 2.0000001]}}, ref)[0]
    assert not judge({**ref, 'passed': True, 'actual': {'shape': [2], 'values': [1.0, 3.0]}}, ref)[0]
    assert not judge({**ref, 'actual': {'shape': [1, 2], 'values': [1.0, 2.0]}}, ref)[0]
    rng = {'exercise': 'Exercise 2', 'kind': 'range', 'passed': True, 'actual': 0.98, 'low': 0.97, 'high': None}
    assert judge(rng, rng)[0] and not judge({**rng, 'actual': 0.5, 'passed': True}, rng)[0]
    assert not judge({'exercise': 'Exercise 2', 'kind': 'check', 'passed': True}, rng)[0]     # a different checker


def test_execute_notebook_leaves_os_environ_alone(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import os, sys\nprint(os.environ.get('ONLY_FOR_KERNEL'), os.environ.get('HOME') is not None, sys.executable)")]
    before = dict(os.environ)
    assert execute_notebook(nb, tmp_path, {'ONLY_FOR_KERNEL': 'yes'}, 120) is None
    assert dict(os.environ) == before
    assert nb.cells[0].outputs[0]['text'].split() == ['yes', 'True', sys.executable]
    assert 'ONLY_FOR_KERNEL' not in kernel_env(inherit=False) and kernel_env({'A': 1}, inherit=False)['A'] == '1'


def _child_pids():
    import os
    kids = set()
    for task in os.listdir(f'/proc/{os.getpid()}/task'):
        try: kids |= {int(x) for x in open(f'/proc/{os.getpid()}/task/{task}/children').read().split()}
        except OSError: pass
    return kids


@pytest.mark.skipif(not Path('/proc/self/task').exists(), reason='needs Linux /proc to list child processes')
def test_kernels_are_stopped_after_a_run_even_after_a_timeout():
    "A kernel left running (an infinite loop after the time limit) would hold a CPU core for the rest of CI."
    import nbformat, time
    from course_lib.teach.notebooks import execute_notebook
    before = _child_pids()
    for src in ('x = 1', 'while True: pass'):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src)])
        execute_notebook(nb, Path.cwd(), {}, timeout=3, time_limit=3)
    time.sleep(1)
    assert _child_pids() - before == set()
