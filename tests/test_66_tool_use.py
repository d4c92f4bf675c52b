"Chapter 66: the restricted calculator, the shop lookup, the call syntax, the generated tool conversations, the loop."
import builtins
import pytest
import torch
from course_lib.llm import tool_use as T
from course_lib.llm.chat_sft import render_chat, sft_train, load_stage, stage_fingerprint
from course_lib.llm.byte_tokenizer import train_byte_bpe
from course_lib.llm.inference_engine import Completion
from course_lib.llm.modern_decoder import ModernConfig, ModernLM


@pytest.fixture(scope='module')
def tok():
    return train_byte_bpe('What is 12 * 34? calculator: 12 * 34 = 408. lookup: order KL-10025 delivered. ' * 20, 320)


def _tiny(tok, max_seq_len=256):
    torch.manual_seed(0)
    return ModernLM(ModernConfig(vocab_size=tok.vocab_size, d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, d_ff=64,
                                 max_seq_len=max_seq_len))


def test_calculator_is_exact_and_never_evals(monkeypatch):
    def forbidden(*a, **k): raise AssertionError('eval/exec must never run')
    monkeypatch.setattr(builtins, 'eval', forbidden)
    monkeypatch.setattr(builtins, 'exec', forbidden)
    assert T.calculator('347 * 589') == '204383' and T.calculator('999 - 100') == '899'
    assert T.calculator('(2 + 3) * -4') == '-20' and T.calculator('0.1 + 0.2') == '0.3'
    assert T.calculator('7 / 2') == '3.5' and T.calculator('1 / 3') == '0.333333' and T.calculator('-7 // 2') == '-4'
    assert T.calculator(' 17 % 5 ') == '2' and T.calculator('2.50 * 4') == '10'
    for bad in ["__import__('os').system('ls')", '10**10**10', '2 ** 3', 'x + 1', 'abs(-1)', '(1).real', "'a' * 3",
                '9' * 16, '999999999 * 999999999', '-(' * 40 + '1' + ')' * 40, '1 +', '', '1' + ' + 1' * 60, '1 / 0',
                '5 % 0', '0x10', '1e3', '347 x 589', 'True + 1', '[1]']:
        with pytest.raises(T.ToolError):
            T.calculator(bad)
    with pytest.raises(TypeError): T.calculator(3)
    assert issubclass(T.ToolError, ValueError)


def test_format_number():
    from fractions import Fraction
    assert T.format_number(Fraction(5)) == '5' and T.format_number(Fraction(-1, 4)) == '-0.25'
    assert T.format_number(Fraction(2, 3)) == '0.666667' and T.format_number(Fraction(-1, 10 ** 9)) == '0'


def test_lookup_orders_and_prices():
    assert T.lookup('price Keemun 100') == '16.00 EUR' and T.lookup('PRICE keemun 50g') == '8.90 EUR'
    assert T.lookup('price Darjeeling First Flush 250') == '59.60 EUR'
    out = T.lookup('order KL-10025')
    assert out.startswith('order KL-10025: delivered;') and 'total 185.80 EUR' in out and 'T19-100' in out
    assert T.lookup('order kl-10025') == out
    for bad, why in [('order 10025', 'KL-10025'), ('price Keemun 75', '50, 100, 250'), ('price Matcha 100', 'Matcha'),
                     ('stock Keemun', "'order <id>'"), ('', 'lookup')]:
        with pytest.raises(T.ToolError, match=why):
            T.lookup(bad)


def test_parse_and_run_tool_call():
    assert T.parse_tool_call('calculator: 347 * 589') == ('calculator', '347 * 589')
    assert T.parse_tool_call(' lookup :  order KL-10025 ') == ('lookup', 'order KL-10025')
    assert T.parse_tool_call('calculator: 1: 2') == ('calculator', '1: 2')                 # the first colon splits
    for bad, why in [('calculator 347 * 589', 'colon'), ('shell: ls', 'unknown tool'), ('lookup:  ', 'no argument')]:
        with pytest.raises(T.ToolError, match=why):
            T.parse_tool_call(bad)
    with pytest.raises(T.ToolError, match='unknown'):
        T.parse_tool_call('lookup: x', tools={'calculator': T.calculator})
    assert T.run_tool_call('calculator: 12 * 34') == '408'
    assert T.run_tool_call('calculator 12 * 34').startswith('error: a tool call is')
    assert T.run_tool_call('calculator: 12 / 0').startswith('error: division by zero')
    assert T.run_tool_call('echo: hi', tools={'echo': str.upper}) == 'HI'


