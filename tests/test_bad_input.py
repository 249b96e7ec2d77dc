"""Bad input through every public function of files, tasks, counterfactuals, training, checkpoints, similarity,
experiments (`with_sizes`, `reproduce`) and mas (`fit_mas`, `evaluate_iia`): each must fail at once with a
ValueError, TypeError or FileNotFoundError whose message names the bad parameter.

`python tests/test_bad_input.py` classifies every case as a clear error, an unclear error (another exception, a
message that does not name the parameter, or nothing within 30 s) or acceptance, and prints the counts: it ran on
the commit this table was written against (before) and after the fixes."""
import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import mas_nb.files as files
import mas_nb.tasks as tasks
import mas_nb.counterfactuals as cf
import mas_nb.training as training
import mas_nb.checkpoints as ck
import mas_nb.similarity as sim
import mas_nb.experiments as ex
import mas_nb.mas as mas
from mas_nb.models import make_model

EXPECTED = (ValueError, TypeError, FileNotFoundError)
GIB = 2 ** 30
MO = tasks.get_task('multiobject')


class Env:
    "What the cases share: a temporary folder (also the cache and the working directory) and a few small models."
    def __init__(self, root: Path): self.root = root

    @functools.cached_property
    def gru(self): return make_model('multiobject', 'gru', 0, 16).eval()

    @functools.cached_property
    def grus(self): return [make_model('multiobject', 'gru', s, 16).eval() for s in (0, 1)]

    @functools.cached_property
    def ids(self): return MO.sample(8, 0)

    @functools.cached_property
    def result(self):
        return mas.fit_mas(self.grus, k=4, n_train=8, n_valid=8, n_test=8, max_steps=1, eval_every=1, progress=False)

    def file(self, name, data=b'x'):
        path = self.root / name; path.write_bytes(data); return path

    def checkpoint(self, name, edit):
        "A checkpoint of the small GRU with `edit(blob)` applied."
        path = ck.save_model(self.gru, self.root / f'{name}.pt')
        blob = torch.load(path, weights_only=True); edit(blob); torch.save(blob, path)
        return path

    @functools.cached_property
    def tracked_results(self) -> Path:
        "A git repository with a committed results/fig2d.json."
        repo = self.root / 'repo'; (repo / 'results').mkdir(parents=True)
        (repo / 'results' / 'fig2d.json').write_text('{}')
        git = lambda *a: subprocess.run(['git', '-C', str(repo), *a], check=True, capture_output=True)
        git('init', '-q'); git('add', '.'); git('-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-qm', 'r')
        return repo / 'results'


def tiny_preset(**changes):
    "The small preset at sizes that run in seconds (if a case is wrongly accepted)."
    return replace(ex.PRESETS['small'], n_train=16, n_valid=16, n_test=16, max_steps=1, eval_every=1, ks=(4,), **changes)


def conf(key, value):
    def edit(blob): blob['config'][key] = value
    return edit

def drop_key(key):
    def edit(blob): del blob['state_dict'][key]
    return edit

def set_blob(key, value):
    def edit(blob): blob[key] = value
    return edit

def write_fails(f): raise RuntimeError('never called')
X20K = np.random.default_rng(0).normal(size=(20_000, 4))   # RDMs and kernels of 20 000 rows need ~10 GiB
TRAIN = dict(width=16, max_steps=3, criterion=None, progress=False)  # wrongly accepted training stays short
W16 = dict(width=16)

