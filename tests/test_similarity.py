"Plain pytest for `mas_nb.similarity`: properties, closed forms, scipy cross-checks, bad input and the protocol."
import itertools
import json

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist
from scipy.stats import pearsonr, spearmanr

from mas_nb.similarity import (MEASURES, RDM_KINDS, cka, compute_rdm, hsic, kernel_cka, linear_cka, protocol_latents,
                               quantities, quantity_batch, rsa, similarity_protocol)
from mas_nb.tasks import get_task

ALL = [rsa, cka, linear_cka, lambda X, Y: linear_cka(X, Y, debiased=True)]
IDS = ['rsa', 'cka', 'linear_cka', 'linear_cka_debiased']


def data(seed=0, n=80, d=7, d2=5):
    "An anisotropic, off-centre X and a noisy nonlinear function Y of it."
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) @ (rng.normal(size=(d, d)) * np.geomspace(3, 0.2, d)) + 2
    Y = np.tanh(X @ rng.normal(size=(d, d2))) + 0.3 * rng.normal(size=(n, d2))
    return X, Y


def rotation(d, seed):
    return np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))[0]


# --- properties -------------------------------------------------------------------------------

@pytest.mark.parametrize('f', ALL, ids=IDS)
def test_identity_symmetry_and_type(f):
    X, Y = data()
    assert f(X, X) == pytest.approx(1, abs=1e-10)
    assert f(X, Y) == pytest.approx(f(Y, X), abs=1e-12)
    assert type(f(X, Y)) is float
    assert f(torch.tensor(X, dtype=torch.float32), Y) == pytest.approx(f(X.astype(np.float32), Y), abs=1e-12)


@pytest.mark.parametrize('f', ALL, ids=IDS)
def test_isotropic_scale_invariance(f):
    X, Y = data(1)
    assert f(3.7 * X, Y) == pytest.approx(f(X, Y), abs=1e-10)


@pytest.mark.parametrize('f,invariant', [(rsa, True), (cka, False), (linear_cka, True),
                                         (lambda X, Y: linear_cka(X, Y, debiased=True), True)], ids=IDS)
def test_rotation(f, invariant):
    X, Y = data(2)
    Xr = X @ rotation(X.shape[1], 3)
    if invariant: assert f(Xr, Y) == pytest.approx(f(X, Y), abs=1e-10)
    else: assert abs(f(Xr, Y) - f(X, Y)) > 0.01 and f(X, Xr) < 0.95


@pytest.mark.parametrize('f,invariant', [(rsa, False), (cka, True), (linear_cka, False)], ids=IDS[:3])
def test_per_feature_scale(f, invariant):
    X, _ = data(4)
    s = np.ones(X.shape[1]); s[-1] = 20
    if invariant: assert f(X, X * s) == pytest.approx(1, abs=1e-10)
    else: assert f(X, X * s) < 0.95


@pytest.mark.parametrize('f,invariant', [(rsa, False), (cka, True), (linear_cka, True)], ids=IDS[:3])
def test_translation(f, invariant):
    X, _ = data(5)
    Xt = X + np.random.default_rng(0).normal(0, 3, X.shape[1])
    if invariant: assert f(X, Xt) == pytest.approx(1, abs=1e-10)
    else: assert f(X, Xt) < 0.99


def test_cka_rotation_by_a_permutation_or_sign_flip_is_harmless():
    "Z-scoring commutes with permuting and flipping features, which are the orthogonal maps it respects."
    X, Y = data(6)
    P = np.eye(X.shape[1])[::-1] * np.where(np.arange(X.shape[1]) % 2, -1, 1)
    assert cka(X @ P, Y) == pytest.approx(cka(X, Y), abs=1e-12)


# --- RSA against scipy ---------------------------------------------------------------------------

@pytest.mark.parametrize('kind', RDM_KINDS)
def test_rsa_matches_scipy(kind):
    X, Y = data(7, n=60)
    assert rsa(X, Y, kind) == pytest.approx(spearmanr(pdist(X, kind), pdist(Y, kind))[0], abs=1e-10)
    assert rsa(X, Y, kind, 'pearson') == pytest.approx(pearsonr(pdist(X, kind), pdist(Y, kind))[0], abs=1e-10)
    i, j = np.triu_indices(60, 1)
    np.testing.assert_allclose(compute_rdm(X, kind)[i, j], pdist(X, kind), atol=1e-10)


