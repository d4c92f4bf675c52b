"Chapter 65: the chat template, generated conversations and their split, scoring, SFT labels and stages on disk."
import json
import pytest
import torch
from course_lib.llm import chat_sft as S
from course_lib.llm.byte_tokenizer import train_byte_bpe
from course_lib.llm.inference_engine import Completion
from course_lib.llm.modern_decoder import ModernConfig, ModernLM


@pytest.fixture(scope='module')
def tok():
    return train_byte_bpe('Kettle & Leaf sells tea. How much is Keemun? It costs 8.90 EUR. ' * 20, 300)


def test_render_chat_template_mask_and_generation_prompt(tok):
    conv = [{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'Hi <|end|>'},
            {'role': 'assistant', 'content': 'Hello.'}]
    ids, mask = S.render_chat(tok, conv)
    sp = tok.special_ids
    assert ids[0] == tok.bos_id and ids.count(sp['<|end|>']) == 3 and len(ids) == len(mask)
    start = ids.index(sp['<|assistant|>'])
    assert mask[start] == 0 and all(mask[start + 1:]) and not any(mask[:start])     # assistant text and its <|end|>
    assert ids[start + 1:-1] == tok.encode_ordinary('Hello.') and ids[-1] == sp['<|end|>']
    prompt, pmask = S.render_chat(tok, conv[:2], add_generation_prompt=True)
    assert prompt == ids[:start + 1] and not any(pmask)
    with pytest.raises(ValueError, match='role'):
        S.render_chat(tok, [{'role': 'bot', 'content': 'x'}])
    with pytest.raises(TypeError, match='str'):
        S.render_chat(tok, [{'role': 'user', 'content': 3}])


def test_conversations_split_by_template_and_content():
    tr, ho = S.make_conversations('train', 30), S.make_conversations('heldout', 30)
    assert len(tr) == len(ho) == 30 * len(S.TASKS)
    for task in S.TASKS:
        a = [e for e in tr if e['task'] == task]; b = [e for e in ho if e['task'] == task]
        assert not {e['template'] for e in a} & {e['template'] for e in b}
        assert not {e['key'] for e in a} & {e['key'] for e in b}
        assert all(e['messages'][-1]['role'] == 'assistant' for e in a + b)
        assert all(S.task_correct(e, e['messages'][-1]['content']) for e in a + b)     # reference answers pass
    assert S.make_conversations('train', 5) == S.make_conversations('train', 5)       # deterministic
    with pytest.raises(ValueError, match='split'):
        S.make_conversations('test', 5)


def test_task_correct_rejects_wrong_answers():
    ex = {t: next(e for e in S.make_conversations('heldout', 3) if e['task'] == t) for t in S.TASKS}
    assert not S.task_correct(ex['arithmetic'], f"The answer is {ex['arithmetic']['expected'] + 1}.")
    assert not S.task_correct(ex['json'], '{"name": "x", "kind"')
    assert not S.task_correct(ex['words'], 'one two')                                 # n is 3 to 7
    assert not S.task_correct(ex['shop_price'], 'It costs 0.00 EUR.')
    assert S.task_correct(ex['counting'], f"It is {ex['counting']['expected']}.")


def test_no_card_task_declines_without_a_card():
    convs = [e for e in S.make_conversations('train', 20) + S.make_conversations('heldout', 20) if e['task'] == 'no_card']
    teas = S.shop_teas()
    assert convs and all('Product:' not in e['messages'][0]['content'] for e in convs)      # no card in the prompt
    assert all(e['key'] not in teas for e in convs)                                        # a tea the shop does not sell
    assert all(e['messages'][-1]['content'] == S.REFUSAL.format(subject=e['key']) for e in convs)
    ex = convs[0]
    assert S.task_correct(ex, S.REFUSAL.format(subject=ex['key']))
    assert not S.task_correct(ex, f"{ex['key']}, 100 g, costs 12.40 EUR.")                # an invented price fails
    assert S.is_refusal("I'm sorry, I don't have information about Mars.") and not S.is_refusal('It costs 3 EUR.')


def test_well_formed(tok):
    w = tok.encode_ordinary('tea')[0]
    assert S.well_formed(Completion([w], 'stop'), tok)
    assert not S.well_formed(Completion([w], 'length'), tok)
    assert not S.well_formed(Completion([], 'stop'), tok)
    assert not S.well_formed(Completion([w, tok.special_ids['<|user|>']], 'stop'), tok)


