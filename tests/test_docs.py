"The documentation site (`make docs`, tools/make_docs.py): every notebook has a page, in order, and no link is broken."
import importlib.util, re
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location('make_docs', ROOT/'tools'/'make_docs.py')
make_docs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_docs)


class Page(HTMLParser):
    "The ids, the link targets and the sidebar's link targets of one HTML page."
    def __init__(self, text):
        super().__init__()
        self.ids, self.hrefs, self.nav, self._in_nav = set(), [], [], 0   # depth: navigations nest
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if 'id' in a: self.ids.add(a['id'])
        if tag == 'nav': self._in_nav += 1
        if tag == 'a' and 'href' in a:
            self.hrefs.append(a['href'])
            if self._in_nav: self.nav.append(a['href'])

    def handle_endtag(self, tag):
        if tag == 'nav': self._in_nav -= 1


def parse(folder):
    return {p.name: Page(p.read_text(encoding='utf-8')) for p in Path(folder).glob('*.html')}

def broken_links(folder):
    "Every internal link (to a local page and/or an #anchor) whose page or anchor does not exist, as 'page: href'."
    pages, bad = parse(folder), []
    for name, page in pages.items():
        if name == '404.html': continue   # served at any missing path, so its links are absolute (/index.html)
        for href in page.hrefs:
            url = urlsplit(href)
            if url.scheme or url.netloc: continue      # external
            target = pages.get(unquote(url.path) or name)
            if target is None or (url.fragment and unescape(unquote(url.fragment)) not in target.ids):
                bad.append(f'{name}: {href}')
    return bad

def text(html):
    "The visible text of a page's article (not the navigation, search or theme scripts)."
    if '<article' in html: html = html[html.index('<article'):html.index('</article>')]
    html = re.sub(r'<div class="clipboard-copy-txt".*?</div>', '', html, flags=re.S)   # the copy button's hidden text
    return unescape(re.sub(r'<[^>]+>', '', html))


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    dest = tmp_path_factory.mktemp('docs')
    make_docs.build(root=ROOT, dest=dest)
    return dest

def test_every_notebook_has_a_page(site):
    expected = {make_docs.page_name(p) for p in make_docs.notebooks(ROOT)}
    assert len(expected) == 1 + len(list((ROOT/'nbs').glob('*.ipynb')))
    assert {p.name for p in site.glob('*.html')} == expected | {'404.html'}   # and mkdocs's not-found page
    assert (site/'search'/'search_index.json').is_file() and (site/'assets'/'mathjax'/'MathJax.js').is_file()

def test_navigation_lists_pages_in_notebook_order(site):
    order = [make_docs.page_name(p) for p in make_docs.notebooks(ROOT)]
    assert order[0] == 'index.html' and order[1:] == sorted(order[1:])
    for name, page in parse(site).items():
        if name == '404.html': continue
        pages = list(dict.fromkeys(h for h in page.nav if h.endswith('.html')))
        assert pages == order, name

def test_no_page_loads_anything_from_the_network(site):
    for page in site.glob('*.html'):
        html = page.read_text(encoding='utf-8')
        assert not re.search(r'(src|href)="(https?:)?//[^"]*(fonts\.googleapis|cdn|unpkg|jsdelivr)', html), page.name

def test_internal_links_resolve(site):
    assert broken_links(site) == []

def test_exported_functions_are_documented(site):
    mas = (site/'04_mas.html').read_text(encoding='utf-8')
    assert 'def fit_mas(' in text(mas)                    # the signature, as show_doc renders it
    assert 'id="fit_mas"' in mas and 'Train alignments for frozen' in text(mas)
    assert not re.search(r'class="c1">#\s?\|', mas)       # directive comments are stripped from shown code


