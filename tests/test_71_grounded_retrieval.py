"Chapter 71: the shop's knowledge base, chunking, questions, retrievers, tuning and the distilled student, on small sizes."
import json
import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close
from course_lib.llm import grounded_retrieval as G


@pytest.fixture(scope='module')
def minilm():
    return G.load_minilm()


@pytest.fixture(scope='module')
def chunks():
    return G.shop_chunks()


# -- documents and chunks ------------------------------------------------------------------------------------------
def test_documents_have_the_three_kinds_and_unique_ids():
    docs = G.shop_documents()
    kinds = [d['kind'] for d in docs]
    assert kinds.count('policy') == 50 and kinds.count('product') == len(G.shop_teas()) and kinds.count('order') == G.N_ORDER_DOCS
    assert len({d['id'] for d in docs}) == len(docs)
    assert all(set(d) == {'id', 'kind', 'title', 'text'} and d['text'] for d in docs)
    order = next(d for d in docs if d['kind'] == 'order')
    assert order['title'].startswith('Order KL-') and 'Status:' in order['text']
    assert len(G.shop_documents(2)) == len(docs) - G.N_ORDER_DOCS + 2
    with pytest.raises(ValueError, match='n_orders'): G.shop_documents(-1)


def test_chunk_text_packs_whole_sentences():
    text = "One two three. Four five six seven. Eight nine. Ten eleven twelve thirteen fourteen."
    assert G.chunk_text(text, 6) == ['One two three.', 'Four five six seven. Eight nine.', 'Ten eleven twelve thirteen fourteen.']
    assert G.chunk_text(text, 100) == [text]
    assert G.chunk_text("A very long single sentence here.", 2) == ["A very long single sentence here."]
    with pytest.raises(ValueError, match='max_words'): G.chunk_text(text, 0)
    with pytest.raises(TypeError, match='str'): G.chunk_text(None)


def test_shop_chunks_rule_and_ids(chunks):
    assert chunks == G.shop_chunks()                                   # deterministic
    assert len({c['id'] for c in chunks}) == len(chunks)
    docs = {d['id']: d for d in G.shop_documents()}
    for c in chunks:
        assert c['id'].startswith(c['doc'] + '#') and c['title'] == docs[c['doc']]['title']
        assert len(c['text'].split()) <= G.MAX_CHUNK_WORDS or len(G.split_sentences(c['text'])) == 1
    cut = [d for d in docs.values() if len(d['text'].split()) > G.MAX_CHUNK_WORDS]
    assert cut and all(sum(c['doc'] == d['id'] for c in chunks) > 1 for d in cut)
    assert G.chunk_passage(chunks[0]).startswith(chunks[0]['title'] + '\n')
    assert G.chunk_passage(chunks[0], with_title=False) == chunks[0]['text']
    with pytest.raises(ValueError, match='unique'): G.shop_chunks([docs['policy/shipping_time']] * 2)
    with pytest.raises(ValueError, match='missing'): G.shop_chunks([{'id': 'x', 'text': 'y'}])


# -- questions -------------------------------------------------------------------------------------------------------
def test_questions_are_disjoint_deterministic_and_labelled(chunks):
    valid, test = G.retrieval_questions('valid'), G.retrieval_questions('test')
    assert valid == G.retrieval_questions('valid')
    assert not {q['question'] for q in valid} & {q['question'] for q in test}
    ids = {c['id'] for c in chunks}
    for qs in (valid, test):
        assert all(set(q['chunk_ids']) <= ids for q in qs)
        assert any(not q['chunk_ids'] for q in qs) and any(q['source'].startswith('template:product') for q in qs)
    faq_q = {q['question'] for q in valid + test if q['source'] == 'faq_questions.tsv'}
    assert len(faq_q) == 126 and not faq_q & {q['question'] for q in G.copied_questions()}
    train = {q['question'] for q in G.retrieval_questions('train')}
    assert not train & {q['question'] for q in valid + test}
    with pytest.raises(ValueError, match="'valid' or 'test'"): G.retrieval_questions('dev')