def test_rsa_with_ties_matches_scipy():
    "Repeated rows (as at an embedding layer) make many tied dissimilarities; ties must be exact and get average ranks."
    X, Y = data(8, n=12)
    Xrep, Yrep = np.repeat(X, 3, 0), np.repeat(Y, 3, 0)
    i, j = np.tril_indices(36, -1)
    assert len(np.unique(compute_rdm(Xrep)[i, j])) == 12 * 11 // 2 + 1  # the distinct pairs, plus 0 for copies
    # pdist itself leaves rounding noise between some copies, so round it to make its ties exact too
    ref = spearmanr(np.round(pdist(Xrep, 'cosine'), 12), np.round(pdist(Yrep, 'cosine'), 12))[0]
    assert rsa(Xrep, Yrep) == pytest.approx(ref, abs=1e-12)


def test_rsa_include_diagonal():
    X, Y = data(9, n=30)
    i, j = np.tril_indices(30)
    expect = spearmanr(compute_rdm(X)[i, j], compute_rdm(Y)[i, j])[0]
    assert rsa(X, Y, include_diagonal=True) == pytest.approx(expect, abs=1e-12)
    assert rsa(X, Y, include_diagonal=True) != pytest.approx(rsa(X, Y), abs=1e-6)


def test_rsa_large_is_vectorised_and_matches_scipy():
    rng = np.random.default_rng(10)
    X = rng.normal(size=(1000, 64)); Y = X[:, :32] + rng.normal(size=(1000, 32))
    assert rsa(X, Y) == pytest.approx(spearmanr(pdist(X, 'cosine'), pdist(Y, 'cosine'))[0], abs=1e-10)


# --- closed forms --------------------------------------------------------------------------------

def test_rsa_circle_closed_form():
    "Angles doubled within [0, pi/2] keep the order of cosine dissimilarities: Spearman 1, Pearson in closed form."
    theta = np.sort(np.random.default_rng(11).uniform(0, np.pi / 2, 20))
    circ = lambda t: np.c_[np.cos(t), np.sin(t)]
    i, j = np.tril_indices(20, -1); delta = theta[i] - theta[j]
    assert rsa(circ(theta), circ(2 * theta)) == pytest.approx(1, abs=1e-12)
    expect = np.corrcoef(1 - np.cos(delta), 1 - np.cos(2 * delta))[0, 1]
    assert rsa(circ(theta), circ(2 * theta), method='pearson') == pytest.approx(expect, abs=1e-12)
    assert expect < 0.999


@pytest.mark.parametrize('k', [1, 3, 8])
def test_linear_cka_subset_of_orthogonal_columns(k):
    A = np.random.default_rng(12).normal(size=(40, 8)); A -= A.mean(0)
    Q = np.linalg.qr(A)[0] * 2.5
    assert linear_cka(Q, Q[:, :k]) == pytest.approx(np.sqrt(k / 8), abs=1e-12)


def test_one_feature_closed_forms():
    "One feature: linear CKA is the squared Pearson r; the paper's CKA only sees signs about the mean."
    rng = np.random.default_rng(13)
    x, y = rng.normal(size=(30, 1)), rng.normal(size=(30, 1)) ** 3
    assert linear_cka(x, y) == pytest.approx(np.corrcoef(x[:, 0], y[:, 0])[0, 1] ** 2, abs=1e-12)
    sx, sy = np.sign(x - x.mean())[:, 0], np.sign(y - y.mean())[:, 0]
    assert cka(x, y) == pytest.approx(np.corrcoef(sx, sy)[0, 1] ** 2, abs=1e-12)


def test_paper_cka_is_linear_cka_of_normalised_rows():
    "The paper's CKA equals linear-kernel CKA on z-scored, row-normalised data (its definition, computed another way)."
    X, Y = data(14)
    prep = lambda M: (lambda Z: Z / np.linalg.norm(Z, axis=1, keepdims=True))((M - M.mean(0)) / M.std(0, ddof=1))
    K, L = prep(X) @ prep(X).T, prep(Y) @ prep(Y).T
    N = len(X); H = np.eye(N) - np.ones((N, N)) / N
    h = lambda A, B: np.trace(A @ H @ B @ H) / (N - 1) ** 2
    assert cka(X, Y) == pytest.approx(h(K, L) / np.sqrt(h(K, K) * h(L, L)), abs=1e-12)


def test_unbiased_hsic_matches_its_u_statistic():
    rng = np.random.default_rng(15)
    A, B = rng.normal(size=(7, 2)), rng.normal(size=(7, 3))
    K, L = A @ A.T, B @ B.T
    tot = [K[i, j] * L[i, j] + K[i, j] * L[q, r] - 2 * K[i, j] * L[i, q]
           for i, j, q, r in itertools.permutations(range(7), 4)]
    assert hsic(K, L, debiased=True) == pytest.approx(np.mean(tot), abs=1e-12)


