import json, subprocess, sys, textwrap
from pathlib import Path
import nbformat, pytest, torch
from course_lib.core import repo_root
from course_lib.teach.notebooks import run_notebooks, list_notebooks
from course_lib.cli import doctor, main
from course_lib.core import load_digits_splits, tensor_loader
from course_lib.train.learner import MLP


def test_doctor_passes_here(capsys):
    results = doctor()
    failed = [r for r in results if not r[0]]
    assert not failed, failed
    out = capsys.readouterr().out
    assert '[OK] no network needed' in out and 'checks passed' in out


def test_doctor_reports_missing_data_with_a_fix(tmp_path, monkeypatch, capsys):
    root = tmp_path / 'course'; (root / 'nbs').mkdir(parents=True); (root / 'data').mkdir()
    (root / 'settings.ini').write_text('[DEFAULT]\n')
    (root / 'data' / 'README.md').write_text('| file |\n|---|\n| `gone.txt` | x |\n')
    monkeypatch.chdir(root)
    results = doctor()
    bad = [r for r in results if not r[0]]
    assert any('gone.txt' in r[2] and 'git checkout' in r[2] for r in bad)
    assert main(['doctor']) == 1


def _notebook(path, *cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(textwrap.dedent(c)) for c in cells]
    nbformat.write(nb, path)


def test_course_run_reports_each_notebook_and_continues_after_a_failure(tmp_path):
    root = tmp_path / 'course'; nbs = root / 'nbs'; nbs.mkdir(parents=True)
    (root / 'settings.ini').write_text('[DEFAULT]\n')
    _notebook(nbs / '01_ok.ipynb', "import os\nfrom course_lib.core import record, get_profile\nrecord('demo.value', 0.5)\nassert get_profile() == 'smoke'")
    _notebook(nbs / '02_fails.ipynb', "raise ValueError('boom')")
    _notebook(nbs / '03_ok.ipynb', "print('still runs')")
    _notebook(nbs / '_skipped.ipynb', "raise SystemExit")
    assert [p.name for p in list_notebooks(nbs)] == ['01_ok.ipynb', '02_fails.ipynb', '03_ok.ipynb']
    report = run_notebooks(profile='smoke', root=root)
    statuses = {Path(e['path']).name: e['status'] for e in report['notebooks']}
    assert statuses == {'01_ok.ipynb': 'ok', '02_fails.ipynb': 'error', '03_ok.ipynb': 'ok'}
    first = report['notebooks'][0]
    assert first['metrics'] == {'demo.value': 0.5} and first['seconds'] > 0 and first['path'] == 'nbs/01_ok.ipynb'
    assert 'boom' in report['notebooks'][1]['error']
    out = root / 'runs' / 'smoke'
    saved = json.loads((out / 'report.json').read_text())
    assert saved['profile'] == 'smoke' and saved['device'] and saved['passed'] == 2
    assert '| 01_ok.ipynb | ok |' in (out / 'report.md').read_text()
    executed = nbformat.read(out / '03_ok.ipynb', as_version=4)
    assert 'still runs' in executed.cells[0].outputs[0]['text']


def test_course_command_exit_code(tmp_path):
    root = tmp_path / 'c'; (root / 'nbs').mkdir(parents=True); (root / 'settings.ini').write_text('[DEFAULT]\n')
    _notebook(root / 'nbs' / 'a.ipynb', "x = 1")
    proc = subprocess.run([sys.executable, '-c', 'import sys; from course_lib.cli import main; sys.exit(main())', 'run', '--profile', 'smoke'], cwd=root,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '[1/1] a.ipynb ... ok' in proc.stdout


def test_digits_splits_are_stratified_and_disjoint():
    s = load_digits_splits()
    assert [len(s[k][1]) for k in ('train', 'valid', 'test')] == [1077, 360, 360]
    assert s['train'][0].max() <= 1.0 and s['train'][0].dtype == torch.float32
    for k in ('valid', 'test'):
        assert torch.bincount(s[k][1]).min() >= 35
    rows = lambda X: {tuple(r.tolist()) for r in X}
    assert len(rows(s['train'][0]) & rows(s['test'][0])) < 5     # (a few duplicate images exist in the raw data)


def test_mlp_shapes():
    model = MLP(64, 500, 10)
    assert model(torch.zeros(3, 8, 8)).shape == (3, 10)
    assert sum(p.numel() for p in model.parameters()) == 64 * 500 + 500 + 500 * 10 + 10
    xb, yb = next(iter(tensor_loader(torch.zeros(5, 64), torch.zeros(5, dtype=torch.long), batch_size=2)))
    assert xb.shape == (2, 64)


def test_a_cell_that_gets_no_reply_in_time_is_run_once_more_in_a_fresh_kernel(tmp_path, monkeypatch):
    from course_lib.teach import notebooks as N
    monkeypatch.setattr(N, 'SMOKE_CELL_TIMEOUT', 4)
    root = tmp_path / 'course'; nbs = root / 'nbs'; nbs.mkdir(parents=True)
    (root / 'settings.ini').write_text('[DEFAULT]\n')
    _notebook(nbs / '01_hangs_once.ipynb', "import os, time\nif not os.path.exists('tried'):\n    open('tried', 'w').close()\n    time.sleep(60)\nprint('second try')")
    _notebook(nbs / '02_hangs.ipynb', "import time\ntime.sleep(60)")
    _notebook(nbs / '03_fails.ipynb', "raise ValueError('boom')")
    report = N.run_notebooks(profile='smoke', root=root)
    once, always, fails = report['notebooks']
    assert once['status'] == 'ok' and once['retried'] is True                 # the fresh kernel got through
    assert always['status'] == 'error' and always['retried'] is True and always['error'].startswith('CellTimeoutError')
    assert always['seconds'] < 30                                             # the smoke limit, not the hour
    assert fails['status'] == 'error' and 'retried' not in fails and 'boom' in fails['error']   # an error is not retried
