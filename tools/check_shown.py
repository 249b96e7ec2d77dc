"""List the exported names a notebook defines but never shows at work, and the cells whose printed output is lost.

A name is shown when a later code cell that is not an export cell uses it and has a saved output. A cell that prints
and ends in `;` loses what it printed: execnb (nbdev_test, `make outputs`) drops a silenced cell's stdout.
Usage: `python tools/check_shown.py nbs/04_mas.ipynb ...`; exits 1 when something is not shown.
"""
import ast, json, re, sys
from pathlib import Path

_DIRECTIVE = re.compile(r'^\s*#\|\s*(\w+)', re.M)


def _source(cell): return ''.join(cell['source']) if isinstance(cell['source'], list) else cell['source']


def _directives(src): return set(_DIRECTIVE.findall(src))


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
    cells = [c for c in json.loads(Path(path).read_text())['cells'] if c['cell_type'] == 'code']
    missing = []
    for i, cell in enumerate(cells):
        src = _source(cell)
        if not _directives(src) & {'export', 'exports'}: continue
        for name in exported_names(src):
            later = (c for c in cells[i + 1:] if not _directives(_source(c)) & {'export', 'exports', 'exporti'})
            if not any(c.get('outputs') and name in used_names(_source(c)) for c in later): missing.append(name)
    return missing


def silenced(path):
    "Indexes (among code cells) of the cells of the notebook at `path` that print and end in `;`."
    cells = [_source(c) for c in json.loads(Path(path).read_text())['cells'] if c['cell_type'] == 'code']
    return [i for i, src in enumerate(cells) if src.rstrip().endswith(';') and 'print' in used_names(src)]


if __name__ == '__main__':
    bad = {p: m for p in sys.argv[1:] if (m := not_shown(p) + [f'code cell {i} prints and ends in ;' for i in silenced(p)])}
    for p, m in bad.items(): print(f'{p}: {len(m)} not shown: {", ".join(m)}')
    sys.exit(1 if bad else 0)
