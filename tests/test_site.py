# course: instructor only
"Course site, workshop plan, timings and glossary; the site is opened in headless Chromium when it is installed."
import json, os, re, shutil, subprocess, tempfile
from pathlib import Path
import pytest
from course_lib.teach.notebooks import run_notebooks, list_notebooks
from course_lib.cli import main
from course_lib.teach.site import (build_site, broken_links, internal_links, plan_workshop, collect_glossary,
    extract_terms, time_line, update_time_lines, estimate_reading_minutes, stated_reading_minutes)
from course_lib.teach.notebooks import read_notebook

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('site')
    # 08_site's page shows code with href="..." inside Python strings: a regex link checker saw 4 broken links there
    run_notebooks(['00_core.ipynb', '08_site.ipynb', '40_digits_mlp.ipynb'], profile='smoke', out_dir=tmp / 'runs', root=ROOT)
    build_site(tmp / 'site', runs_dir=tmp / 'runs', root=ROOT)
    return tmp / 'site'


def test_site_pages_links_and_offline_assets(site):
    names = {p.name for p in site.glob('*.html')}
    assert names == {'index.html', 'glossary.html', '00_core.html', '08_site.html', '40_digits_mlp.html'}
    assert 'href=' in re.sub(r'<[^>]+>', '', (site / '08_site.html').read_text(encoding='utf-8'))   # code that mentions href=
    assert broken_links(site) == []
    for page in site.glob('*.html'):
        text = page.read_text(encoding='utf-8')
        assert not re.search(r'<script[^>]+src="https?://', text), f"{page.name} loads a script from the web"
        assert not re.search(r'<link[^>]+href="https?://', text), f"{page.name} loads a stylesheet from the web"
    chapter = (site / '40_digits_mlp.html').read_text(encoding='utf-8')
    assert 'mathjax/MathJax.js' in chapter and (site / 'mathjax' / 'MathJax.js').exists()
    assert '<img' in chapter and 'href="08_site.html"' in chapter and 'href="glossary.html"' in chapter
    assert '运行档位' in (site / 'glossary.html').read_text(encoding='utf-8')    # 'profile', first used in 00_core


