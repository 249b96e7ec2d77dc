"""Render index.ipynb and nbs/*.ipynb, as committed, into a static HTML site in _docs/ (`make docs`).

Why nbconvert and not Quarto: nbdev_docs needs Quarto, which cannot be installed on our machines. nbconvert is on
PyPI, comes with JupyterLab (in the dev extra), and its `basic` template already turns a notebook into HTML with
markdown, math, highlighted code and embedded (base64) figures; all that is left is a page shell with a sidebar.

What nbdev_docs would add, done here: `#| hide` cells are dropped, `#|` directive lines are stripped from shown code,
`#| echo: false` hides a cell's code, and after every `#| export` cell come the signature and docstring of the public
functions and classes it defines, rendered by nbdev's own `show_doc` (BasicMarkdownRenderer) unless the notebook
already calls `show_doc` on them. Backticked names of documented objects link to their entries.
Nothing is executed: the package is only imported, to read signatures (`make outputs` refreshes outputs)."""
import argparse, ast, copy, html, importlib, re, sys, time
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter
from pygments.formatters import HtmlFormatter

ROOT = Path(__file__).resolve().parent.parent
LIB = 'mas_nb'

CSS = """
body { margin: 0; font: 16px/1.55 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328; }
nav { position: fixed; top: 0; bottom: 0; width: 15rem; overflow-y: auto; padding: 1.2rem 1rem;
      background: #f6f8fa; border-right: 1px solid #d0d7de; box-sizing: border-box; font-size: 15px; }
nav .home { font-weight: 700; font-size: 1.25rem; color: #1f2328; text-decoration: none; }
nav ol { list-style: none; padding: 0; margin: 1rem 0; }
nav li a { display: block; padding: .3rem .5rem; border-radius: 6px; color: #1f2328; text-decoration: none; }
nav li a:hover { background: #eaeef2; }
nav li a.current { background: #ddf4ff; color: #0969da; font-weight: 600; }
nav .num { color: #57606a; font-variant-numeric: tabular-nums; margin-right: .35rem; }
main { margin-left: 15rem; padding: 1.5rem 3rem 4rem; max-width: 56rem; }
a { color: #0969da; }
h1, h2, h3 { line-height: 1.25; } h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .3rem; margin-top: 2rem; }
.anchor-link { visibility: hidden; margin-left: .3rem; text-decoration: none; }
h1:hover .anchor-link, h2:hover .anchor-link, h3:hover .anchor-link { visibility: visible; }
blockquote { margin: 0 0 1rem; padding: 0 1rem; color: #57606a; border-left: 4px solid #d0d7de; font-size: 1.1rem; }
code { font: 14px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
:not(pre) > code { background: #eff1f3; padding: .1em .2em; border-radius: 4px; }
pre { font: 13.5px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; margin: 0; padding: .7rem 1rem;
      overflow-x: auto; }
.input_area, .rendered_html .highlight { background: #f6f8fa; border: 1px solid #d0d7de; border-radius: 6px;
      margin: .8rem 0 .3rem; }
.output_area pre { border-left: 3px solid #d0d7de; color: #24292f; }
.output_stderr pre { border-left-color: #d4a72c; background: #fff8c5; }
.output_area img { max-width: 100%; height: auto; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 15px; }
th, td { border: 1px solid #d0d7de; padding: .35rem .7rem; text-align: left; }
th { background: #f6f8fa; } tr:nth-child(even) td { background: #fafbfc; }
.celltag_api { border-top: 2px solid #0969da; margin-top: 1.5rem; }
.celltag_api h3 { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; margin: .6rem 0 0; }
@media (max-width: 800px) { nav { position: static; width: auto; border: 0; } main { margin: 0; padding: 1rem; } }
"""

MATHJAX = """<script>window.MathJax = {tex2jax: {inlineMath: [['$','$'], ['\\\\(','\\\\)']], processEscapes: true}};</script>
<script defer src="%s"></script>"""


def notebooks(root=ROOT):
    "The site's notebooks in reading order: the landing page, then nbs/ by file name."
    return [root/'index.ipynb'] + sorted((root/'nbs').glob('*.ipynb'))

