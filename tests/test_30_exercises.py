"Exercise checkers of chapter 30: the reference answer passes, the mistake each exercise is about is rejected."
import pytest
import torch
import torch.nn.functional as F
from course_lib.algorithms import cnn_rnn as CR


def passes(capsys, ok):
    out = capsys.readouterr().out
    assert ok is True and 'PASS' in out, out


def fails(capsys, ok):
    out = capsys.readouterr().out
    assert ok is False and 'FAIL' in out and 'hint' in out, out


def pool_by_conv(x, k, scale=None, stride=None):
    n, c, h, w = x.shape
    kernel = torch.full((1, 1, k, k), 1.0 / (k * k) if scale is None else scale, dtype=x.dtype)
    y = CR.conv2d(x.reshape(n * c, 1, h, w), kernel, stride=k if stride is None else stride)
    return y.view(n, c, *y.shape[-2:])


def test_ex1_avg_pool_by_conv(capsys):
    passes(capsys, CR.check_avg_pool_by_conv('Exercise 1', pool_by_conv))
    fails(capsys, CR.check_avg_pool_by_conv('Exercise 1', lambda x, k: pool_by_conv(x, k, scale=1.0)))    # a sum, not an average
    fails(capsys, CR.check_avg_pool_by_conv('Exercise 1', lambda x, k: pool_by_conv(x, k, stride=1)))     # overlapping windows
    def mixes_channels(x, k):                                                                          # one kernel over all channels
        c = x.shape[1]
        return CR.conv2d(x, torch.full((c, c, k, k), 1.0 / (k * k)), stride=k)
    fails(capsys, CR.check_avg_pool_by_conv('Exercise 1', mixes_channels))


class GRUCell(CR.RNNCell):
    gates = 3
    def forward(self, x, h=None):
        if h is None: h = self.zero_state(x)
        xr, xz, xn = F.linear(x, self.weight_ih, self.bias_ih).chunk(3, dim=-1)
        hr, hz, hn = F.linear(h, self.weight_hh, self.bias_hh).chunk(3, dim=-1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        return (1 - z) * torch.tanh(xn + r * hn) + z * h


class ResetBeforeMatrix(CR.RNNCell):          # the classic mistake: r multiplies h, then W_hn (and b_hn outside)
    gates = 3
    def forward(self, x, h=None):
        if h is None: h = self.zero_state(x)
        H = self.hidden_size
        xr, xz, xn = F.linear(x, self.weight_ih, self.bias_ih).chunk(3, dim=-1)
        hr, hz, _ = F.linear(h, self.weight_hh, self.bias_hh).chunk(3, dim=-1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        n = torch.tanh(xn + F.linear(r * h, self.weight_hh[2 * H:], self.bias_hh[2 * H:]))
        return (1 - z) * n + z * h


class SwappedUpdate(GRUCell):                 # h' = z n + (1 - z) h: the update gate the wrong way round
    def forward(self, x, h=None):
        if h is None: h = self.zero_state(x)
        xr, xz, xn = F.linear(x, self.weight_ih, self.bias_ih).chunk(3, dim=-1)
        hr, hz, hn = F.linear(h, self.weight_hh, self.bias_hh).chunk(3, dim=-1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        return z * torch.tanh(xn + r * hn) + (1 - z) * h


def test_ex2_gru_cell(capsys):
    passes(capsys, CR.check_gru_cell('Exercise 2', GRUCell))
    fails(capsys, CR.check_gru_cell('Exercise 2', ResetBeforeMatrix))
    fails(capsys, CR.check_gru_cell('Exercise 2', SwappedUpdate))


def test_ex3_lstm_param_count(capsys):
    passes(capsys, CR.check_lstm_param_count('Exercise 3', lambda i, h: 4 * (h * i + h * h + 2 * h)))
    fails(capsys, CR.check_lstm_param_count('Exercise 3', lambda i, h: 4 * (h * i + h * h + h)))      # one bias vector
    fails(capsys, CR.check_lstm_param_count('Exercise 3', lambda i, h: h * i + h * h + 2 * h))        # one gate
