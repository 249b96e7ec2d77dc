import numpy as np
import pytest
import torch

from mas_nb.tasks import get_task, TASKS
from reference import walk_counting, walk_arithmetic, deterministic_reference, RESPONSES, demo_tokens, resp_token, check_arithmetic_continuation

COUNTING = ['multiobject', 'sameobject', 'modulo', 'rounding']


def rows(task, ids):
    return [task.decode(r).split() for r in ids]


@pytest.mark.parametrize('name,options', [(n, {}) for n in COUNTING] + [('multiobject', {'void_p': 0.2})])
def test_counting_sequences_and_trace_match_reference(name, options):
    task = get_task(name, **options)
    ids = task.sample(400, seed=11)
    tr = task.trace(ids)
    det = task.deterministic_mask(ids)
    quantities = set()
    for i, toks in enumerate(rows(task, ids)):
        t = toks.index('T')
        demos = [x for x in toks[1:t] if x != 'V']
        assert toks[0] == 'B' and all(x in demo_tokens(name) for x in demos)
        assert ('V' in toks) <= bool(options)
        n = len(demos); quantities.add(n)
        assert toks[t + 1:] == [resp_token(name)] * RESPONSES[name](n) + ['E']
        ref = walk_counting(name, toks)
        L = len(toks)
        assert tr['count'][i, :L].tolist() == [c for c, _, _ in ref]
        assert tr['phase'][i, :L].tolist() == [p for _, p, _ in ref]
        assert tr['last_value'][i, :L].tolist() == [v for _, _, v in ref]
        assert det[i, :L].tolist() == deterministic_reference(name, toks)
        assert not det[i, L:].any() and (ids[i, L:] == 0).all()
    assert quantities == set(range(1, 21))


def test_arithmetic_sequences_and_trace_match_reference():
    task = get_task('arithmetic')
    ids = task.sample(400, seed=3)
    tr, det = task.trace(ids), task.deterministic_mask(ids)
    ks = set()
    for i, toks in enumerate(rows(task, ids)):
        k, v = int(toks[1]), int(toks[2]); ks.add(k)
        assert toks[0] == 'B' and 1 <= k <= 10 and 0 <= v <= 20
        check_arithmetic_continuation(toks[3:], v, k)
        ref = walk_arithmetic(toks)
        assert tr['cumu_val'][i, :len(toks)].tolist() == [c for c, _ in ref]
        assert tr['rem_ops'][i, :len(toks)].tolist() == [r for _, r in ref]
        assert det[i, :len(toks)].tolist() == deterministic_reference('arithmetic', toks)
    assert ks == set(range(1, 11))


def test_paper_example_sequences():
    multi, modulo, rounding, same = (get_task(n) for n in ['multiobject', 'modulo', 'rounding', 'sameobject'])
    last = lambda task, s: task.trace(task.encode(s))['count'][0, -1].item()
    assert last(multi, "B Dc Da") == 2 and last(multi, "B Da Db Dc T R") == 2
    assert last(modulo, "B" + " Da" * 7 + " T R") == 2 and last(rounding, "B Da Db Dc Da T R") == 2
    assert last(same, "B C C T C") == 1
    arith = get_task('arithmetic')
    tr = arith.trace(arith.encode("B 3 4 + 3 = 7 , + 11 = 18 , - 5 = 13 E"))
    assert tr['cumu_val'][0, [7, 12]].tolist() == [7, 18] and tr['rem_ops'][0, [7, 12]].tolist() == [2, 1]


def test_seeds_reproducible_and_distinct():
    for name in TASKS:
        task = get_task(name)
        assert torch.equal(task.sample(50, seed=1), task.sample(50, seed=1))
        a, b = task.sample(50, seed=1), task.sample(50, seed=2)
        assert a.shape != b.shape or not torch.equal(a, b)
        rng = np.random.default_rng(5)
        assert torch.equal(task.sample(20, rng), get_task(name).sample(20, np.random.default_rng(5)))


def test_encode_decode_roundtrip_and_pads():
    task = get_task('multiobject')
    assert task.vocab['P'] == 0
    ids = task.encode("B Da Db T R R E")
    assert task.decode(ids) == "B Da Db T R R E"
    assert task.decode(ids + [0, 0]) == "B Da Db T R R E"
    assert task.decode(torch.tensor(ids)) == "B Da Db T R R E"


@pytest.mark.parametrize('call,message', [
    (lambda: get_task('counting'), "valid tasks are"),
    (lambda: get_task('modulo', void_p=0.2), "does not take options"),
    (lambda: get_task("multiobject", void_p=1.5), "void_p must be a finite number"),
    (lambda: get_task('multiobject').encode("B Dx T"), "unknown token"),
    (lambda: get_task('arithmetic').encode("B 3 21"), "unknown token"),
    (lambda: get_task('multiobject').decode([1, 10]), "must lie in 0..9"),
    (lambda: get_task('multiobject').trace([[1, -1]]), "must lie in"),
    (lambda: get_task('multiobject').trace([[1.0, 2.0]]), "must be integers"),
    (lambda: get_task('multiobject').sample(0, seed=0), "positive integer"),
    (lambda: get_task('multiobject').sample(-3, seed=0), "positive integer"),
    (lambda: get_task('multiobject').sample(5, seed=None), "seed must be"),
])
def test_bad_input(call, message):
    with pytest.raises((ValueError, TypeError), match=message.replace('(', r'\(').replace('.', r'\.')):
        call()
