"""Real English prose for language-model evaluation: Wikipedia articles shipped in gensim's wheel.

Source
    ``gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2``
    inside the PyPI wheel of gensim (4.x): a shortened 2016 dump of the English Wikipedia's first
    pages (``MediaWiki 1.27.0-wmf.22``). gensim is only used as a carrier for the file; it is
    located with :func:`importlib.util.find_spec` and never imported, so
    ``pip install --no-deps gensim`` is enough. The file is read with the standard library
    (``bz2``, ``xml.etree``) offline.

Licence
    Wikipedia text is licensed CC BY-SA 3.0 (https://creativecommons.org/licenses/by-sa/3.0/),
    authors: the Wikipedia contributors of each article (history at
    ``https://en.wikipedia.org/wiki/<title>?action=history``). quantmoo does not redistribute
    the text; it reads it from the installed gensim wheel. Article titles travel with the data
    (:class:`Article`) so results can name what they were measured on.

Cleaning
    Only main-namespace (``ns 0``) pages that are not redirects are kept. :func:`strip_markup`
    removes templates (``{{...}}``, nested), tables (``{|...|}``), comments, ``<ref>`` notes and
    other HTML tags, file/image/category links, bold/italic quotes and headings; internal links
    keep their label, external links their text. Lists keep their text. Paragraphs are joined by
    a blank line. The result is plain prose with occasional leftovers of rare markup.
"""
from __future__ import annotations

import bz2
import html
import importlib.util
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Tuple

from ..errors import QuantmooError

__all__ = ["Article", "enwiki_path", "load_articles", "strip_markup", "ENWIKI_FILE", "LICENCE"]

ENWIKI_FILE = "test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
LICENCE = "Wikipedia text, CC BY-SA 3.0, authors: the Wikipedia contributors (via the gensim wheel's test data)"
_MISSING = ("The evaluation text (Wikipedia articles) comes from the gensim wheel; install it with: "
            "pip install --no-deps gensim")


@dataclass(frozen=True)
class Article:
    """One cleaned Wikipedia article."""

    title: str
    text: str


def enwiki_path() -> Path:
    """The bz2 XML dump inside the installed gensim package (gensim is not imported)."""
    try:
        spec = importlib.util.find_spec("gensim")
    except (ImportError, ValueError):
        spec = None
    for loc in (spec.submodule_search_locations or []) if spec is not None else []:
        p = Path(loc) / ENWIKI_FILE
        if p.is_file():
            return p
    raise QuantmooError(_MISSING)


_NESTED = [re.compile(r"\{\{[^{}]*\}\}"),                         # innermost template
           re.compile(r"\{\|(?:(?!\{\|)[^}]|\}(?!\}))*?\|\}", re.S),  # innermost table
           re.compile(r"\[\[(?:File|Image|Category|Media):[^\[\]]*\]\]", re.I)]
_LINK = re.compile(r"\[\[(?:[^\[\]|]*\|)?([^\[\]|]*)\]\]")
_SUBS = [
    (re.compile(r"<!--.*?-->", re.S), ""),
    (re.compile(r"<ref[^>/]*/>", re.I), ""),
    (re.compile(r"<ref[^>]*>.*?</ref>", re.I | re.S), ""),
    (re.compile(r"<(math|gallery|timeline|score|syntaxhighlight|source)[^>]*>.*?</\1>", re.I | re.S), ""),
    (re.compile(r"</?[a-zA-Z][^>]*>"), ""),
    (re.compile(r"\[(?:https?|ftp)://[^\s\]]+\s*([^\]]*)\]"), r"\1"),
    (re.compile(r"'{2,}"), ""),
    (re.compile(r"^=+\s*(.*?)\s*=+\s*$", re.M), ""),            # headings
    (re.compile(r"^[*#:;]+\s*", re.M), ""),                     # list markers
    (re.compile(r"^[|!].*$", re.M), ""),                        # table remnants
    (re.compile(r"^__[A-Z]+__\s*$", re.M), ""),
    (re.compile(r"\( *[,;]? *\)"), ""),                         # "( )" left by removed templates
    (re.compile(r"[ \t]+"), " "),
    (re.compile(r" *\n *"), "\n"),
    (re.compile(r"\n{3,}"), "\n\n"),
]


def strip_markup(wikitext: str) -> str:
    """Plain text of one article's wiki markup (see the module notes)."""
    s = wikitext
    for pat in _NESTED:
        while True:
            s, n = pat.subn("", s)
            if not n:
                break
        s = _LINK.sub(r"\1", s) if pat is _NESTED[1] else s  # links inside File: captions first
    while True:
        s, n = _LINK.subn(r"\1", s)
        if not n:
            break
    s = html.unescape(s)
    for pat, rep in _SUBS:
        s = pat.sub(rep, s)
    return s.strip()


@lru_cache(maxsize=2)
def load_articles(path=None, min_chars: int = 2000) -> Tuple[Article, ...]:
    """Cleaned main-namespace articles of the dump, in file order.

    Parameters
    ----------
    path : path, optional
        The ``.xml.bz2`` dump (default: :func:`enwiki_path`).
    min_chars : int, default 2000
        Articles with less cleaned text are dropped (stubs, disambiguation pages).
    """
    p = Path(path) if path is not None else enwiki_path()
    out = []
    try:
        with bz2.open(p, "rb") as f:
            for _, el in ET.iterparse(f):
                if not el.tag.endswith("}page"):
                    continue
                ns = el.find("{*}ns")
                title = el.findtext("{*}title") or ""
                text = el.findtext("{*}revision/{*}text") or ""
                redirect = el.find("{*}redirect") is not None or text.lstrip().upper().startswith("#REDIRECT")
                if ns is not None and ns.text == "0" and not redirect:
                    clean = strip_markup(text)
                    if len(clean) >= min_chars:
                        out.append(Article(title, clean))
                el.clear()
    except (OSError, EOFError, ET.ParseError) as e:
        raise QuantmooError(f"{p}: cannot be read as a bz2 MediaWiki XML dump ({type(e).__name__}: {e})") from None
    if not out:
        raise QuantmooError(f"{p}: no article with at least {min_chars} characters of text")
    return tuple(out)
