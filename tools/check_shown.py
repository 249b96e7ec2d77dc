"""List the exported names a notebook defines but never shows at work, and the cells whose printed output is lost.

A name is shown when a later code cell that is not an export cell uses it and has a saved output. A cell that prints
and ends in `;` loses what it printed: execnb (nbdev_test, `make outputs`) drops a silenced cell's stdout.
Usage: `python tools/check_shown.py nbs/04_mas.ipynb ...`; exits 1 when something is not shown.
"""
import ast, sys

from execnb.nbio import read_nb
from nbdev.process import extract_directives

EXPORTS = {'export', 'exports', 'exporti'}


def _code_cells(path): return [c for c in read_nb(path).cells if c.cell_type == 'code']


def _directives(cell): return set(extract_directives(cell, remove=False))


def _line(line):
    "One line as Python: a line magic's argument is code (`%time f()`), cell magics and shell lines are blanked."
    s = line.lstrip()
    if s.startswith(('%%', '!')): return ''
    return s.split(None, 1)[1] if s.startswith('%') and ' ' in s else '' if s.startswith('%') else line


def _code(src):
    "The cell's Python, so that `ast` can parse it."
    return '\n'.join(map(_line, src.splitlines()))


def exported_names(src):
    "Public functions and classes an export cell defines at top level."
    tree = ast.parse(_code(src))
    return [n.name for n in tree.body
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not n.name.startswith('_')]


def used_names(src):
    "Names a cell reads, as bare names or as attributes (`mas.fit_mas`, `result.save`)."
    try: tree = ast.parse(_code(src))
    except SyntaxError: return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | \
           {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}


def not_shown(path):
    "Exported names of the notebook at `path` with no later code cell that uses them and has an output."
    cells = _code_cells(path)
    # per cell: the names it shows (none for export cells and cells without output), each cell parsed once
    shows = [used_names(c.source) if c.get('outputs') and not _directives(c) & EXPORTS else set() for c in cells]
    return [name for i, c in enumerate(cells) if _directives(c) & {'export', 'exports'}
            for name in exported_names(c.source) if not any(name in s for s in shows[i + 1:])]


def silenced(path):
    "Indexes (among code cells) of the cells of the notebook at `path` that print and end in `;`."
    return [i for i, c in enumerate(_code_cells(path)) if c.source.rstrip().endswith(';') and 'print' in used_names(c.source)]


if __name__ == '__main__':
    bad = {p: m for p in sys.argv[1:] if (m := not_shown(p) + [f'code cell {i} prints and ends in ;' for i in silenced(p)])}
    for p, m in bad.items(): print(f'{p}: {len(m)} not shown: {", ".join(m)}')
    sys.exit(1 if bad else 0)
