import json, shutil, socket, time
import httpx, pytest, torch
import torch.nn as nn
from course_lib.train.learner import MLP
from course_lib.offline import block_network, allow_network, network_blocked
from course_lib.applications.deployment import (export_model, load_exported, verify_export, export_digest, measure_latency,
                                speedup, quantize_int8, PredictRequest, digits_preprocess, make_app, serve_in_thread, _sha256)


def tiny_model(dropout=0.0):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(dropout), nn.Linear(32, 10)).eval()


def test_export_roundtrip_dynamic_batch_and_config(tmp_path):
    model = tiny_model()
    x = torch.rand(4, 64)
    folder = tmp_path / 'm'
    digest = export_model(model, x, folder, labels=list('abcdefghij'))
    assert {p.name for p in folder.iterdir()} == {'model.pt2', 'weights.safetensors', 'example.safetensors', 'config.json'}
    assert digest == export_digest(folder) and len(digest) == 64
    module, config = load_exported(folder, digest)
    assert config['input_shape'] == [64] and config['labels'][0] == 'a' and config['format'] == 'torch.export'
    with torch.no_grad():
        for n in (1, 7):
            xb = torch.rand(n, 64)
            torch.testing.assert_close(module(xb), model(xb))


@pytest.fixture
def exported_pair(tmp_path):
    "An export folder, its digest (kept by the caller), and a second export of another model of the same shape."
    folder, other = tmp_path / 'm', tmp_path / 'other'
    digest = export_model(tiny_model(), torch.rand(2, 64), folder, labels=list('abcdefghij'))
    torch.manual_seed(1)
    export_model(nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.0), nn.Linear(32, 10)).eval(),
                 torch.rand(2, 64), other, labels=list('abcdefghij'))
    return folder, digest, other


def _copy(folder, tmp_path, name):
    dst = tmp_path / name
    shutil.copytree(folder, dst)
    return dst


def test_untampered_folder_loads_and_uses_the_safetensors_weights(exported_pair):
    folder, digest, _ = exported_pair
    module, _ = load_exported(folder, digest)
    from safetensors.torch import load_file
    w = load_file(folder / 'weights.safetensors')
    for k, v in module.state_dict().items():
        assert torch.equal(v, w[k])


def test_swapped_program_file_is_refused(exported_pair, tmp_path):
    folder, digest, other = exported_pair
    bad = _copy(folder, tmp_path, 'swap_pt2')
    shutil.copy(other / 'model.pt2', bad / 'model.pt2')
    with pytest.raises(ValueError, match=r'model\.pt2 does not match its SHA-256'):
        load_exported(bad, digest)


def test_swapped_program_with_rewritten_manifest_hash_is_refused(exported_pair, tmp_path, monkeypatch):
    "The old design kept the only hash in the same folder: an attacker who swaps the file rewrites it too."
    folder, digest, other = exported_pair
    bad = _copy(folder, tmp_path, 'swap_rehash')
    shutil.copy(other / 'model.pt2', bad / 'model.pt2')
    cfg = json.loads((bad / 'config.json').read_text())
    cfg['sha256']['model.pt2'] = _sha256(bad / 'model.pt2')
    (bad / 'config.json').write_text(json.dumps(cfg, indent=2))
    loaded = []
    monkeypatch.setattr(torch.export, 'load', lambda *a, **k: loaded.append(a) or pytest.fail('deserialized before verifying'))
    with pytest.raises(ValueError, match='does not match the expected digest'):
        load_exported(bad, digest)
    assert loaded == []


def test_swapped_weights_are_refused(exported_pair, tmp_path):
    folder, digest, other = exported_pair
    bad = _copy(folder, tmp_path, 'swap_w')
    shutil.copy(other / 'weights.safetensors', bad / 'weights.safetensors')
    with pytest.raises(ValueError, match=r'weights\.safetensors does not match'):
        load_exported(bad, digest)


def test_edited_manifest_is_refused(exported_pair, tmp_path):
    folder, digest, _ = exported_pair
    bad = _copy(folder, tmp_path, 'edit')
    cfg = json.loads((bad / 'config.json').read_text())
    cfg['labels'] = cfg['labels'][::-1]
    (bad / 'config.json').write_text(json.dumps(cfg, indent=2))
    with pytest.raises(ValueError, match='manifest was edited'):
        load_exported(bad, digest)


def test_digest_is_required_and_incomplete_folders_are_named(exported_pair, tmp_path):
    folder, digest, _ = exported_pair
    for missing_digest in (None, '', 'abc'):
        with pytest.raises(ValueError, match='expected_digest'):
            load_exported(folder, missing_digest)
    assert verify_export(folder, digest.upper())['labels'][0] == 'a'
    bad = _copy(folder, tmp_path, 'incomplete')
    (bad / 'example.safetensors').unlink()
    with pytest.raises(FileNotFoundError, match='missing'):
        load_exported(bad, digest)
    with pytest.raises(ValueError, match='batch tensor'):
        export_model(tiny_model(), torch.rand(64), tmp_path / 'bad')