def test_templated_out_of_scope_questions_name_nothing_the_shop_has():
    from course_lib.llm.chat_sft import shop_teas
    from course_lib.llm.byte_tokenizer import make_shop_catalog
    from course_lib.projects.qa_assistant import load_faq_questions
    teas, orders = shop_teas(), {o['order_id'] for o in make_shop_catalog(0)['orders']}
    file_questions = {q.lower() for q in load_faq_questions()[0]}
    for split in ('valid', 'test'):
        oos = [q for q in G.retrieval_questions(split) if q['source'] != 'faq_questions.tsv' and not q['chunk_ids']]
        spec = G.OUT_OF_SCOPE[split]
        assert len(oos) == spec['n_tea'] + spec['n_order'] + len(spec['topics']) and len({q['question'] for q in oos}) == len(oos)
        assert not any(name in q['question'] for q in oos for name in teas)          # no tea the shop sells
        assert not any(o in q['question'] for q in oos for o in orders)              # no order that exists
        assert not {q['question'].lower() for q in oos} & file_questions             # nothing copied from the file
    assert not set(G.OUT_OF_SCOPE['valid']['topics']) & set(G.OUT_OF_SCOPE['test']['topics'])


def test_recall_at_k_counts_answerable_only():
    chunks = [{'id': 'a'}, {'id': 'b'}, {'id': 'c'}]
    qs = [{'chunk_ids': ['a']}, {'chunk_ids': ['c']}, {'chunk_ids': []}]
    res = [[(0, 1.0), (1, 0.5)], [(1, 0.9), (2, 0.1)], [(2, 0.3)]]
    assert G.recall_at_k(res, qs, chunks, 1) == 0.5 and G.recall_at_k(res, qs, chunks, 2) == 1.0
    with pytest.raises(ValueError, match='result lists'): G.recall_at_k(res[:2], qs, chunks, 1)
    with pytest.raises(ValueError, match='no answerable'): G.recall_at_k(res[2:], qs[2:], chunks, 1)
    with pytest.raises(ValueError, match='k must'): G.recall_at_k(res, qs, chunks, 0)


# -- retrievers ------------------------------------------------------------------------------------------------------
def test_bm25_retriever_search_and_errors(chunks):
    r = G.Retriever(chunks, 'bm25')
    res = r.search(['Keemun black tea from Anhui', 'Where is my parcel KL-10025?'], k=3)
    assert len(res) == 2 and all(len(x) == 3 for x in res)
    assert all(res[0][i][1] >= res[0][i + 1][1] for i in range(2))
    assert chunks[res[0][0][0]]['doc'] == 'product/keemun' and chunks[res[1][0][0]]['doc'] == 'order/KL-10025'
    with pytest.raises(ValueError, match='kind'): G.Retriever(chunks, 'sparse')
    with pytest.raises(TypeError, match='encoder'): G.Retriever(chunks, 'dense')
    with pytest.raises(ValueError, match='no chunks'): G.Retriever([], 'bm25')
    with pytest.raises(ValueError, match='k must'): r.search(['tea'], k=0)
    with pytest.raises(ValueError, match='empty'): r.search([''])


