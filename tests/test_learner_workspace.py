# course: instructor only
"`make test` never destroys a learner's work; `course start` gives learners a workspace it never overwrites."
import os, shutil, subprocess, sys
from pathlib import Path
import pytest
from course_lib.teach.notebooks import (start_workspace, list_notebooks, read_notebook, write_notebook, has_solution,
                                        find_exercises, release_student)
from course_lib.cli import main

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(sys.executable).parent.parent if (Path(sys.executable).parent / 'nbdev_export').exists() else None
MAKE = shutil.which('make')


def _answer(path: Path) -> bytes:
    "Type an answer into the first exercise of a notebook, with an output, as a learner in JupyterLab would."
    nb = read_notebook(path)
    ex = find_exercises(read_notebook(ROOT / 'nbs' / path.name))[0]
    cell = nb.cells[ex['solution_cells'][0]]
    cell.source += '\n# my answer, typed by hand\n'
    import nbformat
    cell.outputs = [nbformat.v4.new_output('stream', name='stdout', text='my output\n')]
    cell.execution_count = 7
    write_notebook(nb, path)
    return path.read_bytes()


def _make(folder: Path, *targets):
    env = {k: v for k, v in os.environ.items() if not k.startswith('MAKE')}
    return subprocess.run([MAKE, '-C', str(folder), f'VENV={VENV}', '-o', f'{VENV}/.installed', *targets],
                          capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.skipif(MAKE is None or VENV is None or not (ROOT / '.git').exists(),
                    reason='needs make, a virtual environment with nbdev and a git checkout')
def test_sync_check_leaves_a_learners_answers_byte_identical(tmp_path):
    repo = tmp_path / 'repo'
    subprocess.run(['git', 'clone', '-q', str(ROOT), str(repo)], check=True)
    shutil.copy(ROOT / 'Makefile', repo / 'Makefile')          # this change's Makefile (the clone has the last commit's)
    subprocess.run(['git', '-C', str(repo), 'add', 'Makefile'], check=True)
    in_nbs = _answer(repo / 'nbs' / '40_digits_mlp.ipynb')    # an answer typed straight into nbs/, not committed
    (repo / 'my_work').mkdir()
    shutil.copy(repo / 'nbs' / '20_losses.ipynb', repo / 'my_work' / '20_losses.ipynb')
    in_work = _answer(repo / 'my_work' / '20_losses.ipynb')
    lib = (repo / 'course_lib' / 'core.py').read_bytes()
    proc = _make(repo, 'test-sync')
    assert proc.returncode == 0, proc.stdout + proc.stderr     # it checks what git would commit, not the unstaged answer
    assert (repo / 'nbs' / '40_digits_mlp.ipynb').read_bytes() == in_nbs
    assert (repo / 'my_work' / '20_losses.ipynb').read_bytes() == in_work
    assert (repo / 'course_lib' / 'core.py').read_bytes() == lib
    # outside git (a student copy): no `git diff` (which exited 129 there), still nothing rewritten, and an
    # unclean notebook is named instead of wiped
    shutil.rmtree(repo / '.git')
    proc = _make(repo, 'test-sync')
    assert (repo / 'nbs' / '40_digits_mlp.ipynb').read_bytes() == in_nbs
    assert proc.returncode != 0 and 'nbs/40_digits_mlp.ipynb' in proc.stdout and 'usage: git' not in proc.stderr, proc.stdout + proc.stderr


def test_course_start_stubs_solutions_and_never_overwrites(tmp_path, capsys):
    work = tmp_path / 'my_work'
    written = start_workspace(work, root=ROOT)
    assert {p.name for p in written} == {p.name for p in list_notebooks(ROOT / 'nbs')}
    assert not any(has_solution(c.source) for p in written for c in read_notebook(p).cells if c.cell_type == 'code')
    mine = _answer(work / '20_losses.ipynb')
    (work / '21_activations.ipynb').unlink()
    assert main(['start', str(work)]) == 0
    assert (work / '20_losses.ipynb').read_bytes() == mine and (work / '21_activations.ipynb').exists()
    assert 'already there kept as they are' in capsys.readouterr().out
    with pytest.raises(ValueError, match='must not be nbs'):
        start_workspace(ROOT / 'nbs', root=ROOT)


def test_a_workspace_notebook_finds_the_library_and_data(tmp_path):
    from course_lib.teach.notebooks import execute_notebook
    work = tmp_path / 'w'; start_workspace(work, root=ROOT)
    nb = read_notebook(work / '40_digits_mlp.ipynb')
    execute_notebook(nb, work, {'COURSE_PROFILE': 'smoke', 'MPLBACKEND': 'Agg'}, 600, allow_errors=True, unset=('COURSE_STRICT_CHECKS',))
    errors = [i for i, c in enumerate(nb.cells) if c.cell_type == 'code' and any(o.get('output_type') == 'error' for o in c.get('outputs', []))]
    exercises = find_exercises(read_notebook(ROOT / 'nbs' / '40_digits_mlp.ipynb'))
    allowed = {i for e in exercises for i in e['solution_cells'] + e['check_cells']}
    assert errors and set(errors) <= allowed, f"cells other than exercises failed: {sorted(set(errors) - allowed)}"


@pytest.mark.skipif(MAKE is None or VENV is None, reason='needs make and a virtual environment')
def test_the_student_copy_ships_only_tests_that_can_pass(tmp_path):
    out = tmp_path / 'student'
    release_student(out, root=ROOT, manifest=tmp_path / 'manifest.json', values=False)
    shipped = sorted(p.name for p in (out / 'tests').glob('test_*.py'))
    with_nbs = [n for n in shipped if 'nbs' in (out / 'tests' / n).read_text()]
    proc = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-x', *[f'tests/{n}' for n in with_nbs]], cwd=out,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    dry = _make(out, '-n', 'test')
    assert 'course run' not in dry.stdout and 'pytest -q tests' in dry.stdout, dry.stdout
