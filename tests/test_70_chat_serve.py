"Chapter 70: streaming replies, the chat session's limits, the notebook chat box, the SSE server, the CLI and the page in Chromium."
import base64, http.client, io, json, os, shutil, signal, subprocess, sys, tempfile, time
from pathlib import Path
from types import SimpleNamespace
import pytest
import torch
from course_lib.llm import chat_serve as C
from course_lib.llm.byte_tokenizer import train_byte_bpe
from course_lib.llm.chat_sft import render_chat, save_stage, SYSTEM_PROMPT
from course_lib.llm.inference_engine import generate
from course_lib.llm.modern_decoder import ModernConfig, ModernLM
from course_lib.llm.tool_use import TOOL_SYSTEM

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
HELLO = [{'role': 'system', 'content': SYSTEM_PROMPT}, {'role': 'user', 'content': 'Hello there'}]


@pytest.fixture(scope='module')
def tok():
    return train_byte_bpe('What is 12 * 34? calculator: 12 * 34 = 408. Keemun costs 8.90 EUR. 知人者智，自知者明。' * 20, 320)


def _tiny(tok, seed=9, max_seq_len=128):
    torch.manual_seed(seed)
    return ModernLM(ModernConfig(vocab_size=tok.vocab_size, d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, d_ff=64,
                                 max_seq_len=max_seq_len, tie_embeddings=False)).eval()   # untied: a random model writes varied text


@pytest.fixture(scope='module')
def model(tok):
    return _tiny(tok)


def reference_text(model, tok, messages, max_new_tokens):
    "What chapter 62's generate() writes for `messages`: (text, tokens)."
    prompt = render_chat(tok, messages, add_generation_prompt=True)[0]
    c = generate(model, [prompt], max_new_tokens, stop_ids=C.chat_stop_ids(tok), pad_id=tok.pad_id)[0]
    return tok.decode(c.tokens), c.tokens


class Scripted(torch.nn.Module):
    "A stand-in model that writes `rounds[k]` after the k-th tool result (KV cache = the token list so far)."
    def __init__(self, tok, rounds, max_seq_len=256):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.config = SimpleNamespace(max_seq_len=max_seq_len)
        self.tok, self.rounds = tok, rounds

    def forward(self, ids, attention_mask=None, position_ids=None, past_kv=None, use_cache=False):
        seq = (past_kv or []) + ids[0].tolist()
        sp = self.tok.special_ids
        after = len(seq) - 1 - max(i for i, t in enumerate(seq) if t == sp['<|assistant|>'])
        script = self.rounds[min(seq.count(sp['<|tool_result|>']), len(self.rounds) - 1)]
        logits = torch.full((1, ids.shape[1], self.tok.vocab_size), -1e9)
        logits[0, -1, script[min(after, len(script) - 1)]] = 0.0
        return SimpleNamespace(logits=logits, past_kv=seq)


def scripted_tool_model(tok, call='calculator: 12 * 34', answer='12 * 34 = 408.'):
    sp = tok.special_ids
    return Scripted(tok, [[sp['<|tool_call|>']] + tok.encode_ordinary(call) + [sp['<|end|>']],
                          tok.encode_ordinary(answer) + [sp['<|end|>']]])


def test_chat_stop_ids(tok):
    assert C.chat_stop_ids(tok) == {tok.special_ids['<|end|>'], tok.eos_id}


def test_stream_pieces_join_to_generate_text(model, tok):
    for messages, n in [(HELLO, 40), ([{'role': 'user', 'content': '知人者智'}], 25)]:
        pieces = list(C.stream_reply(model, tok, messages, max_new_tokens=n))
        want, tokens = reference_text(model, tok, messages, n)
        assert tokens[:1] != [tok.special_ids['<|tool_call|>']]
        assert ''.join(pieces) == want and all(pieces)
    events = list(C.chat_events(model, tok, HELLO, max_new_tokens=40))
    done = events[-1]
    assert done['type'] == 'done' and done['text'] == reference_text(model, tok, HELLO, 40)[0]
    assert done['messages'][-1] == {'role': 'assistant', 'content': done['text']} and done['messages'][:2] == HELLO
    assert done['finish_reason'] in ('stop', 'length') and done['tokens'] >= 1 and done['ttft_s'] >= 0


