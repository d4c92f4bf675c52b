"Tests for course_lib.maths.optimizers: scratch optimizers match torch.optim step for step; test surfaces; bad input."
import pytest
import torch
from course_lib.maths.optimizers import (SGDScratch, RMSPropScratch, AdamScratch, AdamWScratch, compare_with_torch,
                                   assert_same_params, bowl, rosenbrock, trajectory)


@pytest.mark.parametrize('ours,theirs,hp', [
    (SGDScratch, torch.optim.SGD, dict(lr=0.1)),
    (SGDScratch, torch.optim.SGD, dict(lr=0.1, momentum=0.9)),
    (SGDScratch, torch.optim.SGD, dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01)),
    (RMSPropScratch, torch.optim.RMSprop, dict(lr=0.01, alpha=0.9, weight_decay=0.05)),
    (AdamScratch, torch.optim.Adam, dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1)),
    (AdamWScratch, torch.optim.AdamW, dict(lr=0.01, weight_decay=0.3)),
])
def test_matches_torch(ours, theirs, hp):
    assert_same_params(*compare_with_torch(ours, theirs, steps=30, **hp))


def test_adam_decoupled_is_adamw_and_differs_from_l2():
    a, b = compare_with_torch(lambda p, **k: AdamScratch(p, decoupled=True, **k), torch.optim.AdamW, lr=0.01, weight_decay=0.2)
    assert_same_params(a, b)
    a, b = compare_with_torch(AdamScratch, torch.optim.AdamW, lr=0.01, weight_decay=0.2)
    with pytest.raises(AssertionError):
        assert_same_params(a, b)


def test_param_groups_and_skipped_grads():
    w1, w2 = torch.ones(2, requires_grad=True), torch.ones(2, requires_grad=True)
    opt = SGDScratch([{'params': [w1], 'lr': 0.5}, {'params': [w2]}], lr=0.1)
    w1.grad = torch.ones(2)          # w2 has no gradient: left alone
    opt.step()
    assert w1.tolist() == [0.5, 0.5] and w2.tolist() == [1.0, 1.0]


def test_closure_returns_loss():
    w = torch.tensor([2.0], requires_grad=True)
    opt = AdamScratch([w], lr=0.1)
    def closure():
        opt.zero_grad(); loss = (w ** 2).sum(); loss.backward(); return loss
    assert opt.step(closure).item() == 4.0 and w.item() < 2.0


@pytest.mark.parametrize('make,match', [
    (lambda p: SGDScratch(p, lr=-1), 'lr'), (lambda p: SGDScratch(p, momentum=1.5), 'momentum'),
    (lambda p: SGDScratch(p, nesterov=True), 'nesterov'), (lambda p: AdamScratch(p, betas=(0.9, 1.0)), r'betas\[1\]'),
    (lambda p: RMSPropScratch(p, eps=-1e-8), 'eps'), (lambda p: AdamWScratch(p, weight_decay=-0.1), 'weight_decay'),
])
def test_bad_hyperparameters(make, match):
    with pytest.raises(ValueError, match=match):
        make([torch.zeros(1, requires_grad=True)])


def test_surfaces_and_trajectory():
    assert bowl(torch.zeros(2)).item() == 0 and rosenbrock(torch.ones(2)).item() == 0
    assert bowl(torch.tensor([1.0, 1.0])).item() == pytest.approx(10.5)
    path = trajectory(lambda p: SGDScratch(p, lr=0.05), bowl, (-4.0, 1.5), 150)
    assert path.shape == (151, 2) and bowl(path[-1]) < 1e-2
    diverged = trajectory(lambda p: SGDScratch(p, lr=0.11), bowl, (-4.0, 1.5), 500)
    assert len(diverged) < 501 or not torch.isfinite(bowl(diverged[-1]))   # stops early once it blows up
