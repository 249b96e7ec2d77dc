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
    assert 'gru0->gru1' in r.stdout and 'wrote' in r.stdout
    assert not [p for p in (tmp_path / 'out').iterdir() if p.name.startswith('.')]  # no temporary files left


def test_align_and_similarity_write_json(tmp_path):
    r = run('align', '--max_steps', '3', '--k', '8', '--out', str(tmp_path / 'a.json'))
    assert r.returncode == 0, r.stderr
    assert set(json.loads((tmp_path / 'a.json').read_text())['iia']) == {
        f'multiobject:gru:{i}->multiobject:gru:{j}' for i in (0, 1) for j in (0, 1)}
    r = run('similarity', '--site', 'embedding', '--out', str(tmp_path / 's.json'))
    assert r.returncode == 0, r.stderr
    assert {'rsa', 'cka', 'linear_cka'} <= set(json.loads((tmp_path / 's.json').read_text())['scores'])


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
    assert (tmp_path / 'fig2d.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['fig2d.json', 'fig2d.png']  # no temporary files left
    assert 'wrote' in r.stdout and 'Stitch' in r.stdout


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
    (('align', '--k', '999', '--max_steps', '1'), "k=999 must be in 1..128"),
    (('align', '--models', 'multiobject:gru'), "task:arch:seed"),
    (('align', '--variable', 'colour', '--max_steps', '1'), "has no variable 'colour'"),
    (('similarity', '--site', 'layer7'), "site"),
])
def test_bad_input_exits_nonzero_with_a_clear_message(args, message):
    r = run(*args)
    assert r.returncode == 2
    assert message in r.stderr and 'Traceback' not in r.stderr


@pytest.mark.parametrize('command', ['demo', 'train', 'align', 'similarity', 'reproduce', 'examples'])
def test_every_command_has_help(command):
    r = run(command, '--help')
    assert r.returncode == 0 and f'mas-nb {command}' in r.stdout


def test_usage_without_a_command():
    r = run()
    assert r.returncode == 0 and 'usage: mas-nb' in r.stdout
