"""Render index.ipynb and nbs/*.ipynb, as committed, into a static site in _docs/ (`make docs`) with mkdocs-material
(navigation, search, light and dark themes) and mkdocs-jupyter (notebooks as pages).

Why not nbdev_docs: it needs Quarto, which cannot be installed on our machines. What nbdev_docs would add is done
here before mkdocs sees the notebooks (`prepare`): `#| hide` cells are dropped, `#|` directive lines are stripped from
shown code, `#| echo: false` hides a cell's code, and after every `#| export` cell come the signature and docstring
of the public functions and classes it defines, rendered by nbdev's own `show_doc` (BasicMarkdownRenderer) unless the
notebook already calls `show_doc` on them. Math is typeset by a local MathJax copied into the site, and the theme
loads no web fonts: the site works without network access. Nothing is executed (`make outputs` refreshes outputs)."""
import argparse, ast, copy, importlib, os, re, sys, time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
LIB = 'mas_nb'

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
        if cell.cell_type == 'markdown': cell.source = page_links(cell.source)
        cells.append(cell)
        if mod is not None and ('export' in d or 'exports' in d):
            for name in (n for n in public_defs(cell.source) if n not in shown and lookup(mod, n) is not None):
                cells.append(nbformat.v4.new_markdown_cell(doc_markdown(lookup(mod, name), name),
                                                           metadata={'tags': ['api'], 'api_name': name}))
    nb.cells = cells
    return nb

def page_links(src):
    "Markdown links to notebooks point at their pages: the site is flat (nbs/04_mas.ipynb is 04_mas.html)."
    return re.sub(r'\]\((?![a-z]+:)(?:[^)#]*/)?([^)/#]+)\.ipynb', r'](\1.html', src)

MATHJAX_DIRS = ('/usr/share/javascript/mathjax', '/usr/share/nodejs/mathjax')  # Debian's libjs-mathjax (MathJax 2)

def mathjax_source():
    "A local MathJax 2 to ship with the site (math must render offline), or an error saying how to get one."
    for d in MATHJAX_DIRS:
        if (Path(d) / 'MathJax.js').is_file(): return Path(d)
    raise SystemExit("no local MathJax 2 found (looked in " + ', '.join(MATHJAX_DIRS) + "): `apt-get install libjs-mathjax`")

def mkdocs_config(pages, site_dir):
    "mkdocs.yml for mkdocs-material and mkdocs-jupyter: one page per notebook, search, light and dark themes, no CDN."
    nav = [{('Overview' if page == 'index.ipynb' else text): page} for page, text in pages.items()]
    toggle = lambda scheme, icon, name: dict(media=f'(prefers-color-scheme: {"light" if scheme == "default" else "dark"})', scheme=scheme,
                                             primary='indigo', toggle=dict(icon=icon, name=name))
    return dict(site_name=LIB, site_dir=str(site_dir), docs_dir='docs', use_directory_urls=False, nav=nav,
                theme=dict(name='material', font=False,   # no Google fonts: the site works offline
                           features=['navigation.instant', 'navigation.top', 'search.highlight', 'content.code.copy'],
                           palette=[toggle('default', 'material/weather-night', 'dark theme'), toggle('slate', 'material/weather-sunny', 'light theme')]),
                plugins=['search', {'mkdocs-jupyter': dict(execute=False, include_source=False, no_prompt=True,
                                                           custom_mathjax_url='assets/mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe')}])

def repair_toc(page: str) -> str:
    """The page's tables of contents (the sidebar's and the primary navigation's copy) pointing at its headings' ids.
    mkdocs-jupyter slugs the TOC its own way, which differs from nbconvert's heading ids for headings of code alone
    (`## `reproduce``: '#_1'); both list the same headings in the same order, so the i-th entry of each copy links
    to the i-th heading (the page is left alone where the counts do not match)."""
    if '<article' not in page: return page
    ids = re.findall(r'<h[2-6] id="([^"]*)"', page[page.index('<article'):page.index('</article>')])
    entry = r'<a href="#[^"]*" class="md-nav__link">'
    n = len(re.findall(entry, page))
    if not ids or n % len(ids): return page
    count = iter(range(n))
    return re.sub(entry, lambda _: f'<a href="#{ids[next(count) % len(ids)]}" class="md-nav__link">', page)

def build(root=ROOT, dest=None, paths=None):
    """Build the site into `dest` (default `root/_docs`) with mkdocs: the notebooks as the site shows them (`prepare`)
    and a local MathJax go into `_docs_build/docs`, then `mkdocs build`. Returns the HTML page paths, one per notebook."""
    import shutil, subprocess, yaml
    root = Path(root)
    dest = Path(dest).resolve() if dest else root/'_docs'
    if str(root) not in sys.path: sys.path.insert(0, str(root))  # document this checkout's modules
    work = root/'_docs_build'
    shutil.rmtree(work, ignore_errors=True)
    (work/'docs').mkdir(parents=True)
    nbs = {p.name: prepare(nbformat.read(p, as_version=4)) for p in (paths or notebooks(root))}
    for name, nb in nbs.items(): nbformat.write(nb, work/'docs'/name)
    shutil.copytree(mathjax_source(), work/'docs'/'assets'/'mathjax')
    pages = {name: title(nb) for name, nb in nbs.items()}
    (work/'mkdocs.yml').write_text(yaml.safe_dump(mkdocs_config(pages, dest), sort_keys=False, allow_unicode=True))
    env = {**os.environ, 'NO_MKDOCS_2_WARNING': '1'}   # material's notice about a future mkdocs 2, printed on every build
    subprocess.run([sys.executable, '-m', 'mkdocs', 'build', '--quiet', '-f', str(work/'mkdocs.yml')], check=True, env=env)
    pages = [dest/page_name(Path(name)) for name in nbs]
    for page in pages: page.write_text(repair_toc(page.read_text(encoding='utf-8')), encoding='utf-8')
    return pages

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--dest', default=str(ROOT/'_docs'), help='folder to write the site to')
    args = ap.parse_args()
    start = time.time()
    written = build(dest=args.dest)
    print(f'wrote {len(written)} pages to {args.dest} in {time.time() - start:.1f}s; serve it with `python -m http.server -d {args.dest}`')
