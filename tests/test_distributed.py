"Data-parallel MAS through `accelerate launch`: two CPU processes give the single process's result, and only rank 0 writes."
import json, os, shutil, subprocess, sys, textwrap
from pathlib import Path
import pytest

SCRIPT = textwrap.dedent('''
    import json, sys, torch
    from mas_nb.models import make_model
    from mas_nb.mas import fit_mas
    models = [make_model('multiobject', 'gru', seed=s, width=16) for s in (0, 1)]
    out, batch = sys.argv[1], int(sys.argv[2])
    res = fit_mas(models, 'multiobject', 'full', 'hidden', k=8, method='clmas', n_train=256, n_valid=96, n_test=96, batch_size=batch,
                  max_steps=6, eval_every=3, progress=False, checkpoint=out + '.ckpt')
    res.save_json(out)   # a no-op on every process but rank 0
    torch.save(res.alignments.state_dict(), out + f'.{torch.distributed.get_rank() if torch.distributed.is_initialized() else 0}.pt')
''')


def run(cmd, tmp_path, **env):
    env = {**os.environ, 'OMP_WAIT_POLICY': 'PASSIVE', 'OMP_NUM_THREADS': '1', **env}
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope='module')
def launched(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('dp')
    (tmp / 'run.py').write_text(SCRIPT)
    accelerate = shutil.which('accelerate', path=str(Path(sys.executable).parent))
    # --multi_gpu starts the processes (on CPUs too: `--cpu` alone starts one process unless MPI is set up); mas_nb picks gloo without a GPU
    launch = [accelerate, 'launch', '--multi_gpu', '--num_processes', '2', '--num_machines', '1', '--mixed_precision', 'no', '--dynamo_backend', 'no']
    two = run(launch + ['run.py', 'two.json', '32'], tmp)
    one = run([sys.executable, 'run.py', 'one.json', '32'], tmp)
    odd = run(launch + ['run.py', 'odd.json', '33'], tmp)
    return tmp, two, one, odd


def test_two_processes_equal_one(launched):
    import torch
    tmp, two, one, _ = launched
    assert two.returncode == 0, two.stderr[-2000:]
    assert one.returncode == 0, one.stderr[-2000:]
    a, b = json.loads((tmp / 'one.json').read_text()), json.loads((tmp / 'two.json').read_text())
    assert [h['valid_iia'] for h in a['history']] == [h['valid_iia'] for h in b['history']] and a['iia'] == b['iia']
    assert [h['loss'] for h in a['history']] == pytest.approx([h['loss'] for h in b['history']], rel=1e-4)
    single = torch.load(tmp / 'one.json.0.pt')
    for rank in (0, 1):   # both processes hold the same alignments, equal to the single process's
        for k, v in torch.load(tmp / f'two.json.{rank}.pt').items(): torch.testing.assert_close(v, single[k], rtol=1e-4, atol=1e-5)


def test_only_rank_zero_writes(launched):
    tmp, *_ = launched
    assert (tmp / 'two.json').exists() and (tmp / 'two.json.ckpt').exists()
    assert not [p.name for p in tmp.iterdir() if p.name.endswith('.tmp')]


def test_a_batch_the_processes_cannot_share_is_refused(launched):
    _, _, _, odd = launched
    assert odd.returncode != 0 and 'batch_size=33 must be divisible by the 2 processes' in odd.stderr
