"""Bad input, round 3 (issue 22): one test group per class, each against the one mechanism that covers it.

1. Checked before any work: the command line checks its settings against the models' blueprints (weights-free, on the
   meta device), `reproduce` checks the preset and the experiment's options, `fit_mas` checks every direction's
   variable (`check_swap`) and the checkpoint path (`writable_file`), the study checks every pair: all before a model
   is loaded or trained, which the tests make fail loudly.
2. What belongs together: `check_model_task` (a task model gets only its own task's sequences), `cached_model` checks
   the file it loads, direction labels must be distinct.
3. Data is never silently corrupted: `TextData` and `as_texts`, `load_text_file`'s rows, `Generations.__post_init__`.
4. numpy and torch integers are integers, normalised once by `check_n` (and `check_real`).
5. Errors name the right thing (the path asked for, MAS_NB_CACHE, the file and line) and never lie about a write."""
import json
import os
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch

import mas_nb.checkpoints as ck
import mas_nb.cli as cli
import mas_nb.experiments as ex
import mas_nb.llm as llm
import mas_nb.mas as mas
import mas_nb.similarity as sim
import mas_nb.training as training
from mas_nb.counterfactuals import make_interventions
from mas_nb.files import atomic_write
from mas_nb.models import make_model
from mas_nb.tasks import as_rng, check_n, check_real, get_task

SMALL = dict(n_train=8, n_valid=8, n_test=8, max_steps=1, eval_every=1, progress=False)


def never(*args, **kwargs): raise AssertionError("work started: a model was loaded or trained, or data was built")


@pytest.fixture
def no_work(monkeypatch, tmp_path):
    "An empty model cache; training, loading a cached model and drawing interventions all fail the test."
    monkeypatch.setenv('MAS_NB_CACHE', str(tmp_path / 'cache'))
    for mod, name in ((ck, 'train_model'), (ck, 'load_model'), (ex, 'cached_model'), (mas, 'make_interventions'), (llm, 'fit_mas')):
        monkeypatch.setattr(mod, name, never)
    return tmp_path


@pytest.fixture(scope='module')
def grus():
    return [make_model('multiobject', 'gru', s, 16).eval() for s in (0, 1)]


def cli_error(capsys, *argv) -> str:
    "The one-line error `mas-nb ARGV` prints, checked to come fast and with exit status 2."
    start = time.perf_counter()
    with pytest.raises(SystemExit) as stop: cli.main(list(argv))
    assert stop.value.code == 2 and time.perf_counter() - start < 10
    return capsys.readouterr().err


# 1. checked before any work

@pytest.mark.parametrize('argv,names', [
    (('align', '--method', 'nope'), 'method'),
    (('align', '--k', '200'), r'k=200 must be an integer in 1\.\.128'),
    (('align', '--variable', 'cumu_val'), 'cumu_val'),
    (('align', '--models', 'multiobject:gru:0,arithmetic:gru:0', '--variable', 'count'), "cannot express 'count'"),
    (('align', '--sites', 'nope'), 'site'),
    (('similarity', '--site', 'nope'), 'site'),
    (('similarity', '--models', 'multiobject:gru:0,arithmetic:gru:0'), 'counting task'),
])
def test_cli_checks_before_loading(no_work, capsys, argv, names):
    import re
    assert re.search(names, cli_error(capsys, *argv))
    assert not (no_work / 'cache').exists() or not any((no_work / 'cache').glob('*.pt'))


def test_cli_checkpoint_path_checked_first(no_work, capsys):
    (no_work / 'file').write_text('x')
    assert 'cannot write a checkpoint' in cli_error(capsys, 'align', '--checkpoint', str(no_work / 'file' / 'ck.pt'))


@pytest.mark.parametrize('kw,names', [
    (dict(preset=replace(ex.PRESETS['small'], ks=(4, 129))), r'each of ks .* 1\.\.128, got 129'),
    (dict(preset=replace(ex.PRESETS['small'], n_samples=5000)), 'n_samples=5000 exceeds the 2300 latent rows'),   # fig2ab's protocol, after training
    (dict(tasks='modulo'), 'tasks must be a non-empty list'),
    (dict(tasks=('modulo', 'nope')), 'tasks must be a non-empty list'),
    (dict(comparisons=('gru-gru',)), 'takes no option'),
])
def test_reproduce_checks_before_training(no_work, kw, names):
    name = 'fig3b' if 'tasks' in kw else 'fig2d'
    with pytest.raises(ValueError, match=names): ex.reproduce(name, kw.pop('preset', 'small'), no_work / 'out', **kw)


