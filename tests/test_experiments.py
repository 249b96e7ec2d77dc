"`reproduce` and `with_sizes`: committed results are not overwritten by accident, and no size silently empties a run."
import json
import shutil
import subprocess
from dataclasses import replace

import pytest

from mas_nb.experiments import PRESETS, check_preset, reproduce, with_sizes

TINY = replace(PRESETS['small'], n_train=16, n_valid=16, n_test=16, max_steps=1, eval_every=1, ks=(4,))


@pytest.mark.skipif(shutil.which('git') is None, reason='needs git')
def test_tracked_results_are_overwritten_only_with_force(tmp_path):
    git = lambda *a: subprocess.run(['git', '-C', str(tmp_path), *a], check=True, capture_output=True)
    (tmp_path / 'fig2d.json').write_text('{"committed": true}')
    git('init', '-q'); git('add', '.'); git('-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-qm', 'results')
    with pytest.raises(ValueError, match=r"holds \['fig2d.json'\], tracked by git .* pass force=True"):
        reproduce('fig2d', TINY, tmp_path)
    assert json.loads((tmp_path / 'fig2d.json').read_text()) == {'committed': True}
    res = reproduce('fig2d', TINY, tmp_path, force=True)
    assert json.loads((tmp_path / 'fig2d.json').read_text())['records'] == res['records'] != []
    git('add', 'fig2d.json', 'fig2d.png'); git('-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-qm', 'new results')
    stamp = (tmp_path / 'fig2d.json').stat().st_mtime_ns
    assert reproduce('fig2d', TINY, tmp_path) == res   # every job done here: read back without force, nothing written
    assert (tmp_path / 'fig2d.json').stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match='this run has jobs to run'): reproduce('fig2d', replace(TINY, ks=(8,)), tmp_path)
    reproduce('fig2d', TINY, tmp_path / 'new')   # untracked files are written as before


def test_sizes_are_parsed_and_checked():
    assert with_sizes('small', 'epsilons=0.5,0.89 threshold=0.9 seeds=0,1,2').epsilons == (0.5, 0.89)
    assert all(check_preset(p) == p for p in PRESETS.values())   # already normal: unchanged
    for sizes, field in [('max_pairs=-1', 'max_pairs'), ('seeds=0', 'seeds'), ('seeds=3,3', 'seeds'), ('task_seeds=1,1', 'task_seeds'),
                         ('tf_seeds=0,1,2', 'tf_seeds'), ('ks=4,0', 'ks'), ('epsilons=1.5', 'epsilons'), ('threshold=0', 'threshold'),
                         ('n_samples=0', 'n_samples'), ('eval_every=-2', 'eval_every')]:
        with pytest.raises(ValueError, match=field): with_sizes('small', sizes)
    with pytest.raises(ValueError, match='max_steps must be int'): with_sizes('small', 'max_steps=x')
