"Chapter 72: the grounded assistant's rules, data, stages and server, on tiny sizes."
import http.client, json
import pytest
import torch
from course_lib.llm import grounded_assistant as G
from course_lib.llm.byte_tokenizer import train_byte_bpe
from course_lib.llm.chat_sft import render_chat, is_refusal, save_stage
from course_lib.llm.chat_serve import iter_sse
from course_lib.llm.grounded_retrieval import shop_chunks, retrieval_questions, PRODUCT_TEMPLATES, ORDER_TEMPLATES
from course_lib.llm.modern_decoder import ModernConfig, ModernLM

CHUNKS = [{'id': 'policy/ship#0', 'doc': 'policy/ship', 'kind': 'policy', 'title': 'How much does shipping cost?',
           'text': 'Standard shipping costs 4.90 EUR. Express shipping costs 9.90 EUR.'},
          {'id': 'policy/return#0', 'doc': 'policy/return', 'kind': 'policy', 'title': 'What is your return policy?',
           'text': 'You can return unopened products within 30 days of delivery for a full refund.'}]


@pytest.fixture(scope='module')
def tok():
    text = ' '.join(c['title'] + ' ' + c['text'] for c in shop_chunks()[:30]) + " I'm sorry, I don't have information about that. [1]"
    return train_byte_bpe(text * 3, 400)


def _tiny(tok, max_seq_len=512, seed=0):
    torch.manual_seed(seed)
    return ModernLM(ModernConfig(vocab_size=tok.vocab_size, d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, d_ff=64,
                                 max_seq_len=max_seq_len)).eval()


class Fixed:
    "A stand-in retriever: the same chunks, with score 1, for every question."
    def __init__(self, chunks, threshold=None): self.chunks, self.threshold = list(chunks), threshold
    def search(self, questions, k=1): return [[(i, 1.0 - 0.1 * i) for i in range(min(k, len(self.chunks)))] for _ in questions]


class Scripted(torch.nn.Module):
    "A stand-in model that always writes `text` and <|end|> (KV cache = tokens written so far)."
    def __init__(self, tok, text, max_seq_len=512):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.config = ModernConfig(vocab_size=tok.vocab_size, d_model=8, n_layers=1, n_heads=2, n_kv_heads=1, d_ff=8,
                                   max_seq_len=max_seq_len)
        self.script = tok.encode_ordinary(text) + [tok.special_ids['<|end|>']]
        self.vocab = tok.vocab_size

    def forward(self, ids, attention_mask=None, position_ids=None, past_kv=None, use_cache=False, labels=None):
        from types import SimpleNamespace
        done = (past_kv or 0) + (0 if past_kv is None else ids.shape[1])
        logits = torch.full((ids.shape[0], ids.shape[1], self.vocab), -1e9)
        logits[:, -1, self.script[min(done, len(self.script) - 1)]] = 0.0
        return SimpleNamespace(logits=logits, past_kv=done)


def test_passage_rule_and_prompt(tok):
    assert G.passage_text('One two three. ' + 'x' * 300 + '. Four.', 40) == 'One two three.'
    assert G.passage_text('word ' * 100, 42).endswith('word') and len(G.passage_text('word ' * 100, 42)) <= 42
    with pytest.raises(ValueError, match='max_chars'): G.passage_text('abc', 5)
    with pytest.raises(TypeError): G.passage_text(None)
    assert G.format_passages([]) == 'none'
    assert G.format_passages(CHUNKS).splitlines()[1].startswith('[2] What is your return policy?: You can return')
    m = G.grounded_messages('How much is postage?', CHUNKS[:1])
    assert m[0]['role'] == 'system' and '[1] How much does shipping cost?' in m[0]['content'] and m[1]['content'] == 'How much is postage?'
    with pytest.raises(ValueError, match='question'): G.grounded_messages('  ', CHUNKS)
    full = len(render_chat(tok, m, add_generation_prompt=True)[0])
    small = G.fit_messages(tok, 'How much is postage?', CHUNKS[:1], context=full + 9, reply_tokens=10)
    assert len(render_chat(tok, small, add_generation_prompt=True)[0]) + 10 <= full + 9 and small != m
    assert G.fit_messages(tok, 'How much is postage?', CHUNKS[:1], context=full + 10, reply_tokens=10) == m
    with pytest.raises(ValueError, match='do not fit'): G.fit_messages(tok, 'How much is postage?', CHUNKS[:1], 20, 10)


def test_answer_rule():
    text = 'green tea from Hunan, China. 50 g 4.90 EUR; 100 g 8.80 EUR. Brew at 80 °C for 2 minutes.'
    assert 'EUR' in G.answer_sentence('What does it cost?', text)
    assert G.answer_sentence('Water temperature?', text).startswith('Brew at')
    assert G.answer_sentence('nothing shared', 'First. Second.') == 'First.'
    assert G.grounded_answer('How much is express shipping?', CHUNKS[:1]) == 'Express shipping costs 9.90 EUR. [1]'
    with pytest.raises(ValueError): G.grounded_answer('x', [])


