import os

import pytest
import torch
from torch import nn

import mas_nb.checkpoints as checkpoints
import mas_nb.models as models
from mas_nb.models import ARCHS, make_model, affine_scan, scored_positions
from mas_nb.training import train_model, trial_correct, trial_accuracy
from mas_nb.checkpoints import save_model, load_model, cached_model, cache_path
from mas_nb.tasks import get_task

TASK = get_task('multiobject')
SITES = [(arch, site) for arch in ARCHS for site in make_model('multiobject', arch, width=8).sites]


def tiny(arch, task='multiobject', width=16, seed=0):
    model = make_model(task, arch, seed=seed, width=width).eval()
    for p in model.parameters(): p.requires_grad_(False)   # as during MAS: only `new` carries gradients
    return model


def random_pos(ids, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, ids.shape[1], (len(ids),), generator=g)


def assert_patched(model, ids, site, pos, new, stepwise, want):
    "`prefix=True` must give `want` everywhere; the default, `want` at the scored positions and zeros elsewhere."
    close = dict(atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model.patched_logits(ids, site, pos, new, stepwise, prefix=True), want, **close)
    fast, keep = model.patched_logits(ids, site, pos, new, stepwise), scored_positions(ids, pos)
    torch.testing.assert_close(fast[keep], want[keep], **close)
    assert (fast[~keep] == 0).all()


# --- the patch interface -------------------------------------------------------------------------------

@pytest.mark.parametrize('arch,site', SITES)
@pytest.mark.parametrize('stepwise', [False, True])
def test_identity_patch_reproduces_logits(arch, site, stepwise):
    model, ids = tiny(arch), TASK.sample(40, 1)
    pos, rows = random_pos(ids), torch.arange(40)
    lat = model.latents(ids, site)
    assert lat.shape == (40, ids.shape[1], model.site_dim(site))
    new = lat if stepwise else lat[rows, pos]
    full = model(ids)
    got = model.patched_logits(ids, site, pos, new, stepwise=stepwise, prefix=True)
    torch.testing.assert_close(got, full, atol=1e-5, rtol=1e-5)
    fast = model.patched_logits(ids, site, pos, new, stepwise=stepwise)   # only the scored positions
    keep = (torch.arange(ids.shape[1])[None] >= pos[:, None]) & (ids != 0)
    assert torch.equal(scored_positions(ids, pos), keep)
    torch.testing.assert_close(fast[keep], full[keep], atol=1e-5, rtol=1e-5)
    assert (fast[~keep] == 0).all()


@pytest.mark.parametrize('arch,site', SITES)
def test_patch_changes_only_positions_from_pos_on(arch, site):
    model, ids = tiny(arch), TASK.sample(20, 2)
    pos = torch.randint(1, ids.shape[1] - 1, (20,), generator=torch.Generator().manual_seed(3))
    new = torch.randn(20, model.site_dim(site), generator=torch.Generator().manual_seed(4)) * 3
    diff = (model.patched_logits(ids, site, pos, new, prefix=True) - model(ids)).abs().amax(-1)
    t = torch.arange(ids.shape[1])[None]
    assert diff[t < pos[:, None]].max() < 1e-5
    assert (diff[t == pos[:, None]] > 1e-4).all() if site != 'embedding' or arch != 'transformer' else True
    assert diff[t >= pos[:, None]].max() > 1e-3


@pytest.mark.parametrize('arch,site', SITES)
@pytest.mark.parametrize('stepwise', [False, True])
def test_gradients_flow_into_new(arch, site, stepwise):
    model, ids = tiny(arch), TASK.sample(8, 3)
    pos = random_pos(ids, 5)
    shape = (8, ids.shape[1], model.site_dim(site)) if stepwise else (8, model.site_dim(site))
    new = torch.randn(shape, requires_grad=True)
    model.patched_logits(ids, site, pos, new, stepwise=stepwise).logsumexp(-1).sum().backward()
    assert new.grad is not None and new.grad.abs().sum() > 0


def test_transformer_patch_matches_a_looped_reference():
    model, ids = tiny('transformer'), TASK.sample(12, 4)
    pos = random_pos(ids, 6)
    new = torch.randn(12, 16)
    x = model.embed(ids)
    x = model.blocks[0](x).clone()
    for i in range(12): x[i, pos[i]] = new[i]          # patch after block 0, one row at a time
    want = model.head(model.ln_f(model.blocks[1](x)))
    assert_patched(model, ids, 'layer0', pos, new, False, want)


