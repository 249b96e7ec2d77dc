"Experiments as jobs: a killed run resumes to the records of an uninterrupted one; workers and submitit give the same records."
import os, shutil, signal, subprocess, sys, time

import pytest

from mas_nb.experiments import reproduce, run_experiment, with_sizes
from mas_nb.jobs import Job, JobsFailed, folder_status, run_jobs, status

TINY = 'max_steps=3 n_train=64 n_valid=32 n_test=32 ks=4 eval_every=3 batch_size=16'


@pytest.fixture(scope='module')
def tiny():
    return with_sizes('small', TINY)


@pytest.fixture(scope='module')
def straight(tiny):
    return run_experiment('fig2d', tiny, progress=False)


def test_jobs_in_process_give_the_records_of_a_plain_run_and_a_rerun_runs_nothing(tiny, straight, tmp_path):
    assert run_experiment('fig2d', tiny, out=tmp_path, progress=False) == straight
    stamps = {r['folder']: os.stat(os.path.join(r['folder'], 'result.json')).st_mtime_ns for r in folder_status(tmp_path)}
    assert len(stamps) == 5 and all(r['state'] == 'done' for r in folder_status(tmp_path))  # 2 models to train, 3 MAS-family runs
    assert run_experiment('fig2d', tiny, out=tmp_path, progress=False) == straight
    assert {f: os.stat(os.path.join(f, 'result.json')).st_mtime_ns for f in stamps} == stamps  # nothing ran again


def test_kill_9_mid_experiment_then_rerun_gives_the_records_of_an_uninterrupted_run(tmp_path):
    "The experiment runs in a subprocess that is killed (SIGKILL) as soon as its first MAS job has finished."
    sizes = 'max_steps=40 n_train=64 n_valid=32 n_test=32 ks=4,8 eval_every=2 batch_size=16 threshold=1.0'
    code = (f"from mas_nb.experiments import reproduce, with_sizes\n"
            f"reproduce('fig2d', with_sizes('small', {sizes!r}), out={str(tmp_path / 'killed')!r})")
    run = subprocess.Popen([sys.executable, '-c', code])
    jobs = tmp_path / 'killed' / 'jobs' / 'fig2d'
    deadline = time.time() + 240
    while time.time() < deadline and run.poll() is None:
        if any(r.parent.name.startswith('fig2d-') for r in jobs.glob('*/result.json')): break
        time.sleep(0.2)
    assert run.poll() is None, "the run ended before it could be killed"
    os.kill(run.pid, signal.SIGKILL); run.wait()
    states = [r['state'] for r in folder_status(jobs)]
    assert 'done' in states and len(states) < 8  # interrupted: some jobs done, some never started
    p = with_sizes('small', sizes)
    resumed = reproduce('fig2d', p, out=tmp_path / 'killed')
    whole = reproduce('fig2d', p, out=tmp_path / 'whole')
    assert resumed['records'] == whole['records'] and len(whole['records']) == 6


def test_two_local_workers_give_the_records_of_one_process(tiny, straight, tmp_path, monkeypatch):
    import torch  # the workers run with this process's threads: torch's sums depend on the thread count in the last bits
    monkeypatch.setenv('OMP_NUM_THREADS', str(torch.get_num_threads()))
    assert run_experiment('fig2d', tiny, out=tmp_path, executor='local', workers=2, progress=False) == straight


