"Chapter 68: verifiable problems and reward, group advantages, the GRPO loss, pass@k, the training loop, the rl stage."
import copy, math
from itertools import combinations
import pytest
import torch
import torch.nn.functional as F
from course_lib.llm import rl as R
from course_lib.llm.chat_sft import save_stage, load_stage, assistant_sizes
from course_lib.llm.byte_tokenizer import train_byte_bpe
from course_lib.llm.inference_engine import Completion
from course_lib.llm.modern_decoder import ModernConfig, ModernLM


@pytest.fixture(scope='module')
def tok():
    return train_byte_bpe("What is 47 + 38? 47 + 38 = 85. Spell the word kind. kind: k-i-n-d. The letter a appears 2 "
                          "times in banana. You are the Kettle & Leaf assistant. Answer briefly. " * 20, 320)


def _tiny(tok, seq=256, seed=0):
    torch.manual_seed(seed)
    return ModernLM(ModernConfig(vocab_size=tok.vocab_size, d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, d_ff=64,
                                 max_seq_len=seq)).eval()


def _problem(task='arithmetic', expected=85, reference='47 + 38 = 85.'):
    return {'task': task, 'messages': [{'role': 'user', 'content': 'What is 47 + 38?'}], 'expected': expected,
            'reference': reference, 'key': '47+38', 'template': 'What is {a} {op} {b}?'}


def test_problems_are_split_by_template_and_content_and_rewarded_by_program():
    tr, ho = R.make_problems('train', 12), R.make_problems('heldout', 6)
    assert len(tr) == 12 * 3 and len(ho) == 6 * 3 and {p['task'] for p in tr} == set(R.RL_TASKS)
    for task in R.RL_TASKS:
        a = [p for p in tr if p['task'] == task]; b = [p for p in ho if p['task'] == task]
        assert not {p['template'] for p in a} & {p['template'] for p in b} and not {p['key'] for p in a} & {p['key'] for p in b}
    assert all(p['messages'][-1]['role'] == 'user' and R.reward(p, p['reference']) == 1.0 for p in tr + ho)
    assert R.make_problems('train', 4) == R.make_problems('train', 4) != R.make_problems('train', 4, seed=1)
    assert isinstance(R.problems_version(), str)
    with pytest.raises(ValueError, match='program'): R.make_problems('train', 2, tasks=('json',))
    with pytest.raises(ValueError, match='split'): R.make_problems('test', 2)


def test_reward_needs_format_correctness_and_a_short_reply():
    p = _problem()
    assert R.reward(p, '47 + 38 = 85.') == 1.0
    assert R.reward(p, '47 + 38 = 86.') == 0.0                            # wrong
    assert R.reward(p, '85 is it, or 47 + 38 = 84.') == 0.0               # the LAST integer is the answer
    assert R.reward(p, '47 + 38 = 85.', formed=False) == 0.0              # not ended by <|end|>
    assert R.reward(p, 'x' * 80 + ' 85') == 0.0                           # over the length cap
    assert R.reward(p, '') == 0.0
    gaming = ' '.join(str(i) for i in range(200))
    assert R.naive_reward(p, gaming) == 1.0 and R.reward(p, gaming) == 0.0
    assert R.naive_reward(p, '85 and more') == 1.0 and R.naive_reward(p, '850') == 0.0
    s = _problem('spelling', 'k-i-n-d', 'kind: k-i-n-d')
    assert R.reward(s, 'kind: k-i-n-d') == 1.0 and R.reward(s, 'kind: k-i-n') == 0.0 and R.naive_reward(s, 'ok k-i-n-d!!') == 1.0
    with pytest.raises(TypeError, match='str'): R.reward(p, 85)
    with pytest.raises(ValueError, match='task'): R.reward({'task': 'json', 'expected': 'x'}, 'x')
    assert R.count_numbers('1 + 22 = -3') == 3 and R.count_numbers('none') == 0


