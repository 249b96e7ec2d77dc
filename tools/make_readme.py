"""Write README.md from the landing notebook index.ipynb (Quarto is not available here).

Markdown cells are copied; code cells become fenced Python blocks followed by their text output.
Cells marked `#| hide` are left out and `#|` directives are dropped."""
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def _text_output(out):
    if out.get('output_type') == 'stream': return ''.join(out.get('text', ''))
    return ''.join(out.get('data', {}).get('text/plain', ''))

def _cell_md(cell):
    src = ''.join(cell['source'])
    if cell['cell_type'] == 'markdown': return src
    lines = src.splitlines()
    if any(l.strip() in ('#| hide', '#|hide') for l in lines): return ''
    code = '\n'.join(l for l in lines if not l.startswith('#|')).strip()
    if not code: return ''
    outs = ''.join(_text_output(o) for o in cell.get('outputs', [])).rstrip()
    return f'```python\n{code}\n```' + (f'\n\n```\n{outs}\n```' if outs else '')

def render(nb_path=ROOT/'index.ipynb'):
    cells = json.loads(Path(nb_path).read_text(encoding='utf-8'))['cells']
    parts = [p for p in map(_cell_md, cells) if p.strip()]
    return '<!-- Generated from index.ipynb by tools/make_readme.py: edit the notebook, not this file. -->\n\n' + '\n\n'.join(parts) + '\n'

if __name__ == '__main__':
    (ROOT/'README.md').write_text(render(), encoding='utf-8')