def test_dense_and_hybrid_scores_follow_their_formulas(chunks, minilm):
    tok, model = minilm
    qs = ['If I buy today, when will the parcel be at my door?', 'Do you sell espresso machines?']
    dense = G.Retriever(chunks[:20], 'dense', minilm)
    raw_q = G.encode_texts(model, tok, qs, device='cpu', normalize=False)
    raw_c = G.encode_texts(model, tok, dense.passages, device='cpu', normalize=False)
    assert_close(dense.scores(qs), F.cosine_similarity(raw_q[:, None], raw_c[None], dim=-1), rtol=1e-4, atol=1e-5)
    hy = G.Retriever(chunks[:20], 'hybrid', minilm, weight=0.3, bm25_half=2.0)
    s = hy.bm25_scores(qs)
    assert_close(hy.scores(qs), 0.3 * dense.scores(qs) + 0.7 * s / (s + 2.0))
    assert chunks[dense.search(['How long does delivery take?'], 1)[0][0][0]]['doc'] == 'policy/shipping_time'
    hy.threshold = 10.0
    assert hy.retrieve(qs, 2) == [[], []]
    hy.threshold = None
    got = hy.retrieve(qs, 2)
    assert [len(x) for x in got] == [2, 2] and 'score' in got[0][0]


def test_choose_threshold_and_rrf():
    t, bal = G.choose_threshold([0.9, 0.8, 0.7, 0.2, 0.1], [True, True, True, False, False])
    assert 0.2 < t <= 0.7 and bal == 1.0
    with pytest.raises(ValueError, match='answerable AND'): G.choose_threshold([0.5, 0.6], [True, True])
    s = G.rrf_scores([[2, 0], [0, 1]], 3, c=1.0)
    assert_close(s, torch.tensor([1 / 3 + 1 / 2, 1 / 3, 1 / 2], dtype=torch.float64))
    assert G.rank_scores(torch.tensor([[1.0, 3.0, 3.0]]), 2) == [[(1, 3.0), (2, 3.0)]]


def test_load_retriever_tunes_on_valid(chunks):
    r = G.load_retriever('bm25', chunks)
    assert r.threshold is not None and r.tuning['balanced_accuracy'] > 0.5
    untuned = G.load_retriever('bm25', chunks[:10])                      # the valid labels do not hold: no tuning
    assert untuned.threshold is None and not hasattr(untuned, 'tuning')
    with pytest.raises(ValueError, match='kind'): G.load_retriever('bm26')


# -- the distilled student -------------------------------------------------------------------------------------------
def test_make_student_copies_the_chosen_layers(minilm):
    tok, model = minilm
    st = G.make_student(model, (4, 5))
    assert st.config.num_hidden_layers == 2
    assert torch.equal(st.encoder.layer[0].attention.self.query.weight, model.encoder.layer[4].attention.self.query.weight)
    assert torch.equal(st.embeddings.word_embeddings.weight, model.embeddings.word_embeddings.weight)
    with pytest.raises(ValueError, match='layers'): G.make_student(model, (6,))


def test_student_texts_never_hold_held_out_questions():
    texts = G.student_texts(20)
    held = {q['question'] for s in ('valid', 'test') for q in G.retrieval_questions(s)}
    assert not set(texts) & held and len(texts) == len(set(texts))
    assert len(G.corpus_sentences(5)) == 5 and G.corpus_sentences(5) == G.corpus_sentences(5)


