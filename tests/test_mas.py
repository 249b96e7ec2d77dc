import json

import pytest
import torch

from mas_nb.tasks import get_task
from mas_nb.checkpoints import cached_model
from dataclasses import replace

from mas_nb.mas import fit_mas, fit_spec, evaluate_iia, counterfactual_latents, build_directions, RunSpec, METHODS, Method

FAST = dict(n_train=512, n_valid=256, n_test=256, batch_size=64, eval_every=5, progress=False)


@pytest.fixture(scope='module')
def grus():
    return [cached_model('multiobject', 'gru', seed) for seed in (0, 1)]


def test_full_width_swap_within_a_model_is_exact(grus):
    "With k = d a within-model swap hands over the source state unchanged: IIA is the model's own accuracy, no training needed."
    res = fit_mas(grus[:1], 'multiobject', 'full', 'hidden', k=128, method='das', max_steps=1, lr=0.0, **FAST)
    assert res.iia['0->0'] == 1.0 and res.token_acc['0->0'] == 1.0
    assert res.method == 'das' and list(res.iia) == ['0->0']


def test_full_width_stepwise_swap_at_the_embeddings_is_exact(grus):
    "Stepwise with k = d replaces every embedding 0..t by the source's: the target reads the source prefix itself."
    res = fit_mas(grus[:1], 'multiobject', 'full', 'embedding', k=128, method='das', stepwise=True, max_steps=1, lr=0.0, **FAST)
    assert res.iia['0->0'] == 1.0
    partial = fit_mas(grus[:1], 'multiobject', 'full', 'embedding', k=4, method='das', stepwise=True, max_steps=1, lr=0.0, **FAST)
    assert partial.iia['0->0'] < 0.9  # an untrained 4-d subspace does not carry the count: the check can fail


def test_teacher_forced_iia_equals_free_running(grus):
    "Teacher-forced trial correctness equals a greedy rollout where the model feeds back its own deterministic tokens."
    model = grus[0]
    res = fit_mas(grus, 'multiobject', 'count', 'hidden', k=8, max_steps=10, **FAST)
    d = [d for d in build_directions(grus, res.alignments, replace(res.spec, seed=7), dict(test=200)) if d.name == '1->0'][0]
    sp = d.splits['test']
    idx = torch.arange(len(sp.iv))
    with torch.no_grad():
        h_v = d.intervene(sp.h_trg[idx], sp.h_src[idx])
        tf = model.patched_logits(sp.iv.cf_ids, 'hidden', sp.iv.trg_pos, h_v)
        tf_ok = ((tf[:, :-1].argmax(-1) == sp.iv.cf_ids[:, 1:]) | ~sp.iv.label_mask[:, 1:]).all(1)
        ids = sp.iv.cf_ids.clone()
        for t in range(1, ids.shape[1]):  # free running: the model writes every deterministic token itself
            pred = model.patched_logits(ids, 'hidden', sp.iv.trg_pos, h_v)[:, t - 1].argmax(-1)
            ids[:, t] = torch.where(sp.iv.label_mask[:, t], pred, ids[:, t])
        fr_ok = (ids == sp.iv.cf_ids).all(1)
    assert torch.equal(tf_ok, fr_ok)
    assert 0 < fr_ok.float().mean() < 1  # the comparison is not vacuous


def test_resume_continues_exactly(grus, tmp_path):
    kw = dict(variable='full', sites='hidden', k=8, **FAST)
    straight = fit_mas(grus, 'multiobject', max_steps=20, **kw)
    ck = tmp_path / 'run.pt'
    fit_mas(grus, 'multiobject', max_steps=10, checkpoint=ck, **kw)   # "interrupted" after 10 steps
    ck2 = tmp_path / 'run2.pt'; ck2.write_bytes(ck.read_bytes())
    resumed = fit_mas(grus, 'multiobject', max_steps=20, checkpoint=ck, **kw)
    assert resumed.history == straight.history and resumed.iia == straight.iia
    for a, b in zip(straight.alignments.state_dict().values(), resumed.alignments.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="different run"):
        fit_mas(grus, 'multiobject', max_steps=20, checkpoint=ck, **{**kw, 'k': 4})
    other_memory = fit_mas(grus, 'multiobject', max_steps=20, checkpoint=ck2, latents='cpu', eval_batch_size=7, **kw)
    assert other_memory.history == straight.history   # memory settings may change on resume: same numbers
    bad = tmp_path / 'bad.pt'; bad.write_bytes(b'not a checkpoint')
    with pytest.raises(ValueError, match="past max_steps=4"):
        fit_mas(grus, 'multiobject', max_steps=4, checkpoint=ck, **kw)
    with pytest.raises(ValueError, match="cannot read MAS checkpoint"):
        fit_mas(grus, 'multiobject', max_steps=20, checkpoint=bad, **kw)