def test_training_conversations_use_training_phrasings_only():
    chunks = shop_chunks()
    convs = G.make_grounded_conversations(chunks, 300, seed=3)
    assert {c['kind'] for c in convs} == set(G.KIND_SHARES)
    held = {q['question'].lower() for s in ('valid', 'test') for q in retrieval_questions(s)}
    assert not {c['question'].lower() for c in convs} & held
    held_templates = {t for s in ('valid', 'test') for _, t in PRODUCT_TEMPLATES[s]} | {ORDER_TEMPLATES[s] for s in ('valid', 'test')}
    assert not held_templates & (set(G.PRODUCT_FRAMES) | set(G.ORDER_FRAMES))
    for c in convs:
        answer = c['messages'][-1]['content']
        if c['kind'] == 'answer':
            assert answer.endswith(' [1]') and G.strip_citations(answer) in G.passage_text(c['passages'][0]['text'])
        else: assert answer == G.REFUSAL_TEXT
        if c['kind'] == 'no_passage': assert c['passages'] == [] and 'Passages:\nnone' in c['messages'][0]['content']
    assert convs == G.make_grounded_conversations(chunks, 300, seed=3)                  # deterministic
    with pytest.raises(ValueError, match='unknown kinds'): G.make_grounded_conversations(chunks, 5, shares={'bad': 1})


def test_citations_support_and_correctness():
    assert G.parse_citations('a [1] b [12]') == [1, 12] and G.strip_citations('Hello there. [1]') == 'Hello there.'
    assert G.support_share('Standard shipping costs 4.90 EUR. [1]', CHUNKS[0]['text']) == 1.0
    assert G.support_share('[1]', 'anything') == 0.0
    assert not G.numbers_match('Express shipping costs 19.90 EUR.', CHUNKS[0]['text'])
    assert G.supports('Express shipping costs 9.90 EUR.', CHUNKS[0]['text'])
    assert not G.supports('Express shipping costs 19.90 EUR.', CHUNKS[0]['text'])
    assert G.is_faithful('Express shipping costs 9.90 EUR. [1]', CHUNKS)
    assert not G.is_faithful('Express shipping costs 9.90 EUR. [2]', CHUNKS)          # the wrong passage cited
    assert not G.is_faithful('Express shipping costs 9.90 EUR. [3]', CHUNKS)          # a passage never given
    assert not G.is_faithful('Express shipping costs 9.90 EUR.', CHUNKS)              # no citation
    assert G.answer_correct('express shipping costs 9.90  EUR. [1]', CHUNKS[:1])
    assert not G.answer_correct('Express shipping is cheap. [1]', CHUNKS[:1])
    assert not G.answer_correct(G.REFUSAL_TEXT, CHUNKS[:1]) and not G.answer_correct('Anything.', [])


def test_grounded_metrics():
    qs = [{'question': 'a', 'chunk_ids': ['policy/ship#0']}, {'question': 'b', 'chunk_ids': ['policy/ship#0']},
          {'question': 'c', 'chunk_ids': []}, {'question': 'd', 'chunk_ids': []}]
    rows = [{'answer': 'Express shipping costs 9.90 EUR. [1]', 'passages': CHUNKS[:1]},
            {'answer': 'You can return unopened products within 30 days of delivery for a full refund. [1]', 'passages': CHUNKS[1:]},
            {'answer': G.REFUSAL_TEXT, 'passages': []}, {'answer': 'Standard shipping costs 4.90 EUR. [1]', 'passages': CHUNKS[:1]}]
    m = G.grounded_metrics(rows, qs, CHUNKS)
    assert m['answer_accuracy'] == 0.5 and m['hallucination_rate'] == 0.5 and m['confident_wrong_rate'] == 0.5
    assert m['faithfulness'] == 1.0 and m['refused_answerable'] == 0.0 and m['n_answered'] == 3
    assert m['gold_retrieved'] == 0.5 and m['accuracy_when_retrieved'] == 1.0
    with pytest.raises(ValueError, match='rows'): G.grounded_metrics(rows[:1], qs, CHUNKS)


def test_invented_answers_and_pairs():
    import random
    rng = random.Random(0)
    changed = G.invent_answer('Express shipping costs 9.90 EUR.', rng)
    assert changed != 'Express shipping costs 9.90 EUR.' and not G.numbers_match(changed, CHUNKS[0]['text'])
    assert G.invent_answer('No number here.', rng, ['Another sentence.']) == 'Another sentence.'
    with pytest.raises(ValueError): G.invent_answer('No number here.', rng, [])
    pairs = G.make_grounding_pairs(shop_chunks(), 40)
    assert {p['kind'] for p in pairs} == {'grounded', 'answer', 'refuse'} and all(p['chosen'] != p['rejected'] for p in pairs)
    assert all(p['rejected'] == G.REFUSAL_TEXT and p['chosen'].endswith('[1]') for p in pairs if p['kind'] == 'answer')
    assert all(p['chosen'] == G.REFUSAL_TEXT and p['rejected'].endswith('[1]') for p in pairs if p['kind'] == 'refuse')


