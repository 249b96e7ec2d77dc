"A fitted result as an artefact: save, load, evaluate, apply; every damaged file and every wrong model named."
import json, warnings

import pytest
import torch
from safetensors.torch import load_file, save_file

from mas_nb import results
from mas_nb.checkpoints import cached_model
from mas_nb.cli import main
from mas_nb.llm import Generations, HFCausalLM, llm_mas, tiny_qwen2, tiny_tokenizer, toxicity_study
from mas_nb.mas import MASResult, evaluate_iia, fit_mas
from mas_nb.models import make_model
from mas_nb.results import apply_alignment, load_result

FAST = dict(n_train=256, n_valid=128, n_test=128, batch_size=32, eval_every=5, progress=False)


@pytest.fixture(scope='module')
def grus():
    return [cached_model('multiobject', 'gru', seed) for seed in (0, 1)]


@pytest.fixture(scope='module')
def fitted(grus):
    return fit_mas(grus, 'multiobject', 'full', 'hidden', k=16, max_steps=10, names=['a', 'b'], **FAST)


@pytest.fixture
def saved(fitted, tmp_path):
    return fitted.save(tmp_path / 'run')


def test_gru_round_trip_gives_the_fitted_iia_bit_for_bit(grus, fitted, saved):
    loaded = MASResult.load(saved, grus)
    assert sorted(p.name for p in saved.iterdir()) == ['alignments.safetensors', 'result.json']
    assert loaded.to_dict() == fitted.to_dict() and loaded.fingerprints == fitted.fingerprints
    for a, b in zip(loaded.alignments.state_dict().values(), fitted.alignments.state_dict().values()): assert torch.equal(a, b)
    again = evaluate_iia(grus, loaded, split='test')
    assert {d: v['iia'] for d, v in again.items()} == fitted.iia
    assert {d: v['token_acc'] for d, v in again.items()} == fitted.token_acc
    assert 0 < min(fitted.iia.values()) < 1  # not a vacuous comparison
    fresh = evaluate_iia(grus, loaded, n=128, seed=5)
    assert fresh == evaluate_iia(grus, fitted, n=128, seed=5)


def test_qwen2_round_trip_from_llm_mas(tmp_path):
    tok = tiny_tokenizer(['the cat sat on the mat and the dog ran far away today'])
    lms = [HFCausalLM(tiny_qwen2(tok, hidden=32, layers=2, heads=4, seed=s), tok, f"m{s}") for s in (0, 1)]
    g = torch.Generator().manual_seed(0)
    gens = [Generations(torch.randint(4, len(tok), (16, 40), generator=g), 8, f"m{s}") for s in (0, 1)]
    res = llm_mas(lms, gens, index_range=(2, 20), n_train=32, n_valid=16, n_test=32, batch_size=8, max_steps=3, eval_every=3,
                  progress=False, out=tmp_path / 'pair')
    from mas_nb.llm import TokenInterventions
    loaded = load_result(tmp_path / 'pair', lms)
    assert loaded.fingerprints[0]['kind'] == 'Qwen2ForCausalLM' and loaded.fingerprints[0]['width'] == 32
    again = evaluate_iia(lms, loaded, split='test', interventions=TokenInterventions(gens, (2, 20)))
    assert {d: v['token_acc'] for d, v in again.items()} == res.token_acc
    with pytest.raises(ValueError, match=r'model 0 \(m0\) has other weights'): evaluate_iia(lms[::-1], loaded, interventions=TokenInterventions(gens, (2, 20)))
    # apply on text: a full-width swap within one model hands the target the source's embeddings: it continues like the source
    full = llm_mas(lms[:1], gens[:1], k=32, index_range=(2, 20), n_train=16, n_valid=8, n_test=8, batch_size=8, max_steps=1, lr=0.0, progress=False)
    sw = apply_alignment(lms[:1], full, 'the cat sat on the mat', 'the dog ran far away today', position=3, new_tokens=5)
    row = sw.rows[0]
    assert row['swapped'] == row['expected'] and row['swapped'] != row['unswapped']
    want = lms[0].lm.generate(torch.tensor([tok('the dog ran far')['input_ids']]), max_new_tokens=5, do_sample=False, eos_token_id=[],
                               pad_token_id=0)[0, 4:]
    assert row['unswapped'] == tok.decode(want)


