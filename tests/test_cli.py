"The `mas-nb` command line, run as a user would: the installed console script in a subprocess."
import json
import subprocess
import sys
from pathlib import Path

import pytest

MAS_NB = str(Path(sys.executable).parent / 'mas-nb')


def run(*args):
    return subprocess.run([MAS_NB, *args], capture_output=True, text=True, timeout=600)


def test_demo_writes_results_and_figure(tmp_path):
    r = run('demo', '--out', str(tmp_path / 'out'), '--quick')
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / 'out' / 'results.json').read_text())
    assert set(res['iia']) == {'gru0->gru0', 'gru0->gru1', 'gru1->gru0', 'gru1->gru1'}
    assert res['worst_iia'] == min(res['iia'].values())
    assert 0.9 < res['rsa'] <= 1 and 0.9 < res['cka'] <= 1  # two trained seeds: near-identical geometry
    assert (tmp_path / 'out' / 'figure.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert 'gru0->gru1' in r.stdout and 'wrote' in r.stdout and 'Reading:' in r.stdout and 'loaded from' in r.stdout
    assert not [p for p in (tmp_path / 'out').iterdir() if p.name.startswith('.')]  # no temporary files left


def test_align_and_similarity_write_into_the_out_folder(tmp_path):
    out = tmp_path / 'out'
    r = run('align', '--max-steps', '3', '--n-train', '64', '--k', '8', '--threshold', '0', '--checkpoint', str(tmp_path / 'mas.ckpt'),
            '--out', str(out))
    assert r.returncode == 0, r.stderr
    res = json.loads((out / 'align.json').read_text())
    assert set(res['iia']) == {f'multiobject:gru:{i}->multiobject:gru:{j}' for i in (0, 1) for j in (0, 1)}
    assert res['config']['n_train'] == 64 and res['k'] == 8
    assert (tmp_path / 'mas.ckpt').is_file() and 'loaded from' in r.stdout and f"wrote {out / 'align.json'}" in r.stdout
    r = run('similarity', '--site', 'embedding', '--out', str(out))
    assert r.returncode == 0, r.stderr
    assert {'rsa', 'cka', 'linear_cka'} <= set(json.loads((out / 'similarity.json').read_text())['scores'])
    assert sorted(p.name for p in out.iterdir()) == ['align.json', 'similarity.json']  # no temporary files left


def test_underscored_flags_are_still_accepted(tmp_path):
    r = run('align', '--max_steps', '1', '--n_train', '64', '--k', '8', '--out', str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / 'align.json').read_text())['config']['n_train'] == 64


def test_train_says_where_the_model_is():
    r = run('train', '--task', 'multiobject', '--arch', 'gru', '--seeds', '0')
    assert r.returncode == 0, r.stderr
    assert 'multiobject gru seed 0 (width 128): loaded from ' in r.stdout and '.pt' in r.stdout


def test_a_model_that_is_not_cached_is_announced_before_training(tmp_path, monkeypatch, capsys):
    import mas_nb.checkpoints
    from mas_nb.cli import load_or_train
    monkeypatch.setenv('MAS_NB_CACHE', str(tmp_path))
    trained = []
    def fake_cached_model(task, arch, seed, width):
        assert 'not cached, training' in capsys.readouterr().out  # said before the (long) training starts
        trained.append((task, arch, seed, width))
        return type('Model', (), {'accuracy': {'valid': 1.0, 'steps': 7}})()
    monkeypatch.setattr(mas_nb.checkpoints, 'cached_model', fake_cached_model)
    load_or_train('multiobject', 'gru', 3, 64)
    assert trained == [('multiobject', 'gru', 3, 64)]
    assert f"saved to {mas_nb.checkpoints.cache_path('multiobject', 'gru', 3, 64)}" in capsys.readouterr().out


