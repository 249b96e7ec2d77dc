import time

import pytest
import torch

from mas_nb.tasks import get_task
from mas_nb.counterfactuals import make_interventions, counterfactual
from reference import (walk_counting, walk_arithmetic, check_counting_continuation, check_arithmetic_continuation,
                       deterministic_reference)

COUNTING = ['multiobject', 'sameobject', 'modulo', 'rounding']
CASES = ([(s, t, 'count', sw) for s in COUNTING for t in COUNTING for sw in (False, True)]
         + [(s, t, 'full', False) for s in COUNTING for t in COUNTING]
         + [(t, t, 'last_value', sw) for t in COUNTING for sw in (False, True)]
         + [('arithmetic', 'arithmetic', v, False) for v in ('full', 'cumu_val', 'rem_ops')]
         + [('multiobject', 'arithmetic', ('count', 'rem_ops'), False), ('arithmetic', 'multiobject', ('rem_ops', 'count'), False),
            ('arithmetic', 'modulo', ('cumu_val', 'count'), False), ('rounding', 'arithmetic', ('count', 'cumu_val'), False),
            ('multiobject', 'multiobject', 'full', True)])


def state(name, toks, pos, overrides=None):
    "Reference state after `pos` as a dict of the task's state variables."
    if name == 'arithmetic':
        c, r = walk_arithmetic(toks)[pos]
        return dict(cumu_val=c, rem_ops=r)
    c, p, v = walk_counting(name, toks, overrides)[pos]
    return dict(count=c, phase=p, last_value=v)


def expected_state(src, trg, sv, tv, s_toks, t_toks, s, t, stepwise):
    if sv == 'full': new = state(src, s_toks, s)
    elif sv == 'last_value':
        if stepwise: over = {j: state(src, s_toks, j)['last_value'] for j in range(t + 1)}
        else: over = {t: state(src, s_toks, s)['last_value']}
        new = state(trg, t_toks, t, over)
    else:
        new = state(trg, t_toks, t); new[tv] = state(src, s_toks, s)[sv]
    new.pop('last_value', None)
    return new


@pytest.mark.parametrize('src,trg,variable,stepwise', CASES)
def test_interventions_follow_the_causal_model(src, trg, variable, stepwise):
    sv, tv = (variable, variable) if isinstance(variable, str) else variable
    st, tt = get_task(src), get_task(trg)
    iv = make_interventions(src, trg, variable, n=150, seed=len(str(variable)) + 7 * stepwise, stepwise=stepwise)
    assert len(iv) == 150 and iv.cf_ids.shape[0] == iv.label_mask.shape[0] == 150
    assert iv.variable == (sv, tv) and iv.stepwise == stepwise
    if stepwise: assert torch.equal(iv.src_pos, iv.trg_pos)
    for i in range(len(iv)):
        s_toks, t_toks = st.decode(iv.src_ids[i]).split(), tt.decode(iv.trg_ids[i]).split()
        cf = tt.decode(iv.cf_ids[i]).split()
        s, t = int(iv.src_pos[i]), int(iv.trg_pos[i])
        for name, toks, p in ((src, s_toks, s), (trg, t_toks, t)):
            assert toks[p] == ',' if name == 'arithmetic' else toks[p] not in ('B', 'T', 'E')
        assert cf[:t + 1] == t_toks[:t + 1]
        new = expected_state(src, trg, sv, tv, s_toks, t_toks, s, t, stepwise)
        assert {k: int(v[i]) for k, v in iv.cf_vars.items()} == new
        if trg == 'arithmetic':
            check_arithmetic_continuation(cf[t + 1:], new['cumu_val'], new['rem_ops'])
            want = deterministic_reference(trg, cf, t)
        else:
            check_counting_continuation(trg, cf[t + 1:], new['count'], new['phase'])
            want = deterministic_reference(trg, cf, t, new['phase'])
        got = iv.label_mask[i].tolist()
        assert got[:len(cf)] == want and not any(got[len(cf):])
        assert (iv.cf_ids[i, len(cf):] == 0).all()


def test_values_restriction_and_ranges():
    low = make_interventions('arithmetic', 'arithmetic', 'cumu_val', 400, seed=1, values=range(1, 11))
    assert set(low.cf_vars['cumu_val'].tolist()) == set(range(1, 11))
    high = make_interventions('multiobject', 'arithmetic', ('count', 'cumu_val'), 400, seed=1, values=range(11, 21))
    assert set(high.cf_vars['cumu_val'].tolist()) <= set(range(11, 21))
    rem = make_interventions('multiobject', 'arithmetic', ('count', 'rem_ops'), 400, seed=2)
    assert 1 <= rem.cf_vars['rem_ops'].min() and rem.cf_vars['rem_ops'].max() <= 10
    mod = make_interventions('multiobject', 'modulo', 'count', 400, seed=3)
    resp = mod.cf_vars['phase'] == 1
    assert mod.cf_vars['count'][resp].max() <= 3 and mod.cf_vars['count'][~resp].max() <= 20