def test_group_advantages_normalise_within_each_group():
    adv = R.group_advantages([1., 0., 0., 0., 1., 1., 1., 1.], 4)
    s3 = math.sqrt(3)
    torch.testing.assert_close(adv, torch.tensor([s3, -1 / s3, -1 / s3, -1 / s3, 0., 0., 0., 0.]), atol=1e-5, rtol=1e-5)
    r = torch.rand(12)
    a = R.group_advantages(r, 3).view(4, 3)
    torch.testing.assert_close(a.sum(1), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(a.std(1, correction=0), torch.ones(4), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match='multiple'): R.group_advantages([1., 0., 1.], 2)
    with pytest.raises(ValueError, match='multiple'): R.group_advantages([], 2)


def test_grpo_loss_matches_hand_values_and_autograd():
    logps = torch.tensor([[-1., -2., 0.], [-.5, -1.5, -3.]], dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, 1, 0], [0, 1, 1]], dtype=torch.bool)
    adv = torch.tensor([1., -1.], dtype=torch.float64)
    d = torch.tensor([[math.log(2), 0., 9.], [9., 0., -math.log(2)]], dtype=torch.float64)
    loss, pg, kl = R.grpo_loss(logps, logps.detach() + d, adv, mask, kl_coef=0.1)
    assert pg.item() == pytest.approx(-0.75) and kl.item() == pytest.approx(0.125) and loss.item() == pytest.approx(-0.7375)
    loss.backward()
    torch.testing.assert_close(logps.grad, (-adv[:, None] / 2 + 0.1 * (1 - d.exp()) / 4) * mask)
    assert R.grpo_loss(logps, logps.detach(), adv, mask)[2].item() == 0.0     # policy = reference: KL 0
    with pytest.raises(ValueError, match='shape'): R.grpo_loss(logps, logps[:1], adv, mask)
    with pytest.raises(ValueError, match='advantages'): R.grpo_loss(logps, logps, adv[:1], mask)
    with pytest.raises(ValueError, match='kl_coef'): R.grpo_loss(logps, logps, adv, mask, kl_coef=-1)


def test_token_logprobs_mask_the_prompt(tok):
    model = _tiny(tok)
    ex = R.reply_example(tok, [{'role': 'user', 'content': 'What is 47 + 38?'}], '47 + 38 = 85.')
    with torch.no_grad():
        logp, mask = R.token_logprobs(model, ex['input_ids'][None], ex['labels'][None])
        seq = R.sequence_logprobs(model, ex['input_ids'][None], ex['labels'][None])
        logits = model(ex['input_ids'][None]).logits[0]
    torch.testing.assert_close((logp * mask).sum(-1), seq)
    torch.testing.assert_close(seq[0], -F.cross_entropy(logits[:-1], ex['labels'][1:], ignore_index=-100, reduction='sum'))
    assert int(mask.sum()) == int((ex['labels'] != -100).sum())
    with pytest.raises(ValueError, match='shape'): R.token_logprobs(model, ex['input_ids'][None], ex['labels'][None, :-1])


def test_pass_at_k_estimate_matches_brute_force():
    for n in range(1, 7):
        for c in range(n + 1):
            for k in range(1, n + 1):
                subsets = list(combinations(range(n), k))
                assert R.pass_at_k_estimate(n, c, k) == pytest.approx(sum(any(i < c for i in s) for s in subsets) / len(subsets))
    assert R.pass_at_k_estimate(10, 3, 1) == pytest.approx(0.3)
    with pytest.raises(ValueError, match='k <= n'): R.pass_at_k_estimate(4, 1, 5)
    with pytest.raises(ValueError, match='c <= n'): R.pass_at_k_estimate(4, 5, 2)


def test_pass_at_1_and_pass_at_k_score_the_replies(tok, monkeypatch):
    model = _tiny(tok)
    probs = [_problem(), _problem('counting', 2, 'The letter a appears 2 times in banana.')]
    res = R.pass_at_1(model, tok, probs, max_new_tokens=4)
    assert set(res) == {'pass_at_1', 'format', 'per_task', 'mean_chars', 'rows'} and len(res['rows']) == 2
    assert 0 <= res['pass_at_1'] <= res['format'] <= 1 or res['pass_at_1'] <= 1
    rows = R.sample_replies(model, tok, probs, 3, seed=4, max_new_tokens=5)
    assert len(rows) == 6 and rows[0]['problem'] is probs[0] and rows[3]['problem'] is probs[1]
    assert [r['reply'] for r in rows] == [r['reply'] for r in R.sample_replies(model, tok, probs, 3, seed=4, max_new_tokens=5)]
    replies = {0: ['47 + 38 = 85.', 'no', '85?', 'x'], 1: ['no'] * 4}          # problem 0: 2 of 4 right, problem 1: none
    fake = lambda m, t, problems, n, *a, **k: [{'problem': p, 'completion': Completion([1], 'stop'), 'reply': replies[i][j],
                                                 'formed': True} for i, p in enumerate(problems) for j in range(n)]
    monkeypatch.setattr(R, 'sample_replies', fake)
    pk = R.pass_at_k(model, tok, probs, k=2, n=4)
    assert pk['correct'] == [2, 0] and pk['pass_at_k'] == pytest.approx((1 - 1 / 6) / 2)
    assert pk['sampled_pass_at_1'] == pytest.approx(2 / 8) and pk['per_task'] == pytest.approx({'arithmetic': 5 / 6, 'counting': 0})
    with pytest.raises(ValueError, match='n >= k'): R.pass_at_k(model, tok, probs, k=4, n=2)