def test_assistant_guard_and_quarantine(tok):
    injected = [{'id': 'x#0', 'doc': 'x', 'kind': 'policy', 'title': 'Refunds', 'text': G.INJECTED_DOCUMENT['text']}]
    promise = 'Any product can be sent back and the money is returned at once, no questions asked. [1]'
    model = Scripted(tok, promise)
    rows = G.GroundedAssistant(model, tok, Fixed(injected + CHUNKS), max_new_tokens=120).answer(['Can I get my money back?'])
    assert rows[0]['reply'] == promise and G.carries_promise(rows[0]['answer']) and rows[0]['passages'][0]['id'] == 'x#0'
    guarded = G.GroundedAssistant(model, tok, Fixed(injected + CHUNKS), max_new_tokens=120, guard_chunks=CHUNKS).answer('Refund?')
    assert guarded[0]['guarded'] and guarded[0]['answer'] == G.REFUSAL_TEXT and guarded[0]['refused']
    quarantined = G.GroundedAssistant(model, tok, Fixed(injected + CHUNKS), quarantine=True).passages(['Refund?'])
    assert [c['id'] for c in quarantined[0]] == ['policy/ship#0']
    assert G.looks_like_instruction(G.INJECTED_DOCUMENT['text']) and not any(G.looks_like_instruction(c['text']) for c in shop_chunks())
    gated = G.GroundedAssistant(model, tok, Fixed(CHUNKS, threshold=2.0)).passages(['x'])
    assert gated == [[]]                                                        # below the threshold: no passage
    with pytest.raises(ValueError, match='max_new_tokens'): G.GroundedAssistant(model, tok, Fixed(CHUNKS), max_new_tokens=600)
    assert not G.carries_promise(G.REFUSAL_TEXT) and not G.carries_promise(CHUNKS[1]['text'])


def test_stages_train_save_and_load(tok, tmp_path, monkeypatch):
    monkeypatch.setenv('COURSE_ASSISTANT_DIR', str(tmp_path))
    tiny = dict(n_train=40, steps=3, batch=4, lr=1e-3, max_new_tokens=16, dpo_pairs=16, dpo_steps=2, dpo_batch=2, beta=0.1,
                dpo_lr=1e-4, n_requests=2)
    monkeypatch.setattr(G, 'grounded_sizes', lambda profile=None: dict(tiny))
    monkeypatch.setattr(G, 'sft_stage', lambda profile=None, device=None, progress=False: (_tiny(tok), tok, {'stage': 'sft'}))
    chunks = shop_chunks()[:20]
    model, t, meta = G.grounded_stage('smoke', chunks)
    assert meta['stage'] == 'grounded' and meta['conversations'] + meta['dropped_too_long'] == 40
    assert (tmp_path / 'smoke' / 'grounded' / 'model.safetensors').is_file()
    again = G.grounded_stage('smoke', chunks)[2]
    assert again['seconds'] == meta['seconds']                                  # loaded, not trained again
    dpo_model, _, dpo_meta = G.grounded_dpo_stage('smoke', chunks)
    assert dpo_meta['stage'] == 'grounded_dpo' and dpo_meta['pairs'] > 0
    assert any((p - q).abs().max() > 0 for p, q in zip(dpo_model.parameters(), model.parameters()))
    assert G.grounded_dpo_stage('smoke', chunks)[2]['seconds'] == dpo_meta['seconds']       # loaded, not trained again


