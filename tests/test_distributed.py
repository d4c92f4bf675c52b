import torch, torch.nn as nn, torch.nn.functional as F
from torch.utils.data import TensorDataset, DataLoader
from course_lib.train.learner import Learner
from course_lib.train.distributed import setup_distributed, reduce_sums, is_main_process, DistributedCB, run_ddp_check


def test_single_process_is_a_no_op(monkeypatch):
    monkeypatch.delenv('WORLD_SIZE', raising=False)
    assert setup_distributed() == (0, 1) and is_main_process() and reduce_sums([1.0, 2.0]) == [1.0, 2.0]
    X, y = torch.randn(32, 3), torch.randint(0, 2, (32,))
    dl = DataLoader(TensorDataset(X, y), batch_size=8)
    learn = Learner(nn.Linear(3, 2), dl, dl, F.cross_entropy, cbs=[DistributedCB()], progress=False, device='cpu')
    learn.fit(1)
    assert learn._forward_model is learn.model and learn.train_dl is dl and learn.step == 4


def test_two_gloo_processes_with_half_batches_match_one_process(tmp_path):
    "torchrun --nproc_per_node=2 on the CPU: same weights as one process with the same global batch; resume after a crash."
    result = run_ddp_check(tmp_path, nproc=2, global_batch=16, resume=True)
    single, ddp = result['single'], result['ddp']
    assert single['steps'] == ddp['steps'] == 8
    for name, p in single['state'].items():
        torch.testing.assert_close(ddp['state'][name], p, rtol=1e-5, atol=1e-6)
    assert abs(single['valid_loss'] - ddp['valid_loss']) < 1e-5      # metrics reduced across both ranks
    assert result['log'].count('valid_loss') == 2                    # only rank 0 printed its 2 epoch lines
    for name, p in ddp['state'].items():                              # killed at step 5, resumed from step 3
        assert torch.equal(result['resumed']['state'][name], p)