class StateModel(torch.nn.Module):
    "A stand-in whose latent at every position is its causal state (count, phase): CL lookups can be read off."
    sites = ('hidden',)
    def latents(self, ids, site):
        tr = get_task('multiobject').trace(ids)
        return torch.stack([tr['count'], tr['phase']], -1).float()


def test_counterfactual_latents_match_the_requested_state():
    want = dict(count=torch.tensor([3, 0, 20, 7, 99]), phase=torch.tensor([0, 1, 0, 1, 0]))
    h = counterfactual_latents(StateModel(), get_task('multiobject'), 'hidden', want, seed=0)
    assert torch.equal(h[:4], torch.tensor([[3., 0], [0, 1], [20, 0], [7, 1]]))
    assert torch.isnan(h[4]).all()  # a count of 99 was never recorded: no CL latent


def test_clmas_and_stitching_run_and_report_every_direction(grus):
    for method, dirs in (('unimas', 4), ('clmas', 4), ('stitch', 2), ('latent_stitch', 2)):
        res = fit_mas(grus, 'multiobject', 'full', 'hidden', method=method, max_steps=5, **FAST)
        assert len(res.iia) == dirs and set(res.iia) >= {'0->1', '1->0'} and 0 <= res.worst_iia <= 1
    assert fit_mas(grus, 'multiobject', 'full', 'hidden', method='clmas', max_steps=2, **FAST).trained == ['0->0', '0->1', '1->0', '1->1']  # behaviour or CL loss
    assert fit_mas(grus, 'multiobject', 'full', 'hidden', method='unimas', max_steps=2, **FAST).trained == ['0->1', '1->1']
    assert fit_mas(grus, 'multiobject', 'full', 'hidden', method='stitch', max_steps=2, **FAST).trained == ['0->1']
    assert fit_mas(grus, 'multiobject', 'full', 'hidden', method='latent_stitch', max_steps=2, **FAST).trained == ['1->0']


def test_three_models_share_one_alignment_each(grus):
    "N = 3 (two GRUs and an LSTM): one rotation per model, all 9 directions trained and evaluated."
    lstm = cached_model('multiobject', 'lstm', 0)
    res = fit_mas([*grus, lstm], 'multiobject', 'full', 'hidden', k=32, max_steps=40, names=['g0', 'g1', 'l0'], **FAST)
    assert len(res.alignments) == 3 and len(res.iia) == 9 and res.trained == list(res.iia)
    mean = lambda h: sum(h['valid_iia'].values()) / 9
    assert res.history[-1]['loss'] < res.history[0]['loss'] and mean(res.history[-1]) > mean(res.history[0]) + 0.1


def test_result_serialises_and_reevaluates(grus, tmp_path):
    res = fit_mas(grus, 'multiobject', 'count', 'hidden', k=8, max_steps=5, names=['a', 'b'], **FAST)
    res.save_json(tmp_path / 'r.json')
    d = json.loads((tmp_path / 'r.json').read_text())
    assert d['iia'] == res.iia and d['worst_iia'] == min(res.iia.values()) and set(d['iia']) == {'a->a', 'a->b', 'b->a', 'b->b'}
    again = evaluate_iia(grus, res, n=128, seed=3)
    assert set(again) == set(res.iia) and all(0 <= v['iia'] <= 1 for v in again.values())


@pytest.mark.parametrize('kwargs,message', [
    (dict(k=129), r"k=129 must be an integer in 1\.\.128"),
    (dict(sites='layer0'), "has no site 'layer0'"),
    (dict(method='magic'), "unknown method"),
    (dict(method='das'), r"das aligns 1 model\(s\), got 2"),
    (dict(tasks='arithmetic'), "reads 10 token ids but task 'arithmetic' has 28"),
    (dict(variable='rem_ops'), "multiobject has no variable 'rem_ops'"),
    (dict(sites=['hidden']), r"sites: give one for all models or one per model \(2\)"),
    (dict(method='stitch'), "k does not apply to method 'stitch'"),
    (dict(names=['a', 'a']), "names must be distinct"),
    (dict(values='12', variable='count'), "values must be a collection of integers"),
    (dict(batch_size=0), "batch_size must be a positive integer"),
    (dict(eval_every=0), "eval_every must be a positive integer"),
    (dict(method='clmas', epsilon=5), r"epsilon must be a finite number in \[0, 1\]"),
    (dict(lr=-1.0), r"lr must be a finite number in \[0, inf\)"),
    (dict(seed=-1), "seed must be a non-negative integer"),
    (dict(threshold=float('nan')), r"threshold must be a finite number in \(0, 1\]"),
    (dict(method='unimas', inaccessible=2), r"inaccessible must be an integer in 0\.\.1, got 2"),
    (dict(select='best'), "select must be 'all' or 'trained'"),
    (dict(patience=0), "patience must be a positive integer"),
])
def test_bad_input(grus, kwargs, message):
    args = dict(tasks='multiobject', variable='full', sites='hidden', k=8, max_steps=1, **FAST)
    with pytest.raises(ValueError, match=message):
        fit_mas(grus, **{**args, **kwargs})


