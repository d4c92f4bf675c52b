"Chapter 69: the held-out suite, the evaluation harness and its cache, the report card, the resumable pipeline, the commands."
import json, math, types
import pytest
import torch
from course_lib import core
from course_lib.llm import report_card as R
from course_lib.llm.chat_sft import save_stage, load_stage, make_conversations, document_ids, TASKS
from course_lib.llm.tool_use import make_tool_conversations
from course_lib.llm.dpo import PAIR_KINDS
from course_lib.llm.byte_tokenizer import train_byte_bpe
from course_lib.llm.modern_decoder import ModernConfig, ModernLM


@pytest.fixture(scope='module')
def tok():
    return train_byte_bpe("Kettle & Leaf sells tea. How much is Keemun? It costs 8.90 EUR. What is 347 * 589? "
                          "I'm sorry, I don't have information about delivery to Mars. " * 20, 300)


def _tiny(tok, seed=0):
    torch.manual_seed(seed)
    return ModernLM(ModernConfig(vocab_size=tok.vocab_size, d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, d_ff=64,
                                 max_seq_len=512)).eval()


@pytest.fixture(scope='module')
def tiny_suite():
    return R.make_suite('smoke', bpb_windows=2, bpb_len=64, bpb_chars=3000, chat=1, tools=4, pairs=1, rl=0,
                        latency_new=4, latency_repeats=1)


def test_suite_is_held_out_fixed_and_sized(tiny_suite):
    s = tiny_suite
    assert s['rl'] is None and len(s['chat']) == len(TASKS) and len(s['pairs']) == len(PAIR_KINDS)
    seen_chat, seen_tools = make_conversations('train', 10), make_tool_conversations('train', 10)
    assert not {e['template'] for e in s['chat']} & {e['template'] for e in seen_chat}
    assert not {e['template'] for e in s['tools']} & {e['template'] for e in seen_tools}
    assert not {e['key'] for e in s['chat']} & {e['key'] for e in seen_chat}
    again = R.make_suite('smoke', bpb_windows=2, bpb_len=64, bpb_chars=3000, chat=1, tools=4, pairs=1, rl=0,
                         latency_new=4, latency_repeats=1)
    assert again['version'] == s['version']
    assert R.make_suite('smoke', chat=2, tools=4, pairs=1, rl=0)['version'] != s['version']
    assert R.suite_sizes('smoke')['chat'] < R.suite_sizes('workshop')['chat'] < R.suite_sizes('full')['chat']
    with pytest.raises(ValueError, match='unknown suite sizes'):
        R.make_suite('smoke', questions=3)


def test_validation_windows_are_spread_without_overlap(tok):
    ids = document_ids(tok, split='validation', max_chars=3000)
    w = R.validation_windows(tok, 4, 50, max_chars=3000)
    assert w.shape == (4, 50) and torch.equal(w[0], ids[:50]) and torch.equal(w[-1], ids[-50:])
    starts = [next(i for i in range(len(ids) - 49) if torch.equal(ids[i:i + 50], row)) for row in w]
    assert all(b - a >= 50 for a, b in zip(starts, starts[1:]))
    assert R.validation_windows(tok, 10 ** 6, 50, max_chars=3000).shape[0] == len(ids) // 50
    with pytest.raises(ValueError, match='length'):
        R.validation_windows(tok, 2, 1)
    with pytest.raises(ValueError, match='max_chars'):
        R.validation_windows(tok, 2, 10 ** 7, max_chars=100)


def test_evaluate_stage_scores_every_part_of_the_suite(tok, tiny_suite):
    model = _tiny(tok)
    m = R.evaluate_stage(model, tok, 'smoke', tiny_suite, reference=_tiny(tok), beta=0.1)
    for k in ('val_bpb', 'chat_format', 'chat_accuracy', 'answerable_refusal_rate', 'tool_accuracy', 'no_tool_accuracy',
              'tool_lookup_accuracy', 'tool_call_rate', 'out_of_scope_refusal_rate', 'grounded_accuracy', 'reward_accuracy',
              'ttft_ms', 'decode_tok_s', 'task.arithmetic'):
        assert k in m, k
    assert 'pass_at_1' not in m                                   # no chapter 68 problems: absent, not faked
    assert m['suite'] == tiny_suite['version'] and m['val_bpb'] > 0 and m['decode_tok_s'] > 0
    assert m['chat_accuracy'] <= m['chat_format'] and all(0 <= m[k] <= 1 for k in ('chat_format', 'tool_accuracy'))
    same = R.evaluate_stage(model, tok, 'smoke', tiny_suite, reference=model)
    assert same['reward_accuracy'] == 0.5                         # policy == reference: every pair is a tie
    with pytest.raises(ValueError, match='make_suite'):
        R.evaluate_stage(model, tok, 'smoke', {'chat': []})