def test_stream_never_shows_half_a_character(tok):
    text = '知人者智🙂'
    byte_ids = list(text.encode())                       # one token per byte: every character is split
    model = Scripted(tok, [byte_ids + [tok.special_ids['<|end|>']]])
    pieces = list(C.stream_reply(model, tok, [{'role': 'user', 'content': 'hi'}], max_new_tokens=30))
    assert pieces == list(text)                           # whole characters only, never U+FFFD
    assert [tok.decode([t]) for t in byte_ids].count('\ufffd') > 0     # what per-token decoding would show


def test_tool_call_runs_and_shows_in_the_stream(tok):
    model = scripted_tool_model(tok)
    events = list(C.chat_events(model, tok, [{'role': 'user', 'content': 'What is 12 * 34?'}], max_new_tokens=30))
    assert [e['type'] for e in events[:1]] == ['tool_call'] and events[0]['call'] == 'calculator: 12 * 34'
    assert events[0]['result'] == '408' and events[-1]['finish_reason'] == 'stop' and events[-1]['calls'] == 1
    assert ''.join(e['text'] for e in events if e['type'] == 'text') == '12 * 34 = 408.'
    roles = [(m['role'], 'tool_call' in m) for m in events[-1]['messages']]
    assert roles == [('user', False), ('assistant', True), ('tool', False), ('assistant', False)]
    stream = ''.join(C.stream_reply(model, tok, [{'role': 'user', 'content': 'What is 12 * 34?'}], max_new_tokens=30))
    assert stream == C.format_tool_use('calculator: 12 * 34', '408') + '12 * 34 = 408.'
    assert C.format_tool_use('a: 1', 'b') == '[a: 1 -> b]\n'


def test_tool_errors_cut_off_calls_and_max_calls(tok):
    q = [{'role': 'user', 'content': 'x'}]
    bad = list(C.chat_events(scripted_tool_model(tok, call='shell: ls'), tok, q, max_new_tokens=30))
    assert bad[0]['result'].startswith('error: unknown tool')         # chapter 66's error turn, not an exception
    cut = list(C.chat_events(scripted_tool_model(tok), tok, q, max_new_tokens=4))
    assert cut[0]['result'].startswith('error: the tool call was cut off')
    capped = list(C.chat_events(scripted_tool_model(tok), tok, q, max_new_tokens=30, max_calls=0))
    assert [e['type'] for e in capped] == ['done'] and capped[0]['finish_reason'] == 'max_calls'
    no_tools = list(C.chat_events(scripted_tool_model(tok), tok, q, max_new_tokens=30, tools={}))
    assert no_tools[0]['result'].startswith('error: unknown tool')


def test_chat_events_refuses_bad_arguments(model, tok):
    for kwargs, match in [(dict(messages=[]), 'non-empty list'), (dict(messages=HELLO, max_new_tokens=0), 'max_new_tokens'),
                          (dict(messages=HELLO, max_calls=-1), 'max_calls'),
                          (dict(messages=[{'role': 'user', 'content': 'tea ' * 200}]), "exceeds the model's context")]:
        with pytest.raises(ValueError, match=match):
            list(C.chat_events(model, tok, **kwargs))


def test_chat_session_limits_and_trimming(model, tok):
    s = C.ChatSession(model, tok, max_input_chars=50, max_new_tokens=8)
    assert s.max_history_tokens == 128 - 8 + 1 and s.messages == [{'role': 'system', 'content': SYSTEM_PROMPT}]
    for bad, err, match in [('x' * 51, ValueError, 'max_input_chars=50'), ('  ', ValueError, 'empty'), (3, TypeError, 'str')]:
        with pytest.raises(err, match=match):
            s.send(bad)                                   # refused at once, before any streaming
    for kwargs, match in [(dict(max_new_tokens=128), 'between 1 and 127'), (dict(max_history_tokens=125, max_new_tokens=8), 'max_history_tokens'),
                          (dict(max_input_chars=0), 'max_input_chars')]:
        with pytest.raises(ValueError, match=match):
            C.ChatSession(model, tok, **kwargs)
    budget = len(render_chat(tok, s.messages, add_generation_prompt=True)[0]) + 30
    small = C.ChatSession(model, tok, max_new_tokens=8, max_history_tokens=budget)
    for text in ['one two', 'three four', 'five six', 'seven eight']:
        reply = small.ask(text)
        assert small.last_prompt_tokens <= budget and small.last['text'] == reply
    assert small.dropped > 0 and small.messages[0] == {'role': 'system', 'content': SYSTEM_PROMPT}
    assert small.messages[1] != {'role': 'user', 'content': 'one two'}
    with pytest.raises(ValueError, match='max_history_tokens'):
        small.send('tea ' * 40)                            # the system prompt and this message alone do not fit
    small.reset()
    assert small.messages == [{'role': 'system', 'content': SYSTEM_PROMPT}] and small.dropped == 0
    assert C.ChatSession(model, tok, system=None).messages == []


