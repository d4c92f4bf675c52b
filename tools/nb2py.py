#!/usr/bin/env python3
"""Inverse of py2nb.py: write a notebook as a percent-format draft for editing. Usage: nb2py.py in.ipynb out.py"""
import json, sys
nb = json.load(open(sys.argv[1], encoding='utf-8'))
out = []
for c in nb['cells']:
    src = ''.join(c['source'])
    if c['cell_type'] == 'markdown':
        out.append('# %% [markdown]')
        out.extend(('# ' + l) if l else '#' for l in src.splitlines())
    else:
        out.append('# %%')
        out.extend(src.splitlines())
    out.append('')
open(sys.argv[2], 'w', encoding='utf-8').write('\n'.join(out) + '\n')