def test_pipeline_dpo_stage_trains_on_its_own_choices_saves_and_loads(tok, tmp_path, monkeypatch):
    monkeypatch.setenv('COURSE_ASSISTANT_DIR', str(tmp_path))
    tiny = dict(n_train=40, steps=3, batch=4, lr=1e-3, max_new_tokens=16, dpo_pairs=16, dpo_steps=2, dpo_batch=2, beta=0.1,
                dpo_lr=1e-4, n_requests=2, pipe_questions=20, pipe_steps=2, pipe_beta=0.3, pipe_lr=1e-4)
    monkeypatch.setattr(G, 'grounded_sizes', lambda profile=None: dict(tiny))
    monkeypatch.setattr(G, 'sft_stage', lambda profile=None, device=None, progress=False: (_tiny(tok), tok, {'stage': 'sft'}))
    chunks = [c for c in shop_chunks() if c['kind'] == 'policy'][:6]
    start = G.grounded_stage('smoke', chunks)[0]
    model, _, meta = G.grounded_pipeline_dpo_stage(Fixed(chunks, threshold=0.5), 'smoke')
    assert meta['stage'] == 'grounded_dpo_pipeline' and meta['pairs']['answer'] == meta['pairs']['refuse'] > 0
    assert meta['retriever'] == ['Fixed', 0.5] and meta['distinct_refuse'] == meta['pairs']['refuse']   # more refusals than answers: sampled
    assert any((p - q).abs().max() > 0 for p, q in zip(model.parameters(), start.parameters()))
    assert G.grounded_pipeline_dpo_stage(Fixed(chunks, threshold=0.5), 'smoke')[2]['seconds'] == meta['seconds']
    assert G.grounded_pipeline_dpo_stage(Fixed(chunks, threshold=0.6), 'smoke')[2]['retriever'] == ['Fixed', 0.6]   # another gate: trained again
    other = G.grounded_pipeline_dpo_stage(Fixed(chunks, threshold=0.6), 'smoke', seed=1)[2]
    assert other['seed'] == 1 and (tmp_path / 'smoke' / 'grounded_dpo_pipeline_s1' / 'model.safetensors').is_file()
    with pytest.raises(ValueError, match='seed'): G.grounded_pipeline_dpo_stage(Fixed(chunks), 'smoke', seed=-1)


def _post(port, body: bytes):
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
    conn.request('POST', '/chat', body, {'Content-Type': 'application/json', 'Content-Length': str(len(body))})
    return conn.getresponse(), conn


def test_server_streams_sources_and_answer_over_http(tok):
    answer = 'Express shipping costs 9.90 EUR. [1]'
    assistant = G.GroundedAssistant(Scripted(tok, answer), tok, Fixed(CHUNKS), max_new_tokens=40)
    with G.serve_grounded(assistant, port=0).start() as server:
        got = G.ask_server(server.url, 'How much is express postage?')
        assert got['text'] == answer and got['sources'][0]['id'] == 'policy/ship#0' and got['ms'] > 0
        assert got['done']['finish_reason'] == 'stop' and got['done']['refused'] is False
        r, conn = _post(server.server_address[1], b'{"messages": []}')
        assert r.status == 400 and json.loads(r.read())['error']; conn.close()
        body = json.dumps({'messages': [{'role': 'user', 'content': 'hi'}]}).encode()
        r, conn = _post(server.server_address[1], body)
        events = [e for e, _ in iter_sse(r)]; conn.close()
        assert events[0] == 'sources' and events[-1] == 'done' and 'message' in events
    guarded = G.GroundedAssistant(Scripted(tok, 'We ship to Mars for free. [1]'), tok, Fixed(CHUNKS), guard_chunks=CHUNKS)
    with G.GroundedChatServer(guarded, port=0).start() as server:
        got = G.ask_server(server.url, 'Do you ship to Mars?')
    assert got['text'] == G.REFUSAL_TEXT and got['done']['guarded'] is True
    with pytest.raises(TypeError, match='GroundedAssistant'): G.GroundedChatServer(object(), port=0)


def test_latency_summary():
    s = G.latency_summary([10.0, 20.0, 30.0, 40.0, 50.0])
    assert s['p50'] == 30.0 and s['n'] == 5 and s['max'] == 50.0
    assert s['p95'] == pytest.approx(torch.quantile(torch.tensor([10., 20, 30, 40, 50], dtype=torch.float64), 0.95).item())
    with pytest.raises(ValueError, match='no latencies'): G.latency_summary([])


def test_mismatch_questions_are_about_named_things_and_cards_can_be_counterfactual():
    import random
    from course_lib.llm.chat_sft import shop_teas
    chunks = shop_chunks()
    convs = G.make_grounded_conversations(chunks, 200, seed=5, shares={'wrong_passage': 1.0})
    prefixes = ('product/', 'order/', 'invented/', 'counterfactual/product/')
    assert convs and all(c['about'].startswith(prefixes) for c in convs)          # never a policy: its mismatch is meaning
    assert all(c['passages'][0]['doc'] not in c['about'] for c in convs)           # the passage is another document's
    products = [c for c in chunks if c['kind'] == 'product']
    fake = G.training_chunks(products, random.Random(0), invent=0.0, counterfactual=1.0)
    real = next(c for c in products if c['title'] == fake['title'])
    assert fake['title'] in shop_teas() and fake['id'] == f"counterfactual/{real['id']}" and fake['doc'] == real['doc']
    assert fake['text'] != real['text'] and 'Brew at' in fake['text']             # a made-up card under the real name
    kept = G.training_chunks(products, random.Random(0), invent=0.0, counterfactual=0.0)
    assert kept in products                                                        # off: the real chunk, unchanged
    answers = G.make_grounded_conversations(chunks, 400, seed=5, shares={'answer': 1.0})
    assert any(c['about'].startswith('counterfactual/') for c in answers)
    reading = [c for c in answers if c['about'].startswith('invented/passage')]
    assert reading and all(G.strip_citations(c['messages'][-1]['content']) in c['passages'][0]['text'] for c in reading)
    assert all(c['passages'][0]['text'] not in {k['text'] for k in chunks} for c in reading)   # never a shop policy
    off = G.make_grounded_conversations(chunks, 400, seed=5, shares={'answer': 1.0}, reading=0.0)
    assert not any(c['about'].startswith('invented/passage') for c in off)