def test_chat_box_streams_and_escapes(tok):
    model = Scripted(tok, [tok.encode_ordinary('<script>alert(1)</script>') + [tok.special_ids['<|end|>']]])
    box = C.ChatBox(C.ChatSession(model, tok, max_new_tokens=40, max_input_chars=20))
    box.text.value = 'hello'
    box.button.click()
    assert box.shown == [['you', 'hello'], ['assistant', '<script>alert(1)</script>']]
    assert '&lt;script&gt;' in box.transcript.value and '<script>' not in box.transcript.value
    assert box.text.value == '' and 'tokens' in box.status.value
    box.send('x' * 21)
    assert len(box.shown) == 2 and 'max_input_chars=20' in box.status.value


def test_sse_event_and_iter_sse():
    frames = C.sse_event({'text': 'a\nb 知'}) + ': a comment\n\n' + C.sse_event({'tokens': 3}, event='done')
    assert frames.startswith('data: {"text": "a\\nb 知"}\n\n')
    assert list(C.iter_sse(io.StringIO(frames))) == [('message', {'text': 'a\nb 知'}), ('done', {'tokens': 3})]
    raw = [b'event: tool\r\n', b'data: {"call": "c",\r\n', b'data: "result": "r"}\r\n', b'\r\n', b'data: {"x": 1}']
    assert list(C.iter_sse(raw)) == [('tool', {'call': 'c', 'result': 'r'}), ('message', {'x': 1})]


class Reader(io.BytesIO):
    def read(self, n=-1):
        self.calls = getattr(self, 'calls', []) + [n]
        return super().read(n)


def test_read_body_checks_the_length_before_reading():
    body = b'{"messages": []}'
    r = Reader(body + b'NEXT')
    assert C.read_body({'Content-Length': str(len(body))}, r, 100) == body and r.calls == [len(body)]
    for headers, status in [({'Content-Length': str(10 ** 12)}, 413), ({}, 411), ({'Content-Length': 'ten'}, 400),
                            ({'Content-Length': '-1'}, 400), ({'Transfer-Encoding': 'chunked'}, 411)]:
        r = Reader(body)
        with pytest.raises(C.RequestError) as info:
            C.read_body(headers, r, 100)
        assert info.value.status == status and not getattr(r, 'calls', [])     # nothing was read
    with pytest.raises(C.RequestError, match='ended after 3 of the 10 bytes') as info:
        C.read_body({'Content-Length': '10'}, Reader(b'abc'), 100)
    assert info.value.status == 400 and isinstance(info.value, ValueError)


