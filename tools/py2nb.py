#!/usr/bin/env python3
"""Convert a percent-format draft (.py) into a Jupyter notebook.

Cells are separated by lines starting with '# %%'. '# %% [markdown]' starts a markdown cell whose
lines are written as '# text' comments (the leading '# ' is stripped).
Usage: py2nb.py draft.py out.ipynb
"""
import json, sys, re

def convert(src):
    cells, cur, kind = [], [], None
    def flush():
        if kind is None: return
        lines = list(cur)
        while lines and not lines[-1].strip(): lines.pop()
        while lines and not lines[0].strip(): lines.pop(0)
        if kind == 'markdown':
            lines = [l[2:] if l.startswith('# ') else (l[1:] if l.startswith('#') else l) for l in lines]
        text = '\n'.join(lines)
        cell = {'cell_type': kind, 'metadata': {}, 'source': text}
        if kind == 'code': cell.update(execution_count=None, outputs=[])
        cells.append(cell)
    for line in src.splitlines():
        if line.startswith('# %%'):
            flush(); cur = []
            kind = 'markdown' if '[markdown]' in line else 'code'
        else:
            if kind is None: continue
            cur.append(line)
    flush()
    for c in cells:
        src = c['source'].splitlines(keepends=True)
        c['source'] = src
    return {'cells': cells, 'metadata': {'kernelspec': {'display_name': 'python3', 'language': 'python', 'name': 'python3'}},
            'nbformat': 4, 'nbformat_minor': 4}

if __name__ == '__main__':
    nb = convert(open(sys.argv[1], encoding='utf-8').read())
    with open(sys.argv[2], 'w', encoding='utf-8') as f:
        json.dump(nb, f, indent=1, ensure_ascii=False); f.write('\n')