def test_reply_logprobs_is_the_sum_of_the_replys_token_logprobs(tok):
    model = _tiny(tok)
    messages = G.grounded_messages('How much is express shipping?', CHUNKS[:1])
    replies = ['Express shipping costs 9.90 EUR. [1]', G.REFUSAL_TEXT]
    got = G.reply_logprobs(model, tok, messages, replies)
    prompt = render_chat(tok, messages, add_generation_prompt=True)[0]
    for reply, value in zip(replies, got):
        ids = prompt + tok.encode_ordinary(reply) + [tok.special_ids['<|end|>']]
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)
        want = sum(logp[t - 1, ids[t]] for t in range(len(prompt), len(ids)))
        torch.testing.assert_close(value, want.detach(), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match='no reply'): G.reply_logprobs(model, tok, messages, [])


def test_copy_mode_answers_with_a_passage_sentence_or_refuses(tok, monkeypatch):
    assert G.copy_candidates(CHUNKS) == ['Standard shipping costs 4.90 EUR. [1]', 'Express shipping costs 9.90 EUR. [1]',
                                         'You can return unopened products within 30 days of delivery for a full refund. [2]']
    model = _tiny(tok)
    rows = G.GroundedAssistant(model, tok, Fixed(CHUNKS), mode='copy').answer(['Express postage?', 'Refunds?'])
    for r in rows:                                   # a real (untrained) model: whatever it picks is a sentence or the refusal
        assert r['answer'] in G.copy_candidates(r['passages']) + [G.REFUSAL_TEXT] and isinstance(r['margin'], float)
    monkeypatch.setattr(G, 'reply_logprobs', lambda m, t, msgs, replies: torch.tensor([-5.0, -1.0, -3.0]))
    row = G.GroundedAssistant(model, tok, Fixed(CHUNKS), mode='copy').answer('Express postage?')[0]
    assert row['answer'] == 'Express shipping costs 9.90 EUR. [1]' and row['margin'] == 2.0 and not row['refused']
    strict = G.GroundedAssistant(model, tok, Fixed(CHUNKS), mode='copy', margin=2.5).answer('Express postage?')[0]
    assert strict['answer'] == G.REFUSAL_TEXT and strict['best'] == 'Express shipping costs 9.90 EUR. [1]' and strict['refused']
    none = G.GroundedAssistant(model, tok, Fixed(CHUNKS), threshold=2.0, mode='copy').answer('Express postage?')[0]
    assert none['passages'] == [] and none['answer'] == G.REFUSAL_TEXT and none['margin'] is None
    gated = G.GroundedAssistant(model, tok, Fixed(CHUNKS), k=2, threshold=0.95).passages(['x'])[0]
    assert [c['id'] for c in gated] == ['policy/ship#0']                       # a number is the gate itself
    with pytest.raises(ValueError, match='mode'): G.GroundedAssistant(model, tok, Fixed(CHUNKS), mode='sample')
    with pytest.raises(TypeError, match='threshold'): G.GroundedAssistant(model, tok, Fixed(CHUNKS), threshold='0.4')


def test_choose_gate_and_margin_replays_the_grid_and_picks_the_lowest_cost():
    ship, ret = CHUNKS[0], CHUNKS[1]
    questions = [{'question': 'a', 'chunk_ids': ['policy/ship#0']}, {'question': 'b', 'chunk_ids': []},
                 {'question': 'c', 'chunk_ids': ['policy/return#0']}]
    rows = [{'question': 'a', 'passages': [{**ship, 'score': 0.5}], 'best': 'Express shipping costs 9.90 EUR. [1]', 'margin': -1.5},
            {'question': 'b', 'passages': [{**ret, 'score': 0.32}], 'best': f"{ret['text']} [1]", 'margin': 0.5},
            {'question': 'c', 'passages': [{**ret, 'score': 0.9}], 'best': f"{ret['text']} [1]", 'margin': 3.0}]
    replay = G.copy_rows_at(rows, 0.0, -2.0)
    assert [r['refused'] for r in replay] == [False, False, False]            # the out-of-scope one is answered: wrong
    assert [r['refused'] for r in G.copy_rows_at(rows, 0.35, 0.0)] == [True, True, False]
    got = G.choose_gate_and_margin(rows, questions, CHUNKS, gates=(0.0, 0.35), margins=(-2.0, 0.0, 1.0))
    assert (got['gate'], got['margin'], got['cost']) == (0.35, -2.0, 0) and len(got['table']) == 6
    assert {(r['gate'], r['margin']): r['cost'] for r in got['table']}[(0.0, -2.0)] == 1     # one confident wrong answer
    tie = G.choose_gate_and_margin(rows, questions, CHUNKS, gates=(0.35, 0.4), margins=(-2.0,))
    assert tie['gate'] == 0.4                                                  # equal cost: the higher gate refuses more
    with pytest.raises(ValueError, match='k=1'): G.copy_rows_at([{**rows[0], 'passages': [ship, ret]}], 0.0, 0.0)
    with pytest.raises(ValueError, match='k=1'): G.copy_rows_at([{'question': 'a', 'passages': []}], 0.0, 0.0)
    with pytest.raises(ValueError, match='at least one'): G.choose_gate_and_margin(rows, questions, CHUNKS, gates=())


