"""course_lib: the library the course *Large Models for AI Products* builds, in layers that only point down:

core (`core`, `offline`) <- training (`train.learner`) <- training callbacks (`train.checkpoint`,
`train.distributed`, `train.performance`) <- teaching tools (`teach.exercises`, `teach.notebooks`, `teach.site`)
<- the `course` command (`cli`), which nothing imports. Each chapter's code lives in the subpackage of its part:
`concepts`, `maths`, `algorithms`, `projects`, `applications`. `tests/test_layers.py` enforces the layering.
"""
__version__ = "0.1.0"

from ._compat import install_aliases as _install_aliases
_install_aliases()
