"""Re-execute notebooks in place and write their outputs back (`make outputs`), the way `nbdev_test` runs them.

Each notebook runs top to bottom in execnb's in-process shell (the one nbdev_test uses), from its own folder, with the
trained models from the cache ($MAS_NB_CACHE). Cells flagged with one of settings.ini's `tst_flags` (`#| slow`) or
`#| eval: false` are not run and keep the outputs of their last real run, unless `--flags slow` asks for them.
The first error stops the notebook and leaves its file untouched. Written notebooks are then cleaned by nbdev_clean,
which keeps outputs (settings.ini: clear_all = False) and drops execution counts and cell metadata."""
import argparse, sys, time
from pathlib import Path

from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell
from fastcore.xtras import working_directory
from nbdev.clean import nbdev_clean
from nbdev.config import get_config
from nbdev.process import extract_directives


def skipper(flags):
    "The `preproc` for execnb's `run_all`: True (skip, outputs kept) for markdown, unflagged-for cells and eval: false."
    def skip(cell):
        if cell.cell_type != 'code': return True
        d = extract_directives(cell, remove=False)
        if d.get('eval:', [''])[0].lower() == 'false': return True
        return bool((set(get_config().tst_flags.split()) - set(flags)) & d.keys())
    return skip

def execute(path, flags=()):
    "Run the notebook at `path` and write it back with its new outputs; raises on the first failing cell."
    path = Path(path).resolve()
    nb, shell = read_nb(path), CaptureShell(path)
    with working_directory(path.parent):
        try: shell.run_all(nb, exc_stop=True, preproc=skipper(flags))
        except Exception: sys.stderr.write(shell.prettytb(fname=path) + '\n'); raise
    write_nb(nb, path)
    nbdev_clean(fname=str(path))

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('notebooks', nargs='+', help='notebooks to execute, in place')
    ap.add_argument('--flags', default='', help='tst_flags whose cells run too, e.g. "slow"')
    args = ap.parse_args()
    for nb in args.notebooks:
        start = time.time()
        try: execute(nb, args.flags.split())
        except Exception as e: sys.exit(f'{nb}: failed, left unchanged: {type(e).__name__}: {e}')
        print(f'{nb}: outputs written in {time.time() - start:.0f}s')