def test_grpo_train_learns_a_toy_reward_and_keeps_the_reference_frozen(tok):
    policy = _tiny(tok); reference = copy.deepcopy(policy)
    before = {k: v.clone() for k, v in reference.state_dict().items()}
    probs = [_problem()] * 4
    short = lambda ex, reply, formed: float(formed)                         # reward: end the reply with <|end|>
    hist = R.grpo_train(policy, reference, tok, probs, steps=25, group_size=4, prompts_per_step=4, lr=5e-2, kl_coef=0.0,
                        max_new_tokens=6, reward_fn=short, seed=0)
    assert len(hist) == 25 and {'reward', 'signal', 'loss', 'pg', 'kl', 'format', 'chars', 'numbers'} <= set(hist[0])
    first, last = sum(h['reward'] for h in hist[:5]) / 5, sum(h['reward'] for h in hist[-5:]) / 5
    assert first < 0.1 and last > 0.8, (first, last)
    assert all(torch.equal(v, before[k]) for k, v in reference.state_dict().items())
    assert not any(p.requires_grad for p in reference.parameters())
    with pytest.raises(ValueError, match='frozen'): R.grpo_train(policy, policy, tok, probs, 1, 2)
    with pytest.raises(ValueError, match='shares'): R.grpo_train(policy, copy.copy(policy), tok, probs, 1, 2)
    with pytest.raises(ValueError, match='group_size'): R.grpo_train(policy, reference, tok, probs, 1, 1)
    with pytest.raises(ValueError, match='problems'): R.grpo_train(policy, reference, tok, [], 1, 2)


def test_rollout_batch_keeps_end_only_when_the_model_stopped(tok):
    p = _problem()
    rows = [{'problem': p, 'completion': Completion([5, 6], 'stop')}, {'problem': p, 'completion': Completion([5, 6, 7], 'length')}]
    b = R.rollout_batch(tok, rows)
    end = tok.special_ids['<|end|>']
    kept = [[t for t, l in zip(ids, lab) if l != -100] for ids, lab in zip(b['input_ids'].tolist(), b['labels'].tolist())]
    assert kept == [[5, 6, end], [5, 6, 7]]


def test_rl_settings_profiles():
    for profile in ('smoke', 'workshop', 'full'):
        s = R.rl_settings(profile)
        assert s['group'] >= 2 and s['n_samples'] >= s['k'] and s['steps'] >= 1
    with pytest.raises(ValueError): R.rl_settings('huge')


def test_rl_stage_trains_saves_and_reloads(tok, tmp_path, monkeypatch):
    monkeypatch.setenv('COURSE_ASSISTANT_DIR', str(tmp_path))
    monkeypatch.setattr(R, 'rl_settings', lambda profile=None: dict(n_train=2, n_eval=2, steps=2, prompts=2, group=2, lr=1e-3,
                                                                    kl_coef=0.05, k=2, n_samples=2, hack_steps=1, max_new_tokens=4))
    monkeypatch.setattr(R, 'reward', lambda ex, reply, formed=True: float(len(reply) % 2))   # a spread of rewards
    start = _tiny(tok)
    monkeypatch.setattr(R, 'dpo_stage', lambda profile=None, device=None: (copy.deepcopy(start), tok, {'stage': 'dpo', 'seconds': 1}))
    model, tok2, meta = R.rl_stage('smoke')
    assert meta['stage'] == 'rl' and meta['start'] == 'dpo' and meta['sizes'] == assistant_sizes('smoke')
    assert len(meta['history']) == 2 and (tmp_path / 'smoke' / 'rl' / 'model.safetensors').is_file()
    again = R.rl_stage('smoke')                                                # same settings and start: loaded
    assert again[2]['seconds'] == meta['seconds']
    x = torch.tensor([[1, 2, 3]])
    torch.testing.assert_close(again[0](x).logits, model(x).logits)
    assert not torch.equal(start(x).logits, model(x).logits)                   # RL moved the policy
    monkeypatch.setattr(R, 'dpo_stage', lambda profile=None, device=None: (copy.deepcopy(start), tok, {'stage': 'dpo', 'seconds': 2}))
    assert R.rl_stage('smoke')[2]['start_meta'] != meta['start_meta']          # a retrained start stage: RL again
    with pytest.raises(ValueError, match='start'): R.rl_stage('smoke', start='base')
