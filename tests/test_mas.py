import json

import pytest
import torch

from mas_nb.tasks import get_task
from mas_nb.checkpoints import cached_model
from mas_nb.mas import fit_mas, evaluate_iia, counterfactual_latents, build_directions, make_alignments, _config, MASResult

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
    cfg = {**res.config, 'seed': 7}
    d = [d for d in build_directions(grus, res.alignments, cfg, dict(test=200)) if d.name == '1->0'][0]
    sp = d.splits['test']
    idx = torch.arange(len(sp.iv))
    with torch.no_grad():
        h_v = d.intervene(sp.h_trg, sp.h_src)
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
    resumed = fit_mas(grus, 'multiobject', max_steps=20, checkpoint=ck, **kw)
    assert resumed.history == straight.history and resumed.iia == straight.iia
    for a, b in zip(straight.alignments.state_dict().values(), resumed.alignments.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="different run"):
        fit_mas(grus, 'multiobject', max_steps=20, checkpoint=ck, **{**kw, 'k': 4})
    bad = tmp_path / 'bad.pt'; bad.write_bytes(b'not a checkpoint')
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
    (dict(k=129), r"k=129 must be in 1\.\.128"),
    (dict(sites='layer0'), "has no site 'layer0'"),
    (dict(method='magic'), "unknown method"),
    (dict(method='das'), "DAS aligns one model"),
    (dict(tasks='arithmetic'), "reads 10 token ids but task 'arithmetic' has 28"),
    (dict(variable='rem_ops'), "multiobject has no variable 'rem_ops'"),
    (dict(sites=['hidden']), r"give one per model \(2\)"),
    (dict(method='unimas', inaccessible=2), "inaccessible must be a model index"),
    (dict(select='best'), "select must be 'all' or 'trained'"),
])
def test_bad_input(grus, kwargs, message):
    args = dict(tasks='multiobject', variable='full', sites='hidden', k=8, max_steps=1, **FAST)
    with pytest.raises(ValueError, match=message):
        fit_mas(grus, **{**args, **kwargs})


def test_nan_latents_fail_clearly(grus):
    from mas_nb.interventions import Rotation, interchange
    with pytest.raises(ValueError, match="NaN"):
        interchange(torch.zeros(2, 8), torch.full((2, 8), float('nan')), Rotation(8), Rotation(8), 4)