def test_nan_latents_fail_clearly():
    "Latents are checked once, when they are cached: a model that produces NaN is refused before training."
    from mas_nb.models import make_model
    bad = make_model('multiobject', 'gru', width=16)
    with torch.no_grad(): bad.embed.weight[4] = float('nan')
    with pytest.raises(ValueError, match="contain NaN"):
        fit_mas([bad], 'multiobject', 'full', 'embedding', k=4, method='das', max_steps=1, **FAST)


def test_a_task_built_with_options_is_honoured_end_to_end(grus):
    "Tasks travel as objects: interventions come from the void-token variant, the config records it, a rerun rebuilds it."
    void = get_task('multiobject', void_p=0.5)
    res = fit_mas(grus[:1], void, 'count', 'hidden', k=8, method='das', max_steps=1, **FAST)
    assert res.config['tasks'] == [{'name': 'multiobject', 'void_p': 0.5}] and res.spec.tasks[0].void_p == 0.5
    d = build_directions(grus[:1], res.alignments, res.spec, dict(test=64))[0]
    assert (d.splits['test'].iv.src_ids == void.vocab['V']).any()   # the plain task has no void tokens
    assert RunSpec.from_dict(res.config).tasks[0].void_p == 0.5


def test_a_result_reruns_from_its_own_config(grus):
    res = fit_mas(grus, 'multiobject', 'count', 'hidden', k=8, max_steps=10, threshold=0.9, **FAST)
    again = fit_spec(grus, RunSpec.from_dict(json.loads(json.dumps(res.config))), progress=False)
    assert again.iia == res.iia and again.history == res.history and again.config == res.config


def test_an_older_config_rebuilds_with_the_defaults_of_what_it_lacks(grus):
    "A config written before a setting existed rebuilds with the behaviour it ran under (CLMAS: summed L2, no recompute)."
    res = fit_mas(grus, 'multiobject', method='clmas', k=8, max_steps=1, **FAST)
    old = {k: v for k, v in res.config.items() if k not in ('cl_l2', 'recompute_layers', 'micro_batches')}
    spec = RunSpec.from_dict(old)
    assert (spec.cl_l2, spec.recompute_layers, spec.micro_batches) == ('sum', False, 1) and spec.to_dict() == res.config


def test_a_finished_run_returns_the_same_result_when_called_again(grus, tmp_path):
    "The checkpoint records that the run ended (here at the threshold): calling again does not train on."
    kw = dict(variable='full', sites='hidden', k=8, max_steps=40, threshold=0.05, checkpoint=tmp_path / 'run.pt', **FAST)
    first = fit_mas(grus, 'multiobject', **kw)
    assert first.history[-1]['step'] < 40 and first.stopped == 'threshold'
    again = fit_mas(grus, 'multiobject', **kw)
    assert again.history == first.history and again.iia == first.iia and again.best_step == first.best_step


def test_a_plateau_stops_the_run_and_a_rerun_returns_the_same_result(grus, tmp_path):
    "With `patience=2` training stops two validations after the last better worst IIA, and the checkpoint knows it ended."
    kw = dict(variable='full', sites='hidden', k=8, max_steps=200, patience=2, checkpoint=tmp_path / 'run.pt', **{**FAST, 'eval_every': 2})
    first = fit_mas(grus, 'multiobject', **kw)
    worst = [min(h['valid_iia'].values()) for h in first.history]
    last_better = max(i for i, w in enumerate(worst) if w > max(worst[:i], default=-1))
    assert first.stopped == 'plateau' and len(worst) == last_better + 3 and first.history[-1]['step'] < 200
    assert first.best_step == first.history[last_better]['step']
    again = fit_mas(grus, 'multiobject', **kw)
    assert (again.history, again.iia, again.stopped) == (first.history, first.iia, 'plateau')
    assert fit_mas(grus, 'multiobject', **{**kw, 'max_steps': 4, 'checkpoint': None}).stopped == 'max_steps'


