"Chapter 40's exercise checkers accept the reference answers and reject the mistakes each exercise is about."
import pytest
import torch
from course_lib.train.learner import MLP
from course_lib.projects.digits_mlp import check_count_trainable, check_n_params, check_test_accuracy


def assert_fails(capsys, result):
    assert result is False
    assert 'FAIL' in capsys.readouterr().out


def test_count_trainable_checker(capsys):
    assert check_count_trainable('Exercise 1', lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad)) is True
    assert_fails(capsys, check_count_trainable('Exercise 1', lambda m: sum(p.numel() for p in m.parameters())))
    assert_fails(capsys, check_count_trainable('Exercise 1', lambda m: sum(1 for p in m.parameters() if p.requires_grad)))


def test_n_params_checker(capsys):
    assert check_n_params('Exercise 2', (64 * 500 + 500) + (500 * 10 + 10)) is True
    assert_fails(capsys, check_n_params('Exercise 2', 64 * 500 + 500 * 10))                 # biases forgotten
    assert_fails(capsys, check_n_params('Exercise 2', (784 * 500 + 500) + (500 * 10 + 10))) # MNIST's 784 inputs


@pytest.fixture(scope='module')
def trained():
    torch.manual_seed(0)
    X = torch.rand(300, 64); y = (X[:, :10].sum(1) > X[:, 10:20].sum(1)).long() + 2 * (X[:, 20] > 0.5).long()
    model = MLP()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        loss = torch.nn.functional.cross_entropy(model(X), y); opt.zero_grad(); loss.backward(); opt.step()
    return model, X, y

def acc_ref(model, X, y):
    was = model.training; model.eval()
    with torch.no_grad(): acc = (model(X).argmax(1) == y).float().mean().item()
    model.train(was)
    return acc

def acc_no_eval(model, X, y):                       # dropout stays on
    with torch.no_grad(): return (model(X).argmax(1) == y).float().mean().item()

def acc_no_grad_forgotten(model, X, y):
    was = model.training; model.eval()
    acc = (model(X).argmax(1) == y).float().mean().item()
    model.train(was)
    return acc

def acc_mode_not_restored(model, X, y):
    model.eval()
    with torch.no_grad(): return (model(X).argmax(1) == y).float().mean().item()

def test_test_accuracy_checker(capsys, trained):
    model, X, y = trained
    assert check_test_accuracy('Exercise 3', acc_ref, model, X, y) is True
    for wrong in (acc_no_eval, acc_no_grad_forgotten, acc_mode_not_restored):
        assert_fails(capsys, check_test_accuracy('Exercise 3', wrong, model, X, y))
