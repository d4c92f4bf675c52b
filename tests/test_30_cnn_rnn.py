"Tests for course_lib.algorithms.cnn_rnn: convolution, pooling and recurrent cells from scratch, checked against torch."
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.testing import assert_close
from course_lib.algorithms.cnn_rnn import (conv_output_size, conv2d, max_pool2d, avg_pool2d, DigitsCNN, RNNCell, LSTMCell, unroll,
                                copy_from_torch, input_gradient_norms, set_lstm_gate_biases_, recall_first_token_data,
                                last_real_output, RecurrentClassifier)


@pytest.mark.parametrize('stride,padding', [(1, 0), (2, 1), ((1, 2), (0, 1))])
def test_conv2d_matches_torch(stride, padding):
    torch.manual_seed(0)
    x, w, b = torch.randn(2, 3, 7, 6), torch.randn(4, 3, 3, 2), torch.randn(4)
    assert_close(conv2d(x, w, b, stride, padding), F.conv2d(x, w, b, stride, padding))


def test_conv_errors_and_sizes():
    assert conv_output_size(8, 3, 1, 1) == 8 and conv_output_size(8, 2, 2) == 4
    with pytest.raises(ValueError, match='too small'):
        conv_output_size(2, 5)
    with pytest.raises(ValueError, match='channels'):
        conv2d(torch.randn(1, 3, 5, 5), torch.randn(2, 2, 3, 3))


@pytest.mark.parametrize('k,s,p', [(2, None, 0), (3, 1, 1), (3, 2, 1)])
def test_pooling_matches_torch(k, s, p):
    x = torch.randn(2, 3, 8, 8)
    assert_close(max_pool2d(x, k, s, p), F.max_pool2d(x, k, s, p))
    assert_close(avg_pool2d(x, k, s, p), F.avg_pool2d(x, k, s, p))


def test_digits_cnn_shapes():
    m = DigitsCNN()
    assert m(torch.randn(5, 64)).shape == (5, 10)
    assert m(torch.randn(5, 1, 8, 8)).shape == (5, 10)


def test_rnn_cell_matches_torch_rnn():
    torch.manual_seed(0)
    ref = nn.RNN(3, 5, batch_first=True)
    cell = copy_from_torch(RNNCell(3, 5), ref)
    x = torch.randn(2, 6, 3)
    out, h = unroll(cell, x)
    ref_out, ref_h = ref(x)
    assert_close(out, ref_out); assert_close(h, ref_h[0])


def test_lstm_cell_matches_torch_lstm():
    torch.manual_seed(0)
    ref = nn.LSTM(3, 5, batch_first=True)
    cell = copy_from_torch(LSTMCell(3, 5), ref)
    x = torch.randn(2, 6, 3)
    out, (h, c) = unroll(cell, x)
    ref_out, (ref_h, ref_c) = ref(x)
    assert_close(out, ref_out); assert_close(h, ref_h[0]); assert_close(c, ref_c[0])
    with pytest.raises(ValueError, match='same input_size'):
        copy_from_torch(LSTMCell(4, 5), ref)


def test_gate_biases_and_gradient_norms():
    lstm = set_lstm_gate_biases_(nn.LSTM(2, 3), forget_bias=2.0, input_bias=-1.0)
    assert (lstm.bias_ih_l0[3:6] == 2.0).all() and (lstm.bias_hh_l0[3:6] == 0.0).all()
    assert (lstm.bias_ih_l0[:3] == -1.0).all()
    norms = input_gradient_norms(lambda x: x.pow(2).sum(), torch.ones(2, 4, 3))
    assert norms.shape == (4,) and torch.allclose(norms, torch.full((4,), 2 * (6 ** 0.5)))


def test_recall_data_and_last_output():
    x, y = recall_first_token_data(10, 7, n_signals=4, n_noise=3)
    assert x.shape == (10, 7) and (x[:, 0] == y).all() and (x[:, 1:] >= 4).all() and (x[:, 1:] < 7).all()
    outs = torch.arange(2 * 4 * 1.).view(2, 4, 1)
    assert last_real_output(outs, torch.tensor([2, 4])).flatten().tolist() == [1.0, 7.0]


def test_recurrent_classifier():
    for kind in ('rnn', 'lstm'):
        m = RecurrentClassifier(kind, vocab_size=8, n_classes=4)
        assert m(torch.randint(0, 8, (3, 5)), torch.tensor([5, 2, 3])).shape == (3, 4)
    with pytest.raises(ValueError, match="'rnn' or 'lstm'"):
        RecurrentClassifier('gru', 8, 4)
    with pytest.raises(ValueError, match='forget_bias'):
        RecurrentClassifier('rnn', 8, 4, forget_bias=1.0)
