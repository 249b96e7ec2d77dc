"Atomic writes: no temporary file survives a killed writer, the folder is fsynced, permissions are kept; memory guards."
import json
import os
import signal
import subprocess
import sys
import time

import pytest

import mas_nb.files as files
from mas_nb.files import TooLarge, atomic_write, check_memory, write_json

SLOW_WRITER = """
import sys, time
from mas_nb.files import atomic_write
def write(f):
    f.write(b'{"partial": ')
    f.flush()
    print('writing', flush=True)
    time.sleep(60)
atomic_write(sys.argv[1], write)
"""


def temporaries(folder): return sorted(p.name for p in folder.iterdir() if p.name.endswith('.tmp'))


def test_kill_9_leaves_a_temporary_that_the_next_write_removes(tmp_path):
    target = tmp_path / 'result.json'
    write_json(target, {'old': 1})
    writer = subprocess.Popen([sys.executable, '-c', SLOW_WRITER, str(target)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, 'PYTHONPATH': os.pathsep.join(sys.path)})
    try: assert writer.stdout.readline().strip() == 'writing'
    finally: writer.send_signal(signal.SIGKILL); writer.wait()
    left = temporaries(tmp_path)
    assert left == [f".result.json.{writer.pid}.{left[0].split('.')[-2]}.tmp"]   # named after the dead writer
    assert json.loads(target.read_text()) == {'old': 1}                          # the old file is intact
    write_json(tmp_path / 'other.json', {})                                       # another target's write keeps it
    assert temporaries(tmp_path) == left
    write_json(target, {'new': 2})
    assert temporaries(tmp_path) == [] and json.loads(target.read_text()) == {'new': 2}


def test_temporaries_of_live_writers_are_kept(tmp_path):
    live = tmp_path / f".a.json.{os.getppid()}.abc123de.tmp"   # a running process (our parent) could be writing it
    live.write_text('')
    write_json(tmp_path / 'a.json', 1)
    assert live.exists()


def test_permissions_are_kept_and_new_files_follow_the_umask(tmp_path):
    path = write_json(tmp_path / 'a.json', 1)
    umask = os.umask(0); os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    path.chmod(0o600)
    write_json(path, 2)
    assert path.stat().st_mode & 0o777 == 0o600 and json.loads(path.read_text()) == 2
    path.chmod(0o640)
    atomic_write(path, lambda f: f.write(b'3'))
    assert path.stat().st_mode & 0o777 == 0o640


def test_the_folder_is_fsynced_after_the_rename(tmp_path, monkeypatch):
    synced, renamed = [], []
    real_fsync, real_replace = os.fsync, os.replace
    def fsync(fd):
        synced.append((os.path.isdir(f'/proc/self/fd/{fd}'), bool(renamed))); real_fsync(fd)
    def replace(a, b): renamed.append(b); real_replace(a, b)
    monkeypatch.setattr(os, 'fsync', fsync); monkeypatch.setattr(os, 'replace', replace)
    write_json(tmp_path / 'a.json', 1)
    assert synced == [(False, False), (True, True)]   # the file before the rename, its folder after


def test_bad_targets_and_writers(tmp_path):
    with pytest.raises(ValueError, match='path must name a file'): atomic_write(tmp_path, lambda f: None)
    with pytest.raises(TypeError, match='write must be a callable'): atomic_write(tmp_path / 'a', b'x')
    (tmp_path / 'file').write_text('')
    with pytest.raises(ValueError, match='cannot create its folder'): write_json(tmp_path / 'file' / 'a.json', 1)
    with pytest.raises(TypeError, match='data cannot be written as JSON'): write_json(tmp_path / 'a.json', {'a': {1, 2}})
    assert not (tmp_path / 'a.json').exists()


def test_memory_guard(monkeypatch):
    monkeypatch.setattr(files, 'available_memory', lambda: 2 ** 30)
    check_memory(2 ** 29, 'half', 'fine')
    with pytest.raises(TooLarge, match=r'x needs about 2\.0 GiB of memory but 1\.0 GiB is available; lower n') as err:
        check_memory(2 ** 31, 'x', 'lower n')
    assert isinstance(err.value, ValueError) and isinstance(err.value, MemoryError)
    monkeypatch.undo()
    assert files.available_memory() > 2 ** 20