def test_evaluate_stage_reports_pass_at_1_from_chapter_68(tok, tiny_suite, monkeypatch):
    seen = []
    monkeypatch.setattr(R, 'pass_at_1', lambda model, tokenizer, problems: seen.append(problems) or {'pass_at_1': 0.25})
    problems = R.make_problems('heldout', 1)
    m = R.evaluate_stage(_tiny(tok), tok, 'smoke', {**tiny_suite, 'rl': problems})
    assert m['pass_at_1'] == 0.25 and seen == [problems]
    assert R.make_suite('smoke', rl=0)['rl'] is None and len(R.make_suite('smoke')['rl']) > 0


def test_answerable_refusal_rate_leaves_out_the_no_card_task(tok, tiny_suite, monkeypatch):
    "A refusal is the right answer to chapter 65's no_card task: it must not count as refusing an answerable question."
    def fake_chat(replies):
        def evaluate_chat(model, tokenizer, examples, **kw):
            rows = [{'task': ex['task'], 'reply': replies(ex), 'format': True, 'correct': False} for ex in examples]
            return {'format': 1.0, 'accuracy': 0.0, 'per_task': {}, 'rows': rows}
        return evaluate_chat
    refuse = "I'm sorry, I don't have information about that."
    monkeypatch.setattr(R, 'evaluate_chat', fake_chat(lambda ex: refuse if ex['task'] == 'no_card' else 'It costs 8.90 EUR.'))
    assert R.evaluate_stage(_tiny(tok), tok, 'smoke', tiny_suite)['answerable_refusal_rate'] == 0
    monkeypatch.setattr(R, 'evaluate_chat', fake_chat(lambda ex: refuse))
    assert R.evaluate_stage(_tiny(tok), tok, 'smoke', tiny_suite)['answerable_refusal_rate'] == 1