def test_debiased_vs_biased_linear_cka():
    rng = np.random.default_rng(16)
    # independent and wide, few samples: biased is inflated, debiased is near 0
    A, B = rng.normal(size=(40, 200)), rng.normal(size=(40, 200))
    assert linear_cka(A, B) > 0.5 and abs(linear_cka(A, B, debiased=True)) < 0.05
    # many samples: the two agree to O(1/N), and the gap shrinks as N grows
    gaps = []
    for n in (200, 4000):
        X = rng.normal(size=(n, 10)); Y = X @ rng.normal(size=(10, 10)) + 2 * rng.normal(size=(n, 10))
        gaps.append(abs(linear_cka(X, Y) - linear_cka(X, Y, debiased=True)))
    assert gaps[1] < 0.005 and gaps[1] < gaps[0]


def test_linear_cka_feature_space_equals_kernel_form():
    X, Y = data(17)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    assert linear_cka(X, Y) == pytest.approx(kernel_cka(Xc @ Xc.T, Yc @ Yc.T), abs=1e-12)


# --- bad input -----------------------------------------------------------------------------------

@pytest.mark.parametrize('f', ALL, ids=IDS)
def test_bad_input(f):
    X, Y = data(18)
    with pytest.raises(ValueError, match='same number of samples'): f(X, Y[:-1])
    bad = X.copy(); bad[3, 2] = np.nan
    with pytest.raises(ValueError, match='NaN or inf'): f(bad, Y)
    bad[3, 2] = np.inf
    with pytest.raises(ValueError, match='NaN or inf'): f(X, bad)
    with pytest.raises(ValueError, match='at least 4'): f(X[:3], Y[:3])
    with pytest.raises(ValueError, match='2-D'): f(X[:, 0], Y[:, 0])
    with pytest.raises(ValueError, match='real numbers'): f(X.astype(str), Y)


def test_undefined_cases_are_errors_not_nan():
    X, Y = data(19)
    const = np.c_[X, np.full(len(X), 5.0)]
    with pytest.raises(ValueError, match='constant feature'): cka(const, Y)
    assert linear_cka(const, Y) == pytest.approx(linear_cka(X, Y), abs=1e-12)  # harmless for linear CKA
    assert np.isfinite(rsa(const, Y))                                          # and for RSA
    with pytest.raises(ValueError, match='every feature of Y is constant'): linear_cka(X, np.ones((len(X), 3)))
    zero_row = X.copy(); zero_row[0] = 0
    with pytest.raises(ValueError, match='zero-norm row'): rsa(zero_row, Y)
    with pytest.raises(ValueError, match='RDM of X is constant'): rsa(np.eye(6), Y[:6])
    with pytest.raises(ValueError, match='RDM of Y is constant'): rsa(Y[:6], np.eye(6), rdm='euclidean')
    with pytest.raises(ValueError, match='row is constant'): rsa(np.c_[X[:, :1], X[:, :1]], Y, rdm='correlation')
    at_mean = np.array([[1., 1], [-1, -1], [0, 0], [1, -1], [-1, 1]])
    with pytest.raises(ValueError, match='mean of every feature'): cka(at_mean, Y[:5])
    with pytest.raises(ValueError, match='unknown RDM kind'): rsa(X, Y, rdm='cityblock')
    with pytest.raises(ValueError, match="'spearman' or 'pearson'"): rsa(X, Y, method='kendall')


# --- the protocol --------------------------------------------------------------------------------

class StandIn(torch.nn.Module):
    "An untrained embedding + GRU exposing `latents(ids, site)`."
    def __init__(self, width, seed, vocab=10):
        super().__init__(); torch.manual_seed(seed)
        self.emb, self.gru = torch.nn.Embedding(vocab, width), torch.nn.GRU(width, width, batch_first=True)
    def latents(self, ids, site):
        e = self.emb(ids)
        return e if site == 'embedding' else self.gru(e)[0]


def test_quantity_batch():
    mo = get_task('multiobject')
    ids = quantity_batch(mo, 4, seed=3)
    assert ids.shape[0] == 80
    np.testing.assert_array_equal(quantities(mo, ids), np.repeat(np.arange(1, 21), 4))
    assert torch.equal(quantity_batch(mo, 4, seed=3), ids)
    sub = quantity_batch('sameobject', 2, qs=[5, 7], seed=0)
    np.testing.assert_array_equal(quantities(get_task('sameobject'), sub), [5, 5, 7, 7])
    with pytest.raises(ValueError, match='1..20'): quantity_batch(mo, 2, qs=[0, 3])
    with pytest.raises(ValueError, match='counting task'): quantity_batch('arithmetic', 2)