def test_fit_mas_checks_every_direction_and_the_checkpoint_first(no_work, grus):
    arith = make_model('arithmetic', 'gru', 0, 16).eval()
    with pytest.raises(ValueError, match="cannot express 'count'"):   # the third model's variable, before any data is drawn
        mas.fit_mas([*grus, arith], variable='count', **SMALL)
    with pytest.raises(ValueError, match="values= restricts one swapped variable"):
        mas.fit_mas(grus, variable='full', values=[1, 2], **SMALL)
    (no_work / 'file').write_text('x')
    with pytest.raises(ValueError, match='cannot write checkpoint'):
        mas.fit_mas(grus, checkpoint=no_work / 'file' / 'ck.pt', **SMALL)


def lms(n=3):
    tok = llm.tiny_tokenizer(['a b c d e f g h'] * 2)
    return tok, {f"m{i}": (llm.tiny_qwen2(tok, hidden=16, layers=1, heads=2, seed=i), tok) for i in range(n)}


def test_study_checks_every_pair_first(no_work):
    tok, models = lms()
    gens = {n: llm.Generations(torch.randint(4, len(tok), (6, 40)), 8, n) for n in models}
    gens['m2'] = llm.Generations(gens['m2'].ids, 9, 'm2')   # the last pair's generations do not match the others'
    with pytest.raises(ValueError, match='same prompt and total lengths'):
        llm.toxicity_study({'m0': models['m0'], 'm1': models['m1']}, {'m2': models['m2']}, gens, index_range=(1, 20), progress=False)


# 2. what belongs together

def test_cached_model_checks_the_file_it_loads(tmp_path, monkeypatch):
    monkeypatch.setenv('MAS_NB_CACHE', str(tmp_path))
    path = ck.cache_path('multiobject', 'gru', 3, 16)
    ck.save_model(make_model('modulo', 'gru', 3, 16), path)   # another task's model under this name
    with pytest.raises(ValueError, match=f"{path.name} holds the model .*'modulo'"): ck.cached_model('multiobject', 'gru', 3, 16)
    ck.save_model(make_model('multiobject', 'gru', 4, 16), path)   # another seed
    with pytest.raises(ValueError, match="'seed': 4"): ck.cached_model('multiobject', 'gru', 3, 16)


def test_a_task_model_reads_only_its_own_task(grus):
    modulo = get_task('modulo')
    with pytest.raises(ValueError, match="trained on 'multiobject', not 'modulo'"):
        training.trial_accuracy(grus[0], modulo, modulo.sample(8, 0))
    arith = make_model('arithmetic', 'gru', 0, 16)
    with pytest.raises(ValueError, match="model_b .*trained on 'arithmetic'"):
        sim.similarity_protocol(grus[0], arith, 'multiobject', 'hidden', n_per_quantity=2, n_samples=20, n_resamples=1)
    with pytest.raises(ValueError, match="model 0 was trained on 'multiobject', not 'modulo'"):
        mas.fit_mas(grus, tasks='modulo', **SMALL)


def test_direction_labels_are_distinct(grus):
    with pytest.raises(ValueError, match='distinct direction labels'): mas.fit_mas(grus, names=['a', 'a->a'], **SMALL)
    assert list(mas.fit_mas(grus, names=['a->', '>a'], method='stitch', k=None, **SMALL).iia) == ['a->->>a', '>a->a->']   # distinct: accepted


# 3. data never silently corrupted

