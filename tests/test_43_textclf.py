import pytest, torch
from sklearn.metrics import f1_score, confusion_matrix as sk_confusion
from torch.utils.data import DataLoader
from course_lib.projects.lstm_classifier import (tokenize_words, Vocab, TextDataset, pad_collate, LSTMClassifier, confusion_matrix, macro_f1)


def test_tokenize_words():
    assert tokenize_words("Don't PANIC, it's 42!") == ["don't", 'panic', ',', "it's", '42', '!']


def test_vocab_build_encode_decode():
    v = Vocab.build(['a b b c', 'b c d'], min_freq=2)
    assert v.itos == ['<pad>', '<unk>', 'b', 'c']          # by frequency, then alphabetically; 'a' and 'd' too rare
    assert v.encode('b a c zzz') == [2, 1, 3, 1] and v.decode([2, 1, 3, 0, 0]) == 'b <unk> c'
    assert len(Vocab.build(['a a b b c c'], min_freq=1, max_size=2)) == 4
    with pytest.raises(TypeError, match='list of texts'):
        Vocab.build('a single string')


def test_dataset_and_pad_collate():
    v = Vocab.build(['x y z', 'x y'], min_freq=1)
    ds = TextDataset(['x y z x y', 'qq', 'z'], [0, 1, 2], v, max_len=3)
    assert [len(ds[i][0]) for i in range(3)] == [3, 1, 1] and ds[1][0].tolist() == [Vocab.UNK]
    ids, lengths, labels = next(iter(DataLoader(ds, batch_size=3, collate_fn=pad_collate)))
    assert ids.shape == (3, 3) and lengths.tolist() == [3, 1, 1] and labels.tolist() == [0, 1, 2]
    assert (ids[1, 1:] == 0).all() and ids.dtype == torch.long
    with pytest.raises(ValueError, match='2 texts but 3 labels'):
        TextDataset(['a', 'b'], [0, 1, 2], v)


@pytest.mark.parametrize('bidirectional', [False, True])
def test_lstm_classifier_ignores_padding(bidirectional):
    torch.manual_seed(0)
    m = LSTMClassifier(20, 3, embed_dim=8, hidden_size=6, bidirectional=bidirectional, dropout=0.0).eval()
    seq = torch.tensor([[4, 5, 6]])
    padded = torch.tensor([[4, 5, 6, 0, 0], [7, 8, 9, 10, 11]])
    out_alone = m(seq, torch.tensor([3]))
    out_padded = m(padded, torch.tensor([3, 5]))
    assert out_padded.shape == (2, 3)
    torch.testing.assert_close(out_padded[0], out_alone[0])          # padding changes nothing
    assert m.features(padded, torch.tensor([3, 5])).shape == (2, 12 if bidirectional else 6)


def test_confusion_matrix_and_macro_f1_match_sklearn():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 5, (200,), generator=g); p = torch.randint(0, 5, (200,), generator=g)
    assert confusion_matrix(p, y, 5).tolist() == sk_confusion(y, p, labels=range(5)).tolist()
    assert macro_f1(p, y, 5) == pytest.approx(f1_score(y, p, average='macro'))
    assert macro_f1(y, y, 5) == 1.0
    # a class that never occurs and is never predicted contributes 0 (scikit-learn's zero_division=0)
    assert macro_f1(torch.tensor([0, 1]), torch.tensor([0, 1]), 3) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match='predictions'):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0]), 2)
