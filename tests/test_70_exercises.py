"Exercise checkers of chapter 70: the reference answer passes, the mistake each exercise is about is rejected."
import json
import pytest
from course_lib.llm import chat_serve as C
from exercise_helpers import passes, fails


def test_strict_mode_raises(monkeypatch):
    monkeypatch.setenv('COURSE_STRICT_CHECKS', '1')
    with pytest.raises(AssertionError):
        C.check_sse_event('Exercise 1', lambda data, event=None: f"data: {data}\n\n")


def test_ex1_sse_event(capsys):
    def good(data, event=None):
        return (f"event: {event}\n" if event else '') + f"data: {json.dumps(data)}\n\n"
    passes(capsys, C.check_sse_event('Exercise 1', good))
    passes(capsys, C.check_sse_event('Exercise 1', C.sse_event))
    fails(capsys, C.check_sse_event('Exercise 1', lambda d, e=None: (f"event: {e}\n" if e else '') + f"data: {d}\n\n"))  # repr, not JSON
    fails(capsys, C.check_sse_event('Exercise 1', lambda d, e=None: (f"event: {e}\n" if e else '') + f"data: {json.dumps(d)}\n"))  # no blank line
    fails(capsys, C.check_sse_event('Exercise 1', lambda d, e=None: f"data: {json.dumps(d)}\n\n"))            # the event name dropped
    def raw_text(d, e=None):                                                                                 # unescaped newline
        return (f"event: {e}\n" if e else '') + ('data: {"text": "' + d['text'] + '"}\n\n' if 'text' in d else f"data: {json.dumps(d)}\n\n")
    fails(capsys, C.check_sse_event('Exercise 1', raw_text))
    fails(capsys, C.check_sse_event('Exercise 1', lambda d, e=None: json.dumps(d).encode()))                 # bytes
    fails(capsys, C.check_sse_event('Exercise 1', lambda d, e=None: 1 / 0))


def test_ex2_body_limit(capsys):
    def good(headers, rfile, max_bytes):
        length = headers.get('Content-Length')
        if length is None: return 411, None
        if not length.strip().isdigit(): return 400, None
        if int(length) > max_bytes: return 413, None
        return 200, rfile.read(int(length))
    passes(capsys, C.check_body_limit('Exercise 2', good))
    def via_read_body(headers, rfile, max_bytes):
        try: return 200, C.read_body(headers, rfile, max_bytes)
        except C.RequestError as err: return err.status, None
    passes(capsys, C.check_body_limit('Exercise 2', via_read_body))
    def read_first(headers, rfile, max_bytes):                                                # reads, then checks
        body = rfile.read()
        if 'Content-Length' not in headers: return 411, None
        if not headers['Content-Length'].isdigit(): return 400, None
        return (413, None) if len(body) > max_bytes else (200, body)
    fails(capsys, C.check_body_limit('Exercise 2', read_first))
    def read_then_compare(headers, rfile, max_bytes):                                         # right statuses, reads too early
        length = headers.get('Content-Length')
        if length is None: return 411, None
        body = rfile.read(int(length)) if length.isdigit() else None
        if body is None: return 400, None
        return (413, None) if int(length) > max_bytes else (200, body)
    fails(capsys, C.check_body_limit('Exercise 2', read_then_compare))
    def trusts_negative(headers, rfile, max_bytes):                                           # int('-5') passes the limit
        length = headers.get('Content-Length')
        if length is None: return 411, None
        try: n = int(length)
        except ValueError: return 400, None
        return (413, None) if n > max_bytes else (200, rfile.read(n))
    fails(capsys, C.check_body_limit('Exercise 2', trusts_negative))
    fails(capsys, C.check_body_limit('Exercise 2', lambda h, r, m: 200))
    fails(capsys, C.check_body_limit('Exercise 2', lambda h, r, m: 1 / 0))
