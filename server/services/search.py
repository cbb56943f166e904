"""Text for the full-text index, and queries against it.

Both backends tokenize on spaces and punctuation (FTS5 unicode61, PostgreSQL's 'simple'
configuration), which leaves a run of Chinese characters as one token: "蓝牙耳机" would never
match "耳机". So indexed text and queries are segmented the same way first: every CJK character
becomes a token of its own, and a CJK run in a query becomes a phrase (its characters in order).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# CJK Unified Ideographs (+ Extension A), Hiragana/Katakana, Hangul syllables.
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_CJK_CHAR = re.compile(f"([{_CJK}])")
_TOKEN = re.compile(f"[{_CJK}]+|[^\\W_]+", re.UNICODE)


def segment(text: str) -> str:
    """Lower-cased text with each CJK character standing alone as a word."""
    spaced = _CJK_CHAR.sub(r" \1 ", text.lower())
    return " ".join(spaced.split())


def product_search_text(
    *,
    name: str,
    brand: str | None,
    sku: str,
    description: str,
    tags: Iterable[str],
    category_names: Iterable[str],
    attributes: dict[str, object] | None = None,
) -> tuple[str, str]:
    """(title, body) for a product: title ranks above body when matched."""
    title = segment(" ".join(filter(None, [name, brand or "", sku])))
    attribute_text = " ".join(f"{k} {v}" for k, v in (attributes or {}).items())
    body = segment(
        " ".join([description, " ".join(tags), " ".join(category_names), attribute_text])
    )
    return title, body


def query_terms(query: str) -> list[str]:
    """The query's terms: a CJK run is one term (matched as a phrase), other words as they are."""
    return [t for t in _TOKEN.findall(query.lower()) if t]
