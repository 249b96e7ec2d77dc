"""The `mas-nb` command from a plain, non-editable install of the built wheel, under the oldest and the newest fastcore
that the requirements allow (`fastcore>=1.8`): the flags must be spelled the same under both (fastcore's own parser
writes `--max_steps` in its 1.x line and `--max-steps` from 2.0 on).

To stay fast, each fresh environment gets only the wheel and fastcore; torch, numpy and the rest come from the
environment running the tests, added to its path. Needs PyPI (for fastcore and the build requirements): skipped when
PyPI cannot be reached."""
import json
import os
import site
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ('setup.py', 'settings.ini', 'pyproject.toml', 'README.md', 'LICENSE', 'mas_nb')


def pip(*args, timeout=600):
    return subprocess.run([sys.executable, '-m', 'pip', '--disable-pip-version-check', *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    "The package built as a wheel, from a copy of its sources (no build/ or egg-info left in the checkout)."
    tmp = tmp_path_factory.mktemp('wheel')
    if pip('download', '--no-deps', '-q', '-d', str(tmp / 'probe'), 'fastcore', timeout=120).returncode:
        pytest.skip('PyPI cannot be reached: the non-editable install test needs fastcore and the build requirements')
    src = tmp / 'src'
    src.mkdir()
    for name in SOURCES:
        subprocess.run(['cp', '-r', str(ROOT / name), str(src / name)], check=True)
    r = pip('wheel', '--no-deps', '-q', '-w', str(tmp / 'dist'), str(src))
    assert r.returncode == 0, r.stdout + r.stderr
    return next((tmp / 'dist').glob('mas_nb-*.whl'))


def fresh_env(folder: Path, wheel: Path, fastcore: str) -> Path:
    "A new virtual environment holding the wheel and `fastcore`; everything else from this interpreter's site-packages."
    venv.create(folder, with_pip=False)
    py = folder / 'bin' / 'python'
    purelib = subprocess.run([str(py), '-c', "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    ours = dict.fromkeys([*site.getsitepackages(), sysconfig.get_paths()['purelib'], sysconfig.get_paths()['platlib']])
    # plain path lines, after the new environment's own site-packages: no .pth of ours runs there (so no editable mas_nb)
    (Path(purelib) / '_test_base_packages.pth').write_text('\n'.join(ours) + '\n')
    r = pip('--python', str(py), 'install', '-q', '--ignore-installed', '--no-deps', str(wheel), fastcore)
    assert r.returncode == 0, r.stdout + r.stderr
    return folder


@pytest.mark.parametrize('fastcore', ['fastcore==1.8.0', 'fastcore>=1.8'], ids=['oldest-fastcore', 'newest-fastcore'])
def test_installed_cli_spells_flags_the_same_under_every_fastcore(wheel, fastcore, tmp_path):
    env = fresh_env(tmp_path / 'venv', wheel, fastcore)
    clean = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONHOME')}
    mas_nb = str(env / 'bin' / 'mas-nb')
    # outside the checkout, whose mas_nb folder `python -c` would import from the working directory
    run = lambda *args: subprocess.run([mas_nb, *args], capture_output=True, text=True, timeout=600, env=clean, cwd=tmp_path)

    where = subprocess.run([str(env / 'bin' / 'python'), '-c', 'import fastcore, mas_nb; print(mas_nb.__file__, fastcore.__version__)'],
                           capture_output=True, text=True, env=clean, cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    path, version = where.stdout.split()
    assert Path(path).is_relative_to(env), f"mas_nb imported from {path}, not from the installed wheel"
    if fastcore.startswith('fastcore=='): assert version == fastcore.split('==')[1]
    print(f"fastcore {version}")

    r = run('--help')
    assert r.returncode == 0 and '\n  align ' in r.stdout, r.stdout + r.stderr
    r = run('align', '--help')
    assert r.returncode == 0, r.stderr
    assert '--max-steps' in r.stdout and '--n-train' in r.stdout and '--max_steps' not in r.stdout

    out = tmp_path / 'out'
    r = run('align', '--max-steps', '1', '--n-train', '64', '--k', '8', '--out', str(out))
    assert r.returncode == 0, r.stderr
    res = json.loads((out / 'align.json').read_text())
    assert res['config']['n_train'] == 64 and res['k'] == 8
