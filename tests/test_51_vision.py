"Tests for course_lib.applications.vision: worst mistakes, class selection, few-shot sampling, image transforms, transfer models."
import pytest
import torch
import torch.nn.functional as F
from course_lib.algorithms.cnn_rnn import DigitsCNN
from course_lib.applications.vision import worst_mistakes, select_classes, few_per_class, invert_images, rotate_images, transfer_cnn


def test_worst_mistakes_orders_errors_by_loss_and_skips_correct_ones():
    logits = torch.tensor([[5., 0.], [0., 5.], [1., 0.], [0., 3.], [0., 0.5]])
    labels = torch.tensor([0, 0, 1, 1, 0])          # rows 1, 2, 4 are wrong; row 1 is the most confident error
    idx = worst_mistakes(logits, labels, k=8)
    assert idx.tolist() == [1, 2, 4]
    assert worst_mistakes(logits, labels, k=1).tolist() == [1]
    assert worst_mistakes(logits[[0, 3]], labels[[0, 3]]).numel() == 0


def test_select_classes_keeps_and_relabels_in_given_order():
    X = torch.arange(6.).view(6, 1)
    y = torch.tensor([0, 5, 7, 5, 2, 7])
    Xs, ys = select_classes(X, y, [7, 5])
    assert Xs.flatten().tolist() == [1., 2., 3., 5.]
    assert ys.tolist() == [1, 0, 1, 0]               # the order given, [7, 5], maps 7 -> 0 and 5 -> 1


def test_few_per_class_counts_and_is_reproducible():
    y = torch.tensor([0] * 5 + [1] * 3 + [2] * 1)
    X = torch.arange(len(y)).float().view(-1, 1)
    Xa, ya = few_per_class(X, y, 2, seed=3)
    assert torch.bincount(ya).tolist() == [2, 2, 1]   # class 2 has only one example
    assert torch.equal(y[Xa.flatten().long()], ya)     # rows stay paired with their labels
    Xb, yb = few_per_class(X, y, 2, seed=3)
    assert torch.equal(Xa, Xb) and torch.equal(ya, yb)


def test_invert_and_rotate_images():
    x = torch.rand(3, 64)
    assert torch.allclose(invert_images(invert_images(x)), x)
    assert torch.allclose(invert_images(torch.zeros(1, 64)), torch.ones(1, 64))
    r = rotate_images(x)
    assert r.shape == x.shape
    assert torch.equal(r.view(-1, 8, 8), torch.rot90(x.view(-1, 8, 8), 1, dims=(1, 2)))
    assert torch.equal(rotate_images(x, k=4), x)
    assert torch.equal(rotate_images(rotate_images(x, 1), 3), x)
    with pytest.raises(ValueError): rotate_images(torch.rand(2, 1, 8, 8))


@pytest.mark.parametrize('freeze', [True, False])
def test_transfer_cnn_copies_features_and_replaces_head(freeze):
    torch.manual_seed(0)
    pre = DigitsCNN(n_classes=5)
    before = {k: v.clone() for k, v in pre.state_dict().items()}
    model = transfer_cnn(pre, 3, freeze=freeze)
    assert model.head.out_features == 3 and model.head.in_features == pre.head.in_features
    for (n1, p1), (n2, p2) in zip(pre.features.named_parameters(), model.features.named_parameters()):
        assert torch.equal(p1, p2) and p1.data_ptr() != p2.data_ptr()      # same values, separate copies
        assert p2.requires_grad == (not freeze)
    assert all(p.requires_grad for p in model.head.parameters())
    # one training step changes the copy, never the pretrained model
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    F.cross_entropy(model(torch.rand(4, 64)), torch.tensor([0, 1, 2, 0])).backward(); opt.step()
    assert all(torch.equal(v, pre.state_dict()[k]) for k, v in before.items())
    changed = not torch.equal(model.features[0].weight, pre.features[0].weight)
    assert changed == (not freeze)
    assert model(torch.rand(2, 64)).shape == (2, 3)
