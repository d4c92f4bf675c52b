"What the exercise-checker tests share: a checker must print PASS and return True, or print FAIL and return False."


def passes(capsys, ok):
    out = capsys.readouterr().out
    assert ok is True and 'PASS' in out, out


def fails(capsys, ok):
    out = capsys.readouterr().out
    assert ok is False and 'FAIL' in out, out