# (case id, call taking the Env, regular expression the message must match: the parameter's name)
CASES = [
    # files
    ('atomic_write/path-is-folder', lambda e: files.atomic_write(e.root, write_fails), r'path'),
    ('atomic_write/empty-path', lambda e: files.atomic_write('', write_fails), r'path'),
    ('atomic_write/write-not-callable', lambda e: files.atomic_write(e.root / 'a', 'text'), r'write'),
    ('atomic_write/folder-is-a-file', lambda e: files.atomic_write(e.file('f') / 'a.json', write_fails), r'path'),
    ('write_json/not-serialisable', lambda e: files.write_json(e.root / 'a.json', {'a': object()}), r'data'),
    ('write_json/bad-key', lambda e: files.write_json(e.root / 'a.json', {(1, 2): 3}), r'data'),
    # tasks
    ('get_task/unknown', lambda e: tasks.get_task('nope'), r'task'),
    ('get_task/not-a-name', lambda e: tasks.get_task(5), r'task'),
    ('get_task/void_p>1', lambda e: tasks.get_task('multiobject', void_p=1.5), r'void_p'),
    ('get_task/void_p-nan', lambda e: tasks.get_task('multiobject', void_p=float('nan')), r'void_p'),
    ('get_task/void_p-str', lambda e: tasks.get_task('multiobject', void_p='0.2'), r'void_p'),
    ('get_task/option-on-arithmetic', lambda e: tasks.get_task('arithmetic', void_p=0.2), r'void_p'),
    ('sample/n=0', lambda e: MO.sample(0, 0), r'\bn\b'),
    ('sample/n=True', lambda e: MO.sample(True, 0), r'\bn\b'),
    ('sample/n=1e12', lambda e: MO.sample(10 ** 12, 0), r'\bn\b'),
    ('sample/seed=-1', lambda e: MO.sample(5, -1), r'seed'),
    ('sample/seed=None', lambda e: MO.sample(5, None), r'seed'),
    ('sample/seed=1.5', lambda e: MO.sample(5, 1.5), r'seed'),
    ('as_rng/seed=-5', lambda e: tasks.as_rng(-5), r'seed'),
    ('as_rng/seed=str', lambda e: tasks.as_rng('1'), r'seed'),
    ('check_n/float', lambda e: tasks.check_n(2.0), r'\bn\b'),
    ('encode/not-text', lambda e: MO.encode(5), r'text'),
    ('encode/unknown-token', lambda e: MO.encode('B X'), r'token'),
    ('decode/two-rows', lambda e: MO.decode([[1, 2], [1, 2]]), r'ids|one sequence'),
    ('as_ids/floats', lambda e: MO.as_ids([[1.5]]), r'ids'),
    ('as_ids/out-of-vocab', lambda e: MO.as_ids([[99]]), r'ids'),
    ('trace/text', lambda e: MO.trace('B Da'), r'ids'),
    ('get_task/void_p-negative', lambda e: tasks.get_task('multiobject', void_p=-0.1), r'void_p'),
    ('position_mask/3d', lambda e: MO.position_mask(np.zeros((1, 2, 3), int)), r'ids'),
    # counterfactuals
    ('counterfactual/extra_demos=-3', lambda e: cf.counterfactual('multiobject', 'B Da Da', extra_demos=-3), r'extra_demos'),
    ('counterfactual/extra_demos=2.5', lambda e: cf.counterfactual('multiobject', 'B Da Da', extra_demos=2.5), r'extra_demos'),
    ('counterfactual/quantity>20', lambda e: cf.counterfactual('multiobject', 'B Da Da', extra_demos=30), r'extra_demos'),
    ('counterfactual/extra_demos-in-response', lambda e: cf.counterfactual('multiobject', 'B Da T R', extra_demos=2), r'extra_demos'),
    ('counterfactual/extra_demos-arithmetic', lambda e: cf.counterfactual('arithmetic', 'B 3 5 + 1 = 6 ,', extra_demos=1), r'extra_demos'),
    ('counterfactual/count=1.5', lambda e: cf.counterfactual('multiobject', 'B Da Da', count=1.5), r'count'),
    ('counterfactual/count=str', lambda e: cf.counterfactual('multiobject', 'B Da Da', count='3'), r'count'),
    ('counterfactual/count=25', lambda e: cf.counterfactual('multiobject', 'B Da Da', count=25), r'count'),
    ('counterfactual/unknown-variable', lambda e: cf.counterfactual('multiobject', 'B Da', nope=3), r'nope'),
    ('counterfactual/empty-prefix', lambda e: cf.counterfactual('multiobject', ''), r'prefix'),
    ('counterfactual/seed=-1', lambda e: cf.counterfactual('multiobject', 'B Da', seed=-1), r'seed'),
    ('counterfactual/unknown-task', lambda e: cf.counterfactual('nope', 'B Da'), r'task'),
    ('counterfactual/last_value=str', lambda e: cf.counterfactual('multiobject', 'B Da', last_value='1'), r'last_value'),
    ('parse_variable/one-element', lambda e: cf.parse_variable(('count',), MO, MO), r'variable'),
    ('parse_variable/inexpressible', lambda e: cf.parse_variable('cumu_val', MO, MO), r'cumu_val'),
    ('choose_positions/rng-int', lambda e: cf.choose_positions(np.ones((2, 3), bool), -1), r'seed|rng'),
    ('row_keys/missing-columns', lambda e: cf.row_keys({'src_pos': np.zeros(2)}), r'cols|src_ids'),
    ('make_interventions/unknown-task', lambda e: cf.make_interventions('nope', 'multiobject', 'count', 10, 0), r'task'),
    ('make_interventions/n=1.5', lambda e: cf.make_interventions('multiobject', 'multiobject', 'count', 1.5, 0), r'\bn\b'),
    ('make_interventions/n=0', lambda e: cf.make_interventions('multiobject', 'multiobject', 'count', 0, 0), r'\bn\b'),
    ('make_interventions/n=1e8', lambda e: cf.make_interventions('multiobject', 'multiobject', 'count', 10 ** 8, 0), r'\bn\b'),
    ('make_interventions/seed=-1', lambda e: cf.make_interventions('multiobject', 'multiobject', 'count', 10, -1), r'seed'),
    ('make_interventions/seed=None', lambda e: cf.make_interventions('multiobject', 'multiobject', 'count', 10, None), r'seed'),
    ('make_interventions/unknown-variable', lambda e: cf.make_interventions('multiobject', 'multiobject', 'nope', 10, 0), r'nope'),
    ('make_interventions/values-str', lambda e: cf.make_interventions('multiobject', 'multiobject', 'count', 10, 0, values='12'), r'values'),
    ('make_interventions/values-empty', lambda e: cf.make_interventions('multiobject', 'multiobject', 'count', 10, 0, values=[]), r'values'),
    ('make_interventions/values-full', lambda e: cf.make_interventions('multiobject', 'multiobject', 'full', 10, 0, values=[1]), r'values'),
    ('make_interventions/stepwise-str', lambda e: cf.make_interventions('multiobject', 'multiobject', 'count', 10, 0, stepwise='no'), r'stepwise'),
    ('make_interventions/max_rounds=0', lambda e: cf.make_interventions('multiobject', 'multiobject', 'count', 10, 0, max_rounds=0), r'max_rounds'),
    ('make_interventions/exclude-int', lambda e: cf.make_interventions('multiobject', 'multiobject', 'count', 10, 0, exclude=5), r'exclude'),
    # training
    ('train_model/lr=-1', lambda e: training.train_model('multiobject', 'gru', lr=-1, **TRAIN), r'\blr\b'),
    ('train_model/lr=nan', lambda e: training.train_model('multiobject', 'gru', lr=float('nan'), **TRAIN), r'\blr\b'),
    ('train_model/lr=str', lambda e: training.train_model('multiobject', 'gru', lr='0.1', **TRAIN), r'\blr\b'),
    ('train_model/warmup=0', lambda e: training.train_model('multiobject', 'gru', warmup=0, **TRAIN), r'warmup'),
    ('train_model/warmup=-5', lambda e: training.train_model('multiobject', 'gru', warmup=-5, **TRAIN), r'warmup'),
    ('train_model/decay=-1', lambda e: training.train_model('multiobject', 'gru', decay=-1, **TRAIN), r'decay'),
    ('train_model/min_lr=-1', lambda e: training.train_model('multiobject', 'gru', min_lr=-1, **TRAIN), r'min_lr'),
    ('train_model/det_weight=-1', lambda e: training.train_model('multiobject', 'gru', det_weight=-1, **TRAIN), r'det_weight'),
    ('train_model/det_weight=nan', lambda e: training.train_model('multiobject', 'gru', det_weight=float('nan'), **TRAIN), r'det_weight'),
    ('train_model/void_p=1.5', lambda e: training.train_model('multiobject', 'gru', void_p=1.5, **TRAIN), r'void_p'),
    ('train_model/criterion=-1', lambda e: training.train_model('multiobject', 'gru', **{**TRAIN, 'criterion': -1}), r'criterion'),
    ('train_model/criterion=1.5', lambda e: training.train_model('multiobject', 'gru', **{**TRAIN, 'criterion': 1.5}), r'criterion'),
    ('train_model/criterion=0', lambda e: training.train_model('multiobject', 'gru', **{**TRAIN, 'criterion': 0}), r'criterion'),
    ('train_model/seed=-1', lambda e: training.train_model('multiobject', 'gru', seed=-1, **TRAIN), r'seed'),
    ('train_model/seed=1.7', lambda e: training.train_model('multiobject', 'gru', seed=1.7, **TRAIN), r'seed'),
    ('train_model/seed=str', lambda e: training.train_model('multiobject', 'gru', seed='1', **TRAIN), r'seed'),
    ('train_model/width=15.5', lambda e: training.train_model('multiobject', 'gru', **{**TRAIN, 'width': 15.5}), r'width'),
    ('train_model/arch', lambda e: training.train_model('multiobject', 'rnn', **TRAIN), r'arch'),
    ('train_model/task', lambda e: training.train_model('nope', 'gru', **TRAIN), r'task'),
    ('train_model/max_steps=0', lambda e: training.train_model('multiobject', 'gru', **{**TRAIN, 'max_steps': 0}), r'max_steps'),
    ('train_model/batch_size=1.5', lambda e: training.train_model('multiobject', 'gru', batch_size=1.5, **TRAIN), r'batch_size'),
    ('train_model/unknown-option', lambda e: training.train_model('multiobject', 'gru', nope=1, **TRAIN), r'nope'),
    ('train_model/probe_size=0', lambda e: training.train_model('multiobject', 'gru', probe_size=0, **TRAIN), r'probe_size'),
    ('train_model/check_every=-1', lambda e: training.train_model('multiobject', 'gru', check_every=-1, **TRAIN), r'check_every'),
    ('train_model/n_valid=0', lambda e: training.train_model('multiobject', 'gru', n_valid=0, **TRAIN), r'n_valid'),
    ('lr_at/warmup=0', lambda e: training.lr_at(1, warmup=0), r'warmup'),
    ('lr_at/step=0', lambda e: training.lr_at(0), r'step'),
    ('trial_accuracy/batch_size=0', lambda e: training.trial_accuracy(e.gru, 'multiobject', e.ids, batch_size=0), r'batch_size'),
    ('trial_accuracy/unknown-task', lambda e: training.trial_accuracy(e.gru, 'nope', e.ids), r'task'),
    ('trial_accuracy/ids-list', lambda e: training.trial_accuracy(e.gru, 'multiobject', [[1, 4, 3]]), r'ids'),
    ('accuracy_if_meets/criterion=2', lambda e: training.accuracy_if_meets(e.gru, 'multiobject', e.ids, 2), r'criterion'),
    ('next_token_loss/ids-float', lambda e: training.next_token_loss(e.gru, e.ids.float()), r'ids'),
    # checkpoints
    ('cached_model/seed=1.7', lambda e: ck.cached_model('multiobject', 'gru', 1.7, 16), r'seed'),
    ('cached_model/seed=str', lambda e: ck.cached_model('multiobject', 'gru', '1', 16), r'seed'),
    ('cached_model/seed=True', lambda e: ck.cached_model('multiobject', 'gru', True, 16), r'seed'),
    ('cached_model/seed=-1', lambda e: ck.cached_model('multiobject', 'gru', -1, 16), r'seed'),
    ('cached_model/width=16.9', lambda e: ck.cached_model('multiobject', 'gru', 0, 16.9), r'width'),
    ('cached_model/width=0', lambda e: ck.cached_model('multiobject', 'gru', 0, 0), r'width'),
    ('cached_model/lr=-1-while-cached', lambda e: ck.cached_model('multiobject', 'gru', 0, 16, lr=-1), r'\blr\b'),
    ('cached_model/unknown-option', lambda e: ck.cached_model('multiobject', 'gru', 0, 16, nope=1), r'nope'),
    ('cached_model/arch', lambda e: ck.cached_model('multiobject', 'rnn', 0, 16), r'arch'),
    ('cache_path/seed=1.7', lambda e: ck.cache_path('multiobject', 'gru', 1.7, 16), r'seed'),
    ('cache_path/width=odd', lambda e: ck.cache_path('multiobject', 'gru', 0, 15), r'width'),
    ('load_model/missing', lambda e: ck.load_model(e.root / 'missing.pt'), r'missing\.pt'),
    ('load_model/junk', lambda e: ck.load_model(e.file('junk.pt', b'\0junk')), r'junk\.pt'),
    ('load_model/huge-width', lambda e: ck.load_model(e.checkpoint('huge', conf('width', 2 ** 20))), r'width|shape'),
    ('load_model/missing-weight', lambda e: ck.load_model(e.checkpoint('nokey', drop_key('head.3.bias'))), r'head\.3\.bias'),
    ('load_model/config-missing-task', lambda e: ck.load_model(e.checkpoint('notask', lambda b: b['config'].pop('task'))), r'task'),
    ('load_model/config-not-dict', lambda e: ck.load_model(e.checkpoint('cfg', set_blob('config', 5))), r'config'),
    ('load_model/weights-not-tensors', lambda e: ck.load_model(e.checkpoint('sd', set_blob('state_dict', {'a': 1}))), r'state_dict|weights'),
    ('save_model/not-a-task-model', lambda e: ck.save_model(torch.nn.Linear(2, 2), e.root / 'x.pt'), r'model'),
    ('save_model/empty-path', lambda e: ck.save_model(e.gru, ''), r'path'),
    ('save_model/path-is-folder', lambda e: ck.save_model(e.gru, e.root), r'path'),
    # similarity
    ('quantities/ids-out-of-vocab', lambda e: sim.quantities(MO, [[99]]), r'ids'),
    ('similarity_protocol/unknown-site', lambda e: sim.similarity_protocol(e.gru, e.gru, 'multiobject', 'layer7', n_per_quantity=2, n_samples=20, n_resamples=1), r'site'),
    ('similarity_protocol/n_per_quantity=0', lambda e: sim.similarity_protocol(e.gru, e.gru, 'multiobject', 'hidden', n_per_quantity=0), r'n_per_quantity'),
    ('as_matrix/3-rows', lambda e: sim.as_matrix(np.zeros((3, 2))), r'samples|X'),
    ('as_matrix/strings', lambda e: sim.as_matrix([['a']] * 5), r'X'),
    ('check_pair/row-mismatch', lambda e: sim.check_pair(np.ones((5, 2)), np.ones((6, 2))), r'samples|rows'),
    ('rsa/unknown-rdm', lambda e: sim.rsa(X20K[:10], X20K[:10], rdm='nope'), r'rdm|kind'),
    ('rsa/unknown-method', lambda e: sim.rsa(X20K[:10], X20K[:10], method='kendall'), r'method'),
    ('rsa/nan', lambda e: sim.rsa(X20K[:10] * np.nan, X20K[:10]), r'X|NaN'),
    ('rsa/20k-rows', lambda e: sim.rsa(X20K, X20K), r'rows|samples'),
    ('compute_rdm/20k-rows', lambda e: sim.compute_rdm(X20K), r'rows|samples'),
    ('cka/20k-rows', lambda e: sim.cka(X20K, X20K), r'rows|samples'),
    ('linear_cka/debiased-20k-rows', lambda e: sim.linear_cka(X20K, X20K, debiased=True), r'rows|samples'),
    ('kernel_cka/not-square', lambda e: sim.kernel_cka(np.ones((5, 4)), np.ones((5, 4))), r'kernel|square'),
    ('hsic/shape-mismatch', lambda e: sim.hsic(np.eye(4), np.eye(5)), r'\bK\b|\bL\b|kernel'),
    ('quantities/not-counting', lambda e: sim.quantities(tasks.get_task('arithmetic'), e.ids), r'task'),
    ('quantity_batch/qs-float', lambda e: sim.quantity_batch('multiobject', 2, qs=[1.5]), r'qs|quantit'),
    ('quantity_batch/qs=0', lambda e: sim.quantity_batch('multiobject', 2, qs=[0]), r'qs|quantit'),
    ('quantity_batch/n_per_quantity=0', lambda e: sim.quantity_batch('multiobject', 0), r'n_per_quantity'),
    ('quantity_batch/seed=-1', lambda e: sim.quantity_batch('multiobject', 2, seed=-1), r'seed'),
    ('model_latents/unknown-site', lambda e: sim.model_latents(e.gru, e.ids, 'nope'), r'site'),
    ('model_latents/1M-rows', lambda e: sim.model_latents(e.gru, torch.ones(1, 60, dtype=torch.long).expand(10 ** 6, 60), 'hidden'), r'ids|rows'),
    ('protocol_latents/unknown-site_b', lambda e: sim.protocol_latents(e.gru, e.gru, 'multiobject', 'hidden', site_b='nope', n_per_quantity=2), r'site'),
    ('similarity_protocol/n_samples-20k', lambda e: sim.similarity_protocol(e.gru, e.gru, 'multiobject', 'hidden', n_per_quantity=1000, n_samples=20_000, n_resamples=1), r'n_samples'),
    ('similarity_protocol/n_samples-too-many', lambda e: sim.similarity_protocol(e.gru, e.gru, 'multiobject', 'hidden', n_per_quantity=2, n_samples=5000), r'n_samples'),
    ('similarity_protocol/n_resamples=0', lambda e: sim.similarity_protocol(e.gru, e.gru, 'multiobject', 'hidden', n_resamples=0), r'n_resamples'),
    ('similarity_protocol/measures-empty', lambda e: sim.similarity_protocol(e.gru, e.gru, 'multiobject', 'hidden', n_per_quantity=2, n_samples=20, n_resamples=1, measures=[]), r'measure'),
    ('similarity_protocol/unknown-measure', lambda e: sim.similarity_protocol(e.gru, e.gru, 'multiobject', 'hidden', measures=['nope']), r'measure'),
    ('similarity_protocol/seed=-1', lambda e: sim.similarity_protocol(e.gru, e.gru, 'multiobject', 'hidden', n_per_quantity=2, n_samples=20, n_resamples=1, seed=-1), r'seed'),
    ('similarity_protocol/arithmetic', lambda e: sim.similarity_protocol(e.gru, e.gru, 'arithmetic', 'hidden'), r'task'),
    # experiments
    ('get_preset/unknown', lambda e: ex.get_preset('huge'), r'preset'),
    ('with_sizes/max_pairs=-1', lambda e: ex.with_sizes('small', 'max_pairs=-1'), r'max_pairs'),
    ('with_sizes/seeds=0', lambda e: ex.with_sizes('small', 'seeds=0'), r'seeds'),
    ('with_sizes/seeds-repeated', lambda e: ex.with_sizes('small', 'seeds=0,0'), r'seeds'),
    ('with_sizes/seeds-negative', lambda e: ex.with_sizes('small', 'seeds=-1,1'), r'seeds'),
    ('with_sizes/tf_seeds-longer', lambda e: ex.with_sizes('small', 'tf_seeds=0,1,2'), r'tf_seeds'),
    ('with_sizes/task_seeds-empty', lambda e: ex.with_sizes('small', 'task_seeds=,'), r'task_seeds'),
    ('with_sizes/threshold=nan', lambda e: ex.with_sizes('small', 'threshold=nan'), r'threshold'),
    ('with_sizes/n_train=0', lambda e: ex.with_sizes('small', 'n_train=0'), r'n_train'),
    ('with_sizes/batch_size=0', lambda e: ex.with_sizes('small', 'batch_size=0'), r'batch_size'),
    ('with_sizes/n_resamples=0', lambda e: ex.with_sizes('small', 'n_resamples=0'), r'n_resamples'),
    ('with_sizes/ks=0', lambda e: ex.with_sizes('small', 'ks=0'), r'ks'),
    ('with_sizes/epsilons=2', lambda e: ex.with_sizes('small', 'epsilons=2'), r'epsilons'),
    ('with_sizes/max_steps=1.5', lambda e: ex.with_sizes('small', 'max_steps=1.5'), r'max_steps'),
    ('with_sizes/n_per_quantity=0', lambda e: ex.with_sizes('small', 'n_per_quantity=0'), r'n_per_quantity'),
    ('with_sizes/eval_every=-2', lambda e: ex.with_sizes('small', 'eval_every=-2'), r'eval_every'),
    ('with_sizes/unknown-field', lambda e: ex.with_sizes('small', 'nope=1'), r'nope|field'),
    ('with_sizes/name', lambda e: ex.with_sizes('small', 'name=x'), r'name'),
    ('reproduce/unknown-experiment', lambda e: ex.reproduce('nope', out=e.root / 'o'), r'nope|experiment'),
    ('reproduce/unknown-preset', lambda e: ex.reproduce('fig2d', 'huge', e.root / 'o'), r'preset'),
    ('reproduce/max_pairs=-1', lambda e: ex.reproduce('fig2d', tiny_preset(max_pairs=-1), e.root / 'o2'), r'max_pairs'),
    ('reproduce/one-seed', lambda e: ex.reproduce('fig2d', tiny_preset(seeds=(0,)), e.root / 'o1'), r'seeds'),
    ('reproduce/out-is-a-file', lambda e: ex.reproduce('fig2d', tiny_preset(), e.file('outfile')), r'out|results'),
    ('reproduce/empty-out', lambda e: ex.reproduce('fig2d', tiny_preset(), ''), r'out'),
    ('reproduce/tracked-results', lambda e: ex.reproduce('fig2d', tiny_preset(), e.tracked_results), r'force|tracked'),
    ('load_result/missing', lambda e: ex.load_result('fig2d', e.root / 'none'), r'fig2d'),
    # mas (checked in make_spec)
    ('fit_mas/names-repeated', lambda e: mas.fit_mas(e.grus, names=['a', 'a'], progress=False), r'names'),
    ('fit_mas/batch_size=0', lambda e: mas.fit_mas(e.grus, batch_size=0, progress=False), r'batch_size'),
    ('fit_mas/epsilon=5', lambda e: mas.fit_mas(e.grus, method='clmas', epsilon=5, progress=False), r'epsilon'),
    ('fit_mas/epsilon-for-mas', lambda e: mas.fit_mas(e.grus, epsilon=0.5, progress=False), r'epsilon'),
    ('fit_mas/values-str', lambda e: mas.fit_mas(e.grus, variable='count', values='12', progress=False), r'values'),
    ('fit_mas/seed=-1', lambda e: mas.fit_mas(e.grus, seed=-1, progress=False), r'seed'),
    ('fit_mas/seed=None', lambda e: mas.fit_mas(e.grus, seed=None, progress=False), r'seed'),
    ('fit_mas/eval_every=0', lambda e: mas.fit_mas(e.grus, eval_every=0, progress=False), r'eval_every'),
    ('fit_mas/recompute_layers-str', lambda e: mas.fit_mas(e.grus, recompute_layers='yes', progress=False), r'recompute_layers'),
    ('fit_mas/recompute_layers-gru', lambda e: mas.fit_mas(e.grus, recompute_layers=True, progress=False), r'recompute_layers'),
    ('fit_mas/threshold=nan', lambda e: mas.fit_mas(e.grus, threshold=float('nan'), progress=False), r'threshold'),
    ('fit_mas/lr=-1', lambda e: mas.fit_mas(e.grus, lr=-1, progress=False), r'\blr\b'),
    ('fit_mas/max_steps=0', lambda e: mas.fit_mas(e.grus, max_steps=0, progress=False), r'max_steps'),
    ('fit_mas/n_train=0', lambda e: mas.fit_mas(e.grus, n_train=0, progress=False), r'n_train'),
    ('fit_mas/k=0', lambda e: mas.fit_mas(e.grus, k=0, progress=False), r'\bk\b'),
    ('fit_mas/k>width', lambda e: mas.fit_mas(e.grus, k=64, progress=False), r'\bk\b'),
    ('fit_mas/unknown-site', lambda e: mas.fit_mas(e.grus, sites='nope', progress=False), r'site'),
    ('fit_mas/unknown-method', lambda e: mas.fit_mas(e.grus, method='nope', progress=False), r'method'),
    ('fit_mas/inexpressible-variable', lambda e: mas.fit_mas(e.grus, variable='cumu_val', progress=False), r'cumu_val'),
    ('fit_mas/select', lambda e: mas.fit_mas(e.grus, select='best', progress=False), r'select'),
    ('evaluate_iia/models-mismatch', lambda e: mas.evaluate_iia(e.grus[:1], e.result, n=8), r'models'),
    ('evaluate_iia/n=0', lambda e: mas.evaluate_iia(e.grus, e.result, n=0), r'\bn\b'),
    ('evaluate_iia/seed=-1', lambda e: mas.evaluate_iia(e.grus, e.result, n=8, seed=-1), r'seed'),
]