def test_measure_latency_rows_and_speedup():
    rows = measure_latency(tiny_model(), torch.rand(3, 64), batch_sizes=(1, 5), repeats=3, warmup=1)
    assert [r['batch_size'] for r in rows] == [1, 5]
    for r in rows:
        assert r['median_ms'] > 0 and r['p90_ms'] >= r['median_ms'] * (1 - 1e-9) and r['device'] == 'cpu'
        assert r['items_per_s'] == pytest.approx(r['batch_size'] / r['median_ms'] * 1e3)
    fake_base = [{'batch_size': 1, 'median_ms': 4.0}, {'batch_size': 8, 'median_ms': 10.0}]
    fake_new = [{'batch_size': 1, 'median_ms': 2.0}, {'batch_size': 8, 'median_ms': 20.0}, {'batch_size': 9, 'median_ms': 1.0}]
    assert speedup(fake_base, fake_new) == {1: 2.0, 8: 0.5}
    with pytest.raises(ValueError):
        measure_latency(tiny_model(), torch.rand(3, 64), repeats=0)


def test_quantize_int8_replaces_linears_keeps_original_and_is_close():
    model = tiny_model()
    q = quantize_int8(model)
    assert type(model[0]) is nn.Linear                     # the original is untouched
    assert 'quantized.dynamic' in type(q[0]).__module__ and 'quantized.dynamic' in type(q[3]).__module__
    x = torch.rand(16, 64)
    with torch.no_grad():
        assert (q(x) - model(x)).abs().max() < 0.05
    w = model[0].weight.detach(); s = w.abs().max() / 127.5
    assert q[0].weight().q_scale() == pytest.approx(s.item(), rel=1e-6)