# --- the fast RNN path against a step-by-step cell loop -----------------------------------------------

def cell_of(model):
    r = model.rnn
    cell = (nn.GRUCell if model.arch == 'gru' else nn.LSTMCell)(r.input_size, r.hidden_size)
    cell.load_state_dict(dict(weight_ih=r.weight_ih_l0, weight_hh=r.weight_hh_l0, bias_ih=r.bias_ih_l0, bias_hh=r.bias_hh_l0))
    return cell


def reference_run(model, ids, states=None, embeds=None, patch=None):
    """Step through the sequence with an RNN cell. `patch(t, state) -> state` may replace the state after step t.
    Returns per-position latents ([h] or [h; c]) and logits."""
    cell, n = cell_of(model), len(ids)
    x = model.embed(ids) if embeds is None else embeds
    k = model.state_size
    state = torch.zeros(n, k) if model.arch == 'gru' else (torch.zeros(n, k), torch.zeros(n, k))
    lats, logits = [], []
    for t in range(ids.shape[1]):
        state = cell(x[:, t], state)
        flat = state if model.arch == 'gru' else torch.cat(state, -1)
        if patch is not None: flat = patch(t, flat)
        state = flat if model.arch == 'gru' else tuple(flat.split(k, -1))
        lats.append(flat); logits.append(model.head(flat[:, :k]))
    return torch.stack(lats, 1), torch.stack(logits, 1)