def test_text_data_is_what_was_given():
    with pytest.raises(ValueError, match='got 0.7'): llm.TextData(['a', 'b'], [0.7, 1])
    with pytest.raises(ValueError, match='labels must be 0'): llm.TextData(['a'], ['1'])
    with pytest.raises(TypeError, match='one string'): llm.TextData('ab', [0, 1])
    with pytest.raises(TypeError, match=r'texts\[1\] is None'): llm.TextData(['a', None], [0, 1])
    with pytest.raises(TypeError, match='one string'): llm.make_prompts(never, 'a b c d', 2)
    with pytest.raises(TypeError, match='one string'): llm.tiny_tokenizer('a b c d')
    with pytest.raises(TypeError, match='one string'): llm.finetune(never, never, 'a b c d')
    assert llm.TextData(np.array(['a', 'b']), np.array([True, False])).labels.tolist() == [1, 0]
    assert llm.TextData(['a', 'b'], [1.0, 0.0]).labels.dtype == np.int64


def test_text_files_keep_their_rows(tmp_path):
    short = tmp_path / 'short.csv'
    short.write_text('text,label\nhello,1\n0\n')
    with pytest.raises(ValueError, match=f"{short}, line 3: fewer fields than the header"): llm.load_text_file(short)
    long = tmp_path / 'long.csv'
    long.write_text('text,label\nhello,1,extra\n')
    with pytest.raises(ValueError, match='line 2: more fields'): llm.load_text_file(long)
    empty = tmp_path / 'empty_text.csv'
    empty.write_text('text,label\n,1\nhi,0\n')
    assert llm.load_text_file(empty).texts == ['', 'hi']   # an empty text is a text, not 'None'
    j = tmp_path / 'numbers.jsonl'
    j.write_text('{"text": "a", "label": 1}\n{"text": 5, "label": 0}\n')
    with pytest.raises(ValueError, match=f"{j}, line 2: no text in column 'text'"): llm.load_text_file(j)


def test_generations_are_checked_on_every_construction(tmp_path):
    g = llm.Generations(torch.zeros(2, 5, dtype=torch.long), 3, 'g')
    g.save(tmp_path / 'g.pt')
    blob = torch.load(tmp_path / 'g.pt'); blob['prompt_len'] = 9; torch.save(blob, tmp_path / 'g.pt')
    with pytest.raises(ValueError, match=f"{tmp_path / 'g.pt'}.*prompt_len .*1\\.\\.4, got 9"): llm.Generations.load(tmp_path / 'g.pt')
    with pytest.raises(ValueError, match='prompt_len'): llm.Generations(torch.zeros(2, 5, dtype=torch.long), 5)
    with pytest.raises(ValueError, match='ids must be a LongTensor'): llm.Generations(torch.zeros(2, 5), 3)
    with pytest.raises(ValueError, match='one label per sequence'): llm.Generations(torch.zeros(2, 5, dtype=torch.long), 3, labels=[1])


# 4. numpy and torch integers

@pytest.mark.parametrize('x', [np.int64(4), np.uint8(4), np.int32(4), torch.tensor(4)])
def test_integers_of_any_type(x):
    assert check_n(x) == 4 and type(check_n(x)) is int
    assert type(check_real(x, 'x')) is float


@pytest.mark.parametrize('x', [True, np.bool_(True), torch.tensor(True), torch.tensor([4]), 4.0, np.float64(4), '4'])
def test_what_is_not_an_integer(x):
    with pytest.raises(ValueError, match='n must be a positive integer'): check_n(x)


def test_numpy_settings_run_and_save(grus, tmp_path):
    res = mas.fit_mas(grus, k=np.int64(4), seed=np.int64(0), **{**SMALL, 'n_train': np.int64(16), 'max_steps': torch.tensor(1)})
    assert (res.k, res.config['seed'], res.config['n_train'], res.config['max_steps']) == (4, 0, 16, 1)
    assert json.loads(res.save_json(tmp_path / 'r.json').read_text())['config']['n_train'] == 16
    ref = mas.fit_mas(grus, k=4, seed=0, **{**SMALL, 'n_train': 16})
    assert res.iia == ref.iia
    assert mas.fit_mas(grus, method='clmas', inaccessible=np.int64(1), epsilon=np.float32(0.5), k=4, **SMALL).config['inaccessible'] == 1