def test_reproduce_writes_records_summary_and_figure(tmp_path):
    sizes = 'max_steps=4 eval_every=2 n_train=64 n_valid=64 n_test=64 ks=8'
    r = run('reproduce', 'fig2d', '--preset', 'small', '--out', str(tmp_path), '--sizes', sizes)
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / 'fig2d.json').read_text())
    assert res['experiment'] == 'fig2d' and res['preset']['name'] == 'small'
    assert res['preset']['max_steps'] == 4 and res['preset']['ks'] == [8]  # the sizes actually run are recorded
    assert sorted(rec['method'] for rec in res['records']) == ['DAS', 'MAS', 'Stitch']
    assert {rec['method']: rec['unit'] for rec in res['records']} == {'DAS': 'gru0', 'MAS': 'gru0-gru1', 'Stitch': 'gru0-gru1'}
    assert all(rec['size'] == 8 and 0 <= rec['value'] <= 1 for rec in res['records'])
    assert {(s['method'], s['mean']) for s in res['summary']} == {(rec['method'], rec['value']) for rec in res['records']}
    assert all(rec['stopped'] == 'max_steps' and rec['steps'] == 4 for rec in res['records'])  # 4 steps reach no threshold
    assert all(s['below'] == 1 for s in res['summary']) and '(n=1, 1 below threshold)' in r.stdout
    assert 'preset small: 64 training / 64 test interventions, at most 4 steps; 3 of 3 fitted records' in r.stdout
    assert (tmp_path / 'fig2d.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['fig2d.json', 'fig2d.png', 'jobs']  # no temporary files left, and its jobs
    assert 'results in' in r.stdout and 'Stitch' in r.stdout
    saved = (tmp_path / 'fig2d.json').read_bytes()
    again = run('reproduce', 'fig2d', '--preset', 'small', '--out', str(tmp_path), '--sizes', sizes)
    assert again.stdout == r.stdout and (tmp_path / 'fig2d.json').read_bytes() == saved   # a finished run: the same result, not rewritten


@pytest.mark.parametrize('args,message', [
    (('reproduce', 'fig9'), "unknown experiment 'fig9'"),
    (('reproduce', 'fig2d', '--preset', 'huge'), "unknown preset 'huge'"),
    (('reproduce', 'fig2d', '--sizes', 'steps=3'), "field of Preset"),
    (('reproduce', 'fig2d', '--sizes', 'seeds=a'), "seeds must be comma-separated integers"),
    (('reproduce', 'fig2d', '--out', '/dev/null/results'), "cannot write results into /dev/null/results"),
    (('reproduce',), "required: experiment"),
    (('dmeo',), "unknown command 'dmeo'"),
    (('train', '--arch', 'rnn'), "unknown architecture 'rnn'"),
    (('train', '--task', 'counting'), "valid tasks are"),
    (('train', '--seeds', 'x'), "comma-separated integers"),
    (('align', '--k', '999', '--max-steps', '1'), "k=999 must be an integer in 1..128"),
    (('align', '--models', 'multiobject:gru'), "task:arch:seed"),
    (('align', '--variable', 'colour', '--max-steps', '1'), "has no variable 'colour'"),
    (('align', '--threshold', '1.5'), "threshold must be in [0, 1]"),
    (('align', '--n-train', '0'), "n_train must be a positive integer"),
    (('train', '--width', '0'), "width must be a positive integer"),
    (('similarity', '--models', 'multiobject:gru:0'), "compares two models"),
    (('align', '--out', 'align.json'), "--out names a folder"),
    (('align', '--out', '/dev/null/out'), "cannot write results into /dev/null/out"),
    (('align', '--checkpoint', '/'), "--checkpoint names a file"),
    (('align', '--checkpoint', '/dev/null/mas.ckpt'), "cannot write a checkpoint into /dev/null"),
    (('align', '--max-stepz', '1'), "unrecognized arguments: --max-stepz"),
    (('similarity', '--site', 'layer7'), "site"),
    (('similarity', '--out', '/dev/null/out'), "cannot write results into /dev/null/out"),
    (('demo', '--out', '/dev/null/out'), "cannot write results into /dev/null/out"),
])
def test_bad_input_exits_nonzero_with_a_clear_message(args, message):
    r = run(*args)
    assert r.returncode == 2
    assert message in r.stderr and 'Traceback' not in r.stderr


@pytest.mark.parametrize('command', ['demo', 'train', 'align', 'similarity', 'reproduce', 'examples'])
def test_every_command_has_help(command):
    r = run(command, '--help')
    assert r.returncode == 0 and f'mas-nb {command}' in r.stdout


def test_flags_are_spelled_with_hyphens():
    r = run('align', '--help')
    for option in ('--max-steps', '--n-train', '--threshold', '--width', '--checkpoint', '--out'):
        assert option in r.stdout
    assert '_' not in ' '.join(w for w in r.stdout.split() if w.startswith('--'))


def test_usage_lists_every_command():
    for args in ((), ('--help',)):
        r = run(*args)
        assert r.returncode == 0 and 'usage: mas-nb' in r.stdout
        for command in ('demo', 'train', 'align', 'similarity', 'reproduce', 'examples'):
            assert f'\n  {command} ' in r.stdout  # each with its one-line description


def test_help_does_not_import_torch():
    probe = """import sys
from mas_nb.cli import main
for argv in (['--help'], ['align', '--help'], ['demo', '--help']):
    try: main(argv)
    except SystemExit: pass
assert 'torch' not in sys.modules, 'torch was imported'"""
    r = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