def test_server_sends_the_copy_mode_reply_whole(tok, monkeypatch):
    monkeypatch.setattr(G, 'reply_logprobs', lambda m, t, msgs, replies: torch.tensor([-5.0, -1.0, -3.0]))
    assistant = G.GroundedAssistant(_tiny(tok), tok, Fixed(CHUNKS), mode='copy', guard_chunks=CHUNKS)
    with G.serve_grounded(assistant, port=0).start() as server:
        got = G.ask_server(server.url, 'How much is express postage?')
    assert got['text'] == 'Express shipping costs 9.90 EUR. [1]' and got['done']['refused'] is False
    assert got['done']['guarded'] is False and got['done']['finish_reason'] == 'stop'


def test_hijack_detector_naive_prompt_and_its_mitigations(tok):
    assert G.follows_hijack('The letter f appears 1 times in refund.') and G.follows_hijack('The letter e appears 2 times in something.')
    assert G.follows_hijack('the letter r appears 1 time')                                   # a count, right or wrong
    assert not G.follows_hijack('r-e-f-u-n-d') and not G.follows_hijack(G.REFUSAL_TEXT)       # spelling is another task
    assert not G.follows_hijack('The letter arrives in 3 days.')
    assert not any(G.follows_hijack(c['text']) for c in shop_chunks())                        # no real passage looks hijacked
    assert not G.follows_hijack('Order KL-10025 was placed on 2025-10-04. [1]')
    messages = G.naive_messages('Can I get my money back?', [G.HIJACK_DOCUMENT])
    assert [m['role'] for m in messages] == ['system', 'user'] and G.HIJACK_DOCUMENT['text'] in messages[1]['content']
    assert messages[1]['content'].endswith('Question: Can I get my money back?') and 'Passages' not in messages[0]['content']
    assert 'Passages:\nnone' in G.naive_messages('Hi?', [])[1]['content']
    with pytest.raises(ValueError, match='non-empty'): G.naive_messages('  ', [])
    assert G.looks_like_instruction(G.HIJACK_DOCUMENT['text'])                                # the quarantine drops it
    checker = G.GroundedAssistant(_tiny(tok), tok, Fixed(CHUNKS), guard_chunks=CHUNKS)
    assert checker.check('r-e-f-u-n-d') == (G.REFUSAL_TEXT, True)                             # the output check replaces it


def test_fitting_chars_takes_a_count_or_a_function_of_the_cut(tok):
    q = 'How much is postage?'
    full = len(render_chat(tok, G.grounded_messages(q, CHUNKS[:1]), add_generation_prompt=True)[0])
    assert G.fitting_chars(tok, q, CHUNKS[:1], full + 10, 10) == G.MAX_PASSAGE_CHARS
    assert G.fitting_chars(tok, q, CHUNKS[:1], full + 9, 10) < G.MAX_PASSAGE_CHARS
    seen = []
    def need(cut):                                    # copy mode asks for its longest reply at each cut
        seen.append(cut); return 10 if cut < G.MAX_PASSAGE_CHARS else 10_000
    assert G.fitting_chars(tok, q, CHUNKS[:1], full + 10, need) == G.MAX_PASSAGE_CHARS - 40 and seen == [200, 160]
    with pytest.raises(ValueError, match='do not fit'): G.fitting_chars(tok, q, CHUNKS[:1], 20, lambda cut: 10)


ORDERS = [{'id': f'order/KL-{n}#0', 'doc': f'order/KL-{n}', 'kind': 'order', 'title': f'Order KL-{n}',
           'text': f'Status: {status}. Placed on 2025-10-04 by Greta.'} for n, status in (('10025', 'delivered'), ('10048', 'shipped'))]


PRODUCTS = [{'id': f'product/{n.lower().replace(" ", "-")}#0', 'doc': f'product/{n}', 'kind': 'product', 'title': n,
             'text': f'{n}: a tea. 100 g 9.90 EUR.'} for n in ('Yunnan Gold', 'Earl Grey', 'Earl Grey Cream')]


