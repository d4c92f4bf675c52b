"Tests for course_lib.algorithms.finetuning: topic data, local loading, pooling, the classifier, LoRA from scratch."
import pytest
import torch
import torch.nn as nn
from torch.testing import assert_close
from transformers import BertConfig, BertModel
from course_lib.algorithms.finetuning import (load_topics, minilm_path, load_encoder, mean_pool, ClassifierOutput, TextClassifier,
                                 TokenizedDataset, count_trainable, freeze, LoRALinear, add_lora)


def tiny_bert():
    torch.manual_seed(0)
    return BertModel(BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=32, max_position_embeddings=32)).eval()   # eval: no dropout


def test_load_topics_is_a_stratified_disjoint_split():
    t = load_topics()
    assert len(t['classes']) == 8 and t['classes'] == sorted(t['classes'])
    sizes = {s: len(t[s][0]) for s in ('train', 'valid', 'test')}
    assert sum(sizes.values()) == 2921 and sizes['valid'] == sizes['test']
    assert not set(t['train'][0]) & set(t['test'][0]) and not set(t['valid'][0]) & set(t['test'][0])
    for s in ('valid', 'test'):
        assert (torch.bincount(t[s][1], minlength=8) > 0).all()
    assert load_topics()['train'][0][:5] == t['train'][0][:5]           # seeded
    assert load_topics(seed=1)['train'][0][:5] != t['train'][0][:5]


def test_load_topics_bad_file(tmp_path):
    f = tmp_path / 'x.tsv'; f.write_text('label\tsentence\na\tb\n')
    with pytest.raises(ValueError, match='topic<TAB>text'): load_topics(f)


def test_local_loading_and_errors(tmp_path):
    p = minilm_path()
    assert (p / 'config.json').exists()
    tok, enc = load_encoder(p)                                        # an explicit local folder works
    assert enc.config.hidden_size == 384 and tok('hello')['input_ids'][0] == tok.cls_token_id
    with pytest.raises(FileNotFoundError, match='not a model folder'): load_encoder(tmp_path)
    # a model saved with save_pretrained loads back from its folder, offline
    bert = tiny_bert(); bert.save_pretrained(tmp_path / 'tiny'); tok.save_pretrained(tmp_path / 'tiny')
    tok2, bert2 = load_encoder(tmp_path / 'tiny')
    ids = torch.tensor([[1, 2, 3]])
    assert_close(bert2(input_ids=ids).last_hidden_state, bert(input_ids=ids).last_hidden_state)


def test_mean_pool_ignores_padding():
    h = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [50.0, 50.0]]])
    assert_close(mean_pool(h, torch.tensor([[1, 1, 0]])), torch.tensor([[2.0, 2.0]]))
    assert_close(mean_pool(h, torch.tensor([[0, 0, 0]])), torch.zeros(1, 2))      # no real token: zeros, not NaN


def test_classifier_and_dataset():
    bert = tiny_bert()
    model = TextClassifier(bert, 3)
    ids = torch.randint(1, 100, (4, 8)); am = torch.ones(4, 8, dtype=torch.long); am[0, 5:] = 0
    out = model(ids, am)
    assert isinstance(out, ClassifierOutput) and out.logits.shape == (4, 3) and out.loss is None
    assert out is not None and model(ids, am, labels=torch.tensor([0, 1, 2, 0])).loss.ndim == 0
    tok, _ = load_encoder()
    ds = TokenizedDataset(tok, ['a short text', 'another one here'], [0, 2], max_length=6)
    item = ds[1]
    assert len(ds) == 2 and item['input_ids'].shape == (6,) and item['labels'].item() == 2
    with pytest.raises(ValueError, match='2 texts but 1 labels'): TokenizedDataset(tok, ['a', 'b'], [0], 4)


def test_freeze_and_count():
    m = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    assert count_trainable(m) == 16 + 10
    freeze(m[0])
    assert count_trainable(m) == 10


def test_lora_linear():
    torch.manual_seed(0)
    base = nn.Linear(6, 5)
    ref = nn.Linear(6, 5); ref.load_state_dict(base.state_dict())
    lora = LoRALinear(base, r=2, alpha=4)
    x = torch.randn(3, 6)
    assert_close(lora(x), ref(x))                                      # B = 0 at the start
    assert count_trainable(lora) == 2 * (6 + 5) and not base.weight.requires_grad
    with torch.no_grad(): lora.B.normal_()
    assert_close(lora(x), ref(x) + 2.0 * x @ lora.A.T @ lora.B.T)      # scale alpha / r = 2
    merged = lora.merged()
    assert isinstance(merged, nn.Linear) and merged.weight.requires_grad
    assert_close(merged(x), lora(x), atol=1e-5, rtol=1e-5)
    assert_close(lora.base.weight, ref.weight)                          # merging left the frozen base untouched
    with pytest.raises(ValueError, match='rank'): LoRALinear(nn.Linear(2, 2), r=0)


def test_add_lora_on_bert():
    bert = tiny_bert()
    x = torch.randint(1, 100, (2, 5))
    before = bert(input_ids=x).last_hidden_state
    add_lora(bert, targets=('query', 'value'), r=2)
    assert sum(isinstance(m, LoRALinear) for m in bert.modules()) == 4      # 2 layers x (query, value)
    assert count_trainable(bert) == 4 * 2 * (16 + 16)
    assert_close(bert(input_ids=x).last_hidden_state, before)
    with pytest.raises(ValueError, match='linear layers are called'): add_lora(tiny_bert(), targets=('q_proj',))