def test_digits_preprocess_scales_and_names_problems():
    x = digits_preprocess([[16.0] * 64, [0.0] * 64])
    assert x.shape == (2, 64) and x.max() == 1.0 and x.min() == 0.0
    with pytest.raises(ValueError, match='input 1 has 3 values'):
        digits_preprocess([[0.0] * 64, [1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match=r'\[0, 16\]'):
        digits_preprocess([[17.0] * 64])
    with pytest.raises(ValueError, match='NaN'):
        digits_preprocess([[float('nan')] * 64])
    assert PredictRequest(inputs=[[1, 2]]).inputs == [[1.0, 2.0]]
    for bad in ('1.5', True):
        with pytest.raises(ValueError):
            PredictRequest.model_validate_json(json.dumps({'inputs': [[bad]]}))


def test_server_predicts_like_the_model_rejects_bad_input_and_stops(tmp_path):
    was_blocked = network_blocked()
    block_network()                                   # loopback must still work with the guard on
    try:
        model = MLP(dropout=0.5)
        model.train()                                  # make_app must switch it to eval mode
        labels = [str(i) for i in range(10)]
        url, stop = serve_in_thread(make_app(model, digits_preprocess, labels=labels, max_batch=8))
        assert url.startswith('http://127.0.0.1:')
        raw = torch.randint(0, 17, (5, 64)).float()
        with httpx.Client(base_url=url, trust_env=False, timeout=30) as c:
            assert c.get('/health').json()['status'] == 'ok'
            r = c.post('/predict', json={'inputs': raw.tolist()})
            assert r.status_code == 200, r.text
            assert not model.training
            with torch.no_grad():
                probs = model(raw / 16).softmax(-1)
            assert r.json()['predictions'] == [labels[i] for i in probs.argmax(1).tolist()]
            torch.testing.assert_close(torch.tensor(r.json()['probabilities']), probs, atol=1e-5, rtol=1e-4)
            assert c.post('/predict', json={'inputs': raw.tolist()}).json() == r.json()   # deterministic
            bad = c.post('/predict', json={'inputs': [[1.0] * 10]})
            assert bad.status_code == 400 and '64 pixel values' in bad.json()['detail']
            assert c.post('/predict', json={'inputs': 'x'}).status_code == 422
            assert c.post('/predict', json={'inputs': []}).status_code == 400
            big = c.post('/predict', json={'inputs': raw.repeat(2, 1).tolist()})
            assert big.status_code == 413 and 'limit of 8' in big.json()['detail']
        stop()
        port = int(url.rsplit(':', 1)[1])
        with pytest.raises(OSError):
            socket.create_connection(('127.0.0.1', port), timeout=2).close()
    finally:
        if not was_blocked: allow_network()


def test_serves_an_exported_program(tmp_path):
    model = MLP().eval()
    folder = tmp_path / 'm'
    module, _ = load_exported(folder, export_model(model, torch.rand(2, 64), folder))
    url, stop = serve_in_thread(make_app(module, digits_preprocess))
    try:
        raw = torch.full((2, 64), 8.0)
        r = httpx.post(url + '/predict', json={'inputs': raw.tolist()}, trust_env=False, timeout=30)
        with torch.no_grad():
            assert r.json()['predictions'] == model(raw / 16).argmax(1).tolist()
    finally:
        stop()


@pytest.fixture
def served():
    "A served MLP (body limit 100 kB, timeout 0.5 s) and a slow model's service, both stopped after the test."
    stops = []
    def start(model=None, **kw):
        url, stop = serve_in_thread(make_app(model if model is not None else MLP().eval(), digits_preprocess, **kw))
        stops.append(stop)
        return url
    yield start
    for stop in stops: stop()


def _post(url, body, headers=None):
    t0 = time.perf_counter()
    r = httpx.post(url + '/predict', content=body, headers={'content-type': 'application/json', **(headers or {})},
                   trust_env=False, timeout=60)
    return r, time.perf_counter() - t0


def test_strings_and_booleans_are_422_not_numbers(served):
    url = served()
    for bad in ('1.5', True, None):
        r, _ = _post(url, json.dumps({'inputs': [[bad] * 64]}))
        assert r.status_code == 422, (bad, r.text)
        assert r.json()['detail'][0]['loc'][:2] == ['body', 'inputs']
    r, _ = _post(url, json.dumps({'inputs': [[1] * 64, [0.5] * 64]}))     # JSON integers are numbers
    assert r.status_code == 200, r.text


def test_oversized_body_is_413_before_parsing(served, monkeypatch):
    "A 10 MB body is refused by its Content-Length, and a streamed one after max_body_bytes, without JSON parsing."
    url = served(max_body_bytes=100_000)
    big = json.dumps({'inputs': [[1.0] * 64] * 30_000}).encode()
    assert len(big) > 9_000_000
    r, seconds = _post(url, big)
    assert r.status_code == 413 and 'limit of 100000 bytes' in r.json()['detail']
    assert seconds < 2.0, seconds
    def chunks():
        for i in range(0, len(big), 1 << 16): yield big[i:i + (1 << 16)]
    r, seconds = _post(url, chunks())                                   # no Content-Length header
    assert r.status_code == 413 and seconds < 2.0, (r.status_code, seconds)
    r, _ = _post(url, json.dumps({'inputs': [[1.0] * 64] * 8}))           # a normal body still passes
    assert r.status_code == 200


def test_body_limit_does_not_call_the_app(monkeypatch):
    "The middleware answers 413 itself: the wrapped app (FastAPI, with its JSON parser) is never called."
    import asyncio
    from course_lib.applications.deployment import BodyLimit
    calls, sent = [], []
    async def app(scope, receive, send): calls.append(scope)
    async def send(msg): sent.append(msg)
    body = b'x' * 5000
    async def receive_chunks():
        for i in range(0, len(body), 1000):
            yield {'type': 'http.request', 'body': body[i:i + 1000], 'more_body': i + 1000 < len(body)}
    async def run(headers):
        it = receive_chunks()
        async def receive(): return await it.__anext__()
        await BodyLimit(app, 2000, timeout=5)({'type': 'http', 'headers': headers}, receive, send)
    asyncio.run(run([(b'content-length', b'5000')]))
    asyncio.run(run([]))
    assert calls == [] and [m['status'] for m in sent if m['type'] == 'http.response.start'] == [413, 413]
    sent.clear()
    asyncio.run(BodyLimit(app, 10_000, timeout=5)({'type': 'http', 'headers': []}, receive_once(body), send))
    assert len(calls) == 1 and sent == []


def receive_once(body):
    async def receive(): return {'type': 'http.request', 'body': body, 'more_body': False}
    return receive


class _Slow(nn.Module):
    def forward(self, x):
        time.sleep(1.5)
        return torch.zeros(len(x), 10)


def test_slow_prediction_times_out_with_503(served):
    url = served(_Slow(), request_timeout=0.2)
    r, seconds = _post(url, json.dumps({'inputs': [[1.0] * 64]}))
    assert r.status_code == 503 and 'longer than 0.2 s' in r.json()['detail']
    assert seconds < 1.2, seconds
    time.sleep(1.5)                                    # let the abandoned model call finish before stopping


def test_api_key_is_required_when_set(served):
    url = served(api_key='k3y')
    body = json.dumps({'inputs': [[1.0] * 64]})
    assert _post(url, body)[0].status_code == 401
    assert _post(url, body, {'authorization': 'Bearer wrong'})[0].status_code == 401
    assert _post(url, body, {'authorization': 'Bearer k3y'})[0].status_code == 200
