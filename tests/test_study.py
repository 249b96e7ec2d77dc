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


# --- the study as one command ---------------------------------------------------------------------------------------
import json, os, shutil, signal, subprocess, sys, time
from pathlib import Path

from mas_nb.study import plan, run_study, study_config, study_jobs



@pytest.fixture(scope='module')
def whole(tmp_path_factory):
    "One uninterrupted run of the tiny study, in-process."
    out = tmp_path_factory.mktemp('whole')
    return out, run_study('tiny', out, progress=False, show_plan=False)


def _report(out): return json.loads((Path(out) / 'report.json').read_text())


def test_the_tiny_study_finds_the_group_difference_and_writes_its_outputs(whole):
    out, report = whole
    assert report['claims'][0]['supported'] and report['claims'][0]['p'] < 0.05   # toxic-toxic above toxic-nontoxic
    assert {r['group'] for r in report['records']} == {'toxic-toxic', 'toxic-nontoxic', 'nontoxic-nontoxic'} and len(report['records']) == 30
    jobs = Path(out) / 'jobs'
    assert {p.name for p in (next(jobs.glob('finetune-toxic0-*')) / 'model').iterdir()} >= {'config.json', 'model.safetensors', 'tokenizer.json'}
    assert (next(jobs.glob('generate-nontoxic2-*')) / 'generations.pt').is_file()
    assert (next(jobs.glob('mas-toxic0-toxic1-*')) / 'result' / 'alignments.safetensors').is_file()
    assert not list(jobs.glob('mas-*/mas.pt'))   # checkpoints go once a pair is done
    assert (Path(out) / 'report.png').read_bytes()[:4] == b'\x89PNG'


def test_rerunning_a_finished_study_runs_no_job(whole):
    out, report = whole
    stamps = {p: p.stat().st_mtime_ns for p in (Path(out) / 'jobs').glob('*/result.json')}
    assert len(stamps) == 27   # 6 fine-tunings, 6 generations, 15 pairs
    again = run_study('tiny', out, progress=False, show_plan=False)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps and again['records'] == report['records']


def test_a_study_killed_mid_mas_resumes_to_the_report_of_an_uninterrupted_run(whole, tmp_path):
    "`mas-nb study` runs in a subprocess that is killed (SIGKILL) once a pair has written its first checkpoint."
    out = tmp_path / 'killed'
    run = subprocess.Popen([str(Path(sys.executable).parent / 'mas-nb'), 'study', 'tiny', '--out', str(out)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and run.poll() is None and not list((out / 'jobs').glob('mas-*/mas.pt')): time.sleep(0.05)
    assert run.poll() is None, "the study ended before it could be killed"
    os.kill(run.pid, signal.SIGKILL); run.wait()
    assert not (out / 'report.json').exists() and list((out / 'jobs').glob('mas-*/mas.pt'))   # killed inside a pair
    resumed = run_study('tiny', out, progress=False, show_plan=False)
    assert resumed['records'] == whole[1]['records'] and _report(out)['claims'] == _report(whole[0])['claims']


def test_a_study_config_is_checked_before_any_work(tmp_path):
    assert study_config('tiny')['mas']['index_range'] == [2, 14] and study_config('paper')['finetune']['max_steps'] == 10_000
    for config, message in [({'mas': {'steps': 3}}, r"unknown setting\(s\) \['steps'\] in \[mas\]"), ({'train': {}}, r"unknown section \[train\]"),
                            ({'mas': {'n_train': 'many'}}, 'mas.n_train must be int'), ({'finetune': {'seeds': [0]}}, 'finetune.seeds must be at least two'),
                            ({'mas': {'index_range': [10, 90]}}, 'mas.index_range must be'), ({'model': {'dtype': 'int8'}}, 'model.dtype must be'),
                            ({'data': {'sources': ['jigsaw'], 'paths': {'jigsaw': str(tmp_path / 'none.csv')}}}, 'data.paths.jigsaw: no file or folder'),
                            ({'data': {'sources': ['reddit']}}, r"data.sources: unknown source\(s\) \['reddit'\]"), ('nope', 'no study preset or TOML file')]:
        with pytest.raises(ValueError, match=message): study_config(config)
    (tmp_path / 'bad.toml').write_text('[mas\nn_train = 3')
    with pytest.raises(ValueError, match='is not valid TOML'): study_config(tmp_path / 'bad.toml')


def test_the_plan_says_what_each_stage_needs_and_what_does_not_fit():
    one, eight = plan('paper'), plan('paper', gpus=8, gpu_memory=24)
    assert '1.78 B parameters' in one and 'finetune       6' in one and 'mas           15' in one
    assert 'NO' not in one and 'NO' in eight   # the paper's fine-tuning does not fit a 24 GB GPU
    stages = study_jobs(study_config('paper'))
    assert [len(stages[s]) for s in ('finetune', 'generate', 'mas')] == [6, 6, 15]
    assert all(set(j.needs) >= {stages['finetune'][0].id} for j in stages['mas'][:5])   # toxic0's pairs wait for its fine-tuning