def test_study_saves_every_pair(tmp_path):
    tok = tiny_tokenizer(['a b c d e f g h i j k l'])
    g = torch.Generator().manual_seed(0)
    models = {n: tiny_qwen2(tok, hidden=16, layers=1, heads=2, seed=s) for s, n in enumerate(['t/0', 'n 1', 'n2'])}
    gens = {n: Generations(torch.randint(4, len(tok), (8, 30), generator=g), 4, n) for n in models}
    study = toxicity_study({'t/0': (models['t/0'], tok)}, {n: (models[n], tok) for n in ('n 1', 'n2')}, gens, out=tmp_path,
                           index_range=(1, 10), n_train=8, n_valid=8, n_test=8, batch_size=4, max_steps=1, progress=False)
    folders = {p.name for p in tmp_path.iterdir() if p.is_dir()}
    assert folders == {'n_1__n2', 't_0__n_1', 't_0__n2'} and (tmp_path / 'study.json').is_file()
    assert load_result(tmp_path / 't_0__n2').iia == study.runs['t/0|n2']['iia']


@pytest.mark.parametrize('damage, message', [
    (lambda f: (f / 'alignments.safetensors').unlink(), 'alignments.safetensors is missing'),
    (lambda f: (f / 'result.json').unlink(), 'result.json is missing'),
    (lambda f: (f / 'alignments.safetensors').write_bytes((f / 'alignments.safetensors').read_bytes()[:100]), 'does not match the checksum'),
    (lambda f: (f / 'result.json').write_text((f / 'result.json').read_text()[:200]), 'result.json is not valid JSON'),
    (lambda f: _edit_json(f, format='mas_nb.result/99'), "format 'mas_nb.result/99'; this version of mas_nb reads"),
    (lambda f: _edit_json(f, format=None, drop='format'), "is not a mas_nb result"),
    (lambda f: _edit_json(f, drop='fingerprints'), "lacks \\['fingerprints'\\]"),
    (lambda f: _wrong_shape(f), r"tensor\(s\) \['0.rot.parametrizations.weight.original'\] have shapes"),
])
def test_damaged_files_are_named(saved, damage, message):
    damage(saved)
    with pytest.raises((ValueError, FileNotFoundError), match=message) as e: MASResult.load(saved)
    assert str(saved) in str(e.value)


def _edit_json(folder, drop=None, **changes):
    meta = json.loads((folder / 'result.json').read_text())
    meta.update(changes)
    if drop: meta.pop(drop)
    (folder / 'result.json').write_text(json.dumps(meta))


def _wrong_shape(folder):
    "Rewrite a tensor with another shape and record the new file's checksum: only the shape check can catch it."
    t = load_file(folder / 'alignments.safetensors')
    t['0.rot.parametrizations.weight.original'] = torch.zeros(4, 4)
    save_file(t, folder / 'alignments.safetensors')
    _edit_json(folder, alignments_sha256=results._sha256(folder / 'alignments.safetensors'))


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"no saved result at {tmp_path / 'nope'}"): MASResult.load(tmp_path / 'nope')


def test_wrong_models_are_refused_naming_what_differs(grus, saved):
    lstm = cached_model('multiobject', 'lstm', 0)
    narrow = make_model('multiobject', 'gru', width=64)
    other_task = make_model('arithmetic', 'gru')
    with pytest.raises(ValueError, match=r"model 1 \(b\) is not the model the result was fitted on: kind 'gru' here 'lstm'"):
        MASResult.load(saved, [grus[0], lstm])
    with pytest.raises(ValueError, match=r"model 0 \(a\) is not .*width 128 here 64"): MASResult.load(saved, [narrow, grus[1]])
    with pytest.raises(ValueError, match=r"model 0 \(a\) is not .*task 'multiobject' here 'arithmetic'.*vocab_size"):
        MASResult.load(saved, [other_task, grus[1]])
    with pytest.raises(ValueError, match='models: the result was fitted on 2 models, got 1'): MASResult.load(saved, grus[:1])
    with pytest.raises(ValueError, match=r"model 0 \(a\) has other weights .*strict=False"): MASResult.load(saved, grus[::-1])
    with pytest.warns(UserWarning, match=r'model 0 \(a\) has other weights'):
        loose = MASResult.load(saved, grus[::-1], strict=False)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        assert set(evaluate_iia(grus[::-1], loose, n=64, strict=False)) == set(loose.iia)