def page_name(nb_path): return 'index.html' if nb_path.stem == 'index' else f'{nb_path.stem}.html'

def directives(cell):
    "The cell's `#| key value` lines as {key: value} (nbdev's directive syntax)."
    lines = cell.source.splitlines()
    return {k.strip(): v.strip() for l in lines if l.startswith('#|')
            for k, _, v in [l[2:].strip().partition(' ')]}

def strip_directives(src): return '\n'.join(l for l in src.splitlines() if not l.startswith('#|')).strip()

def title(nb):
    "Text of the notebook's first `# ` heading."
    for c in nb.cells:
        m = c.cell_type == 'markdown' and re.search(r'^# (.+)$', c.source, re.M)
        if m: return m.group(1).strip()
    return 'Untitled'

def _doc_name(node):
    "`Class.method` for a fastcore `@patch` method (typed `self`), else the plain name."
    patched = any(ast.unparse(d).split('(')[0] == 'patch' for d in getattr(node, 'decorator_list', []))
    args = getattr(node, 'args', None)
    if patched and args and args.args and args.args[0].annotation is not None:
        return f'{ast.unparse(args.args[0].annotation)}.{node.name}'
    return node.name

def public_defs(src):
    "Names of the public functions, classes and patched methods defined at the top of `src` (what nbdev documents)."
    try: tree = ast.parse(strip_directives(src))
    except SyntaxError: return []
    defs = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return [_doc_name(n) for n in tree.body if isinstance(n, defs) and not n.name.startswith('_')]

def lookup(mod, name):
    "The object `name` (possibly `Class.method`) in `mod`, or None."
    obj = mod
    for part in name.split('.'): obj = getattr(obj, part, None)
    return obj

def shown_docs(nb):
    "Names the notebook already passes to `show_doc` itself."
    return set(re.findall(r'show_doc\(\s*([\w.]+)', '\n'.join(c.source for c in nb.cells if c.cell_type == 'code')))

def doc_markdown(obj, name):
    "nbdev's `show_doc` markdown for `obj`, without its rule and source link (its Quarto link syntax needs Quarto)."
    from nbdev.showdoc import BasicMarkdownRenderer
    md = BasicMarkdownRenderer(obj, name=name)._repr_markdown_()
    md = re.sub(r'\A---\s*\n', '', md)
    md = re.sub(r'\A\[source\]\(.*?\)\{.*?\}\s*\n', '', md)
    if isinstance(obj, type): md = md.replace('```python\ndef ', '```python\nclass ', 1)  # fastcore writes `def`
    return md

def module_of(nb):
    "The module a notebook exports to (`#| default_exp`), imported from this checkout; None if it exports nothing."
    for c in nb.cells:
        name = c.cell_type == 'code' and directives(c).get('default_exp')
        if name: return importlib.import_module(f'{LIB}.{name}')

def title_first(cells):
    "The `# Title` / `> summary` cell moved to the top (nbdev's front matter), ahead of the import cells."
    i = next((i for i, c in enumerate(cells) if c.cell_type == 'markdown' and c.source.startswith('# ')), 0)
    return [cells[i]] + cells[:i] + cells[i + 1:]

def prepare(nb):
    "A copy of `nb` as the site shows it: title first, hidden cells dropped, directives stripped, API docs after exports."
    nb, mod, shown, cells = copy.deepcopy(nb), module_of(nb), shown_docs(nb), []
    nb.cells = title_first(nb.cells)
    for cell in nb.cells:
        d = directives(cell) if cell.cell_type == 'code' else {}
        if 'hide' in d or d.get('include:') == 'false': continue
        if cell.cell_type == 'code':
            cell.source = strip_directives(cell.source)
            if d.get('echo:') == 'false': cell.metadata['transient'] = {'remove_source': True}
            if not cell.source and not cell.get('outputs'): continue
        cells.append(cell)
        if mod is not None and ('export' in d or 'exports' in d):
            for name in (n for n in public_defs(cell.source) if n not in shown and lookup(mod, n) is not None):
                cells.append(nbformat.v4.new_markdown_cell(doc_markdown(lookup(mod, name), name),
                                                           metadata={'tags': ['api'], 'api_name': name}))
    nb.cells = cells
    return nb

