"Chapter 67: the DPO loss, reply-only log-probs, generated preference pairs and their split, training, metrics, the stage."
import copy, math
import pytest
import torch
import torch.nn.functional as F
from course_lib.llm import dpo as D
from course_lib.llm.chat_sft import save_stage, load_stage, assistant_sizes, stage_fingerprint
from course_lib.llm.byte_tokenizer import train_byte_bpe
from course_lib.llm.modern_decoder import ModernConfig, ModernLM


@pytest.fixture(scope='module')
def tok():
    return train_byte_bpe("Kettle & Leaf sells tea. How much is Keemun? It costs 8.90 EUR. I'm sorry, I don't have "
                          "information about delivery to Mars. " * 20, 320)


def _tiny(tok, seq=128, seed=0):
    torch.manual_seed(seed)
    return ModernLM(ModernConfig(vocab_size=tok.vocab_size, d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, d_ff=64,
                                 max_seq_len=seq)).eval()


def _toy_pairs():
    u = lambda text: [{'role': 'user', 'content': text}]
    return [dict(kind='grounded', topic='price', messages=u('Price of Keemun?'), chosen='It costs 8.90 EUR.',
                 rejected='It costs 3.10 EUR.'),
            dict(kind='refusal', topic='delivery', messages=u('Delivery to Mars?'),
                 chosen="I'm sorry, I don't have information about delivery to Mars.", rejected='Yes, in 3 days.')]


def test_dpo_loss_matches_the_paper_and_autograd():
    t = lambda *v: torch.tensor(v, dtype=torch.float64)
    loss, r_c, r_r = D.dpo_loss(t(-10.), t(-12.), t(-11.), t(-11.), beta=0.1)
    assert loss.item() == pytest.approx(math.log1p(math.exp(-0.2)))            # -log sigmoid(0.1 * (1 - (-1)))
    assert r_c.item() == pytest.approx(0.1) and r_r.item() == pytest.approx(-0.1)
    assert D.dpo_loss(t(-3., -4.), t(-5., -1.), t(-3., -4.), t(-5., -1.))[0].item() == pytest.approx(math.log(2))
    logps = [torch.randn(4, dtype=torch.float64, requires_grad=True) for _ in range(4)]
    loss, r_c, r_r = D.dpo_loss(*logps, beta=0.5)
    loss.backward()
    torch.testing.assert_close(logps[0].grad, -0.5 * torch.sigmoid(r_r - r_c) / 4)
    torch.testing.assert_close(logps[1].grad, 0.5 * torch.sigmoid(r_r - r_c) / 4)
    with pytest.raises(ValueError, match='beta'):
        D.dpo_loss(t(1.), t(1.), t(1.), t(1.), beta=0)
    with pytest.raises(ValueError, match='shape'):
        D.dpo_loss(t(1., 2.), t(1.), t(1.), t(1.))


def test_reply_example_and_sequence_logprobs_count_the_reply_only(tok):
    msgs = [{'role': 'user', 'content': 'Price of Keemun?'}]
    ex = D.reply_example(tok, msgs, 'It costs 8.90 EUR.')
    full_ids, full_mask = D.render_chat(tok, msgs + [{'role': 'assistant', 'content': 'It costs 8.90 EUR.'}])
    assert ex['input_ids'].tolist() == full_ids and (ex['labels'] != -100).tolist() == [bool(m) for m in full_mask]
    model = _tiny(tok)
    with torch.no_grad():
        ours = D.sequence_logprobs(model, ex['input_ids'][None], ex['labels'][None])[0]
        logits = model(ex['input_ids'][None]).logits[0]
    torch.testing.assert_close(ours, -F.cross_entropy(logits[:-1], ex['labels'][1:], ignore_index=-100, reduction='sum'))
    other = D.reply_example(tok, [{'role': 'user', 'content': 'Price of Keemun, please?'}], 'It costs 8.90 EUR.')
    assert (other['labels'] != -100).sum() == (ex['labels'] != -100).sum()     # same reply, same number of tokens
    batch = D.pad_right([ex, other], tok.pad_id)                                 # right padding does not change a sum
    with torch.no_grad():
        torch.testing.assert_close(D.sequence_logprobs(model, batch['input_ids'], batch['labels'])[0], ours, atol=1e-4, rtol=1e-4)
    assert D.reply_example(tok, msgs, [5, 6])['labels'].tolist()[-2:] == [5, 6]
    with pytest.raises(ValueError, match='empty'):
        D.reply_example(tok, msgs, [])
    with pytest.raises(ValueError, match='shape'):
        D.sequence_logprobs(model, ex['input_ids'][None], ex['labels'][None, :-1])
    with pytest.raises(ValueError, match='max_seq_len'):
        D.sequence_logprobs(_tiny(tok, seq=8), ex['input_ids'][None], ex['labels'][None])