def test_cached_evaluation_is_keyed_by_stage_suite_and_reference(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(R, 'evaluate_stage', lambda *a, **k: calls.append(1) or {'chat_format': 0.5, 'val_bpb': float('nan')})
    suite = {'version': 'v1'}
    m, cached = R.cached_evaluation(tmp_path, {'stage': 'sft', 'seconds': 1}, None, None, 'smoke', suite)
    assert not cached and m['chat_format'] == 0.5 and (tmp_path / 'eval.json').is_file()
    assert R.cached_evaluation(tmp_path, {'stage': 'sft', 'seconds': 1}, None, None, 'smoke', suite)[1] is True
    assert len(calls) == 1
    assert R.cached_evaluation(tmp_path, {'stage': 'sft', 'seconds': 2}, None, None, 'smoke', suite)[1] is False
    assert R.cached_evaluation(tmp_path, {'stage': 'sft', 'seconds': 2}, None, None, 'smoke', {'version': 'v2'})[1] is False
    assert R.cached_evaluation(tmp_path, {'stage': 'sft', 'seconds': 2}, None, None, 'smoke', {'version': 'v2'},
                               reference=object(), reference_meta={'stage': 'x'})[1] is False
    (tmp_path / 'eval.json').write_text('{broken')
    assert R.cached_evaluation(tmp_path, {'stage': 'sft'}, None, None, 'smoke', suite)[1] is False
    assert not list(tmp_path.glob('*.tmp-*'))
    R.cached_evaluation(tmp_path / 'missing', {'stage': 'sft'}, None, None, 'smoke', suite)   # no folder: nothing written
    assert not (tmp_path / 'missing').exists()


def test_report_card_columns_rows_and_deltas():
    results = {'rl': {'chat_format': 1.0, 'pass_at_1': 0.5}, 'base': {'chat_format': 0.0, 'val_bpb': 2.0, 'task.json': 0.0},
               'sft': {'chat_format': 0.75, 'val_bpb': 2.5, 'task.json': 0.5, 'train_seconds': 3.0},
               'dpo': {'chat_format': 0.5, 'val_bpb': float('nan'), 'pass_at_1': 0.25}}
    md, table = R.report_card(results, notes=['held out'])
    assert table['stages'] == ['base', 'sft', 'dpo', 'rl'] and table['delta_against'] == 'sft'
    assert md.splitlines()[0] == '| metric | better | BASE | SFT | DPO | RL |' and '- held out' in md
    rows = {r['metric']: r for r in table['rows']}
    assert rows['chat_format']['values'] == {'base': 0.0, 'sft': 0.75, 'dpo': 0.5, 'rl': 1.0}
    assert rows['chat_format']['delta_vs_sft'] == {'dpo': -0.25, 'rl': 0.25}           # only stages after SFT
    assert rows['val_bpb']['values']['dpo'] is None and 'dpo' not in rows['val_bpb']['delta_vs_sft']
    assert rows['pass_at_1']['delta_vs_sft'] == {} and 'task.json' in rows
    line = next(l for l in md.splitlines() if l.startswith('| chat: format'))
    assert '75 %' in line and '(-25 pts ↓)' in line and '(+25 pts ↑)' in line
    assert [r['metric'] for r in table['rows']][:2] == ['val_bpb', 'chat_format']
    json.dumps(table, allow_nan=False)                                                  # NaN never reaches the JSON
    md2, t2 = R.report_card({'dpo': {'chat_format': 0.5}})
    assert t2['delta_against'] is None and '(' not in md2.splitlines()[2]
    with pytest.raises(ValueError, match='non-empty'):
        R.report_card({})
    with pytest.raises(TypeError, match='dict of metrics'):
        R.report_card({'sft': 0.5})


def test_write_report_writes_both_files_atomically(tmp_path):
    paths = R.write_report({'sft': {'chat_format': 1.0}}, tmp_path / 'out', notes=['n'], title='T')
    assert paths['markdown'].read_text().startswith('# T\n\n| metric')
    assert json.loads(paths['json'].read_text())['rows'][0]['values'] == {'sft': 1.0}
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['report.json', 'report.md']


class FakeStages:
    "Fast stand-ins for the stage functions: each saves a tiny real ModernLM stage, or loads it when saved."
    def __init__(self, tok, fail=()):
        self.tok, self.fail, self.trained = tok, set(fail), []

    def builder(self, name):
        def build(profile, device, progress):
            folder = R.assistant_dir(profile) / name
            if (found := load_stage(folder, {'stage': name})) is not None: return found
            if name in self.fail: raise KeyboardInterrupt          # killed while training this stage
            self.trained.append(name)
            model, meta = _tiny(self.tok, seed=len(self.trained)), {'stage': name, 'seconds': 10.0 + len(self.trained)}
            if name == 'rl': meta['start'] = 'dpo'
            save_stage(folder, model, self.tok, meta)
            return model, self.tok, meta
        return build

    def install(self, monkeypatch):
        for name in R.STAGES: monkeypatch.setitem(R.STAGE_BUILDERS, name, self.builder(name))


@pytest.fixture
def fast_eval(monkeypatch, tmp_path):
    "A temporary assistant folder, a tiny fixed suite and a fast fake evaluate_stage that counts its calls."
    monkeypatch.setenv('COURSE_ASSISTANT_DIR', str(tmp_path))
    calls = []
    def fake_evaluate(model, tokenizer, profile=None, suite=None, reference=None, beta=None):
        calls.append(reference is not None)
        stage = len(calls)
        m = {'suite': suite['version'], 'chat_format': 0.5 + 0.1 * stage, 'chat_accuracy': 0.1 * stage,
             'tool_accuracy': 0.2, 'no_tool_accuracy': 0.1, 'pass_at_1': 0.1 * stage}
        if reference is not None: m['reward_accuracy'] = 0.75
        return m
    monkeypatch.setattr(R, 'evaluate_stage', fake_evaluate)
    monkeypatch.setattr(R, 'make_suite', lambda profile=None, **k: {'version': 'fake-suite', 'sizes': {}})
    return calls


def test_run_assistant_resumes_after_a_kill(tok, fast_eval, monkeypatch, tmp_path, capsys):
    fake = FakeStages(tok, fail={'tools'})
    fake.install(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        R.run_assistant('smoke')
    assert fake.trained == ['base', 'sft'] and len(fast_eval) == 2
    assert (tmp_path / 'smoke' / 'sft' / 'eval.json').is_file() and not (tmp_path / 'smoke' / 'tools').exists()
    fake.fail.clear()
    capsys.readouterr()
    out = R.run_assistant('smoke')
    log = capsys.readouterr().out
    assert fake.trained == ['base', 'sft', 'tools', 'dpo', 'rl']                  # base and sft were not trained again
    assert [out['stages'][s]['status'] for s in R.STAGES] == ['loaded', 'loaded', 'trained', 'trained', 'trained']
    assert out['stages']['base']['eval'] == 'cached' and len(fast_eval) == 5     # nor evaluated again
    assert '[assistant] base  loaded' in log and '[assistant] tools trained' in log
    assert fast_eval[-2] is True                                                 # dpo is scored against the sft reference
    assert out['train_seconds'] == sum(out['stages'][s]['train_seconds'] for s in R.STAGES) == 11 + 12 + 13 + 14 + 15
    assert out['pipeline_seconds'] > 0 and out['results']['sft']['train_seconds'] == 12.0
    h = out['headline']
    assert h['assistant.dpo_reward_accuracy'] == 0.75 and h['assistant.rl_gain_over_start'] == pytest.approx(0.1)
    res = out['results']
    assert h['assistant.rl_gain'] == pytest.approx(res['rl']['pass_at_1'] - res['sft']['pass_at_1'])       # against SFT
    assert h['assistant.rl_gain'] != pytest.approx(h['assistant.rl_gain_over_start'])
    assert h['assistant.base_format'] == out['results']['base']['chat_format']
    assert core.RUN_METRICS['assistant.pipeline_seconds'] == out['pipeline_seconds']
    saved = json.loads((tmp_path / 'smoke' / 'report.json').read_text())
    assert saved['stages'] == list(R.STAGES) and '| metric |' in (tmp_path / 'smoke' / 'report.md').read_text()


def test_run_assistant_retrains_from_a_stage_and_respects_the_budget(tok, fast_eval, monkeypatch, tmp_path, capsys):
    fake = FakeStages(tok)
    fake.install(monkeypatch)
    out = R.run_assistant('smoke', stages=('base', 'sft'), budget_s=0, progress=False, record_results=False)
    assert out['results'] == {} and out['markdown'] is None and fake.trained == []
    assert all(st['status'] == 'skipped' and 'budget' in st['why'] for st in out['stages'].values())
    R.run_assistant('smoke', stages='base,sft,dpo', progress=False, record_results=False)
    assert fake.trained == ['base', 'sft', 'dpo']
    out = R.run_assistant('smoke', stages='base,sft,dpo', retrain_from='sft', budget_s=0, progress=False, record_results=False)
    assert fake.trained == ['base', 'sft', 'dpo']                                # the budget stops retraining too
    out = R.run_assistant('smoke', stages='base,sft,dpo', retrain_from='sft', progress=False, record_results=False)
    assert fake.trained[3:] == ['sft', 'dpo'] and out['stages']['base']['status'] == 'loaded'
    assert not list((tmp_path / 'smoke').glob('*.aside-*'))
    fake.fail.add('dpo')                                                         # a failed retraining keeps the old stage
    with pytest.raises(KeyboardInterrupt):
        R.run_assistant('smoke', stages='dpo', retrain_from='dpo', progress=False, record_results=False)
    assert load_stage(tmp_path / 'smoke' / 'dpo', {'stage': 'dpo'}) is not None
    with pytest.raises(ValueError, match='stages'):
        R.run_assistant('smoke', stages=('base', 'midtraining'))
    with pytest.raises(ValueError, match='retrain_from'):
        R.run_assistant('smoke', retrain_from='chat')


def test_eval_main_and_assistant_main(tok, fast_eval, monkeypatch, tmp_path, capsys):
    FakeStages(tok).install(monkeypatch)
    assert R.eval_main(['--profile', 'smoke']) == 1
    assert 'course assistant --profile smoke' in capsys.readouterr().out
    assert R.assistant_main(['--profile', 'smoke', '--stages', 'base,sft']) == 0
    assert '| metric | better | BASE | SFT |' in capsys.readouterr().out
    assert R.eval_main(['--profile', 'smoke', '--out', str(tmp_path / 'cards')]) == 0
    log = capsys.readouterr().out
    assert 'missing stages: tools, dpo, rl' in log and 'course assistant --profile smoke' in log
    assert (tmp_path / 'cards' / 'report.md').is_file() and (tmp_path / 'cards' / 'report.json').is_file()
    assert R.eval_main(['--profile', 'smoke', '--stages', 'base,chat']) == 2
    assert R.assistant_main(['--profile', 'smoke', '--stages', 'base,sft', '--from', 'sft']) == 0
    with pytest.raises(SystemExit):
        R.assistant_main(['--from', 'pretraining'])
    out = R.evaluate_saved('smoke', 'base,sft', progress=False)
    assert out['missing'] == [] and set(out['results']) == {'base', 'sft'}


KILLED_RUN = r'''
import os, sys, time
from pathlib import Path
from course_lib.llm import report_card as R
from course_lib.llm.chat_sft import save_stage, load_stage
from course_lib.llm.byte_tokenizer import train_byte_bpe
from course_lib.llm.modern_decoder import ModernConfig, ModernLM
tok = train_byte_bpe("Kettle & Leaf sells tea. " * 20, 280)
def builder(name):
    def build(profile, device, progress):
        folder = R.assistant_dir(profile) / name
        if (found := load_stage(folder, {'stage': name})) is not None: return found
        if name == 'tools':                       # the third stage: tell the test, then wait to be killed
            Path(sys.argv[1]).write_text('training tools'); time.sleep(120)
        model = ModernLM(ModernConfig(vocab_size=tok.vocab_size, d_model=32, n_layers=1, n_heads=2, n_kv_heads=1,
                                      d_ff=64, max_seq_len=64))
        save_stage(folder, model, tok, {'stage': name, 'seconds': 1.0})
        return model, tok, {'stage': name, 'seconds': 1.0}
    return build
for name in R.STAGES: R.STAGE_BUILDERS[name] = builder(name)
R.evaluate_stage = lambda *a, **k: {'chat_format': 0.5}
R.make_suite = lambda profile=None, **k: {'version': 'fake-suite', 'sizes': {}}
R.run_assistant('smoke')
'''


def test_a_killed_process_resumes_from_its_last_saved_stage(tok, fast_eval, monkeypatch, tmp_path):
    "A real process is killed (SIGKILL) while training its third stage; the rerun loads the first two."
    import os, signal, subprocess, sys, time
    script, marker = tmp_path / 'killed_run.py', tmp_path / 'marker'
    script.write_text(KILLED_RUN)
    env = {**os.environ, 'COURSE_ASSISTANT_DIR': str(tmp_path / 'asst'), 'OMP_NUM_THREADS': '1'}
    proc = subprocess.Popen([sys.executable, str(script), str(marker)], env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while not marker.exists() and proc.poll() is None and time.time() < deadline: time.sleep(0.1)
        assert marker.exists(), f"the run did not reach its third stage (exit code {proc.poll()})"
    finally:
        proc.send_signal(signal.SIGKILL); proc.wait()
    stages = tmp_path / 'asst' / 'smoke'
    assert sorted(p.name for p in stages.iterdir() if not p.name.startswith('tools.tmp')) == ['base', 'sft']
    monkeypatch.setenv('COURSE_ASSISTANT_DIR', str(tmp_path / 'asst'))
    fake = FakeStages(tok)
    fake.install(monkeypatch)
    out = R.run_assistant('smoke', progress=False, record_results=False)
    assert fake.trained == ['tools', 'dpo', 'rl']
    assert [out['stages'][s]['status'] for s in ('base', 'sft')] == ['loaded', 'loaded']
    assert out['stages']['base']['eval'] == 'cached' and out['train_seconds'] == 1 + 1 + 11 + 12 + 13