def _setup(mp, root: Path) -> Env:
    "Point the model cache, the working directory and the memory probe at `root`; plant small cached GRUs."
    (root / 'cache').mkdir(parents=True)
    for seed in (0, 1):   # the trained GRUs `reproduce` reads, when this machine has them
        name = f'multiobject-gru-w128-s{seed}-v{ck.CACHE_VERSION}.pt'
        if (ck.cache_dir() / name).is_file(): shutil.copy(ck.cache_dir() / name, root / 'cache' / name)
    mp.setenv('MAS_NB_CACHE', str(root / 'cache'))
    mp.chdir(root)
    mp.setattr(files, 'available_memory', lambda: 4 * GIB, raising=False)   # the same verdicts on any machine
    env = Env(root)
    for seed in (0, 1):   # what a silently truncated seed or width would load
        ck.save_model(make_model('multiobject', 'gru', seed, 16), root / 'cache' / f'multiobject-gru-w16-s{seed}-v{ck.CACHE_VERSION}.pt')
    return env


@pytest.fixture(scope='module')
def env():
    root = Path(tempfile.mkdtemp())
    with pytest.MonkeyPatch.context() as mp:
        yield _setup(mp, root)
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize('call,names', [pytest.param(c, n, id=i) for i, c, n in CASES])
def test_bad_input_is_named(env, call, names):
    with pytest.raises(EXPECTED) as err: call(env)
    assert re.search(names, str(err.value)), f"the message does not name {names!r}: {err.value}"


def classify(call, names, env, limit=30) -> str:
    "'clear', 'unclear' or 'accepted' (see the module's docstring)."
    import signal
    def stop(*_): raise TimeoutError(f"still running after {limit} s")
    signal.signal(signal.SIGALRM, stop); signal.alarm(limit)
    try: call(env)
    except EXPECTED as e: return 'clear' if re.search(names, str(e)) else 'unclear'
    except (Exception, MemoryError): return 'unclear'
    finally: signal.alarm(0)
    return 'accepted'


if __name__ == '__main__':   # measure: python tests/test_bad_input.py (cases capped at 6 GiB of address space)
    import resource, collections
    vm = int(re.search(r'VmSize:\s+(\d+)', Path('/proc/self/status').read_text())[1]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + 6 * GIB,) * 2)
    root = Path(tempfile.mkdtemp())
    with pytest.MonkeyPatch.context() as mp:
        env, verdicts = _setup(mp, root), {}
        for i, c, n in CASES:
            verdicts[i] = classify(c, n, env)
            print(f"{verdicts[i]:9} {i}", flush=True)
    print(dict(collections.Counter(verdicts.values())), f"of {len(CASES)} cases")
    shutil.rmtree(root, ignore_errors=True)