def test_lookup_identifiers_matches_order_numbers_exactly():
    other, policy = ORDERS[1], CHUNKS[0]
    # the retriever found another order's card: it is replaced by the named order's, the policy stays
    got = G.lookup_identifiers('Where is my parcel KL-10025?', [other, policy], ORDERS + CHUNKS)
    assert [c['id'] for c in got] == ['order/KL-10025#0', 'policy/ship#0'] and got[0]['score'] == 1.0
    # an order the knowledge base lacks gets no order card at all (never a wrong one), the case of the number ignored
    assert G.lookup_identifiers('Why is order kl-51345 late?', [other], ORDERS + CHUNKS) == []
    assert [c['id'] for c in G.lookup_identifiers('kl-10048: status?', [], ORDERS)] == ['order/KL-10048#0']
    # a question that names nothing keeps what retrieval found, in its order
    assert G.lookup_identifiers('How much does shipping cost?', [other, policy], ORDERS + CHUNKS) == [other, policy]
    assert G.ORDER_NUMBER.findall('KL-1002 and KL-100250 are not order numbers') == []


def test_lookup_identifiers_matches_product_names_exactly():
    kb = ORDERS + PRODUCTS + CHUNKS
    # a price question retrieved an order card (orders list teas and prices): the named tea's card comes first
    got = G.lookup_identifiers('How much would I pay for the big yunnan gold pack?', [ORDERS[0], PRODUCTS[1]], kb)
    assert [c['id'] for c in got] == [PRODUCTS[0]['id'], ORDERS[0]['id']] and got[0]['score'] == 1.0
    # the longest name wins: 'Earl Grey Cream' names one product, not also 'Earl Grey'; a part of a word is no name
    assert [c['title'] for c in G.named_chunks('Is Earl Grey Cream in stock?', kb)] == ['Earl Grey Cream']
    assert G.named_chunks('Do you sell pearl greyhound biscuits?', kb) == []
    # a made-up tea names no product, so retrieval's result stands (the gate and the model decide)
    assert G.lookup_identifiers('What would a pack of ShanFeng cost me?', [PRODUCTS[1]], kb) == [PRODUCTS[1]]


def test_assistant_match_ids_applies_the_lookup(tok):
    model = Scripted(tok, 'x')
    wrong_first = Fixed([ORDERS[1], ORDERS[0]] + CHUNKS)              # the retriever ranks the other order first
    plain = G.GroundedAssistant(model, tok, wrong_first).passages(['Where is my parcel KL-10025?', 'Is KL-99999 late?'])
    assert [p[0]['id'] for p in plain] == ['order/KL-10048#0', 'order/KL-10048#0']
    looked = G.GroundedAssistant(model, tok, wrong_first, match_ids=True).passages(['Where is my parcel KL-10025?',
                                                                                     'Is KL-99999 late?'])
    assert [c['id'] for c in looked[0]] == ['order/KL-10025#0'] and looked[1] == []
    copier = G.GroundedAssistant(model, tok, wrong_first, mode='copy', match_ids=True)
    row = copier.answer('Is KL-99999 late?')[0]                       # no passage: copy mode refuses without scoring
    assert row['refused'] and row['margin'] is None and row['passages'] == []


def test_quarantine_also_screens_looked_up_cards(tok):
    planted = {**PRODUCTS[0], 'id': 'product/planted#0', 'text': G.INJECTED_DOCUMENT['text']}   # a card that carries an instruction
    kb = Fixed([CHUNKS[0], planted])
    found = G.GroundedAssistant(Scripted(tok, 'x'), tok, kb, match_ids=True).passages(['Price of Yunnan Gold?'])
    assert [c['id'] for c in found[0]] == ['product/planted#0']          # the exact lookup finds it, score 1.0
    safe = G.GroundedAssistant(Scripted(tok, 'x'), tok, kb, match_ids=True, quarantine=True).passages(['Price of Yunnan Gold?'])
    assert [c['id'] for c in safe[0]] == ['policy/ship#0']                # the quarantine drops it; the retrieved policy stays


def test_pipeline_questions_are_training_questions_and_out_of_scope_ones():
    chunks = shop_chunks()
    qs = G.pipeline_questions(chunks, 50, seed=3)
    assert qs == G.pipeline_questions(chunks, 50, seed=3) and qs != G.pipeline_questions(chunks, 50, seed=4)
    about = [q for q, c in qs if c is not None]
    out = [q for q, c in qs if c is None]
    assert len(about) == 50 and len(out) == len(G.OFF_TOPIC) + 3 * len(G.SHOP_LIKE_TRAIN) + 5
    held = {q['question'].lower() for s in ('valid', 'test') for q in retrieval_questions(s)}
    assert not held & {q.lower() for q, _ in qs}                               # never a held-out question
    assert not held & {q.lower() for q in G.SHOP_LIKE_TRAIN}