@pytest.mark.parametrize('arch', ['gru', 'lstm'])
def test_rnn_latents_match_cell_loop(arch):
    model, ids = tiny(arch, width=32), TASK.sample(30, 7)
    lats, logits = reference_run(model, ids)
    torch.testing.assert_close(model.latents(ids, 'hidden'), lats, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model(ids), logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('arch', ['gru', 'lstm'])
@pytest.mark.parametrize('stepwise', [False, True])
def test_rnn_hidden_patch_matches_cell_loop(arch, stepwise):
    model, ids = tiny(arch, width=32), TASK.sample(30, 8)
    pos = random_pos(ids, 9)
    g = torch.Generator().manual_seed(10)
    new = torch.randn((30, ids.shape[1], 32) if stepwise else (30, 32), generator=g)

    def patch(t, flat):
        hit = (pos >= t) if stepwise else (pos == t)
        return torch.where(hit[:, None], new[:, t] if stepwise else new, flat)

    _, want = reference_run(model, ids, patch=patch)
    assert_patched(model, ids, 'hidden', pos, new, stepwise, want)


@pytest.mark.parametrize('arch', ['gru', 'lstm'])
@pytest.mark.parametrize('stepwise', [False, True])
def test_rnn_embedding_patch_matches_cell_loop(arch, stepwise):
    model, ids = tiny(arch, width=32), TASK.sample(30, 11)
    pos = random_pos(ids, 12)
    new = torch.randn((30, ids.shape[1] + 3, 32) if stepwise else (30, 32))
    x = model.embed(ids).clone()
    for i in range(30):
        if stepwise: x[i, :pos[i] + 1] = new[i, :pos[i] + 1]
        else: x[i, pos[i]] = new[i]
    _, want = reference_run(model, ids, embeds=x)
    assert_patched(model, ids, 'embedding', pos, new, stepwise, want)


def test_affine_scan_matches_recurrence():
    a, b = torch.rand(4, 55, 3), torch.randn(4, 55, 3)
    c, ref = torch.zeros(4, 3), []
    for t in range(55):
        c = a[:, t] * c + b[:, t]; ref.append(c)
    torch.testing.assert_close(affine_scan(a, b), torch.stack(ref, 1), atol=1e-5, rtol=1e-5)


def test_arithmetic_models():
    task = get_task('arithmetic')
    ids = task.sample(10, 0)
    for arch in ARCHS:
        model = tiny(arch, 'arithmetic')
        assert model(ids).shape == (*ids.shape, 28)


# --- bad input ------------------------------------------------------------------------------------------

def test_bad_sites_and_shapes_fail_clearly():
    model, ids = tiny('gru'), TASK.sample(4, 0)
    pos = torch.tensor([1, 2, 3, 4])
    with pytest.raises(ValueError, match=r"unknown site 'layer0'.*'embedding', 'hidden'"): model.latents(ids, 'layer0')
    with pytest.raises(ValueError, match="unknown site 'hidden'.*'layer0', 'layer1'"): tiny('transformer').site_dim('hidden')
    with pytest.raises(ValueError, match=r"new must have shape \[4, 16\]"): model.patched_logits(ids, 'hidden', pos, torch.zeros(4, 15))
    with pytest.raises(ValueError, match="new must have shape"): model.patched_logits(ids, 'hidden', pos, torch.zeros(4, 4, 16), stepwise=True)
    with pytest.raises(ValueError, match="pos must be a LongTensor"): model.patched_logits(ids, 'hidden', pos[:3], torch.zeros(4, 16))
    with pytest.raises(ValueError, match="pos must lie in"): model.patched_logits(ids, 'hidden', pos + 100, torch.zeros(4, 16))
    with pytest.raises(ValueError, match="token ids must lie in 0..9"): model(ids + 20)
    with pytest.raises(ValueError, match="LongTensor"): model(ids.float())
    with pytest.raises(ValueError, match="valid architectures"): make_model('multiobject', 'mamba')
    with pytest.raises(ValueError, match="unknown task"): make_model('nope', 'gru')
    with pytest.raises(ValueError, match="width"): make_model('multiobject', 'lstm', width=7)
    with pytest.raises(ValueError, match="has 10 tokens, not 28"): make_model('multiobject', 'gru', vocab_size=28)
    with pytest.raises(ValueError, match="max_steps must be a positive integer"): train_model('multiobject', 'gru', max_steps=0)
    with pytest.raises(ValueError, match="unknown architecture"): train_model('multiobject', 'rnn', max_steps=1)


# --- training and accuracy ------------------------------------------------------------------------------

def test_teacher_forced_equals_free_running():
    model = train_model('multiobject', 'gru', seed=0, width=32, lr=5e-3, max_steps=150, criterion=None, progress=False)
    ids = TASK.sample(200, 5)
    det, seq = TASK.deterministic_mask(ids), ids.clone()
    with torch.no_grad():
        for t in range(1, ids.shape[1]):   # greedy rollout: own predictions at deterministic positions
            seq[:, t] = torch.where(det[:, t], model(seq[:, :t])[:, -1].argmax(-1), ids[:, t])
    free = ((seq == ids) | ~det).all(1)
    tf = trial_correct(model, TASK, ids)
    assert 0 < tf.float().mean() < 1, "need a half-trained model for a meaningful comparison"
    assert torch.equal(tf, free)
    assert trial_accuracy(model, 'multiobject', ids) == pytest.approx(free.float().mean().item())


def test_training_is_seeded_and_budget_errors():
    a = train_model('multiobject', 'lstm', seed=3, width=16, max_steps=5, criterion=None, progress=False)
    b = train_model('multiobject', 'lstm', seed=3, width=16, max_steps=5, criterion=None, progress=False)
    c = train_model('multiobject', 'lstm', seed=4, width=16, max_steps=5, criterion=None, progress=False)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.rnn.weight_hh_l0, c.rnn.weight_hh_l0)
    with pytest.raises(RuntimeError, match="did not reach"):
        train_model('multiobject', 'gru', width=8, max_steps=10, check_every=5, progress=False)


def test_transformer_trains_on_void_variant():
    model = train_model('multiobject', 'transformer', seed=0, width=16, max_steps=2, criterion=None, progress=False)
    assert model.config['train_void_p'] == 0.2 and model.task == 'multiobject'


# --- checkpoints and cache ------------------------------------------------------------------------------

@pytest.mark.parametrize('arch', ARCHS)
def test_save_load_identical(arch, tmp_path):
    model = train_model('multiobject', arch, seed=1, width=16, max_steps=3, criterion=None, progress=False)
    path = save_model(model, tmp_path / 'sub' / 'm.pt')
    assert sorted(p.name for p in path.parent.iterdir()) == ['m.pt']   # no temporary left behind
    back = load_model(path)
    assert back.config == model.config and back.accuracy == model.accuracy and not back.training
    for (k, x), (k2, y) in zip(model.state_dict().items(), back.state_dict().items()):
        assert k == k2 and torch.equal(x, y)
    ids = TASK.sample(16, 0)
    assert torch.equal(back(ids), model(ids))


