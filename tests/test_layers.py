"""The package's structure: layers that only point down, no import cycle, chapters that never import the CLI,
one notebook per module with matching names, and a reading order in which no chapter uses a later chapter's module.

Imports are read from the source with `ast`, at any depth (an import inside a function is still a dependency)."""
import ast, json, re
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
LIB = ROOT / 'course_lib'

LAYERS = {   # module (relative to course_lib) -> layer; chapter modules sit above the tools they use
    'core': 0, 'offline': 0, '_compat': 0,
    'train.learner': 1,
    'train.checkpoint': 2, 'train.distributed': 2, 'train.performance': 2,
    'teach.exercises': 3, 'teach.notebooks': 3, 'teach.site': 3,
    'cli': 5,
}
CHAPTER_PACKAGES = ('concepts', 'maths', 'algorithms', 'projects', 'applications', 'llm')
CHAPTER_LAYER = 4

def modules():
    out = {}
    for p in sorted(LIB.rglob('*.py')):
        rel = p.relative_to(LIB).with_suffix('')
        if rel.name == '_modidx': continue
        name = '.'.join(rel.parts[:-1]) if rel.name == '__init__' else '.'.join(rel.parts)
        out[name] = p
    return out

def imports_of(name, path):
    "course_lib modules that `path` imports (absolute or relative, at any depth), without the 'course_lib.' prefix."
    tree, found = ast.parse(path.read_text(encoding='utf-8')), set()
    package = name if path.name == '__init__.py' else name.rpartition('.')[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith('course_lib.'): found.add(a.name[len('course_lib.'):])
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.') if package else []
                base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                mod = '.'.join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith('course_lib'):
                mod = node.module[len('course_lib.'):] if node.module != 'course_lib' else ''
            else: continue
            targets = [mod] if node.module or not node.level else []
            for a in node.names:   # `from course_lib.teach import site` imports a module
                sub = f'{mod}.{a.name}' if mod else a.name
                if sub in MODS: targets.append(sub)
            found.update(t for t in targets if t)
    return {m for m in found if m in MODS and m != name}

MODS = modules()
GRAPH = {n: imports_of(n, p) for n, p in MODS.items()}

def layer(name):
    if name in LAYERS: return LAYERS[name]
    if name.split('.')[0] in CHAPTER_PACKAGES: return CHAPTER_LAYER
    if name in ('', 'train', 'teach', *CHAPTER_PACKAGES): return None     # package __init__ files (docstrings only)
    raise AssertionError(f"course_lib.{name} has no layer: add it to LAYERS in tests/test_layers.py")

def test_every_module_has_a_layer():
    for name in MODS: layer(name)

def test_no_import_cycle():
    state, stack = {}, []
    def visit(n):
        state[n] = 'open'; stack.append(n)
        for m in sorted(GRAPH[n]):
            if state.get(m) == 'open':
                cycle = stack[stack.index(m):] + [m]
                raise AssertionError('import cycle: ' + ' -> '.join(cycle))
            if m not in state: visit(m)
        state[n] = 'done'; stack.pop()
    for n in sorted(GRAPH):
        if n not in state: visit(n)

def test_layers_only_point_down():
    bad = [(a, b) for a, deps in GRAPH.items() for b in deps
           if layer(a) is not None and layer(b) is not None and layer(b) > layer(a) and a != '']
    assert not bad, 'imports that point up a layer: ' + ', '.join(f'{a} -> {b}' for a, b in bad)

def test_nothing_imports_the_cli():
    assert not [a for a, deps in GRAPH.items() if 'cli' in deps], 'the course CLI is the top layer: nothing imports it'

def test_the_checker_sees_cycles_and_upward_imports(tmp_path, monkeypatch):
    "The two tests above can fail: a fake learner that imports its checkpoint callback makes both fire."
    global GRAPH
    fake = dict(GRAPH); fake['train.learner'] = GRAPH['train.learner'] | {'train.checkpoint'}
    monkeypatch.setattr(__import__(__name__), 'GRAPH', fake)
    with pytest.raises(AssertionError, match='cycle'): test_no_import_cycle()
    with pytest.raises(AssertionError, match='point up'): test_layers_only_point_down()

def _notebooks():
    out = []
    for p in sorted((ROOT / 'nbs').glob('[0-9]*.ipynb')):
        cells = json.loads(p.read_text(encoding='utf-8'))['cells']
        srcs = [''.join(c['source']) for c in cells if c['cell_type'] == 'code']
        exp = next((m.group(1) for s in srcs for m in [re.match(r'#\|\s*default_exp\s+(\S+)', s)] if m), None)
        used = set()
        for s in srcs:
            try: tree = ast.parse('\n'.join(l for l in s.splitlines() if not l.lstrip().startswith(('%', '!', '#|'))))
            except SyntaxError: continue
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith('course_lib.'):
                    used.add(node.module[len('course_lib.'):])
                elif isinstance(node, ast.Import):
                    used.update(a.name[len('course_lib.'):] for a in node.names if a.name.startswith('course_lib.'))
            # modules named in strings that run as scripts (e.g. torchrun scripts) count too
            used.update(m for m in re.findall(r'from course_lib\.([\w.]+) import', s))
        out.append((p.stem, exp, used & set(MODS)))
    return out

def test_one_notebook_per_module_with_matching_names():
    seen = {}
    for stem, exp, _ in _notebooks():
        if exp is None: continue
        assert exp not in seen, f'{exp} is exported by both {seen[exp]} and {stem}'
        seen[exp] = stem
        assert exp.split('.')[-1] == stem.split('_', 1)[1], f'{stem} exports course_lib.{exp}: name them alike'
    exported = {n for n in MODS if layer(n) is not None and n != '_compat' and n not in CHAPTER_PACKAGES}
    assert exported == set(seen), f'modules without a notebook: {exported - set(seen)}'

# Chapters that still use a later chapter's module (none since issue 15 moved the helpers down; the list may only shrink:
# a new entry fails the test, and so does an entry that no longer applies, so that it is taken off).
KNOWN_LATER_USES = {
}

def later_uses():
    nbs = _notebooks(); order = {exp: i for i, (_, exp, _) in enumerate(nbs) if exp}
    found = {}
    for i, (stem, exp, used) in enumerate(nbs):
        later = {m for m in used | (GRAPH[exp] if exp else set()) if order.get(m, -1) > i}
        if later: found[stem] = later
    return found

# The CLI (chapter 09) runs Part 6's commands (`assistant`, `eval`, `chat`, `serve`): it may name these later modules,
# and only inside a function, so that importing the toolkit never loads them (checked below).
CLI_COMMAND_MODULES = {'llm.report_card', 'llm.chat_serve'}

def _module_level_imports(path):
    "course_lib modules imported at the top level of `path` (outside any function or class)."
    found = set()
    for node in ast.parse(path.read_text(encoding='utf-8')).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith('course_lib'):
            found |= {f"{node.module[len('course_lib.'):]}.{a.name}".strip('.') for a in node.names} | {node.module[len('course_lib.'):]}
        elif isinstance(node, ast.Import):
            found |= {a.name[len('course_lib.'):] for a in node.names if a.name.startswith('course_lib.')}
    return found

def test_cli_loads_part6_only_inside_its_commands():
    assert CLI_COMMAND_MODULES <= GRAPH['cli'], 'the exemption lists a module the CLI no longer uses: take it off'
    assert not _module_level_imports(MODS['cli']) & CLI_COMMAND_MODULES, 'import Part 6 modules inside the command'

def test_reading_order_no_chapter_uses_a_later_chapters_module():
    found = later_uses()
    if '09_cli' in found: found['09_cli'] -= CLI_COMMAND_MODULES
    found = {s: m for s, m in found.items() if m}
    tools = {s: m for s, m in found.items() if s[:1] == '0'}
    assert not tools, f'toolkit chapters use modules of later chapters: {tools}'
    new = {s: m - KNOWN_LATER_USES.get(s, set()) for s, m in found.items() if m - KNOWN_LATER_USES.get(s, set())}
    assert not new, f'chapters use modules exported by later chapters: {new}'
    gone = {s: m - found.get(s, set()) for s, m in KNOWN_LATER_USES.items() if m - found.get(s, set())}
    assert not gone, f'fixed, take these off KNOWN_LATER_USES: {gone}'

def test_old_module_names_still_import_for_one_release():
    import warnings, importlib
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        old = importlib.import_module('course_lib.learner')
    from course_lib.train import learner
    assert old is learner and any(issubclass(x.category, DeprecationWarning) for x in w)