def synthetic(folder):
    "A two-page site: an index with a hidden cell and broken links, and a notebook exporting one function."
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    index = nbformat.v4.new_notebook(cells=[
        code('#| hide\nSECRET_IMPORTS = 1'),
        md('# Home\n> summary\n\n## Part one\n\n[ok](nbs/00_a.ipynb#get_task), [ok too](#part-one), '
           '[missing page](nbs/01_missing.ipynb), [missing anchor](#nowhere), [web](https://example.org/x.html)')])
    nb = nbformat.v4.new_notebook(cells=[
        code('#| default_exp tasks'), md('# A\n> one function'),
        code('#| export\ndef get_task(name): "A task"\n\ndef _private(): pass')])
    (folder/'nbs').mkdir(parents=True)
    nbformat.write(index, folder/'index.ipynb')
    nbformat.write(nb, folder/'nbs'/'00_a.ipynb')
    return [folder/'index.ipynb', folder/'nbs'/'00_a.ipynb']

def test_checks_catch_broken_links_and_render_directives(tmp_path):
    make_docs.build(root=ROOT, dest=tmp_path/'site', paths=synthetic(tmp_path/'src'))
    assert sorted(broken_links(tmp_path/'site')) == ['index.html: #nowhere', 'index.html: 01_missing.html']
    home, a = (text((tmp_path/'site'/f).read_text(encoding='utf-8')) for f in ('index.html', '00_a.html'))
    assert 'SECRET_IMPORTS' not in home                   # `#| hide` cells are left out
    assert 'def get_task(name): "A task"' in a and '#| export' not in a   # exported code shown, directive not
    assert a.count('def get_task(') == 2                   # ... followed by its show_doc signature
    assert a.count('_private') == 1                        # private: its code only, no doc


# --- the site in a real browser: headless Chromium (Debian's package) driven by Playwright ----------------------------
import functools, http.server, shutil, threading

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')


@pytest.fixture(scope='module')
def served(site):
    "The built site over HTTP on a free port (search runs in a web worker, which file:// pages may not start)."
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope='module')
def browser():
    if CHROMIUM is None: pytest.skip('no chromium here: `apt-get install chromium` (.ci/run installs it)')
    playwright = pytest.importorskip('playwright.sync_api')
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=['--no-sandbox'])
        yield b
        b.close()


@pytest.mark.parametrize('name', ['index', '04_mas', '07a_study'])
def test_pages_render_in_a_browser_with_their_title_figures_and_typeset_math(browser, served, name):
    nb = nbformat.read(ROOT / ('index.ipynb' if name == 'index' else f'nbs/{name}.ipynb'), as_version=4)
    page = browser.new_page()
    page.goto(f"{served}/{name}.html", wait_until='load')
    assert make_docs.title(nb) in page.title()
    images = page.evaluate("[...document.querySelectorAll('article img')].map(i => i.complete && i.naturalWidth > 0)")
    assert all(images), f"{images.count(False)} of {len(images)} figures did not load"
    has_math = any(c.cell_type == 'markdown' and '$' in c.source for c in nb.cells)
    if has_math: page.wait_for_function("document.querySelectorAll('article .MathJax_CHTML').length > 0", timeout=30_000)
    prose = page.evaluate("""[...document.querySelectorAll('article .jp-RenderedMarkdown')].map(e => {
        const c = e.cloneNode(true); c.querySelectorAll('code, pre, script').forEach(x => x.remove()); return c.textContent }).join('\\n')""")
    assert not re.search(r'\$[^$\s][^$]*\$', prose), "raw $...$ left in the prose: math was not typeset"
    page.close()


def test_the_search_finds_fit_mas(browser, served):
    page = browser.new_page()
    page.goto(f"{served}/index.html", wait_until='load')
    page.fill('input.md-search__input', 'fit_mas')
    page.wait_for_selector('.md-search-result__item', timeout=30_000)
    links = page.evaluate("[...document.querySelectorAll('.md-search-result__item a')].map(a => a.getAttribute('href'))")
    assert any(l.split('?')[0].endswith('/04_mas.html') and l.endswith('#fit_mas') for l in links), links[:5]
    page.close()
