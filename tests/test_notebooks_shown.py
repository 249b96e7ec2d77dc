"The tutorial notebooks show every exported piece at work (tools/check_shown.py), and the checker sees what is missing."
import importlib.util, json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location('check_shown', ROOT/'tools'/'check_shown.py')
check_shown = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_shown)

TUTORIALS = ['02_models', '03_interventions', '04_mas', '06_experiments', '07_llm']


@pytest.mark.parametrize('name', TUTORIALS)
def test_every_export_is_shown(name):
    assert check_shown.not_shown(ROOT/'nbs'/f'{name}.ipynb') == []


@pytest.mark.parametrize('path', sorted((ROOT/'nbs').glob('*.ipynb')) + [ROOT/'index.ipynb'], ids=lambda p: p.stem)
def test_no_cell_loses_what_it_prints(path):
    assert check_shown.silenced(path) == []


def _nb(tmp_path, *cells):
    cell = lambda src, out: dict(cell_type='code', source=src, metadata={}, outputs=out, execution_count=None)
    path = tmp_path/'t.ipynb'
    path.write_text(json.dumps(dict(cells=[cell(s, o) for s, o in cells], metadata={}, nbformat=4, nbformat_minor=5)))
    return path


def test_checker_finds_what_is_not_shown(tmp_path):
    shown = [dict(output_type='stream', name='stdout', text='1\n')]
    path = _nb(tmp_path, ('#| export\ndef used(): ...\ndef silent(): ...\ndef _private(): ...\nclass Shown: ...', []),
               ('used()\n%time Shown()', shown),     # magics are read as code
               ('silent()', []),                      # called, but nothing to see
               ('#| export\ndef later(): return silent()', []))
    assert check_shown.not_shown(path) == ['silent', 'later']
    assert check_shown.silenced(_nb(tmp_path, ('print(1)\nplot();', []), ('plot();', []), ('print(2)', []))) == [0]
