import json, socket
import httpx, pytest, torch
import torch.nn as nn
from course_lib.projects.digits_mlp import MLP
from course_lib.offline import block_network, allow_network, network_blocked
from course_lib.applications.deployment import (export_model, load_exported, measure_latency, speedup, quantize_int8,
                                PredictRequest, digits_preprocess, make_app, serve_in_thread)


def tiny_model(dropout=0.0):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(dropout), nn.Linear(32, 10)).eval()


def test_export_roundtrip_dynamic_batch_and_config(tmp_path):
    model = tiny_model()
    x = torch.rand(4, 64)
    folder = export_model(model, x, tmp_path / 'm', labels=list('abcdefghij'))
    assert {p.name for p in folder.iterdir()} == {'model.pt2', 'weights.safetensors', 'example.safetensors', 'config.json'}
    module, config = load_exported(folder)
    assert config['input_shape'] == [64] and config['labels'][0] == 'a' and config['format'] == 'torch.export'
    with torch.no_grad():
        for n in (1, 7):
            xb = torch.rand(n, 64)
            torch.testing.assert_close(module(xb), model(xb))


def test_load_exported_rejects_tampered_and_incomplete_folders(tmp_path):
    folder = export_model(tiny_model(), torch.rand(2, 64), tmp_path / 'm')
    cfg = json.loads((folder / 'config.json').read_text())
    cfg['model_sha256'] = '0' * 64
    (folder / 'config.json').write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match='SHA-256'):
        load_exported(folder)
    (folder / 'example.safetensors').unlink()
    with pytest.raises(FileNotFoundError, match='missing'):
        load_exported(folder)
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
    folder = export_model(model, torch.rand(2, 64), tmp_path / 'm')
    module, _ = load_exported(folder)
    url, stop = serve_in_thread(make_app(module, digits_preprocess))
    try:
        raw = torch.full((2, 64), 8.0)
        r = httpx.post(url + '/predict', json={'inputs': raw.tolist()}, trust_env=False, timeout=30)
        with torch.no_grad():
            assert r.json()['predictions'] == model(raw / 16).argmax(1).tolist()
    finally:
        stop()