def test_pipeline_pairs_reject_the_models_own_pick():
    ship, ret = CHUNKS
    class Picks:
        "A stand-in assistant: `passages` from a table, `choose` returns a fixed best sentence (copy mode's choice)."
        max_chars = G.MAX_PASSAGE_CHARS
        def __init__(self, found): self.found = found
        def passages(self, questions): return [self.found[q] for q in questions]
        def choose(self, q, passages): return {'best': f"{passages[0]['text'].split('. ')[0]}. [1]", 'margin': 0.0, 'reply': ''}
        def copy_prompt(self, q, passages): return G.grounded_messages(q, passages), []
    found = {'ship?': [{**ship, 'score': 0.9}], 'return?': [{**ship, 'score': 0.8}], 'weather?': [{**ret, 'score': 0.7}],
             'low?': [{**ret, 'score': 0.2}], 'none?': []}
    qs = [('ship?', ship), ('return?', ret), ('weather?', None), ('low?', ret), ('none?', None)]
    pairs = G.pipeline_pairs(Picks(found), qs, gate=0.5, refuse_share=0.5)
    assert [(p['kind'], p['question']) for p in pairs] == [('answer', 'ship?'), ('refuse', 'return?')]
    assert pairs[0]['chosen'] == 'Standard shipping costs 4.90 EUR. [1]' and pairs[0]['rejected'] == G.REFUSAL_TEXT
    assert pairs[1]['chosen'] == G.REFUSAL_TEXT and pairs[1]['rejected'] == 'Standard shipping costs 4.90 EUR. [1]'
    assert pairs[0]['messages'][-1] == {'role': 'user', 'content': 'ship?'}       # the prompt copy mode scored
    more = G.pipeline_pairs(Picks(found), qs, gate=None, refuse_share=0.75)   # no gate: 'low?' is answered from its document
    assert [p['question'] for p in more] == ['ship?', 'low?'] + ['return?', 'weather?'] * 3    # refusals repeated to 75 %
    few = G.pipeline_pairs(Picks(found), qs, gate=0.5, refuse_share=1 / 3)     # 2 refusals, 1 answer: one refusal kept
    assert [p['kind'] for p in few] == ['answer', 'refuse'] and few[1]['question'] in {'return?', 'weather?'}
    assert few == G.pipeline_pairs(Picks(found), qs, gate=0.5, refuse_share=1 / 3)                 # the sample is seeded
    with pytest.raises(ValueError, match='refuse_share'): G.pipeline_pairs(Picks(found), qs, refuse_share=1.0)
    with pytest.raises(ValueError, match='0 answer'): G.pipeline_pairs(Picks(found), [('weather?', None)])


def test_pipeline_pairs_chosen_answer_is_a_sentence_of_the_asked_document():
    ship = CHUNKS[0]
    class WrongPick:
        max_chars = G.MAX_PASSAGE_CHARS
        def passages(self, questions): return [[{**ship, 'score': 1.0}] for _ in questions]
        def choose(self, q, passages): return {'best': 'Something else entirely. [1]', 'margin': 0.0, 'reply': ''}
        def copy_prompt(self, q, passages): return G.grounded_messages(q, passages), []
    pairs = G.pipeline_pairs(WrongPick(), [('How much is express shipping?', ship), ('Tell me a joke.', None)])
    assert pairs[0]['chosen'] == 'Express shipping costs 9.90 EUR. [1]'      # not the model's wrong pick: answer_sentence's


def test_choose_at_accuracy_fixes_accuracy_then_minimises_hallucination():
    table = [{'gate': 0.4, 'margin': 0.0, 'cost': 5, 'answer_accuracy': 0.70, 'hallucination_rate': 0.10},
             {'gate': 0.4, 'margin': -2.0, 'cost': 4, 'answer_accuracy': 0.75, 'hallucination_rate': 0.20},
             {'gate': 0.3, 'margin': -2.0, 'cost': 6, 'answer_accuracy': 0.80, 'hallucination_rate': 0.30},
             {'gate': 0.46, 'margin': -2.0, 'cost': 6, 'answer_accuracy': 0.78, 'hallucination_rate': 0.20}]
    assert G.choose_at_accuracy(table, 0.75) == {'gate': 0.46, 'margin': -2.0, 'answer_accuracy': 0.78,
                                                 'hallucination_rate': 0.20, 'cost': 6}   # tie on hallucination: more accurate
    assert G.choose_at_accuracy(table, 0.5)['margin'] == 0.0 and G.choose_at_accuracy(table, 0.8)['gate'] == 0.3
    assert G.choose_at_accuracy(table, 0.7 + 1e-12)['answer_accuracy'] >= 0.7     # a float a hair above is not "none"
    with pytest.raises(ValueError, match='reaches accuracy'): G.choose_at_accuracy(table, 0.9)
    with pytest.raises(ValueError, match='empty'): G.choose_at_accuracy([], 0.5)