def test_sft_example_labels_and_padding(tok):
    conv = [{'role': 'user', 'content': 'Hi'}, {'role': 'assistant', 'content': 'Hello.'}]
    ex = S.sft_example(tok, conv)
    ids, mask = S.render_chat(tok, conv)
    assert ex['input_ids'].tolist() == ids
    assert ex['labels'].tolist() == [t if m else -100 for t, m in zip(ids, mask)]
    assert S.sft_example(tok, conv, mask_prompt=False)['labels'].tolist() == ids
    with pytest.raises(ValueError, match='max_seq_len'):
        S.sft_example(tok, conv, max_len=3)
    batch = S.pad_right([ex, S.sft_example(tok, conv[:1] + [{'role': 'assistant', 'content': 'Hello there, friend.'}])], tok.pad_id)
    n = len(ids)
    assert batch['input_ids'].shape[0] == 2 and (batch['input_ids'][0, n:] == tok.pad_id).all() and (batch['labels'][0, n:] == -100).all()


def _tiny(tok):
    torch.manual_seed(0)
    return ModernLM(ModernConfig(vocab_size=tok.vocab_size, d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, d_ff=64, max_seq_len=128))


def test_sft_train_learns_only_the_assistant_tokens(tok):
    convs = [{'task': 'x', 'messages': [{'role': 'user', 'content': 'Price?'}, {'role': 'assistant', 'content': 'It costs 8.90 EUR.'}]}] * 4
    model = _tiny(tok)
    learn = S.sft_train(model, tok, convs, steps=30, batch_size=4, lr=1e-2)
    assert learn.history.steps[-1]['loss'] < learn.history.steps[0]['loss'] / 2
    ids = S.render_chat(tok, convs[0]['messages'][:1], add_generation_prompt=True)[0]
    out = S.generate(model, [ids], 30, stop_ids={tok.special_ids['<|end|>']}, pad_id=tok.pad_id)[0]
    assert tok.decode(out.tokens) == 'It costs 8.90 EUR.' and out.finish_reason == 'stop'


def test_evaluate_chat_counts_format_and_accuracy(tok):
    model = _tiny(tok)
    ex = [e for e in S.make_conversations('heldout', 2) if e['task'] == 'arithmetic']
    res = S.evaluate_chat(model, tok, ex, max_new_tokens=5)
    assert set(res) == {'format', 'accuracy', 'per_task', 'rows'} and len(res['rows']) == 2
    assert 0 <= res['accuracy'] <= res['format'] <= 1


def test_stages_save_atomically_and_reload(tok, tmp_path):
    model = _tiny(tok)
    folder = S.save_stage(tmp_path / 'sft', model, tok, {'stage': 'sft', 'sizes': {'d': 32}})
    assert sorted(p.name for p in folder.iterdir()) == ['config.json', 'model.safetensors', 'tokenizer.json']
    assert not [p for p in tmp_path.iterdir() if '.tmp-' in p.name]
    m2, t2, meta = S.load_stage(folder, {'stage': 'sft'})
    x = torch.tensor([[1, 2, 3]])
    torch.testing.assert_close(m2(x).logits, model.eval()(x).logits)
    assert t2.encode('tea') == tok.encode('tea') and meta['sizes'] == {'d': 32}
    assert S.load_stage(folder, {'sizes': {'d': 64}}) is None             # other settings: not reused
    assert S.load_stage(tmp_path / 'missing') is None
    (folder / 'model.safetensors').unlink()
    assert S.load_stage(folder) is None                                   # incomplete: not reused


def test_assistant_dir_follows_env_and_profile(monkeypatch, tmp_path):
    monkeypatch.setenv('COURSE_ASSISTANT_DIR', str(tmp_path))
    assert S.assistant_dir('smoke') == tmp_path / 'smoke'
    assert set(S.assistant_sizes('smoke')) == set(S.assistant_sizes('workshop'))