def test_parse_chat_request(tok):
    ok = C.parse_chat_request(json.dumps({'messages': [{'role': 'user', 'content': 'Hi'}], 'max_new_tokens': 5}).encode(),
                              tok, 128, C.CHAT_LIMITS, system='S')
    assert ok == {'messages': [{'role': 'system', 'content': 'S'}, {'role': 'user', 'content': 'Hi'}], 'max_new_tokens': 5,
                  'temperature': 0.0}
    hi = [{'role': 'user', 'content': 'Hi'}]
    for body, match in [(b'{"messages": [', 'not valid JSON'), (b'\xff\xfe', 'not valid JSON'), (b'[1]', 'JSON object'),
                        ({'messages': []}, 'non-empty list'), ({'msgs': hi}, 'unknown keys'), ({'messages': 'Hi'}, 'non-empty list'),
                        ({'messages': [{'role': 'system', 'content': 'x'}] + hi}, "role 'system'"),
                        ({'messages': [{'role': 'user'}]}, "exactly 'role' and 'content'"),
                        ({'messages': [{'role': 'user', 'content': 5}]}, 'non-empty string'),
                        ({'messages': hi * 21}, '21 messages, more than the limit of 20'),
                        ({'messages': [{'role': 'user', 'content': 'x' * 1001}]}, '1001 characters'),
                        ({'messages': hi + [{'role': 'assistant', 'content': 'Hello'}]}, "user's turn"),
                        ({'messages': hi, 'max_new_tokens': 129}, 'max_new_tokens'), ({'messages': hi, 'max_new_tokens': True}, 'max_new_tokens'),
                        ({'messages': hi, 'temperature': 'hot'}, 'temperature'),
                        ({'messages': [{'role': 'user', 'content': 'tea ' * 200}]}, "exceeds the model's context")]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        with pytest.raises(C.RequestError, match=match) as info:
            C.parse_chat_request(raw, tok, 128, C.CHAT_LIMITS)
        assert info.value.status == 400


def test_chat_page_is_self_contained():
    page = C.chat_page(321)
    assert 'maxlength="321"' in page and '<script>' in page and 'fetch(\'/chat\'' in page
    assert 'http://' not in page and 'https://' not in page and 'src=' not in page


def _post(port, body, headers):
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
    conn.putrequest('POST', '/chat')
    for k, v in headers.items(): conn.putheader(k, v)
    conn.endheaders(body)
    r = conn.getresponse()
    return r, conn


def test_server_streams_sse_and_refuses_bad_requests(model, tok):
    with C.serve_chat(model, tok, port=0, max_new_tokens=64, default_new_tokens=30).start() as server:
        port = server.server_address[1]
        body = json.dumps({'messages': HELLO[1:]}).encode()
        r, conn = _post(port, body, {'Content-Type': 'application/json', 'Content-Length': str(len(body))})
        assert r.status == 200 and r.getheader('Content-Type').startswith('text/event-stream')
        events = list(C.iter_sse(r)); conn.close()
        assert events[-1][0] == 'done' and events[-1][1]['finish_reason'] in ('stop', 'length')
        assert ''.join(d['text'] for e, d in events if e == 'message') == reference_text(model, tok, HELLO, 30)[0]
        r, conn = _post(port, None, {'Content-Length': str(10 ** 9)})          # announced, never sent
        assert r.status == 413 and 'limit of 65536' in json.loads(r.read())['error']; conn.close()
        for raw, status in [(b'{"messages": [', 400), (b'{"messages": []}', 400)]:
            r, conn = _post(port, raw, {'Content-Length': str(len(raw))})
            assert r.status == status and json.loads(r.read())['error']; conn.close()
        conn = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
        conn.request('GET', '/health'); health = json.loads(conn.getresponse().read())
        conn.request('GET', '/nope'); assert conn.getresponse().status == 404
        conn.close()
        assert health['status'] == 'ok' and health['context'] == 128 and health['limits']['max_new_tokens'] == 64
    assert C.serve_chat(model, tok, port=0).limits['max_new_tokens'] == 64                  # half the context by default
    assert server._thread is None
    with pytest.raises(TypeError, match='unknown limits'): C.serve_chat(model, tok, port=0, max_tokens=5)
    with pytest.raises(ValueError, match='max_new_tokens'): C.serve_chat(model, tok, port=0, max_new_tokens=500)


def test_server_runs_tools_in_the_stream(tok):
    with C.ChatServer(scripted_tool_model(tok), tok, port=0, system=TOOL_SYSTEM).start() as server:
        body = json.dumps({'messages': [{'role': 'user', 'content': 'What is 12 * 34?'}]}).encode()
        r, conn = _post(server.server_address[1], body, {'Content-Length': str(len(body))})
        events = list(C.iter_sse(r)); conn.close()
    assert events[0] == ('tool', {'call': 'calculator: 12 * 34', 'result': '408'})
    assert ''.join(d['text'] for e, d in events if e == 'message') == '12 * 34 = 408.' and events[-1][1]['calls'] == 1