def test_bad_checkpoints_fail_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt"): load_model(tmp_path / 'missing.pt')
    (tmp_path / 'junk.pt').write_bytes(b'\x00garbage')
    with pytest.raises(ValueError, match="junk.pt is not a readable") as err: load_model(tmp_path / 'junk.pt')
    assert err.value.__cause__ is not None   # torch's own error is kept for the traceback
    torch.save({'hello': 1}, tmp_path / 'other.pt')
    with pytest.raises(ValueError, match="other.pt is not a mas_nb model checkpoint"): load_model(tmp_path / 'other.pt')
    good = save_model(tiny('gru'), tmp_path / 'good.pt')
    (tmp_path / 'cut.pt').write_bytes(good.read_bytes()[:200])
    with pytest.raises(ValueError, match="cut.pt"): load_model(tmp_path / 'cut.pt')
    blob = torch.load(good, weights_only=True); blob['config']['width'] = 32
    torch.save(blob, tmp_path / 'wrong.pt')
    with pytest.raises(ValueError, match=r"wrong.pt holds an inconsistent checkpoint: embed.weight has shape \[10, 16\] "
                                         r"where the config \(width 32\) implies \[10, 32\]"):
        load_model(tmp_path / 'wrong.pt')
    blob['config']['width'] = 16; del blob['state_dict']['rnn.bias_hh_l0']; blob['state_dict']['extra'] = torch.zeros(1)
    torch.save(blob, tmp_path / 'keys.pt')
    with pytest.raises(ValueError, match=r"missing weight\(s\) \['rnn.bias_hh_l0'\]; unexpected weight\(s\) \['extra'\]"):
        load_model(tmp_path / 'keys.pt')
    del blob['config']['arch']; torch.save(blob, tmp_path / 'config.pt')
    with pytest.raises(ValueError, match=r"its config must be a dict with \['task', 'arch', 'width', 'seed'\]"):
        load_model(tmp_path / 'config.pt')


LOAD_UNDER_A_MEMORY_CAP = """
import re, resource, sys
from pathlib import Path
import torch
from mas_nb.checkpoints import load_model
load_model(sys.argv[1])   # warm up: what loading any checkpoint costs
vm = int(re.search(r'VmSize:\\s+(\\d+)', Path('/proc/self/status').read_text())[1]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + 2 ** 30,) * 2)   # 1 GiB more address space, no more
try: load_model(sys.argv[2])
except ValueError as e: print('refused:', e)
"""


@pytest.mark.skipif(not os.path.exists('/proc/self/status'), reason='reads the address space from /proc')
def test_a_lying_config_allocates_nothing(tmp_path):
    "A small checkpoint whose config claims width 8192 (2.9 GB of weights) is refused within 1 GiB of address space."
    import subprocess, sys
    good = save_model(tiny('gru'), tmp_path / 'good.pt')
    blob = torch.load(good, weights_only=True); blob['config']['width'] = 8192
    torch.save(blob, tmp_path / 'huge.pt')
    assert (tmp_path / 'huge.pt').stat().st_size < 100_000
    r = subprocess.run([sys.executable, '-c', LOAD_UNDER_A_MEMORY_CAP, str(good), str(tmp_path / 'huge.pt')], capture_output=True,
                       text=True, env={**os.environ, 'PYTHONPATH': os.pathsep.join(sys.path)})
    assert r.returncode == 0, r.stderr
    assert 'refused:' in r.stdout and 'implies [10, 8192]' in r.stdout


def test_cached_model_trains_once(tmp_path, monkeypatch):
    monkeypatch.setenv('MAS_NB_CACHE', str(tmp_path / 'cache'))
    calls = []
    def fake_train(task, arch, seed, width, **options):
        calls.append((task, arch, seed, width))
        return train_model(task, arch, seed, width, max_steps=2, criterion=None, progress=False)
    monkeypatch.setattr(checkpoints, 'train_model', fake_train)
    first = cached_model('multiobject', 'gru', seed=2, width=16)
    again = cached_model(get_task('multiobject'), 'gru', seed=2, width=16)
    assert calls == [('multiobject', 'gru', 2, 16)]
    path = cache_path('multiobject', 'gru', seed=2, width=16)
    assert path == tmp_path / 'cache' / f'multiobject-gru-w16-s2-v{checkpoints.CACHE_VERSION}.pt' and path.is_file()
    ids = TASK.sample(8, 0)
    assert torch.equal(first(ids), again(ids))
    cached_model('multiobject', 'gru', seed=3, width=16)
    assert len(calls) == 2
    with pytest.raises(ValueError, match="criterion must be a finite number"): cached_model('multiobject', 'gru', criterion=1.5)
    with pytest.raises(TypeError, match=r"unknown training option\(s\) \['nope'\]"): cached_model('multiobject', 'gru', 2, 16, nope=1)
    assert len(calls) == 2