def test_same_seed_same_data_different_seed_different_data():
    a = make_interventions('multiobject', 'rounding', 'count', 200, seed=4)
    b = make_interventions('multiobject', 'rounding', 'count', 200, seed=4)
    c = make_interventions('multiobject', 'rounding', 'count', 200, seed=5)
    for k in ('src_ids', 'src_pos', 'trg_ids', 'trg_pos', 'cf_ids', 'label_mask'):
        assert torch.equal(getattr(a, k), getattr(b, k))
    assert not torch.equal(a.src_pos, c.src_pos)


def test_subsetting_keeps_rows_together():
    iv = make_interventions('multiobject', 'multiobject', 'full', 50, seed=0)
    sub = iv[torch.tensor([3, 7])]
    assert len(sub) == 2 and torch.equal(sub.cf_ids[1], iv.cf_ids[7]) and sub.cf_vars['count'][0] == iv.cf_vars['count'][3]
    assert len(iv[:10]) == 10 and len(iv[4]) == 1


def test_paper_counterfactual_examples():
    assert counterfactual('multiobject', "B Da Da Da", last_value=-1, extra_demos=0) == "B Da Da Da T R E"
    assert counterfactual('multiobject', "B Da Da T R", last_value=1) == "B Da Da T R R R R E"
    assert counterfactual('multiobject', "B Da Db Dc", count=5, extra_demos=0) == "B Da Db Dc T R R R R R E"
    for seed in range(20):
        cf = counterfactual('arithmetic', "B 2 3 + 5 = 8 ,", cumu_val=3, seed=seed).split()
        check_arithmetic_continuation(cf[8:], 3, 1)
        cf = counterfactual('arithmetic', "B 3 3 + 5 = 8 ,", rem_ops=1, seed=seed).split()
        check_arithmetic_continuation(cf[8:], 8, 1)


def test_ten_thousand_interventions_build_quickly():
    start = time.perf_counter()
    iv = make_interventions('multiobject', 'multiobject', 'full', 10_000, seed=0)
    assert len(iv) == 10_000 and time.perf_counter() - start < 5


@pytest.mark.parametrize('args,kwargs,message', [
    (('multiobject', 'arithmetic', 'count'), {}, "arithmetic cannot express 'count'"),
    (('multiobject', 'arithmetic', 'full'), {}, "must have the same ones"),
    (('multiobject', 'multiobject', 'colour'), {}, "has no variable 'colour'"),
    (('multiobject', 'multiobject', ('count',)), {}, "a name or a"),
    (('multiobject', 'multiobject', ('last_value', 'count')), {}, "can only be swapped into"),
    (('multiobject', 'multiobject', 'full'), {'values': [1]}, "not 'full'"),
    (('multiobject', 'modulo', 'count'), {'values': [50]}, "cannot hold those values"),
    (('nope', 'multiobject', 'count'), {}, "valid tasks are"),
])
def test_bad_input(args, kwargs, message):
    with pytest.raises(ValueError, match=message.replace('(', r'\(').replace(')', r'\)')):
        make_interventions(*args, n=10, seed=0, **kwargs)
    with pytest.raises(ValueError, match="positive integer"):
        make_interventions('multiobject', 'multiobject', 'count', n=0, seed=0)


def test_large_batches_are_drawn_in_bounded_rounds(monkeypatch):
    "With small rounds the batch is still complete, valid and seeded; a batch that cannot fit is refused up front."
    import mas_nb.counterfactuals as cf, mas_nb.files as files
    monkeypatch.setattr(cf, 'DRAW_CHUNK', 1024)
    a, b = (cf.make_interventions('multiobject', 'multiobject', 'count', 3000, seed=4) for _ in range(2))
    assert len(a) == 3000 and torch.equal(a.cf_ids, b.cf_ids) and torch.equal(a.src_ids, b.src_ids)
    count = get_task('multiobject').trace(a.src_ids)['count'].gather(1, a.src_pos[:, None])[:, 0]
    assert torch.equal(a.cf_vars['count'], count)
    monkeypatch.setattr(files, 'available_memory', lambda: 2 ** 30)
    with pytest.raises(ValueError, match=r"make_interventions with n=10000000 needs about .* GiB .* lower n"):
        cf.make_interventions('multiobject', 'multiobject', 'count', 10 ** 7, seed=0)