@pytest.fixture(scope='module')
def stage_dir(tok, tmp_path_factory):
    root = tmp_path_factory.mktemp('assistant')
    save_stage(root / 'smoke' / 'sft', _tiny(tok), tok, {'stage': 'sft'})
    return root


def test_load_chat_stage_and_system_prompts(stage_dir, monkeypatch, tmp_path):
    monkeypatch.setenv('COURSE_ASSISTANT_DIR', str(stage_dir))
    model, tok, meta, stage = C.load_chat_stage('smoke')
    assert stage == 'sft' and meta == {'stage': 'sft'} and model.config.d_model == 32
    with pytest.raises(FileNotFoundError, match=r"no 'dpo' stage.*course assistant --profile smoke.*67_dpo"):
        C.load_chat_stage('smoke', 'dpo')
    with pytest.raises(ValueError, match='unknown stage'): C.load_chat_stage('smoke', 'ppo')
    monkeypatch.setenv('COURSE_ASSISTANT_DIR', str(tmp_path))
    with pytest.raises(FileNotFoundError, match='65_chat_sft'): C.load_chat_stage('smoke')
    assert C.STAGES == ('sft', 'tools', 'dpo', 'rl')
    assert C.system_prompt_for('sft') == SYSTEM_PROMPT and C.system_prompt_for('tools') == TOOL_SYSTEM
    assert C.system_prompt_for('dpo', {'start': 'tools'}) == TOOL_SYSTEM and C.system_prompt_for('dpo', {'start': 'sft'}) == SYSTEM_PROMPT
    assert C.system_prompt_for('rl', {'stage': 'rl', 'start': 'dpo'}) == TOOL_SYSTEM      # rl follows dpo, which follows tools


def test_chat_cli_in_process(stage_dir, monkeypatch, capsys):
    monkeypatch.setenv('COURSE_ASSISTANT_DIR', str(stage_dir))
    out = io.StringIO()
    assert C.chat_cli('smoke', max_new_tokens=20, stdin=io.StringIO('Hello there\n/help\n/reset\n' + 'x' * 1001 + '\nHi\n'),
                      stdout=out) == 0
    text = out.getvalue()
    assert text.count('assistant> ') == 2 and '(conversation forgotten)' in text and 'unknown command /help' in text
    assert 'refused: the message has 1001 characters' in text
    assert C.chat_cli('smoke', 'tools') == 1 and 'course assistant --profile smoke' in capsys.readouterr().err


def _course(*args):
    return [sys.executable, '-c', 'import sys; from course_lib.cli import main; sys.exit(main())', *args]


def _env(stage_dir):
    return {**os.environ, 'COURSE_ASSISTANT_DIR': str(stage_dir), 'OMP_NUM_THREADS': '1'}


