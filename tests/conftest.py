"""Shared test setup: tests run on the CPU, offline, with the plain-text progress bar."""
import os
os.environ.setdefault('COURSE_DEVICE', 'cpu')
os.environ.setdefault('COURSE_PROGRESS', 'text')
os.environ.setdefault('MPLBACKEND', 'Agg')
os.environ.setdefault('HF_HUB_OFFLINE', '1')

import pytest


@pytest.fixture(autouse=True)
def _lenient_exercise_checks(request, monkeypatch):
    """Tests of exercise checkers (tests/test_*_exercises.py) read the PASS/FAIL lines, so COURSE_STRICT_CHECKS
    (which `make test` sets, turning a FAIL into an AssertionError) is unset for them; a test can set it again."""
    if request.node.path.name.endswith('_exercises.py'):
        monkeypatch.delenv('COURSE_STRICT_CHECKS', raising=False)
