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


@pytest.mark.parametrize('args,message', [
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


@pytest.mark.parametrize('command', ['demo', 'train', 'align', 'similarity', 'examples'])
def test_every_command_has_help(command):
    r = run(command, '--help')
    assert r.returncode == 0 and f'mas-nb {command}' in r.stdout


def test_usage_without_a_command():
    r = run()
    assert r.returncode == 0 and 'usage: mas-nb' in r.stdout
