"The study's claims: model pairs as units, a permutation test and a bootstrap interval, checked on known answers."
import numpy as np
import pytest

from mas_nb.study import check_claims, compare_groups, pair_values


def records(toxic_shift, seed=0, noise=0.02):
    "Token accuracies of every pair of 3 toxic and 3 nontoxic models; the toxic-toxic pairs shifted by `toxic_shift`."
    rng, names, out = np.random.default_rng(seed), ['t0', 't1', 't2', 'n0', 'n1', 'n2'], []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            group = {'tt': 'toxic-toxic', 'tn': 'toxic-nontoxic', 'nn': 'nontoxic-nontoxic'}[a[0] + b[0]]
            level = 0.5 + toxic_shift * (group == 'toxic-toxic') + noise * rng.normal()  # the pair's level: directions share it
            out += [dict(group=group, pair=f"{a}|{b}", direction=d, token_acc=level + 0.005 * rng.normal()) for d in ('ab', 'ba')]
    return out


def test_pairs_are_the_units():
    v = pair_values(records(0.0))
    assert {g: len(x) for g, x in v.items()} == {'toxic-toxic': 3, 'toxic-nontoxic': 9, 'nontoxic-nontoxic': 3}


def test_one_distribution_gives_roughly_uniform_p_and_a_shift_small_p():
    rng = np.random.default_rng(1)
    p = np.array([compare_groups(rng.normal(size=5), rng.normal(size=7), n_resamples=499, seed=s)['p'] for s in range(150)])
    assert abs(p.mean() - 0.5) < 0.07 and (p < 0.05).mean() < 0.1 and (p > 0.5).mean() > 0.35
    shifted = compare_groups(rng.normal(2.5, 1, size=8), rng.normal(size=8), 'greater', n_resamples=999)
    assert shifted['p'] < 0.01 and 0 < shifted['ci'][0] < shifted['difference'] < shifted['ci'][1]


def test_claims_read_the_numbers():
    found, alike = check_claims(records(0.1)), check_claims(records(0.0, seed=3))
    assert [c['supported'] for c in found] == [True, True] and found[0]['p'] < 0.05
    assert 'supported at α = 0.05' in found[0]['sentence'] and '3 vs 9 model pairs' in found[0]['sentence']
    assert alike[0]['supported'] is False and 'not supported' in alike[0]['sentence']
    nontoxic_apart = [dict(r, token_acc=r['token_acc'] + 0.1 * (r['group'] == 'nontoxic-nontoxic')) for r in records(0.0)]
    assert check_claims(nontoxic_apart)[1]['supported'] is False  # the claim of no difference can fail too
    assert check_claims([r for r in records(0.0) if r['group'] != 'toxic-toxic'])[0]['supported'] is None


def test_bad_input():
    with pytest.raises(ValueError, match='at least 2 units'): compare_groups([0.5], [0.1, 0.2])
    with pytest.raises(ValueError, match='alternative must be'): compare_groups([0.5, 0.6], [0.1, 0.2], 'bigger')