def test_values_restrict_only_the_directions_of_the_models_that_ask(grus):
    res = fit_mas(grus, 'multiobject', 'count', 'hidden', k=8, values=[None, range(1, 4)], max_steps=1, **FAST)
    dirs = {d.name: d.splits['test'].iv for d in build_directions(grus, res.alignments, res.spec, dict(test=128))}
    swapped = lambda iv: iv.cf_vars['count']   # the target's count after the swap (count -> count: the source's count)
    assert swapped(dirs['0->1']).le(3).all() and swapped(dirs['1->0']).le(3).all() and swapped(dirs['1->1']).le(3).all()
    assert swapped(dirs['0->0']).gt(3).any()


def test_a_new_method_is_one_record(grus, monkeypatch):
    "Everything method-specific is read from METHODS: a record alone defines a working method."
    monkeypatch.setitem(METHODS, 'uni2', replace(METHODS['unimas'], name='uni2'))
    res = fit_mas(grus, 'multiobject', method='uni2', inaccessible=1, max_steps=1, **FAST)
    assert res.trained == ['0->0', '1->0'] and len(res.iia) == 4
    monkeypatch.setitem(METHODS, 'idle', Method('idle', 'trains nothing', (2, 2), 'rotation', 'none', options=('k',)))
    with pytest.raises(ValueError, match="no direction of method 'idle' carries a loss"):
        fit_mas(grus, 'multiobject', method='idle', max_steps=1, **FAST)


def test_held_out_splits_are_disjoint_from_training():
    "Same-Object has few distinct interventions: validation and test repeat none of the training ones (or each other)."
    from mas_nb.counterfactuals import row_keys
    from mas_nb.models import make_model
    m = make_model('sameobject', 'gru', width=16)
    res = fit_mas([m], 'sameobject', 'count', 'hidden', k=4, method='das', max_steps=1, **FAST)
    splits = build_directions([m], res.alignments, res.spec, dict(train=2000, valid=300, test=300))[0].splits
    keys = {k: set(row_keys({c: getattr(sp.iv, c).numpy() for c in ('src_ids', 'src_pos', 'trg_ids', 'trg_pos', 'cf_ids')}).tolist())
            for k, sp in splits.items()}
    assert len(keys['train']) < 2000   # duplicates within training do occur, so the check can fail
    assert not keys['train'] & keys['valid'] and not keys['train'] & keys['test'] and not keys['valid'] & keys['test']


def test_memory_options_leave_the_step_unchanged(grus):
    "Latents kept in host memory or recomputed per batch, and micro-batches, compute the same step (micro-batches: up to rounding)."
    kw = dict(variable='full', sites='hidden', k=8, method='clmas', max_steps=4, **FAST)
    base = fit_mas(grus, 'multiobject', **kw)
    for option in (dict(latents='cpu'), dict(latents='batch')):
        other = fit_mas(grus, 'multiobject', **kw, **option)
        assert other.history == base.history and other.iia == base.iia, option
    pieces = fit_mas(grus, 'multiobject', **kw, micro_batches=4)
    assert [h['loss'] for h in pieces.history] == pytest.approx([h['loss'] for h in base.history], rel=1e-5)
    rows = fit_mas(grus, 'multiobject', **{**kw, 'method': 'mas'}, rotation='rows')
    assert [tuple(a.Q.shape) for a in rows.alignments] == [(8, 128), (8, 128)] and 0 <= rows.worst_iia <= 1


def test_token_losses_read_out_in_chunks_equal_one_dense_readout(monkeypatch):
    "Chunked per-token losses and their gradients equal the dense ones; the head runs once per chunk, never again in the backward."
    import torch.nn.functional as F
    from mas_nb import mas
    calls = []
    class Head(torch.nn.Module):
        vocab_size = 50
        def __init__(self): super().__init__(); self.lin = torch.nn.Linear(8, 50)
        def readout(self, x): calls.append(len(x)); return self.lin(x)
    head = Head().requires_grad_(False)
    x, t, w = torch.randn(37, 8, requires_grad=True), torch.randint(50, (37,)), torch.rand(37)
    monkeypatch.setattr(mas, 'READOUT_BUDGET', 5 * 50)   # 5 rows a chunk
    chunked = mas.token_losses(head, x, t)
    (chunked * w).sum().backward()
    assert calls == [5] * 7 + [2]   # forward only: nothing recomputed
    grad, x.grad = x.grad, None
    dense = F.cross_entropy(head.lin(x), t, reduction='none')
    (dense * w).sum().backward()
    assert torch.allclose(chunked, dense, atol=1e-6) and torch.allclose(grad, x.grad, atol=1e-6)