def test_local_workers_share_the_cores_unless_omp_num_threads_says(tmp_path, monkeypatch):
    threads = Job('torch:get_num_threads')   # a job whose result is its worker's torch thread count
    cores = len(os.sched_getaffinity(0))
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    assert run_jobs([threads], tmp_path / 'one', executor='local', workers=1, progress=False)[threads.id] == cores
    assert run_jobs([threads], tmp_path / 'two', executor='local', workers=2, progress=False)[threads.id] == max(1, cores // 2)
    monkeypatch.setenv('OMP_NUM_THREADS', '1')   # torch takes at most the cores: 1 is the setting that can differ from a share
    assert run_jobs([threads], tmp_path / 'set', executor='local', workers=1, progress=False)[threads.id] == 1


def test_a_free_local_worker_starts_what_others_wait_for_then_the_costliest(tmp_path):
    a, b, c = (Job('json:loads', dict(s=str(x)), name=n, cost=x) for n, x in (('a', 1), ('b', 2), ('c', 3)))
    d = Job('json:loads', dict(s='4'), needs=(a.id,), name='d', cost=4)
    run_jobs([b, c, a, d], tmp_path, executor='local', workers=1, progress=False)
    started = sorted([a, b, c, d], key=lambda j: (tmp_path / j.folder_name / 'job.json').stat().st_mtime_ns)  # one worker: one at a time
    assert [j.name for j in started] == ['a', 'd', 'c', 'b']


def test_submitit_local_executor_gives_the_same_records(tiny, straight, tmp_path):
    pytest.importorskip('submitit')
    assert run_experiment('fig2d', tiny, out=tmp_path, executor='submitit-local', progress=False) == straight
    assert (tmp_path / '.submitit').is_dir()  # submitit's own job files: it ran them as subprocesses


def test_failed_jobs_are_named_with_their_logs_and_the_rest_finish(tmp_path):
    ok, broken = Job('json:loads', dict(s='[1]'), name='ok'), Job('json:loads', dict(s='{'), name='broken')
    after = Job('json:loads', dict(s='2'), needs=(broken.id,), name='after')
    with pytest.raises(JobsFailed, match=r"broken: failed \(JSONDecodeError.*log .*broken-.*log.txt") as e:
        run_jobs([ok, broken, after], tmp_path, progress=False)
    assert 'after: blocked' in str(e.value)
    assert [r['state'] for r in status([ok, broken, after], tmp_path)] == ['done', 'failed', 'pending']
    with pytest.raises(ValueError, match='not among the jobs'): run_jobs([after], tmp_path, progress=False)
    with pytest.raises(ValueError, match='executor must be one of'): run_jobs([ok], tmp_path, executor='cloud')


def test_a_retrained_model_makes_its_jobs_and_the_runs_that_used_it_run_again(tiny, straight, tmp_path, monkeypatch):
    """A finished experiment meets a cache whose GRU 0 was trained again to other weights (another machine): its
    training job is stale, so is every run that used it, and the rerun's records are those of the models there now."""
    import torch
    from mas_nb.checkpoints import cache_path, load_model, save_model
    from mas_nb.experiments import experiment_jobs
    cache = tmp_path / 'cache'; cache.mkdir()
    for s in (0, 1): shutil.copy(cache_path('multiobject', 'gru', s), cache)
    monkeypatch.setenv('MAS_NB_CACHE', str(cache))
    jobs, _ = experiment_jobs('fig2d', tiny)
    assert run_experiment('fig2d', tiny, out=tmp_path / 'out', progress=False) == straight
    retrained = load_model(cache_path('multiobject', 'gru', 0))
    torch.manual_seed(0)
    with torch.no_grad():
        for w in retrained.parameters(): w.add_(0.05 * torch.randn_like(w))
    save_model(retrained, cache_path('multiobject', 'gru', 0))
    states = {r['name']: r['state'] for r in status(jobs, tmp_path / 'out')}
    assert states.pop('train-multiobject-gru-0') == 'stale' and states.pop('train-multiobject-gru-1') == 'done'
    assert set(states.values()) == {'stale'}   # every fig2d run uses GRU 0
    listed = {r['name']: r['state'] for r in folder_status(tmp_path / 'out')}   # `mas-nb jobs`, from the folders alone
    assert listed == {r['name']: r['state'] for r in status(jobs, tmp_path / 'out')}
    resumed = run_experiment('fig2d', tiny, out=tmp_path / 'out', progress=False)
    assert resumed == run_experiment('fig2d', tiny, out=tmp_path / 'fresh', progress=False) and resumed != straight


def _slurm_answers() -> bool:
    try: return shutil.which('sinfo') is not None and subprocess.run(['sinfo', '-h'], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError): return False


@pytest.mark.skipif(not _slurm_answers(), reason='no SLURM controller answers here (.ci/run starts one with tools/slurm_local.sh)')
def test_slurm_executor_gives_the_same_records(tiny, straight, tmp_path):
    "Through a real SLURM (sbatch job arrays, afterok dependencies on the training jobs) via submitit."
    pytest.importorskip('submitit')
    assert run_experiment('fig2d', tiny, out=tmp_path, executor='slurm', slurm=dict(timeout_min=10), progress=False) == straight
    assert list((tmp_path / '.submitit').glob('*_log.out'))  # SLURM's own job logs: sbatch ran them


def test_a_unit_costs_its_models_parameter_count(tiny):
    "fig2ab's GRU-Transformer units cost more than its GRU-GRU units, so local workers start them first."
    from mas_nb.experiments import experiment_jobs
    from mas_nb.models import make_model
    _, runs = experiment_jobs('fig2ab', tiny)
    size = lambda arch: sum(w.numel() for w in make_model('multiobject', arch).parameters())
    costs = {j.name.split('-')[3]: j.cost for j in runs}   # the comparison's second architecture
    assert costs == {'gru': 2 * size('gru'), 'transformer': size('gru') + size('transformer')}