def test_training_options_are_part_of_the_cache_name(tmp_path, monkeypatch):
    "Options that change the model get their own file; the default name only ever holds the default training."
    monkeypatch.setenv('MAS_NB_CACHE', str(tmp_path))
    default = cache_path('multiobject', 'gru', 0, 16)
    assert default.name == f'multiobject-gru-w16-s0-v{checkpoints.CACHE_VERSION}.pt'
    same = [cache_path('multiobject', 'gru', 0, 16, **o) for o in (dict(max_steps=99), dict(void_p=0), dict(lr=1e-3), dict(criterion=0.9999))]
    assert same == [default] * 4
    other = {cache_path('multiobject', 'gru', 0, 16, **o) for o in (dict(lr=2e-3), dict(criterion=None), dict(criterion=None, max_steps=5),
                                                                    dict(det_weight=2), dict(n_valid=500))}
    assert len(other) == 5 and default not in other and all(p.name.startswith(default.stem + '-o') for p in other)
    assert cache_path('multiobject', 'transformer', 0, 16, void_p=0.2) == cache_path('multiobject', 'transformer', 0, 16)
    quick = dict(criterion=None, max_steps=2, progress=False)
    a = cached_model('multiobject', 'gru', 0, 16, **quick)
    assert [p.name for p in tmp_path.glob('*.pt')] == [cache_path('multiobject', 'gru', 0, 16, criterion=None, max_steps=2).name]
    assert not default.exists()   # a 2-step model is not saved under the paper's name
    monkeypatch.setattr(checkpoints, 'train_model', lambda *a, **k: pytest.fail('the cached model was trained again'))
    b = cached_model('multiobject', 'gru', 0, 16, **quick)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    for bad, match in ((dict(seed=1.7), 'seed'), (dict(seed='1'), 'seed'), (dict(seed=True), 'seed'), (dict(seed=-1), 'seed'),
                       (dict(width=128.9), 'width'), (dict(width=15), 'width'), (dict(lr=float('nan')), 'lr')):
        with pytest.raises(ValueError, match=f"{match} must be"): cached_model('multiobject', 'gru', **bad)


CACHE_CLIENT = """
import sys, time
import mas_nb.checkpoints as ck
real = ck.train_model
def slow_train(*a, **k):
    print('training', flush=True); time.sleep(float(sys.argv[1])); return real(*a, **k)
ck.train_model = slow_train
m = ck.cached_model('multiobject', 'gru', 5, 16, criterion=None, max_steps=3, progress=True)
print('loaded', float(sum(p.double().sum() for p in m.parameters())), flush=True)
"""


def test_two_processes_train_a_missing_model_once(tmp_path):
    "The second process waits on the lock while the first trains, then loads the saved model."
    import subprocess, sys
    env = {**os.environ, 'MAS_NB_CACHE': str(tmp_path), 'PYTHONPATH': os.pathsep.join(sys.path)}
    start = lambda pause: subprocess.Popen([sys.executable, '-c', CACHE_CLIENT, pause], stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True, env=env)
    first = start('4')
    assert first.stdout.readline().strip() == 'training'   # the first holds the lock
    second = start('0')
    out = [p.communicate(timeout=300) for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], [e for _, e in out]
    assert 'training' not in out[1][0] and 'waiting for another process to train' in out[1][1]
    assert out[0][0].split()[-1] == out[1][0].split()[-1]   # the same weights
    assert len(list(tmp_path.glob('*.pt'))) == 1


# --- old import paths -----------------------------------------------------------------------------------

def test_moved_names_still_import_from_models():
    import mas_nb.files, mas_nb.training
    from mas_nb.models import cached_model as old, atomic_write, CRITERION
    assert old is cached_model and atomic_write is mas_nb.files.atomic_write and CRITERION == mas_nb.training.CRITERION
    assert not set(models._MOVED) & set(models.__all__)
    with pytest.raises(AttributeError, match="has no attribute 'nope'"): models.nope