def test_course_chat_with_piped_stdin(stage_dir, tok):
    proc = subprocess.run(_course('chat', '--profile', 'smoke', '--stage', 'sft', '--max-new-tokens', '20'),
                          input='Hello there\n/reset\nHello there\n/quit\nnever read\n', capture_output=True, text=True,
                          env=_env(stage_dir), cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    want = reference_text(_tiny(tok), tok, HELLO, 20)[0]
    assert proc.stdout.count(f'assistant> {want}\n') == 2 and 'chatting with the sft stage' in proc.stdout


@pytest.mark.parametrize('sig', ['SIGINT', 'SIGTERM'])
def test_course_serve_streams_and_stops(stage_dir, sig):
    # started as a shell starts a background job: SIGINT ignored on entry; `course serve` must still stop on it
    proc = subprocess.Popen(_course('serve', '--profile', 'smoke', '--port', '0'), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(stage_dir), cwd=ROOT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        line = proc.stdout.readline()
        assert 'serving the sft stage' in line, line + proc.stderr.read() if proc.poll() is not None else line
        port = int(line.split('http://127.0.0.1:')[1].split()[0])
        body = json.dumps({'messages': [{'role': 'user', 'content': 'Hello there'}], 'max_new_tokens': 5}).encode()
        r, conn = _post(port, body, {'Content-Length': str(len(body))})
        assert r.status == 200 and list(C.iter_sse(r))[-1][0] == 'done'; conn.close()
    finally:
        proc.send_signal(getattr(signal, sig))
        try: proc.wait(20)
        except subprocess.TimeoutExpired: proc.kill(); proc.wait()
    assert proc.returncode == 0


class DevTools:
    "A minimal Chrome DevTools Protocol client over one websocket (the websocket-client package)."
    def __init__(self, ws_url):
        import websocket
        self.ws, self.next_id = websocket.create_connection(ws_url, timeout=15, suppress_origin=True), 0

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({'id': self.next_id, 'method': method, 'params': params}))
        while True:                                            # skip events until our answer arrives
            msg = json.loads(self.ws.recv())
            if msg.get('id') == self.next_id:
                if 'error' in msg: raise RuntimeError(f"{method}: {msg['error']}")
                return msg['result']

    def js(self, expression):
        result = self.call('Runtime.evaluate', expression=expression, returnByValue=True, awaitPromise=True)
        if 'exceptionDetails' in result: raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result['result'].get('value')

    def wait_for(self, expression, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.js(expression): return
            time.sleep(0.05)
        raise TimeoutError(f"the page never satisfied {expression}")


def _devtools_page(profile_dir: Path, proc, timeout=15.0) -> str:
    "The websocket URL of Chromium's first page, from the DevToolsActivePort file it writes at start."
    port_file, deadline = profile_dir / 'DevToolsActivePort', time.monotonic() + timeout
    while not (port_file.exists() and port_file.read_text().strip()):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"Chromium did not open its DevTools port: {proc.stderr.read()[-2000:] if proc.poll() is not None else 'timeout'}")
        time.sleep(0.05)
    port = int(port_file.read_text().split()[0])
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
    conn.request('GET', '/json/list'); targets = json.loads(conn.getresponse().read()); conn.close()
    return next(t['webSocketDebuggerUrl'] for t in targets if t['type'] == 'page')


@pytest.mark.skipif(CHROMIUM is None, reason='Chromium is not installed (apt-get install chromium); .ci/run installs it')
def test_web_page_streams_a_reply_in_chromium(model, tok, tmp_path):
    pytest.importorskip('websocket', reason='the browser test drives Chromium with the websocket-client package')
    want, tokens = reference_text(model, tok, HELLO, 30)
    assert want.strip() and tokens[:1] != [tok.special_ids['<|tool_call|>']]      # this tiny model writes text
    server = C.serve_chat(model, tok, port=0, default_new_tokens=30).start()
    profile = tmp_path / 'chromium-profile'
    proc = subprocess.Popen([CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
                             '--disable-background-networking', '--disable-component-update', '--disable-sync',
                             '--disable-extensions', f'--user-data-dir={profile}', '--remote-debugging-port=0',
                             '--window-size=900,700', 'about:blank'],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        page = DevTools(_devtools_page(profile, proc))
        page.call('Page.enable')
        page.call('Page.navigate', url=server.url + '/')
        page.wait_for("document.readyState === 'complete' && !!document.getElementById('message')")
        page.js("document.getElementById('message').focus()")
        page.call('Input.insertText', text='Hello there')                  # typed, as a keyboard would
        box = page.js("JSON.stringify(document.getElementById('send').getBoundingClientRect())")
        rect = json.loads(box)
        x, y = rect['x'] + rect['width'] / 2, rect['y'] + rect['height'] / 2
        for kind in ('mousePressed', 'mouseReleased'):                       # a real click on Send
            page.call('Input.dispatchMouseEvent', type=kind, x=x, y=y, button='left', clickCount=1)
        page.wait_for("document.querySelector('.assistant') && document.querySelector('.assistant').dataset.done === 'true'")
        shown = page.js("document.querySelector('.assistant .text').textContent")
        assert page.js("document.querySelector('.user .text').textContent") == 'Hello there'
        assert not page.js("document.querySelector('.assistant').classList.contains('error')"), shown
        assert shown == want
        assert 'tokens/s' in page.js("document.getElementById('stats').textContent")
        shot = tmp_path / 'chat_screenshot.png'
        shot.write_bytes(base64.b64decode(page.call('Page.captureScreenshot', format='png')['data']))
        assert shot.stat().st_size > 5000
        print(f"screenshot {shot} ({shot.stat().st_size:,} bytes)")
        page.ws.close()
    finally:
        try: os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError: pass
        try: proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL); proc.wait()
        server.stop()