@pytest.mark.skipif(CHROMIUM is None, reason='Chromium is not installed (apt-get install chromium); .ci/run installs it')
def test_every_page_loads_without_console_errors_in_chromium(site, tmp_path):
    for page in sorted(site.glob('*.html')):
        shot = tmp_path / f'{page.stem}.png'
        proc = subprocess.run([CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
                               '--disable-background-networking', '--disable-component-update', '--disable-sync',
                               f'--user-data-dir={tempfile.mkdtemp()}', '--enable-logging=stderr', '--v=0',
                               '--virtual-time-budget=8000', '--window-size=1200,900', f'--screenshot={shot}',
                               page.as_uri()], capture_output=True, text=True, timeout=120)
        console = [l for l in proc.stderr.splitlines() if 'CONSOLE' in l]
        assert not console, f"{page.name}: {console}"
        assert shot.exists() and shot.stat().st_size > 5000, proc.stderr[-2000:]
    dom = subprocess.run([CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
                          '--disable-background-networking', '--disable-component-update', '--disable-sync',
                          f'--user-data-dir={tempfile.mkdtemp()}', '--virtual-time-budget=10000', '--dump-dom',
                          (site / '40_digits_mlp.html').as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert 'MathJax-Span' in dom or 'mjx-' in dom, 'formulas were not typeset by the local MathJax'
    out = ROOT / 'runs' / 'site-screenshot.png'
    out.parent.mkdir(exist_ok=True)
    shutil.copy(tmp_path / '40_digits_mlp.png', out)     # kept for a human to look at


def test_glossary_extracts_first_uses():
    assert extract_terms('the **validation set** (验证集) and a multilayer perceptron (多层感知机, MLP)') == [
        ('validation set', '验证集'), ('multilayer perceptron', '多层感知机')]
    terms = {e['english']: e for e in collect_glossary(ROOT)}
    assert terms['validation set']['chinese'] == '验证集'
    # the first use wins, in chapter order: the term is defined in both notebooks below
    first = sorted(p.name for p in (ROOT / 'nbs').glob('*.ipynb')
                   if ('validation set', '验证集') in [t for c in read_notebook(p).cells if c.cell_type == 'markdown'
                                                      for t in extract_terms(c.source)])
    assert len(first) >= 2 and terms['validation set']['chapter'] == first[0]


def test_glossary_keeps_first_chapter(tmp_path):
    root = tmp_path / 'c'; (root / 'nbs').mkdir(parents=True); (root / 'settings.ini').write_text('[DEFAULT]\n')
    for name in ('24_regularization.ipynb', '40_digits_mlp.ipynb'): shutil.copy(ROOT / 'nbs' / name, root / 'nbs')
    assert {e['english']: e for e in collect_glossary(root)}['validation set']['chapter'] == '24_regularization.ipynb'
    (root / 'nbs' / '24_regularization.ipynb').unlink()
    assert {e['english']: e for e in collect_glossary(root)}['validation set']['chapter'] == '40_digits_mlp.ipynb'


def test_time_lines_and_plan(tmp_path):
    root = tmp_path / 'c'; (root / 'nbs').mkdir(parents=True); (root / 'settings.ini').write_text('[DEFAULT]\n')
    for name in ('00_core.ipynb', '40_digits_mlp.ipynb'): shutil.copy(ROOT / 'nbs' / name, root / 'nbs')
    (root / 'runs' / 'smoke').mkdir(parents=True)
    (root / 'runs' / 'smoke' / 'report.json').write_text(json.dumps({'profile': 'smoke', 'device': 'cpu', 'notebooks': [
        {'path': 'nbs/00_core.ipynb', 'status': 'ok', 'seconds': 3.0, 'metrics': {}},
        {'path': 'nbs/40_digits_mlp.ipynb', 'status': 'ok', 'seconds': 600.0, 'metrics': {}}]}))
    assert update_time_lines(root) == 2
    nb = read_notebook(root / 'nbs' / '40_digits_mlp.ipynb')
    assert nb.cells[0].source.splitlines()[0].startswith('# Project') and 'smoke 10.0 min on cpu' in nb.cells[0].source
    reading = stated_reading_minutes(nb)
    assert reading == estimate_reading_minutes(nb) and update_time_lines(root) == 0       # idempotent
    plan = plan_workshop(100, profile='smoke', root=root, show=False)
    assert [p['chapter'] for p in plan if p['chapter'] != 'break'] == ['00_core.ipynb', '40_digits_mlp.ipynb']
    first_minutes = plan[0]['minutes']
    short = plan_workshop((first_minutes + 1) / 60, profile='smoke', root=root, show=False)
    assert [p['chapter'] for p in short] == ['00_core.ipynb']


def test_time_lines_keep_runtimes_no_report_replaces(tmp_path):
    root = tmp_path / 'c'; (root / 'nbs').mkdir(parents=True); (root / 'settings.ini').write_text('[DEFAULT]\n')
    shutil.copy(ROOT / 'nbs' / '00_core.ipynb', root / 'nbs')
    def report(profile, seconds, device):
        (root / 'runs' / profile).mkdir(parents=True, exist_ok=True)
        (root / 'runs' / profile / 'report.json').write_text(json.dumps({'profile': profile, 'device': device, 'notebooks': [
            {'path': 'nbs/00_core.ipynb', 'status': 'ok', 'seconds': seconds, 'metrics': {}}]}))
    report('workshop', 140.0, 'cuda (NVIDIA H100)')
    update_time_lines(root)
    shutil.rmtree(root / 'runs' / 'workshop'); report('smoke', 3.0, 'cpu (2-core)')
    update_time_lines(root)                                   # only a smoke report now: the workshop time stays
    line = next(l for l in read_notebook(root / 'nbs' / '00_core.ipynb').cells[0].source.splitlines() if l.startswith('**Time:**'))
    assert 'smoke 3 s on cpu (2-core); workshop 2.3 min on cuda (NVIDIA H100); full not measured yet.' in line
    report('workshop', 30.0, 'cpu (2-core)'); update_time_lines(root)     # a new measurement replaces the old one
    line = read_notebook(root / 'nbs' / '00_core.ipynb').cells[0].source
    assert 'workshop 30 s on cpu (2-core)' in line and 'H100' not in line


def test_plan_command_prints_a_schedule(capsys):
    assert main(['plan', '--hours', '2', '--profile', 'smoke']) == 0
    assert 'Workshop of 2 h' in capsys.readouterr().out


def test_links_come_from_link_elements_not_from_text(tmp_path):
    (tmp_path / 'a.html').write_text(
        '<a href="b.html#top">b</a><img src="missing.png"><a href="https://example.org/x.html">web</a><a href="#here">here</a>'
        '<link rel="icon" href="data:,"><script src="mathjax/MathJax.js?config=x"></script>'
        '<pre><span class="s1">&#39;&lt;a href="</span><span class="si">{</span>page<span class="si">}</span>"&gt;&#39;</pre>', encoding='utf-8')
    (tmp_path / 'b.html').write_text('<p>see <a href="a.html">a</a> and <A HREF="c%20d.html">c d</A></p>', encoding='utf-8')
    assert internal_links(tmp_path / 'a.html') == ['b.html', 'missing.png', 'mathjax/MathJax.js']
    assert sorted(broken_links(tmp_path)) == [('a.html', 'mathjax/MathJax.js'), ('a.html', 'missing.png'), ('b.html', 'c d.html')]


SITE_RUNS = os.environ.get('COURSE_SITE_RUNS')


@pytest.mark.skipif(not SITE_RUNS, reason='the whole-course site needs every notebook executed first: make test-notebooks test-site')
def test_whole_course_site(tmp_path):
    runs = Path(SITE_RUNS)
    report = json.loads((runs / 'report.json').read_text())
    chapters = {p.name for p in list_notebooks(ROOT / 'nbs')}
    ran = {Path(e['path']).name for e in report['notebooks'] if e['status'] == 'ok'}
    assert ran == chapters, f"not executed without error in {runs}: {sorted(chapters - ran)}; run make test-notebooks"
    assert main(['site', str(tmp_path / 'site'), '--runs', str(runs)]) == 0       # non-zero on any broken link
    site = tmp_path / 'site'
    assert {p.name for p in site.glob('*.html')} == {Path(c).stem + '.html' for c in chapters} | {'index.html', 'glossary.html'}
    assert broken_links(site) == []
    for page in site.glob('*.html'):
        text = page.read_text(encoding='utf-8')
        assert not re.search(r'<(script|img|iframe)[^>]+src="https?://', text), f"{page.name} loads an asset from the web"
        assert not re.search(r'<link[^>]+href="https?://', text), f"{page.name} loads a stylesheet from the web"
    if CHROMIUM:
        for name in ('index.html', 'glossary.html', '08_site.html'):
            proc = subprocess.run([CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
                                   '--disable-background-networking', '--disable-component-update', '--disable-sync',
                                   f'--user-data-dir={tempfile.mkdtemp()}', '--enable-logging=stderr', '--v=0',
                                   '--virtual-time-budget=8000', '--dump-dom', (site / name).as_uri()],
                                  capture_output=True, text=True, timeout=120)
            console = [l for l in proc.stderr.splitlines() if 'CONSOLE' in l]
            assert not console and '</html>' in proc.stdout, f"{name}: {console or proc.stderr[-1000:]}"