def test_tool_conversations_split_and_answers():
    tr, ho = T.make_tool_conversations('train', 24), T.make_tool_conversations('heldout', 24)
    assert len(tr) == len(ho) == 3 * 24 + 2 * 6
    for task in T.TOOL_TASKS:
        a = [e for e in tr if e['task'] == task]; b = [e for e in ho if e['task'] == task]
        assert a and b
        assert not {e['template'] for e in a} & {e['template'] for e in b}
        assert not {e['key'] for e in a} & {e['key'] for e in b}
        for e in a + b:
            msgs = e['messages']
            assert msgs[0] == {'role': 'system', 'content': T.TOOL_SYSTEM} and msgs[1]['role'] == 'user'
            assert [m.get('tool_call') for m in msgs if 'tool_call' in m] == e['calls']
            results = [m['content'] for m in msgs if m['role'] == 'tool']
            assert [r.startswith('error:') for r in results] == [True] * (len(results) - 1) + [False]
            assert len(results) == (2 if task.startswith('recover') else 1)
            assert T.tool_answer_correct(e, msgs[-1]['content'])
    assert T.make_tool_conversations('train', 5) == T.make_tool_conversations('train', 5)
    assert len(T.tools_data_version()) == 8
    with pytest.raises(ValueError, match='split'): T.make_tool_conversations('test', 3)
    with pytest.raises(ValueError, match='unknown tasks'): T.make_tool_conversations('train', 3, tasks=('calc', 'x'))


def test_tool_answer_correct_rejects_wrong_answers():
    ex = {t: next(e for e in T.make_tool_conversations('heldout', 4) if e['task'] == t) for t in T.TOOL_TASKS}
    c = ex['calc']['expected']
    assert T.tool_answer_correct(ex['calc'], f"It is {c}.") and not T.tool_answer_correct(ex['calc'], f"It is {c + 1}.")
    price = ex['price']['expected']
    assert not T.tool_answer_correct(ex['price'], f"It costs 1{price}.") and T.tool_answer_correct(ex['price'], f"({price})")
    status = ex['order']['expected']
    assert T.tool_answer_correct(ex['order'], f"It is {status}.") and not T.tool_answer_correct(ex['order'], 'It is lost.')


def test_advance_runs_calls_takes_answers_and_bounds_the_loop(tok):
    sp = tok.special_ids
    call = [sp['<|tool_call|>']] + tok.encode_ordinary('calculator: 12 * 34')
    state = {'messages': [{'role': 'user', 'content': 'What is 12 * 34?'}], 'calls': 0, 'text': None, 'stopped': None}
    T._advance(state, Completion(call, 'stop'), tok, T.TOOLS, max_calls=1)
    assert state['messages'][-2:] == [{'role': 'assistant', 'tool_call': 'calculator: 12 * 34'}, {'role': 'tool', 'content': '408'}]
    assert state['calls'] == 1 and state['stopped'] is None
    T._advance(state, Completion(call, 'stop'), tok, T.TOOLS, max_calls=1)                 # a second call: over the bound
    assert state['stopped'] == 'max_calls' and 'more than 1' in state['text'] and state['calls'] == 1
    cut = {'messages': [], 'calls': 0, 'text': None, 'stopped': None}
    T._advance(cut, Completion(call[:4], 'length'), tok, T.TOOLS, max_calls=3)              # cut off: not run
    assert cut['messages'][-1]['content'].startswith('error: the tool call was cut off')
    done = {'messages': [], 'calls': 0, 'text': None, 'stopped': None}
    T._advance(done, Completion(tok.encode_ordinary('408.'), 'stop'), tok, T.TOOLS, max_calls=3)
    assert done['stopped'] == 'answer' and done['text'] == '408.' and done['messages'][-1] == {'role': 'assistant', 'content': '408.'}
    bad = {'messages': [], 'calls': 0, 'text': None, 'stopped': None}
    T._advance(bad, Completion(tok.encode_ordinary('40'), 'length'), tok, T.TOOLS, max_calls=3)
    assert bad['stopped'] == 'malformed'