def test_distill_lowers_the_loss_and_stage_saves_and_reloads(minilm, tmp_path, monkeypatch):
    tok, model = minilm
    texts = G.student_texts(0)[:48]
    targets = G.encode_texts(model, tok, texts, device='cpu', max_length=32)
    torch.manual_seed(0)
    st = G.make_student(model, (4, 5))
    losses = G.distill_student(st, tok, texts, targets, steps=6, batch_size=8, lr=5e-4, max_length=32)
    assert len(losses) == 6 and sum(losses[-2:]) < sum(losses[:2])
    with pytest.raises(ValueError, match='target'): G.distill_student(st, tok, texts, targets[:3], 1, 2)
    monkeypatch.setenv('COURSE_ASSISTANT_DIR', str(tmp_path))
    small = {'layers': [4, 5], 'n_corpus': 0, 'steps': 2, 'batch_size': 4, 'lr': 1e-4, 'max_length': 16,
             'freeze_word_embeddings': True, 'seed': 0}
    monkeypatch.setattr(G, 'student_settings', lambda profile=None: dict(small))
    tok2, st2, meta = G.student_stage('smoke', teacher=minilm)
    assert G.student_dir('smoke') == tmp_path / 'smoke' / 'retriever_student'
    assert json.loads((G.student_dir('smoke') / 'distill_meta.json').read_text())['settings'] == small
    tok3, st3, meta3 = G.student_stage('smoke', teacher=minilm)                # loaded, not retrained
    assert meta3 == meta
    assert torch.equal(st3.encoder.layer[1].output.dense.weight, st2.encoder.layer[1].output.dense.weight)
    assert G.load_student('smoke', {**small, 'steps': 3}) is None             # other settings: not this student
    q8 = G.quantize_int8(st3)
    v = G.encode_queries(tok3, q8, ['How long does delivery take?'])
    assert v.shape == (1, 384) and abs(float(v.norm()) - 1) < 1e-4
    ms = G.query_latency_ms({'int8': (tok3, q8), 'fp32': (tok3, st3)}, ['tea?', 'green tea'], repeats=1)
    assert set(ms) == {'int8', 'fp32'} and all(v > 0 for v in ms.values())
    with pytest.raises(TypeError, match='dict'): G.query_latency_ms((tok3, q8), ['tea?'])
    before = torch.get_num_threads()
    one = G.query_latency_ms({'int8': (tok3, q8)}, ['tea?'], repeats=1, threads=1)
    assert set(one) == {'int8'} and torch.get_num_threads() == before          # the thread count is restored
    with pytest.raises(ValueError, match='threads'): G.query_latency_ms({'int8': (tok3, q8)}, ['tea?'], threads=0)


def test_student_layer_scores_cover_every_pair(minilm):
    tok, model = minilm
    scores = G.student_layer_scores(model, tok, ['How long does delivery take?', 'Green tea from Japan.'])
    assert len(scores) == 15 and all(-1 <= v <= 1 for v in scores.values())


def test_fused_encoder_gives_the_berts_vectors_and_refuses_what_it_cannot_copy(minilm):
    from transformers import BertConfig, BertModel
    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                intermediate_size=64, max_position_embeddings=16), add_pooling_layer=False).eval()
    fused = G.FusedEncoder(bert)
    ids = torch.randint(0, 50, (3, 7))
    mask = torch.tensor([[1] * 7, [1] * 5 + [0] * 2, [1] * 3 + [0] * 4])
    types = torch.zeros_like(ids)
    with torch.no_grad():
        want = bert(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        got = fused(ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        keep = mask[..., None].bool()
        assert_close(got.masked_fill(~keep, 0), want.masked_fill(~keep, 0), rtol=1e-4, atol=1e-5)
        assert_close(fused(ids[:1]).last_hidden_state, bert(input_ids=ids[:1]).last_hidden_state, rtol=1e-4, atol=1e-5)
        small = G.quantize_int8(fused)(ids[:1]).last_hidden_state        # int8 runs on the fused copy too
        assert small.shape == (1, 7, 32) and F.cosine_similarity(small.flatten(), want[0].flatten(), dim=0) > 0.95
        bert.encoder.layer[0].attention.self.query.weight.add_(1.0)      # a copy: later changes do not leak in
        assert_close(fused(ids[:1]).last_hidden_state, got[:1], rtol=1e-4, atol=1e-5)
    tok, model = minilm
    enc = tok(['Where is my parcel?'], return_tensors='pt')
    with torch.no_grad():
        assert_close(G.FusedEncoder(model)(**enc).last_hidden_state, model(**enc).last_hidden_state, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match='positions'): fused(torch.zeros(1, 20, dtype=torch.long))
    with pytest.raises(TypeError, match='BertModel'): G.FusedEncoder(torch.nn.Linear(2, 2))
    relu = BertModel(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                intermediate_size=64, hidden_act='relu'), add_pooling_layer=False)
    with pytest.raises(ValueError, match='gelu'): G.FusedEncoder(relu)