def test_protocol_latents_rows():
    a, b = StandIn(16, 0), StandIn(24, 1)
    Xa, Xb, info = protocol_latents(a, b, 'multiobject', 'hidden', n_per_quantity=2, seed=0)
    n_rows = 2 * sum(2 * q + 2 for q in range(1, 21))  # B, q demos, T, q responses per sequence; pad and E dropped
    assert Xa.shape == (n_rows, 16) and Xb.shape == (n_rows, 24) and len(info['count']) == n_rows
    ids = quantity_batch('multiobject', 2, seed=0)
    full = a.latents(ids, 'hidden').detach().double().numpy()
    np.testing.assert_allclose(Xa[:4], full[0, :4])   # first sequence: q=1, positions 0..3 = B D T R
    assert info['position'][:4].tolist() == [0, 1, 2, 3] and info['quantity'][:4].tolist() == [1] * 4
    # sameobject shares multiobject's layout; modulo does not
    assert protocol_latents(a, b, 'multiobject', 'embedding', task_b='sameobject', n_per_quantity=2)[1].shape == (n_rows, 24)
    with pytest.raises(ValueError, match='lay out sequences differently'):
        protocol_latents(a, b, 'multiobject', 'hidden', task_b='modulo', n_per_quantity=2)


def test_protocol_result():
    a, b = StandIn(16, 0), StandIn(24, 1)
    kw = dict(n_per_quantity=2, n_samples=150, n_resamples=3, seed=5)
    res = similarity_protocol(a, b, 'multiobject', 'hidden', **kw)
    d = res.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert set(d['scores']) == {'rsa', 'cka', 'linear_cka'} and (d['width_a'], d['width_b']) == (16, 24)
    for s in d['scores'].values():
        assert len(s['values']) == 3 and len(s['null_values']) == 3
        assert s['mean'] == pytest.approx(np.mean(s['values'])) and s['std'] == pytest.approx(np.std(s['values'], ddof=1))
        assert s['mean'] > s['null_mean'] + 0.2  # same inputs beat shuffled pairings
    assert similarity_protocol(a, b, 'multiobject', 'hidden', **kw).to_dict() == d              # seeded
    assert similarity_protocol(a, b, 'multiobject', 'hidden', **{**kw, 'seed': 6}).to_dict() != d
    same = similarity_protocol(a, a, 'multiobject', 'hidden', **kw)
    for s in same.scores.values(): assert s['mean'] == pytest.approx(1, abs=1e-9)
    assert 'rsa' in str(res)
    with pytest.raises(ValueError, match='exceeds'): similarity_protocol(a, b, 'multiobject', 'hidden', n_per_quantity=1)
    with pytest.raises(ValueError, match='unknown measure'):
        similarity_protocol(a, b, 'multiobject', 'hidden', measures=('rsa', 'procrustes'), **kw)


# --- memory -------------------------------------------------------------------------------------

def test_model_latents_in_batches_equal_one_pass():
    from mas_nb.similarity import model_latents
    model, ids = StandIn(8, 0), quantity_batch('multiobject', 2, seed=0)
    whole = model.latents(ids, 'hidden').detach().double().numpy()
    for batch_size in (1, 7, 40, 10_000):
        np.testing.assert_allclose(model_latents(model, ids, 'hidden', batch_size=batch_size), whole, rtol=1e-5, atol=1e-6)   # float32 rounding
    with pytest.raises(ValueError, match='batch_size must be a positive integer'): model_latents(model, ids, 'hidden', batch_size=0)


class Counting(StandIn):
    "A stand-in that records the rows it was asked for."
    def latents(self, ids, site):
        self.rows = getattr(self, 'rows', 0) + len(ids)
        return super().latents(ids, site)


def test_too_large_work_is_refused_before_it_starts(monkeypatch):
    import mas_nb.files as files
    from mas_nb.similarity import model_latents
    monkeypatch.setattr(files, 'available_memory', lambda: 2 ** 30)   # 1 GiB free
    X = np.random.default_rng(0).normal(size=(12_000, 3))
    for f in (lambda X: rsa(X, X), lambda X: rsa(X, X, method='pearson'), lambda X: cka(X, X), compute_rdm,
              lambda X: linear_cka(X, X, debiased=True)):
        with pytest.raises(ValueError, match=r'on 12000 rows .* needs about .* GiB of memory but 1\.0 GiB is available'): f(X)
    assert linear_cka(X, X) == pytest.approx(1)                        # linear in the rows: never refused
    model = Counting(16, 0)
    with pytest.raises(ValueError, match=r"similarity_protocol's \['rsa', 'cka', 'linear_cka'\] on 20000 rows .* lower n_samples"):
        similarity_protocol(model, model, 'multiobject', 'hidden', n_per_quantity=1000, n_samples=20_000)
    assert not hasattr(model, 'rows')                                  # no latent was computed
    ids = torch.ones(1, 60, dtype=torch.long).expand(10 ** 6, 60)
    with pytest.raises(ValueError, match=r'reading the latents of 1000000 rows of ids .* pass fewer rows'):
        model_latents(model, ids, 'hidden', batch_size=100)
    assert model.rows == 100                                           # one batch, to learn the width
