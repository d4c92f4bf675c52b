"Chapter 45's exercise checkers accept the reference answers and reject the mistakes each exercise is about."
import pytest
import torch
import torch.nn.functional as F
from course_lib.projects.semantic_search import check_cosine_matrix, check_top_k_positions, check_hit_rate


def assert_fails(capsys, result):
    assert result is False
    assert 'FAIL' in capsys.readouterr().out

A = torch.tensor([[3.0, 4.0, 0.0], [1.0, 1.0, 1.0], [0.0, -2.0, 0.0]])
B = torch.tensor([[1.0, 0.0, 0.0], [0.0, 5.0, 5.0]])

def test_cosine_matrix_checker(capsys):
    unit = lambda M, dim=1: M / M.norm(dim=dim, keepdim=True)
    assert check_cosine_matrix('Exercise 1', unit(A) @ unit(B).T, A, B) is True
    assert_fails(capsys, check_cosine_matrix('Exercise 1', A @ B.T, A, B))                   # not normalised
    assert_fails(capsys, check_cosine_matrix('Exercise 1', unit(A) @ B.T, A, B))             # only one side
    assert_fails(capsys, check_cosine_matrix('Exercise 1', unit(A, 0) @ unit(B, 0).T, A, B)) # wrong axis

E = F.normalize(torch.randn(20, 8, generator=torch.Generator().manual_seed(1)), dim=1)
q = F.normalize(torch.randn(8, generator=torch.Generator().manual_seed(2)), dim=0)

def test_top_k_positions_checker(capsys):
    assert check_top_k_positions('Exercise 2', (E @ q).argsort(descending=True)[:3], E, q) is True
    assert_fails(capsys, check_top_k_positions('Exercise 2', (E @ q).argsort()[:3], E, q))        # the worst 3
    assert_fails(capsys, check_top_k_positions('Exercise 2', (E @ q).argsort()[-3:], E, q))       # best last
    assert_fails(capsys, check_top_k_positions('Exercise 2', (E @ q).sort(descending=True).values[:3].long(), E, q))

TOY2 = torch.tensor([[0, 0, 1], [0, 1, 1], [1, 0, 0], [0, 0, 0]]).bool()

def test_hit_rate_checker(capsys):
    assert check_hit_rate('Exercise 3', TOY2[:, :2].any(1).float().mean().item(), TOY2, 2) is True
    assert_fails(capsys, check_hit_rate('Exercise 3', TOY2.any(1).float().mean().item(), TOY2, 2))          # all 3 ranks
    assert_fails(capsys, check_hit_rate('Exercise 3', TOY2[:, :2].float().mean().item(), TOY2, 2))          # precision@2
    with_hit = TOY2.any(1)
    assert_fails(capsys, check_hit_rate('Exercise 3', TOY2[with_hit, :2].any(1).float().mean().item(), TOY2, 2))  # skips empty