def test_render_chat_tool_call_and_result(tok):
    sp = tok.special_ids
    conv = [{'role': 'user', 'content': 'What is 347 * 2?'}, {'role': 'assistant', 'tool_call': 'calculator: 347 * 2'},
            {'role': 'tool', 'content': '694'}, {'role': 'assistant', 'content': '347 * 2 = 694.'}]
    ids, mask = S.render_chat(tok, conv)
    a = ids.index(sp['<|tool_call|>'])
    assert ids[a - 1] == sp['<|assistant|>'] and mask[a - 1] == 0 and mask[a] == 1      # the call is learned
    r = ids.index(sp['<|tool_result|>'])
    end_r = ids.index(sp['<|end|>'], r)
    assert not any(mask[r:end_r + 1]) and ids[r + 1:end_r] == tok.encode_ordinary('694')  # the result is not
    assert mask[-1] == 1 and ids[-1] == sp['<|end|>']
    with pytest.raises(TypeError, match='tool_call'):
        S.render_chat(tok, [{'role': 'assistant', 'tool_call': 5}])


def test_task_correct_matches_whole_prices_only():
    ex = {'task': 'shop_price', 'expected': '8.30 EUR'}
    assert S.task_correct(ex, 'It costs 8.30 EUR.') and not S.task_correct(ex, 'It costs 58.30 EUR.')
    assert S.task_correct({'task': 'shop_brew', 'expected': '75 °C'}, 'Brew at 75 °C.')
    assert not S.task_correct({'task': 'shop_brew', 'expected': '75 °C'}, 'Brew at 175 °C.')


def test_save_stage_replaces_an_existing_stage_and_leaves_no_leftovers(tok, tmp_path):
    a, b = _tiny(tok), _tiny(tok)
    with torch.no_grad(): b.embed.weight.add_(1.0)
    S.save_stage(tmp_path / 'sft', a, tok, {'stage': 'sft', 'v': 1})
    S.save_stage(tmp_path / 'sft', b, tok, {'stage': 'sft', 'v': 2})
    m, _, meta = S.load_stage(tmp_path / 'sft')
    assert meta['v'] == 2 and torch.equal(m.embed.weight, b.embed.weight)
    assert [p.name for p in tmp_path.iterdir()] == ['sft']


def test_pretrain_base_is_seeded_whatever_ran_before():
    sizes = dict(vocab=300, chars=3000, d=32, n_layers=1, n_heads=2, seq=32, pre_steps=2, pre_batch=2, lr=1e-3)
    torch.manual_seed(123)
    a, _, meta = S.pretrain_base(sizes)
    torch.rand(1000)                                   # the caller's generator moved on: the base model must not care
    b, _, _ = S.pretrain_base(sizes)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name
    c, _, meta_c = S.pretrain_base(sizes, seed=1)
    assert meta['seed'] == 0 and meta_c['seed'] == 1
    first = lambda m: next(iter(m.state_dict().values()))
    assert not torch.equal(first(a), first(c))              # another seed, other initial weights


def test_length_grouped_batches_draw_at_random_and_pad_little():
    lengths = [5 + (i * 37) % 200 for i in range(300)]
    batches = list(S.LengthGroupedBatches(lengths, steps=50, batch_size=8, window=10, seed=3))
    assert len(batches) == 50 and all(len(b) == 8 for b in batches)
    assert all(0 <= i < len(lengths) for b in batches for i in b)
    assert batches == list(S.LengthGroupedBatches(lengths, steps=50, batch_size=8, window=10, seed=3))   # seeded
    assert batches != list(S.LengthGroupedBatches(lengths, steps=50, batch_size=8, window=10, seed=4))
    drawn = torch.randint(len(lengths), (50, 8), generator=torch.Generator().manual_seed(3)).tolist()
    assert sorted(i for b in batches for i in b) == sorted(i for b in drawn for i in b)   # the same draw, regrouped
    assert S.padding_share(batches, lengths) < 0.1 < S.padding_share(drawn, lengths)
    assert S.padding_share([[0, 1]], [1, 3]) == pytest.approx(1 / 3)                        # 6 positions, 4 real
    with pytest.raises(ValueError, match='steps'): S.LengthGroupedBatches(lengths, 0, 8)
    with pytest.raises(ValueError, match='no examples'): S.LengthGroupedBatches([], 5, 8)


def test_sft_train_with_and_without_length_grouping(tok):
    convs = [{'task': 'x', 'messages': [{'role': 'user', 'content': 'Price? ' * k}, {'role': 'assistant', 'content': '8.90 EUR.'}]}
             for k in (1, 3, 6)]
    for grouped in (True, False):
        model = _tiny(tok)
        learn = S.sft_train(model, tok, convs, steps=3, batch_size=2, group_by_length=grouped)
        assert len(learn.history.steps) == 3 and not model.training
