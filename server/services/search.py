"""Text for the full-text index, queries against it, and search suggestions.

Both backends tokenize on spaces and punctuation (FTS5 unicode61, PostgreSQL's 'simple'
configuration), which leaves a run of Chinese characters as one token: "蓝牙耳机" would never
match "耳机". So indexed text and queries are segmented the same way first: every CJK character
becomes a token of its own, and a CJK run in a query becomes a phrase (its characters in order).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVarTuple

from sqlalchemy import ColumnElement, Integer, Select, column, func, literal_column, select, table
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from server.models import Category, Product

# CJK Unified Ideographs (+ Extension A), Hiragana/Katakana, Hangul syllables.
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_CJK_CHAR = re.compile(f"([{_CJK}])")
# A CJK run, or a run of other letters and digits: "sony耳机" is two terms, "sony" and "耳机".
_TOKEN = re.compile(f"[{_CJK}]+|[^\\W_{_CJK}]+", re.UNICODE)
_WORD = re.compile("[^\\W_]+", re.UNICODE)
# The columns of a select (its row type), kept through a narrowing.
_Ts = TypeVarTuple("_Ts")


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
    attributes: Mapping[str, object] | None = None,
    variant_words: Iterable[str] = (),
) -> tuple[str, str]:
    """(title, body) for a product: title ranks above body when matched. ``variant_words``
    (its variants' SKUs and option values, see :func:`variant_words`) go to the body."""
    title = segment(" ".join(filter(None, [name, brand or "", sku])))
    attribute_text = " ".join(f"{k} {v}" for k, v in (attributes or {}).items())
    body = segment(
        " ".join(
            [
                description,
                " ".join(tags),
                " ".join(category_names),
                attribute_text,
                " ".join(variant_words),
            ]
        )
    )
    return title, body


def variant_words(
    product_sku: str, skus: Iterable[str], options: Iterable[Mapping[str, str]]
) -> list[str]:
    """What a product's variants add to its search text: their SKUs (but the product's own,
    which is in the title) and their option values, each once, in first-seen order. A SKU is
    indexed as its words ("ZX-9031" as "ZX 9031"): PostgreSQL's parser would read "-9031" as
    a signed number, which a search for 9031 does not match."""
    words: list[str] = []
    sku_words = [" ".join(_WORD.findall(sku)) for sku in skus if sku != product_sku]
    for word in [*sku_words, *(value for opts in options for value in opts.values())]:
        if word and word not in words:
            words.append(word)
    return words


def query_terms(query: str) -> list[str]:
    """The query's terms: a CJK run is one term (matched as a phrase), other words as they are."""
    return [t for t in _TOKEN.findall(query.lower()) if t]


# A query never has more terms than this: the rest of a pasted paragraph adds cost, not precision.
MAX_TERMS = 16

# The FTS5 table over product.search_title / product.search_body (see migration 0001).
_fts = table("product_fts", column("rowid", Integer))
_fts_ref: ColumnElement[Any] = literal_column("product_fts")
# The generated tsvector column on PostgreSQL; it is not part of the ORM model.
_search_vector: ColumnElement[Any] = literal_column("product.search_vector")
_RANK_WEIGHTS: ColumnElement[Any] = literal_column("'{0.1, 0.1, 0.1, 1.0}'::float4[]")


def _fts5_phrase(term: str, *, prefix: bool = False, column_name: str | None = None) -> str:
    """One term as an FTS5 phrase: double-quoted, so nothing in it is FTS5 syntax."""
    quoted = '"' + segment(term).replace('"', '""') + '"'
    if prefix:
        quoted += "*"
    return f"{column_name} : {quoted}" if column_name else quoted


def _tsquery_lexeme(token: str, *, prefix: bool = False, weights: str = "") -> str:
    """One token as a quoted tsquery lexeme (quotes and backslashes escaped)."""
    escaped = token.replace("\\", "\\\\").replace("'", "''")
    suffix = ("*" if prefix else "") + weights
    return f"'{escaped}'" + (f":{suffix}" if suffix else "")


@dataclass(frozen=True)
class TextMatch:
    """A full-text condition on ``product`` and its relevance (higher is better).

    ``join`` is what the FROM clause needs (the FTS5 table on SQLite), or None.
    """

    condition: ColumnElement[bool]
    rank: ColumnElement[float]
    join: tuple[Any, ColumnElement[bool]] | None = None

    def apply(self, stmt: Select[*_Ts]) -> Select[*_Ts]:
        if self.join is not None:
            stmt = stmt.join(*self.join)
        return stmt.where(self.condition)


def product_match(dialect: str, query: str) -> TextMatch | None:
    """The condition and rank for a user's search text, or None when it has no terms.

    Every term must match (AND); a CJK run matches as a phrase of its characters. User input is
    only ever data: FTS5 phrases are double-quoted, PostgreSQL phrases go through
    phraseto_tsquery, which has no operators at all.
    """
    terms = query_terms(query)[:MAX_TERMS]
    if not terms:
        return None
    if dialect == "sqlite":
        expression = " ".join(_fts5_phrase(t) for t in terms)
        return TextMatch(
            condition=_fts_ref.op("MATCH")(expression),
            # bm25 is lower-is-better; weights: title 10, body 1.
            rank=-func.bm25(_fts_ref, 10.0, 1.0),
            join=(_fts, _fts.c.rowid == Product.id),
        )
    tsquery: ColumnElement[Any] = func.phraseto_tsquery("simple", segment(terms[0]))
    for term in terms[1:]:
        tsquery = tsquery.op("&&")(func.phraseto_tsquery("simple", segment(term)))
    return TextMatch(
        condition=_search_vector.op("@@")(tsquery),
        # Weights {D, C, B, A}: body (B) 0.1 against title (A) 1.0, the 1:10 of bm25 on SQLite,
        # so a name match outranks a description that repeats the words a few times.
        rank=func.ts_rank_cd(_RANK_WEIGHTS, _search_vector, tsquery),
    )


def title_prefix_match(dialect: str, prefix: str) -> TextMatch | None:
    """Products whose title (name, brand, sku) has the words of ``prefix``, the last one
    possibly unfinished: what search suggestions complete. Both backends answer from the
    full-text index (FTS5 prefix queries, a GIN-indexed ``:*`` tsquery)."""
    terms = query_terms(prefix)[:MAX_TERMS]
    if not terms:
        return None
    last = len(terms) - 1
    if dialect == "sqlite":
        expression = " ".join(
            _fts5_phrase(t, prefix=i == last, column_name="search_title")
            for i, t in enumerate(terms)
        )
        return TextMatch(
            condition=_fts_ref.op("MATCH")(expression),
            rank=-func.bm25(_fts_ref, 1.0, 0.0),
            join=(_fts, _fts.c.rowid == Product.id),
        )
    parts = []
    for i, term in enumerate(terms):
        tokens = segment(term).split()
        parts.append(
            " <-> ".join(
                _tsquery_lexeme(tok, prefix=i == last and j == len(tokens) - 1, weights="A")
                for j, tok in enumerate(tokens)
            )
        )
    tsquery = func.to_tsquery("simple", " & ".join(f"({p})" for p in parts))
    return TextMatch(
        condition=_search_vector.op("@@")(tsquery),
        rank=func.ts_rank_cd(_search_vector, tsquery),
    )


def words(text: str) -> list[str]:
    """The index's tokens of ``text``: what a phrase query is matched against."""
    return _WORD.findall(segment(text))


def matches_prefix(text: str, prefix: str) -> bool:
    """Whether ``text`` contains the words of ``prefix`` in order, each run of them starting at a
    word boundary, the very last word allowed to be unfinished (what FTS prefix queries do)."""
    terms = query_terms(prefix)
    if not terms:
        return False
    tokens = words(text)
    last = len(terms) - 1
    for i, term in enumerate(terms):
        wanted = words(term)
        if not any(
            _phrase_at(tokens, start, wanted, open_end=i == last) for start in range(len(tokens))
        ):
            return False
    return True


def _phrase_at(tokens: list[str], start: int, wanted: list[str], *, open_end: bool) -> bool:
    if start + len(wanted) > len(tokens):
        return False
    for k, want in enumerate(wanted):
        have = tokens[start + k]
        is_last = k == len(wanted) - 1
        if not (have == want or (open_end and is_last and have.startswith(want))):
            return False
    return True


# ---------------------------------------------------------------------------------------------
# Suggestions: completions for what a shopper is typing

MAX_SUGGESTIONS = 50
# Suggestions are picked from this many of the best-ranked title matches.
SUGGESTION_CANDIDATES = 100


class SuggestionKind(Enum):
    """What a search suggestion completes to."""

    PRODUCT = "PRODUCT"
    BRAND = "BRAND"
    CATEGORY = "CATEGORY"


@dataclass(frozen=True)
class Suggestion:
    """A completion: its text, and the product or category it names (PRODUCT, CATEGORY)."""

    text: str
    kind: SuggestionKind
    product: Product | None = None
    category: Category | None = None


@dataclass
class _Candidate:
    suggestion: Suggestion
    tier: int
    weight: float


def _tier(text: str, prefix: str) -> int:
    """0: the text is the prefix; 1: it starts with it; 2: a later word starts with it."""
    norm_text, norm_prefix = " ".join(text.lower().split()), " ".join(prefix.lower().split())
    if norm_text == norm_prefix:
        return 0
    return 1 if norm_text.startswith(norm_prefix) else 2


_KIND_ORDER = {SuggestionKind.CATEGORY: 0, SuggestionKind.BRAND: 1, SuggestionKind.PRODUCT: 2}


def _like_prefix(prefix: str) -> str:
    escaped = prefix.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


async def suggestions(session: AsyncSession, prefix: str, first: int) -> list[Suggestion]:
    """At most ``first`` completions of ``prefix``: product names, brands and category names,
    best first (the text itself, then texts starting with it, then texts with a later word
    starting with it; categories before brands before products), each text once."""
    prefix = " ".join(prefix.split())
    match = title_prefix_match(session.get_bind().dialect.name, prefix)
    if match is None:
        return []
    stmt = match.apply(select(Product, match.rank.label("rank")).where(col(Product.is_active)))
    rows = (
        await session.execute(
            stmt.order_by(match.rank.desc(), col(Product.id)).limit(SUGGESTION_CANDIDATES)
        )
    ).all()
    categories = (
        (
            await session.execute(
                select(Category)
                .where(func.lower(Category.name).like(_like_prefix(prefix), escape="\\"))
                .order_by(col(Category.position), col(Category.id))
                .limit(first)
            )
        )
        .scalars()
        .all()
    )

    candidates: list[_Candidate] = []
    brand_hits: dict[str, int] = defaultdict(int)
    for position, (product, _rank) in enumerate(rows):
        if matches_prefix(product.name, prefix):
            # Earlier rows ranked higher: weight falls with position.
            found = Suggestion(product.name, SuggestionKind.PRODUCT, product=product)
            candidates.append(_Candidate(found, _tier(product.name, prefix), -position))
        if product.brand and matches_prefix(product.brand, prefix):
            brand_hits[product.brand] += 1
    for brand, hits in brand_hits.items():
        found = Suggestion(brand, SuggestionKind.BRAND)
        candidates.append(_Candidate(found, _tier(brand, prefix), hits))
    for category in categories:
        found = Suggestion(category.name, SuggestionKind.CATEGORY, category=category)
        candidates.append(_Candidate(found, _tier(category.name, prefix), 0.0))

    candidates.sort(
        key=lambda c: (
            c.tier,
            _KIND_ORDER[c.suggestion.kind],
            -c.weight,
            len(c.suggestion.text),
            c.suggestion.text,
        )
    )
    out: list[Suggestion] = []
    seen: set[str] = set()
    for c in candidates:
        key = c.suggestion.text.casefold()
        if key in seen:
            continue
        seen.add(key)
        out.append(c.suggestion)
        if len(out) == first:
            break
    return out