def api_index(nbs):
    "{name: page} for every object documented on some page (the targets of backtick links)."
    return {c.metadata.api_name: page for page, nb in nbs.items() for c in nb.cells if 'api_name' in c.metadata}

def fix_links(body, api):
    "Links to notebooks point at their pages (the site is flat); `name` in prose links to its API entry."
    body = re.sub(r'href="(?![a-z]+:)(?:[^"#]*/)?([^"/#]+)\.ipynb', r'href="\1.html', body)
    link = lambda m: f'<a href="{api[m[1]]}#{m[1]}">{m[0]}</a>' if m[1] in api else m[0]
    parts = re.split(r'(<pre>.*?</pre>|<h\d.*?</h\d>|<a .*?</a>)', body, flags=re.S)  # no links inside these
    return ''.join(p if i % 2 else re.sub(r'<code>([A-Za-z_][\w.]*)</code>', link, p) for i, p in enumerate(parts))

def sidebar(pages, current):
    "The navigation: every page in reading order, the current one marked."
    items = []
    for page, text in pages.items():
        num, _, rest = page.partition('_')
        label = f'<span class="num">{num}</span>{html.escape(text)}' if rest else 'Overview'
        cls = ' class="current"' if page == current else ''
        items.append(f'<li><a href="{page}"{cls}>{label}</a></li>')
    return f'<nav><a class="home" href="index.html">{LIB}</a>\n<ol>\n' + '\n'.join(items) + '\n</ol></nav>'

def page_html(body, page, pages, mathjax):
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<title>{html.escape(pages[page])} · {LIB}</title>\n'
            f'<style>{CSS}{HtmlFormatter().get_style_defs(".highlight")}</style>\n'
            f'{MATHJAX % mathjax}\n</head><body>\n{sidebar(pages, page)}\n<main>\n{body}\n</main>\n'
            f'</body></html>\n')

def _trusted(html):
    "Replaces nbconvert's `clean_html`: bleach's sanitizing is slow and our own notebooks need none."
    return html.decode() if isinstance(html, bytes) else str(html)

def build(root=ROOT, dest=None, paths=None, mathjax=None):
    """Write one page per notebook (and nothing else) into `dest` (default `root/_docs`); returns the page paths.
    `mathjax`: URL of MathJax 2 (default: nbconvert's CDN; offline, e.g. Debian's libjs-mathjax)."""
    root = Path(root)
    dest = Path(dest) if dest else root/'_docs'
    if str(root) not in sys.path: sys.path.insert(0, str(root))  # document this checkout's modules
    nbs = {page_name(p): prepare(nbformat.read(p, as_version=4)) for p in (paths or notebooks(root))}
    pages = {page: title(nb) for page, nb in nbs.items()}
    api = api_index(nbs)
    exporter = HTMLExporter(template_name='basic', exclude_input_prompt=True, exclude_output_prompt=True,
                            filters={'clean_html': _trusted})
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for page, nb in nbs.items():
        body, _ = exporter.from_notebook_node(nb)
        html_ = page_html(fix_links(body, api), page, pages, mathjax or exporter.mathjax_url)
        (dest/page).write_text(html_, encoding='utf-8')
        out.append(dest/page)
    return out

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--dest', default=str(ROOT/'_docs'), help='folder to write the site to')
    ap.add_argument('--mathjax', help="MathJax 2 URL to load instead of nbconvert's CDN one, e.g. "
                    "file:///usr/share/javascript/mathjax/MathJax.js?config=TeX-AMS_CHTML for offline reading")
    args = ap.parse_args()
    start = time.time()
    written = build(dest=args.dest, mathjax=args.mathjax)
    print(f'wrote {len(written)} pages to {args.dest} in {time.time() - start:.1f}s; open {Path(args.dest)/"index.html"}')
