"Tests for course_lib.projects.semantic_search: queries file, batched encoding, the exact vector index, metrics, TF-IDF baseline."
import math
import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close
from transformers import BertConfig, BertModel
from course_lib.algorithms.finetuning import load_encoder, load_topics, mean_pool
from course_lib.projects.semantic_search import (load_queries, encode_texts, VectorIndex, relevance_matrix, hit_rate_at_k,
                                  precision_at_k_relevance, mean_reciprocal_rank, tfidf_search)


@pytest.fixture(scope='module')
def tok():
    return load_encoder()[0]                      # the real WordPiece tokenizer, offline


def tiny_bert():
    torch.manual_seed(0)
    return BertModel(BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=32, max_position_embeddings=64))


def test_load_queries_matches_the_topics():
    q, t = load_queries()
    assert len(q) == len(t) >= 40 and all(q) and len(set(q)) == len(q)
    assert set(t) <= set(load_topics()['classes'])
    assert min(t.count(c) for c in set(t)) >= 5


def test_load_queries_bad_file(tmp_path):
    f = tmp_path / 'q.tsv'; f.write_text('text\tlabel\nx\ty\n')
    with pytest.raises(ValueError, match='query<TAB>topic'): load_queries(f)


def test_encode_texts_mean_pooled_normalised_in_order(tok):
    model = tiny_bert().train()                   # train mode on purpose: encode_texts must switch to eval
    texts = ['a much longer sentence with quite a few more words in it', 'short', 'medium length text here']
    v = encode_texts(model, tok, texts, batch_size=2, device='cpu')
    assert v.shape == (3, 16) and not v.requires_grad and model.training   # mode restored
    assert_close(v.norm(dim=1), torch.ones(3))
    model.eval()
    with torch.no_grad():                         # reference: each text alone, mean pooled, normalised
        for i, t in enumerate(texts):
            enc = tok([t], return_tensors='pt')
            ref = F.normalize(mean_pool(model(**enc).last_hidden_state, enc['attention_mask']), dim=1)[0]
            assert_close(v[i], ref, atol=1e-5, rtol=1e-4)
    raw = encode_texts(model, tok, texts, normalize=False)
    assert_close(F.normalize(raw, dim=1), v, atol=1e-5, rtol=1e-4)
    cls = encode_texts(model, tok, 'short', pooling='cls', normalize=False)
    with torch.no_grad():
        assert_close(cls[0], model(**tok(['short'], return_tensors='pt')).last_hidden_state[0, 0], atol=1e-5, rtol=1e-4)
    assert_close(encode_texts(model, tok, texts, batch_size=1, progress=True), v, atol=1e-5, rtol=1e-4)
    assert encode_texts(model, tok, []).shape == (0, 16)
    with pytest.raises(ValueError, match='pooling'): encode_texts(model, tok, texts, pooling='max')


def test_vector_index_search_is_exact_cosine_topk(tmp_path):
    g = torch.Generator().manual_seed(0)
    docs, qs = torch.randn(30, 5, generator=g), torch.randn(4, 5, generator=g)
    idx = VectorIndex().add(docs[:20], [f'd{i}' for i in range(20)]).add(docs[20:], [f'd{i}' for i in range(20, 30)])
    assert len(idx) == 30 and idx.dim == 5
    scores, ids = idx.search(qs, k=3)
    cos = F.cosine_similarity(qs[:, None], docs[None], dim=-1)
    assert_close(scores, cos.sort(dim=1, descending=True).values[:, :3])
    assert_close(ids, cos.argsort(dim=1, descending=True)[:, :3])
    s1, i1 = idx.search(qs[0], k=100)             # one query: 1-d results; k capped at the index size
    assert s1.shape == (30,) and i1[0] == ids[0, 0]
    assert idx.get(int(ids[0, 0])) == f'd{int(ids[0, 0])}' and idx.get(ids)[1][2] == f'd{int(ids[1, 2])}'
    loaded = VectorIndex.load(idx.save(tmp_path / 'i.pt'))
    s2, i2 = loaded.search(qs, k=3)
    assert torch.equal(i2, ids) and loaded.payloads == idx.payloads
    assert VectorIndex().add(torch.eye(3)).payloads == [0, 1, 2]       # default payloads: positions


def test_vector_index_errors():
    with pytest.raises(ValueError, match='empty'): VectorIndex(4).search(torch.ones(4))
    idx = VectorIndex().add(torch.ones(2, 4))
    with pytest.raises(ValueError, match='dimension'): idx.search(torch.ones(3))
    with pytest.raises(ValueError, match='payloads'): idx.add(torch.ones(2, 4), ['only one'])


def test_metrics_by_hand():
    rel = torch.tensor([[0, 1, 0, 1], [0, 0, 0, 0], [1, 1, 0, 0]]).bool()
    assert math.isclose(hit_rate_at_k(rel, 1), 1 / 3) and math.isclose(hit_rate_at_k(rel, 4), 2 / 3)
    assert math.isclose(precision_at_k_relevance(rel, 2), (0.5 + 0 + 1) / 3)
    assert math.isclose(mean_reciprocal_rank(rel), (0.5 + 0 + 1) / 3)
    assert mean_reciprocal_rank(torch.zeros(2, 3, dtype=torch.bool)) == 0.0
    with pytest.raises(ValueError, match='k=5'): hit_rate_at_k(rel, 5)
    m = relevance_matrix(torch.tensor([[0, 1], [2, 0]]), torch.tensor([7, 8, 8]), torch.tensor([7, 8]))
    assert m.tolist() == [[True, False], [True, False]]
    with pytest.raises(ValueError, match='n_queries'): relevance_matrix(torch.tensor([0, 1]), [7, 8], [7])


def test_tfidf_search_finds_the_shared_word():
    docs = ['the cat sat on the mat', 'stock markets fell sharply', 'my dog chased the cat', 'bread and butter']
    scores, ids = tfidf_search(docs, ['cat', 'markets today', 'quantum'], k=2)
    assert ids.shape == (3, 2) and set(ids[0].tolist()) == {0, 2} and ids[1, 0] == 1
    assert scores[2].abs().sum() == 0                                  # no shared word: all scores zero
    assert (scores[:, 0] >= scores[:, 1]).all()
    assert tfidf_search(docs, ['cat'], k=10)[1].shape == (1, 4)


def test_bm25_by_hand_and_idf_order():
    import math
    from course_lib.projects.semantic_search import bm25_search
    s, i = bm25_search(['green tea tea', 'black tea', 'teapot'], ['green', 'tea'], k=3)
    by_hand = math.log(1 + 2.5 / 1.5) * 2.5 / (1 + 1.5 * (0.25 + 0.75 * 3 / 2))
    assert i[0, 0] == 0 and abs(s[0, 0].item() - by_hand) < 1e-5 and s[0, 1:].abs().max() == 0
    # 'tea' is in 2 of 3 documents: a lower idf than 'green'; the shorter document with one 'tea' still ranks below
    # the one with two (saturating, not zero, gain)
    assert i[1].tolist()[:2] == [0, 1] and s[1, 0] < s[0, 0]
    with pytest.raises(ValueError, match='no documents'): bm25_search([], ['x'])

