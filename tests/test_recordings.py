"""Recordings as the inaccessible system: lookup, file formats and their errors, and CLMAS against a shuffled control."""
import datetime

import numpy as np
import pytest
import torch

from mas_nb.checkpoints import cached_model
from mas_nb.mas import evaluate_iia, fit_mas
from mas_nb.recordings import Recordings, evaluate_recordings, read_nwb, simulate_recordings
from mas_nb.tasks import get_task

TASK = get_task('multiobject')


def toy(n=6, T=12, U=5, seed=0):
    "Small recordings of random activity on sampled Multi-Object sequences of at most T tokens."
    rng = np.random.default_rng(seed)
    ids = np.zeros((n, T), np.int64)
    for i, q in enumerate(rng.integers(1, (T - 3) // 2 + 1, n)):
        seq = TASK.encode('B ' + ' '.join(rng.choice(['Da', 'Db', 'Dc'], q)) + ' T' + ' R' * q + ' E')
        ids[i, :len(seq)] = seq
    return Recordings(rng.poisson(2.0, (n, T, U)).astype(np.float32), ids, TASK, times=(np.arange(T) + 0.5) * 0.1)


def test_lookup_by_longest_prefix():
    seqs = ['B Da Db T R R E', 'B Da Dc T R R E', 'B Da Dc Db T R R R E', 'B Da Dc T R R E']  # trial 3 repeats trial 1
    ids = np.zeros((4, 10), np.int64)
    for i, s in enumerate(seqs): ids[i, :len(s.split())] = TASK.encode(s)
    rec = Recordings(np.random.default_rng(0).poisson(2.0, (4, 10, 3)), ids, TASK)
    lat = rec.latents(rec.ids)
    assert torch.equal(lat, rec.activity[[0, 1, 2, 1]])            # a repeated sequence reads its first trial
    cf = torch.tensor([TASK.encode('B Da Dc Db Db T R R R R E')])  # follows trial 2 (alone) for 4 tokens, trial 1 for 3
    got = rec.latents(cf)[0]
    assert got.shape == (11, 3) and torch.equal(got[:4], rec.activity[2, :4]) and torch.isnan(got[4:]).all()
    assert torch.isnan(rec.latents(torch.full((1, 4), TASK.vocab['E']))).all()  # no trial starts with E


def counts_to_nwb(path, rec, bin_size, series=False, drop_trials=False, stretch=False, blank=False):
    "Write `rec` with pynwb: trials with their sequences, and the counts as spike times (or as one TimeSeries)."
    pynwb = pytest.importorskip('pynwb')
    nwb = pynwb.NWBFile(session_description='mas_nb test', identifier=str(path.name),
                        session_start_time=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc))
    n, T, U = rec.activity.shape
    gap = T * bin_size + 1.0  # trials start every `gap` seconds
    if not drop_trials:
        nwb.add_trial_column('sequence', 'the tokens of the trial, one per bin')
        for i in range(n):
            seq = '' if blank and i == 1 else TASK.decode(rec.ids[i])
            nwb.add_trial(start_time=i * gap, stop_time=i * gap + (T + (stretch and i == 2)) * bin_size, sequence=seq)
    counts = rec.activity.numpy()
    if series:
        data = np.full((n * round(gap / bin_size), U), 0.0)
        for i in range(n): data[i * round(gap / bin_size):][:T] = counts[i]
        nwb.add_acquisition(pynwb.TimeSeries(name='rates', data=data, unit='Hz', rate=1 / bin_size, starting_time=bin_size / 2))
    else:
        for u in range(U):  # c spikes evenly inside a bin with c counts
            times = [i * gap + (t + (j + 0.5) / c) * bin_size for i in range(n) for t in range(T)
                     for c in [int(counts[i, t, u])] for j in range(c)]
            nwb.add_unit(spike_times=times)
    with pynwb.NWBHDF5IO(str(path), 'w') as io: io.write(nwb)
    return path


@pytest.mark.parametrize('series', [False, True])
def test_nwb_loads_as_npz(tmp_path, series):
    rec = toy()
    a = read_nwb(counts_to_nwb(tmp_path / 'rec.nwb', rec, 0.1, series=series), TASK, 0.1, series='rates' if series else None)
    b = Recordings.load_npz(rec.save_npz(tmp_path / 'rec.npz'))
    for r in (a, b):
        assert torch.equal(r.ids, rec.ids) and torch.allclose(r.activity, rec.activity, atol=1e-6)
        assert np.allclose(r.times, rec.times) and r.task.base == TASK
    assert np.array_equal(a.units, b.units)


def test_bad_files(tmp_path):
    rec = toy()
    with pytest.raises(ValueError, match=r"nt\.nwb: no trials table"):
        read_nwb(counts_to_nwb(tmp_path / 'nt.nwb', rec, 0.1, drop_trials=True), TASK, 0.1)
    with pytest.raises(ValueError, match=r"un\.nwb: trials have unequal lengths.*\[12, 13\] bins"):
        read_nwb(counts_to_nwb(tmp_path / 'un.nwb', rec, 0.1, stretch=True), TASK, 0.1)
    with pytest.raises(ValueError, match=r"bl\.nwb: 1 trial\(s\) without a sequence in column 'sequence', e\.g\. \[1\]"):
        read_nwb(counts_to_nwb(tmp_path / 'bl.nwb', rec, 0.1, blank=True), TASK, 0.1)
    with pytest.raises(ValueError, match=r"bl\.nwb: the trials table has no column 'tokens'"):
        read_nwb(tmp_path / 'bl.nwb', TASK, 0.1, sequence='tokens')
    with pytest.raises(ValueError, match=r"bl\.nwb: no time series 'lfp'"):
        read_nwb(tmp_path / 'bl.nwb', TASK, 0.1, series='lfp')
    act = rec.activity.numpy().copy(); act[4, 2, 1] = np.nan
    np.savez(tmp_path / 'nan.npz', activity=act, ids=rec.ids.numpy(), task='multiobject')
    with pytest.raises(ValueError, match=r"nan\.npz: activity contains NaN or inf in 1 trial\(s\), e\.g\. \[4\]"):
        Recordings.load_npz(tmp_path / 'nan.npz')
    ids = rec.ids.numpy().copy(); ids[3] = 0
    np.savez(tmp_path / 'noseq.npz', activity=rec.activity.numpy(), ids=ids, task='multiobject')
    with pytest.raises(ValueError, match=r"noseq\.npz: 1 trial\(s\) have no token sequence, e\.g\. \[3\]"):
        Recordings.load_npz(tmp_path / 'noseq.npz')
    np.savez(tmp_path / 'part.npz', activity=rec.activity.numpy())
    with pytest.raises(ValueError, match=r"part\.npz: missing array\(s\) \['ids', 'task'\]"):
        Recordings.load_npz(tmp_path / 'part.npz')
    np.savez(tmp_path / 'short.npz', activity=rec.activity.numpy(), ids=rec.ids.numpy()[:, :5], task='multiobject')
    with pytest.raises(ValueError, match=r"short\.npz: ids must be integer token ids \[trials, T\] = \[6, 12\]"):
        Recordings.load_npz(tmp_path / 'short.npz')


def test_no_behaviour_into_recordings():
    rec = toy()
    gru = cached_model('multiobject', 'gru', 1, progress=False)
    with pytest.raises(ValueError, match=r"model 0 \(0\) has no behaviour to train on: method 'mas'"):
        fit_mas([rec, gru], sites=['activity', 'hidden'], k=4, max_steps=1, progress=False)


def test_clmas_beats_shuffled_recordings():
    """CLMAS from simulated recordings of one GRU into another: held-out IIA well above the shuffled-sequences control,
    which stays near chance. Margins from the notebook's runs (11_recordings, 500 held-out interventions): CLMAS 0.400,
    shuffled 0.176, no intervention 0.046; here (gain 16, shorter training, 300 interventions) 0.53 and 0.19 with this
    machine's models. At 80 steps the recorded run was still at 0.34 with these models (0.49 with others): 160 steps
    keep the margin whichever trained GRUs the cache holds. The shuffled control sits above the no-intervention level
    because the time bin alone tells part of the state. A 0.15 gap is about 4 standard errors of a difference of two
    IIAs at n=300, well below this test's own gap."""
    g0, g1 = (cached_model('multiobject', 'gru', s, progress=False) for s in (0, 1))
    train, test = simulate_recordings(g0, n_trials=400, n_units=200, gain=16.0, seed=0).split(0.25, seed=0)
    got = {}
    for name, (tr, te) in dict(recorded=(train, test), shuffled=(train.shuffled(0), test.shuffled(1))).items():
        res = fit_mas([tr, g1], method='clmas', sites=['activity', 'hidden'], names=['brain', 'gru'], k=64, cl_l2='mean', lr=3e-3,
                      batch_size=64, n_train=600, n_valid=100, n_test=100, max_steps=160, eval_every=40, progress=False, seed=0)
        out = evaluate_recordings([te, g1], res, n=300)
        got[name] = out['brain->gru']
        assert set(out['gru->brain']) >= {'r2', 'cosine', 'missing'} and 'iia' not in out['gru->brain']
        assert res.cl_missing == 0 and 'gru->brain' not in res.iia
        with pytest.raises(ValueError, match='recordings have no behaviour to score.*evaluate_recordings'): evaluate_iia([te, g1], res)  # no IIA on recordings
    rec, shuf = got['recorded'], got['shuffled']
    assert shuf['iia'] < 0.25, got                 # near chance
    assert rec['iia'] > shuf['iia'] + 0.15, got     # well above it
