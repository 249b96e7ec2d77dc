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
        self.ids, self.hrefs, self.nav, self._in_nav = set(), [], [], False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if 'id' in a: self.ids.add(a['id'])
        if tag == 'nav': self._in_nav = True
        if tag == 'a' and 'href' in a:
            self.hrefs.append(a['href'])
            if self._in_nav: self.nav.append(a['href'])

    def handle_endtag(self, tag):
        if tag == 'nav': self._in_nav = False


def parse(folder):
    return {p.name: Page(p.read_text(encoding='utf-8')) for p in Path(folder).glob('*.html')}

def broken_links(folder):
    "Every internal link (to a local page and/or an #anchor) whose page or anchor does not exist, as 'page: href'."
    pages, bad = parse(folder), []
    for name, page in pages.items():
        for href in page.hrefs:
            url = urlsplit(href)
            if url.scheme or url.netloc: continue      # external
            target = pages.get(unquote(url.path) or name)
            if target is None or (url.fragment and unescape(unquote(url.fragment)) not in target.ids):
                bad.append(f'{name}: {href}')
    return bad

def text(html): return unescape(re.sub(r'<[^>]+>', '', html))


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    dest = tmp_path_factory.mktemp('docs')
    make_docs.build(root=ROOT, dest=dest)
    return dest

def test_every_notebook_has_a_page(site):
    expected = {make_docs.page_name(p) for p in make_docs.notebooks(ROOT)}
    assert len(expected) == 1 + len(list((ROOT/'nbs').glob('*.ipynb')))
    assert {p.name for p in site.glob('*.html')} == expected

def test_sidebar_lists_pages_in_notebook_order(site):
    order = [make_docs.page_name(p) for p in make_docs.notebooks(ROOT)]
    assert order[0] == 'index.html' and order[1:] == sorted(order[1:])
    for name, page in parse(site).items():
        assert [h for h in page.nav if h != 'index.html'] == order[1:], name

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
        md('# Home\n> summary\n\n## Part one\n\n[ok](nbs/00_a.ipynb#get_task), [ok too](#Part-one), '
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