def test_the_loop_runs_the_tool_for_a_model_that_learned_to_call(tok):
    conv = [{'role': 'user', 'content': 'What is 12 * 34?'}, {'role': 'assistant', 'tool_call': 'calculator: 12 * 34'},
            {'role': 'tool', 'content': '408'}, {'role': 'assistant', 'content': '12 * 34 = 408.'}]
    model = _tiny(tok)
    sft_train(model, tok, [{'messages': conv}] * 4, steps=60, batch_size=4, lr=1e-2)
    text, transcript = T.chat_with_tools(model, tok, conv[:1])
    assert transcript[1] == conv[1] and transcript[2] == conv[2]                            # the loop ran the calculator
    assert text == '12 * 34 = 408.' and transcript[-1] == {'role': 'assistant', 'content': text}
    calls = []
    spy = {'calculator': lambda e: calls.append(e) or '999'}
    text, _ = T.chat_with_tools(model, tok, conv[:1], tools=spy)
    assert calls == ['12 * 34']                                                              # the result comes from the tool
    states = T.chat_with_tools_batch(model, tok, [conv[:1]] * 3, max_calls=0)
    assert all(s['stopped'] == 'max_calls' and s['calls'] == 0 for s in states)
    with pytest.raises(ValueError, match='max_calls'): T.chat_with_tools_batch(model, tok, [conv[:1]], max_calls=-1)


def test_context_limit_and_evaluations(tok):
    model = _tiny(tok, max_seq_len=64)
    ex = [e for e in T.make_tool_conversations('heldout', 4) if e['task'] in ('calc', 'order')]
    states = T.chat_with_tools_batch(model, tok, [e['messages'][:2] for e in ex])
    assert all(s['stopped'] == 'context' for s in states)                                   # the prompts do not fit
    model = _tiny(tok, max_seq_len=512)
    res = T.evaluate_tools(model, tok, ex, max_new_tokens=6, batch_size=3)
    assert set(res) == {'accuracy', 'format', 'per_task', 'rows'} and len(res['rows']) == len(ex)
    assert 0 <= res['accuracy'] <= res['format'] <= 1 and all(r['calls'] <= 3 for r in res['rows'])
    direct = T.answer_directly(model, tok, ex, max_new_tokens=6)
    assert set(direct['per_task']) == {'calc', 'order'} and 0 <= direct['accuracy'] <= 1


def test_tool_sizes_and_stage_save_and_reload(tok, monkeypatch, tmp_path):
    monkeypatch.setenv('COURSE_ASSISTANT_DIR', str(tmp_path))
    assert set(T.tool_sizes('smoke')) == set(T.tool_sizes('workshop')) == set(T.tool_sizes('full'))
    tiny_sizes = dict(steps=3, batch=2, n_tool=2, n_chat=1, n_eval=2, lr=1e-3)
    monkeypatch.setattr(T, 'tool_sizes', lambda profile=None: tiny_sizes)
    calls, sft_meta = [], {'stage': 'sft', 'seconds': 1.0}
    monkeypatch.setattr(T, 'sft_stage', lambda *a, **k: calls.append(1) or (_tiny(tok, 1024), tok, dict(sft_meta)))
    model, tok2, meta = T.tools_stage('smoke')
    assert calls == [1] and meta['stage'] == 'tools' and meta['data'] == T.tools_data_version()
    assert (tmp_path / 'smoke' / 'tools' / 'model.safetensors').is_file()
    again = T.tools_stage('smoke')                      # loaded, not retrained (the SFT stage is loaded to check it)
    assert again[2] == meta and again[2]['start_meta'] == stage_fingerprint(sft_meta)
    x = torch.tensor([[1, 2, 3]])
    torch.testing.assert_close(again[0](x).logits, model(x).logits)
    assert load_stage(tmp_path / 'smoke' / 'tools', {'data': 'other'}) is None
    sft_meta['seconds'] = 2.0                                                      # the SFT stage was trained again
    assert T.tools_stage('smoke')[2]['start_meta'] == stage_fingerprint(sft_meta) != meta['start_meta']