def test_numpy_integers_elsewhere():
    p = ex.check_preset(replace(ex.PRESETS['small'], n_train=np.int64(16), seeds=(np.int64(0), np.int64(1)), ks=(np.int32(4),)))
    json.dumps(asdict(p))   # the preset a result records
    assert ck.cache_path('multiobject', 'gru', np.int64(1), np.int64(16)) == ck.cache_path('multiobject', 'gru', 1, 16)
    a, b = (make_interventions('multiobject', 'multiobject', 'count', n, seed) for n, seed in ((np.int64(5), np.int64(1)), (5, 1)))
    assert torch.equal(a.cf_ids, b.cf_ids)
    assert as_rng(torch.tensor(3)).integers(100) == as_rng(3).integers(100)
    assert make_model('multiobject', 'gru', np.int64(2), 16).seed == 2


# 5. errors that name the right thing

def test_file_errors_name_the_path_given(tmp_path):
    def disk_full(f): raise OSError(28, 'No space left on device')
    with pytest.raises(OSError) as err: atomic_write(tmp_path / 'a.json', disk_full)
    assert str(tmp_path / 'a.json') in str(err.value) and '.tmp' not in str(err.value)
    def reads_missing(f): open(tmp_path / 'missing.txt')
    with pytest.raises(FileNotFoundError, match='missing.txt'): atomic_write(tmp_path / 'b.json', reads_missing)   # another file's error stays


def test_cache_that_is_a_file(tmp_path, monkeypatch):
    (tmp_path / 'f').write_text('x')
    monkeypatch.setenv('MAS_NB_CACHE', str(tmp_path / 'f'))
    with pytest.raises(ValueError, match=r'MAS_NB_CACHE\) is a file, not a folder'): ck.cached_model('multiobject', 'gru', 0, 16)


def test_text_file_errors_name_file_and_line(tmp_path):
    j = tmp_path / 'd.jsonl'
    j.write_text('{"text": "a", "label": 1}\n\n{"text": "b", "label": 0\n')   # a blank line 2, a broken line 3
    with pytest.raises(ValueError, match=f"{j}, line 3: not JSON"): llm.load_text_file(j)
    j.write_text('{"text": "a", "label": 1}\n[1, 2]\n')
    with pytest.raises(ValueError, match='line 2: expected a JSON object'): llm.load_text_file(j)
    latin = tmp_path / 'latin.csv'
    latin.write_bytes('text,label\ncafé,1\n'.encode('latin-1'))
    with pytest.raises(ValueError, match=f"{latin} is not UTF-8 text"): llm.load_text_file(latin)


@pytest.mark.parametrize('n,debiased', [(1, False), (2, True), (3, True)])
def test_hsic_with_too_few_samples(n, debiased):
    with pytest.raises(ValueError, match=f"{n} sample"): sim.hsic(np.eye(n), np.eye(n), debiased=debiased)


def test_token_ids_beyond_the_vocabulary():
    tok, models = lms(1)
    lm = models['m0'][0]
    with pytest.raises(ValueError, match='token ids must lie in'): llm.generate(lm, torch.tensor([[1, 2, 500]]), new_tokens=2, progress=False)
    gens = [llm.Generations(torch.full((4, 40), 500), 8, n) for n in 'ab']
    with pytest.raises(ValueError, match="generations 'a' hold token id 500"):
        llm.llm_mas([models['m0']] * 2, gens, index_range=(1, 20), **SMALL)


def test_a_write_is_claimed_only_when_made(grus, tmp_path, monkeypatch, capsys):
    res = mas.fit_mas(grus, k=4, **SMALL)
    monkeypatch.setattr(cli, 'load_or_train', lambda task, arch, seed, width: grus[seed])   # no cached models needed
    monkeypatch.setattr(mas, 'fit_spec', lambda *a, **kw: res)   # the run itself is not what this tests
    monkeypatch.setenv('RANK', '1')   # a stray RANK, no launched run: the file is written
    monkeypatch.delenv('WORLD_SIZE', raising=False)
    cli.main(['align', '--out', str(tmp_path / 'a')])
    assert (tmp_path / 'a' / 'align.json').is_file() and f"wrote {tmp_path / 'a' / 'align.json'}" in capsys.readouterr().out
    monkeypatch.setenv('WORLD_SIZE', '2')   # rank 1 of a launched run: rank 0 writes, this one neither writes nor says so
    cli.main(['align', '--out', str(tmp_path / 'b')])
    assert not (tmp_path / 'b' / 'align.json').exists() and 'wrote' not in capsys.readouterr().out
