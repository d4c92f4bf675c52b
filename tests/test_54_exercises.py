"Every exercise checker of chapter 54 passes the reference answer and rejects the mistakes the exercise is about."
import httpx, pytest, torch
import torch.nn as nn
from course_lib.applications.deployment import (check_throughput, check_int8_weights, check_predict_http,
                                                check_mismatch_accuracy, make_app, digits_preprocess, serve_in_thread)


def rejected(capsys, result):
    out = capsys.readouterr().out
    return result is False and 'FAIL' in out and 'hint' in out


def passed(capsys, result):
    return result is True and 'PASS' in capsys.readouterr().out


# Exercise 1: throughput from latency
def throughput(rows): return [r['batch_size'] / (r['median_ms'] / 1000) for r in rows]


def test_ex1_throughput(capsys):
    assert passed(capsys, check_throughput('Exercise 1', throughput))
    for wrong in (lambda rows: [r['batch_size'] / r['median_ms'] for r in rows],          # forgot ms -> s
                  lambda rows: [r['median_ms'] / 1000 / r['batch_size'] for r in rows],   # seconds per item
                  lambda rows: [1000 / r['median_ms'] for r in rows]):                    # calls/s, not items/s
        assert rejected(capsys, check_throughput('Exercise 1', wrong))
    assert rejected(capsys, check_throughput('Exercise 1', lambda rows: 1 / 0))           # a crash is a FAIL, not an error


# Exercise 2: int8 quantization by hand
def int8_weights(W):
    scale = W.abs().max() / 127.5
    return torch.clamp(torch.round(W / scale), -128, 127).to(torch.int8), scale


@pytest.fixture
def W():
    torch.manual_seed(0)
    return torch.randn(10, 256) * 0.05


def test_ex2_int8_weights(capsys, W):
    assert passed(capsys, check_int8_weights('Exercise 2', int8_weights, W))
    def scale_127(W):                                            # the usual 127 instead of 127.5
        s = W.abs().max() / 127
        return torch.clamp(torch.round(W / s), -128, 127).to(torch.int8), s
    def truncates(W):                                            # .to(int8) without round()
        s = W.abs().max() / 127.5
        return torch.clamp(W / s, -128, 127).to(torch.int8), s
    def per_row(W):                                              # a scale per row, not per tensor
        s = W.abs().amax(1, keepdim=True) / 127.5
        return torch.clamp(torch.round(W / s), -128, 127).to(torch.int8), s.max()
    def uint8(W):
        q, s = int8_weights(W)
        return (q.int() + 128).to(torch.uint8), s
    for wrong in (scale_127, truncates, per_row, uint8):
        assert rejected(capsys, check_int8_weights('Exercise 2', wrong, W)), wrong.__name__


# Exercises 3 and 4 need the service
@pytest.fixture(scope='module')
def service():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
    labels = [str(i) for i in range(10)]
    url, stop = serve_in_thread(make_app(model, digits_preprocess, labels=labels))
    client = httpx.Client(base_url=url, trust_env=False, timeout=30)
    yield model, labels, client
    client.close(); stop()


def predict_http(client, images):
    out = []
    for i in range(0, len(images), 100):
        r = client.post('/predict', json={'inputs': images[i:i + 100].tolist()})
        r.raise_for_status()
        out += r.json()['predictions']
    return out


def test_ex3_predict_http(capsys, service):
    model, labels, client = service
    images = torch.randint(0, 17, (333, 64)).float()                 # over the 256 per request, not a multiple of 100
    with torch.no_grad(): expected = [labels[i] for i in model(images / 16).argmax(1).tolist()]
    assert passed(capsys, check_predict_http('Exercise 3', predict_http, client, images, expected))
    def one_request(client, images):                                # no chunking: 413
        r = client.post('/predict', json={'inputs': images.tolist()}); r.raise_for_status()
        return r.json()['predictions']
    def drops_last_chunk(client, images):
        out = []
        for i in range(0, len(images) - 100 + 1, 100):
            out += client.post('/predict', json={'inputs': images[i:i + 100].tolist()}).json()['predictions']
        return out
    def sends_scaled(client, images):                               # divides by 16 itself: scaled twice
        return predict_http(client, images / 16)
    for wrong in (one_request, drops_last_chunk, sends_scaled):
        assert rejected(capsys, check_predict_http('Exercise 3', wrong, client, images, expected)), wrong.__name__


def test_ex4_mismatch_accuracy(capsys, service):
    model, labels, client = service
    torch.manual_seed(1)
    X = torch.rand(150, 64)                                          # already scaled to [0, 1], as X_test
    with torch.no_grad(): y = model(X).argmax(1)                     # labels the model gets right on raw pixels
    got = predict_http(client, X)
    mismatch = sum(int(g) == int(t) for g, t in zip(got, y.tolist())) / len(y)
    assert passed(capsys, check_mismatch_accuracy('Exercise 4', mismatch, model, X, y))
    raw = predict_http(client, (X * 16).round())                     # what the service gives on raw pixels
    reused = sum(int(g) == int(t) for g, t in zip(raw, y.tolist())) / len(y)
    assert abs(reused - mismatch) > 0.1
    for wrong in (0.0, reused, 1.0):                                 # always zero; the clean accuracy reused
        assert rejected(capsys, check_mismatch_accuracy('Exercise 4', wrong, model, X, y)), wrong