def test_preference_pairs_split_by_template_and_content():
    tr, ho = D.make_preference_pairs('train', 24), D.make_preference_pairs('heldout', 12)
    assert len(tr) == 24 * len(D.PAIR_KINDS) and len(ho) == 12 * len(D.PAIR_KINDS)
    for kind in D.PAIR_KINDS:
        a = [p for p in tr if p['kind'] == kind]; b = [p for p in ho if p['kind'] == kind]
        assert not {p['template'] for p in a} & {p['template'] for p in b}
        assert not {p['key'] for p in a} & {p['key'] for p in b}
        assert all(p['messages'][-1]['role'] == 'user' and p['chosen'] != p['rejected'] for p in a + b)
    refusals = [p for p in tr + ho if p['kind'] == 'refusal']
    assert {p['topic'] for p in refusals} == set(D._OUT_OF_SCOPE)
    assert all(D.is_refusal(p['chosen']) and not D.is_refusal(p['rejected']) for p in refusals)
    for p in [p for p in tr + ho if p['kind'] == 'grounded']:                   # chosen = the card's price
        price = p['chosen'].rsplit('costs ', 1)[1].rstrip('.')
        assert f' {price}' in p['messages'][0]['content'] and p['rejected'].rsplit('costs ', 1)[1].rstrip('.') != price
    for p in [p for p in tr + ho if p['kind'] == 'concise']:
        assert p['chosen'] in p['rejected'] and len(p['rejected']) > len(p['chosen'])
    answers = [p for p in tr + ho if p['kind'] == 'answer']                     # answerable: the refusal is rejected
    assert answers and all(D.is_refusal(p['rejected']) and not D.is_refusal(p['chosen']) for p in answers)
    assert {p['topic'] for p in answers} <= set(D.TASKS) - {'no_card', 'two_turns'} and len({p['topic'] for p in answers}) > 3
    tasks = [t for t in D.TASKS if t not in ('two_turns', 'no_card')]           # the chosen text is chapter 65's answer
    answer_texts = {c['messages'][-1]['content'] for c in D.make_conversations('train', -(-24 // len(tasks)), seed=2, tasks=tasks)}
    assert all(p['chosen'] in answer_texts for p in tr if p['kind'] == 'answer')
    assert all('Product:' not in p['messages'][0]['content'] for p in refusals if p['topic'] == 'unknown_tea')
    assert D.make_preference_pairs('train', 5) == D.make_preference_pairs('train', 5)
    assert isinstance(D.preference_version(), str) and D.preference_version() == D.preference_version()
    with pytest.raises(ValueError, match='split'): D.make_preference_pairs('test', 5)
    with pytest.raises(ValueError, match='kinds'): D.make_preference_pairs('train', 5, kinds=('polite',))
    with pytest.raises(ValueError, match='n_per_kind'): D.make_preference_pairs('train', 0)


def test_reward_accuracy_counts_ties_half():
    assert D.reward_accuracy([1., 0., 2.], [0., 0., 3.]) == pytest.approx(0.5)
    assert D.reward_accuracy(torch.zeros(4), torch.zeros(4)) == 0.5
    with pytest.raises(ValueError, match='shape'):
        D.reward_accuracy([1., 2.], [1.])


def test_is_refusal():
    assert D.is_refusal("I'm sorry, I don't have information about Mars.")
    assert D.is_refusal("I don't have information about that.")
    assert not D.is_refusal('Keemun, 50 g, costs 8.90 EUR.')


def test_dpo_train_prefers_chosen_and_keeps_the_reference_frozen(tok):
    pairs = _toy_pairs()
    policy = _tiny(tok); reference = copy.deepcopy(policy)
    before = {k: v.clone() for k, v in reference.state_dict().items()}
    start = D.evaluate_rewards(policy, reference, tok, pairs, beta=0.1)
    assert start['accuracy'] == 0.5 and start['margin'] == 0.0                  # policy = reference: every pair a tie
    history = D.dpo_train(policy, reference, tok, pairs, steps=25, batch_size=4, beta=0.1, lr=1e-2)
    assert history[0]['loss'] == pytest.approx(math.log(2), abs=1e-5) and history[-1]['loss'] < 0.5
    end = D.evaluate_rewards(policy, reference, tok, pairs, beta=0.1)
    assert end['accuracy'] == 1.0 and end['margin'] > 0 and set(end['per_kind']) == {'grounded', 'refusal'}
    assert all(torch.equal(v, before[k]) for k, v in reference.state_dict().items())
    assert not any(p.requires_grad for p in reference.parameters())
    assert D.mean_token_kl(reference, reference, tok, [D.reply_example(tok, p['messages'], p['chosen']) for p in pairs]) == 0.0
    assert D.reply_kl(policy, reference, tok, [p['messages'] for p in pairs], max_new_tokens=8) > 0
    assert history[0]['dpo_loss'] == history[0]['loss'] and history[0]['chosen_nll'] > 0      # plain DPO: no SFT term
    with pytest.raises(ValueError, match='frozen'):
        D.dpo_train(policy, policy, tok, pairs, steps=1, batch_size=1)
    with pytest.raises(ValueError, match='sft_coef'):
        D.dpo_train(_tiny(tok), reference, tok, pairs, steps=1, batch_size=1, sft_coef=-1.0)
    shallow = copy.copy(policy)                                                  # shares the parameter tensors
    with pytest.raises(ValueError, match='shares'):
        D.dpo_train(policy, shallow, tok, pairs, steps=1, batch_size=1)
    with pytest.raises(ValueError, match='pairs'):
        D.dpo_train(policy, reference, tok, [], steps=1, batch_size=1)
    with pytest.raises(ValueError, match='mean_token_kl|examples'):
        D.mean_token_kl(policy, reference, tok, [])


def test_dpo_train_scores_each_pair_once_with_the_reference(tok):
    pairs = _toy_pairs()
    policy = _tiny(tok); reference = copy.deepcopy(policy)
    rows, forward = [], reference.forward
    reference.forward = lambda ids, *a, **k: rows.append(ids.shape[0]) or forward(ids, *a, **k)
    steps, batch = 6, 3
    g = torch.Generator().manual_seed(0)
    drawn = {i for _ in range(steps) for i in torch.randint(len(pairs), (batch,), generator=g).tolist()}
    history = D.dpo_train(policy, reference, tok, pairs, steps=steps, batch_size=batch, lr=0.0)      # lr 0: policy = reference
    assert sum(rows) == 2 * len(drawn) < 2 * steps * batch          # each drawn pair scored once (chosen + rejected)
    for h in history:                                               # the cached scores belong to the pairs drawn
        assert abs(h['chosen_reward']) < 1e-5 and abs(h['rejected_reward']) < 1e-5 and h['reward_accuracy'] == 0.5


def test_sft_term_adds_the_chosen_nll_and_raises_the_chosen_likelihood(tok):
    pairs = _toy_pairs()
    def run(coef):
        policy = _tiny(tok); reference = copy.deepcopy(policy)
        h = D.dpo_train(policy, reference, tok, pairs, steps=15, batch_size=4, beta=0.1, lr=1e-2, sft_coef=coef)
        return policy, h
    with_sft, h1 = run(1.0)
    plain, h0 = run(0.0)
    assert h1[0]['loss'] == pytest.approx(h1[0]['dpo_loss'] + h1[0]['chosen_nll'], rel=1e-5)
    assert h1[0]['dpo_loss'] == pytest.approx(math.log(2), abs=1e-5)
    chosen = lambda m: D.pair_logprobs(m, tok, pairs)[0].sum().item()
    assert chosen(with_sft) > chosen(plain)           # the term keeps the chosen replies likely in absolute terms


def test_mean_token_nll_is_the_cross_entropy_of_the_reply_tokens(tok):
    import torch.nn.functional as F
    model = _tiny(tok)
    b = D.pad_right([D.reply_example(tok, p['messages'], p['chosen']) for p in _toy_pairs()], tok.pad_id)
    with torch.no_grad():
        ours = D.mean_token_nll(D.sequence_logprobs(model, b['input_ids'], b['labels']), b['labels'])
        ce = F.cross_entropy(model(b['input_ids']).logits[:, :-1].transpose(1, 2), b['labels'][:, 1:], ignore_index=-100,
                             reduction='none')
    want = (ce.sum(1) / (b['labels'][:, 1:] != -100).sum(1)).mean()
    torch.testing.assert_close(ours, want)
    assert D.ANSWERABLE_TASKS == tuple(t for t in D.TASKS if t != 'no_card')


def test_behaviour_scores_greedy_replies(tok):
    pairs = _toy_pairs()
    res = D.behaviour(_tiny(tok), tok, pairs, max_new_tokens=6)
    assert set(res) == {'invention_rate', 'grounded_accuracy', 'per_topic', 'rows'} and len(res['rows']) == 2
    assert 0 <= res['invention_rate'] <= 1 and 0 <= res['grounded_accuracy'] <= 1 and set(res['per_topic']) == {'delivery'}
    outs = D.greedy_replies(_tiny(tok), tok, [p['messages'] for p in pairs], max_new_tokens=4)
    assert len(outs) == 2 and all(len(c.tokens) <= 4 for c in outs)


def test_dpo_stage_trains_saves_and_reloads(tok, tmp_path, monkeypatch):
    monkeypatch.setenv('COURSE_ASSISTANT_DIR', str(tmp_path))
    monkeypatch.setattr(D, 'dpo_settings', lambda profile=None: dict(n_pairs=2, steps=2, batch=2, beta=0.1, small_beta=0.01,
                                                                     lr=1e-3, n_eval=2, sft_coef=1.0))
    sizes = assistant_sizes('smoke')
    save_stage(tmp_path / 'smoke' / 'tools', _tiny(tok, seq=640), tok, {'stage': 'tools', 'sizes': sizes})
    calls = []
    def fake_tools_stage(profile=None, device=None, progress=False):
        calls.append(profile); return load_stage(tmp_path / 'smoke' / 'tools')
    monkeypatch.setattr(D, 'tools_stage', fake_tools_stage)
    trained, dpo_train = [], D.dpo_train
    monkeypatch.setattr(D, 'dpo_train', lambda *a, **k: trained.append(1) or dpo_train(*a, **k))
    model, tok2, meta = D.dpo_stage('smoke')                                    # starts from chapter 66's tools stage
    assert meta['stage'] == 'dpo' and meta['start'] == 'tools' and meta['sizes'] == sizes and calls == ['smoke']
    assert meta['start_data'] == D.tools_data_version() and trained == [1]
    assert meta['data'] == D.preference_version() and (tmp_path / 'smoke' / 'dpo' / 'model.safetensors').is_file()
    assert meta['start_meta'] == stage_fingerprint({'stage': 'tools', 'sizes': sizes})
    again = D.dpo_stage('smoke')                           # same settings and start: loaded (the start checked), not retrained
    assert again[2]['seconds'] == meta['seconds'] and trained == [1] and calls == ['smoke', 'smoke']
    x = torch.tensor([[1, 2, 3]])
    torch.testing.assert_close(again[0](x).logits, model(x).logits)
    start = load_stage(tmp_path / 'smoke' / 'tools')[0]
    assert not torch.equal(start(x).logits, model(x).logits)                      # DPO moved the policy
    save_stage(tmp_path / 'smoke' / 'tools', _tiny(tok, seq=640), tok, {'stage': 'tools', 'sizes': sizes, 'seconds': 9})
    D.dpo_stage('smoke')                                                          # the tools stage was trained again
    assert trained == [1, 1]
    with pytest.raises(ValueError, match='start must be one of'):
        D.dpo_stage('smoke', start='missing')


def test_grounded_accuracy_needs_the_exact_price(tok, monkeypatch):
    pair = dict(kind='grounded', topic='price', messages=[{'role': 'user', 'content': 'Price?'}],
                chosen='Keemun, 100 g, costs 8.30 EUR.', rejected='Keemun, 100 g, costs 9.10 EUR.')
    from course_lib.llm.inference_engine import Completion
    for reply, want in (('Keemun, 100 g, costs 58.30 EUR.', 0.0), ('Keemun, 100 g, costs 8.30 EUR.', 1.0)):
        monkeypatch.setattr(D, 'greedy_replies', lambda *a, r=reply, **k: [Completion(tok.encode_ordinary(r), 'stop')])
        assert D.behaviour(None, tok, [pair])['grounded_accuracy'] == want