def test_a_crash_mid_save_keeps_the_old_folder(fitted, saved, monkeypatch):
    before = {p.name: p.read_bytes() for p in saved.iterdir()}
    def broken(tensors, path): open(path, 'wb').write(b'half'); raise OSError('disk full')
    monkeypatch.setattr('safetensors.torch.save_file', broken)
    with pytest.raises(OSError, match='disk full'): fitted.save(saved)
    assert {p.name: p.read_bytes() for p in saved.iterdir()} == before
    assert [p.name for p in saved.parent.iterdir() if p.name.startswith('.')] == []  # no temporary left
    assert MASResult.load(saved).iia == fitted.iia


def test_apply_on_task_sequences(grus):
    "A full-width swap within a model hands over the source's state exactly: the target then does what the counterfactual says."
    das = fit_mas(grus[:1], 'multiobject', 'full', 'hidden', k=128, method='das', max_steps=1, lr=0.0, **FAST)
    sw = apply_alignment(grus[:1], das, ['B Da Db Dc Da T R R R R E', 'B Da Db T R R E'], ['B Db T R E', 'B Da Db Dc T R R R E'],
                         position=[1, 5], source_position=[4, 1])
    assert [r['correct'] for r in sw.rows] == [True, True]
    assert sw.rows[0]['expected'].endswith('(count=4, phase=0)') and sw.rows[0]['unswapped'] == '.  R  E'
    assert sw.rows[1]['expected'].endswith('(count=1, phase=0)')  # a response-phase target sent back to its demos
    weak = fit_mas(grus, 'multiobject', 'full', 'hidden', k=2, max_steps=1, lr=0.0, **FAST)
    rows = apply_alignment(grus, weak, ['B Da Db Dc Da Db Dc Da T R R R R R R R E'] * 4, ['B Db T R E'] * 4, position=1, source_position=7).rows
    assert not any(r['correct'] for r in rows)  # an untrained 2-d subspace does not carry a count of 7: the check can fail
    with pytest.raises(ValueError, match="source row 0: position 0 is not a site"): apply_alignment(grus[:1], das, 'B Da T R E', 'B Da T R E', 0)
    with pytest.raises(ValueError, match="direction must be one of"): apply_alignment(grus[:1], das, 'B Da T R E', 'B Da T R E', 1, direction='0->1')
    with pytest.raises(ValueError, match="as many sources"): apply_alignment(grus[:1], das, ['B Da T R E'] * 2, 'B Da T R E', 1)


def test_aligned_coordinates_and_subspace_variance(grus, fitted):
    task = fitted.spec.tasks[0]
    ids = task.sample(50, 0)
    z = results.aligned_coordinates(grus[0], fitted, 0, ids)
    assert z.shape == (*ids.shape, 16)
    full = fit_mas(grus[:1], 'multiobject', 'full', 'hidden', k=128, method='das', max_steps=1, lr=0.0, **FAST)
    assert results.subspace_variance(grus[0], full, 0, ids) == pytest.approx(1.0, abs=1e-5)  # the whole space holds all the variance
    assert 0 < results.subspace_variance(grus[0], fitted, 0, ids) < 1


def test_cli_align_save_evaluate_apply(grus, tmp_path, capsys):
    run = tmp_path / 'run'
    assert main(['align', '--n-train', '256', '--max-steps', '2', '--threshold', '0', '--save', str(run)]) == 0
    assert (run / 'alignments.safetensors').is_file()
    assert main(['evaluate', str(run), '--n', '100']) == 0
    out = capsys.readouterr().out
    assert 'multiobject:gru:0->multiobject:gru:1' in out and 'fresh' in out
    assert main(['apply', str(run), 'B Da Db Dc T R R R E', 'B Da T R E', '1', '--source-position', '3']) == 0
    assert 'expected' in capsys.readouterr().out
    (tmp_path / 'file').write_text('x')
    with pytest.raises(SystemExit): main(['align', '--save', str(tmp_path / 'file')])
    assert '--save names a folder' in capsys.readouterr().err
    with pytest.raises(SystemExit): main(['evaluate', str(tmp_path / 'nope')])
    assert f"no saved result at {tmp_path / 'nope'}" in capsys.readouterr().err
