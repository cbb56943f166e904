"""Text for the full-text index, queries against it, and search suggestions.

Both backends tokenize on spaces and punctuation (FTS5 unicode61, PostgreSQL's 'simple'
configuration), which leaves a run of Chinese characters as one token: "蓝牙耳机" would never
match "耳机". So indexed text and queries are segmented the same way first: every CJK character
becomes a token of its own, and a CJK run in a query becomes a phrase (its characters in order).

Search forgives what shoppers type, in three ways, each ranked below the one before:

1. **exact**: every term is in the title or the body (name, brand, SKU; description, tags,
   category path, attributes);
2. **pinyin and synonyms**: a term may also match the pinyin of the title's Chinese words
   (``search_pinyin``: "erji" and "ej" for 耳机), or stand for another term of its synonym
   group (``synonym``: 耳机 = headphones);
3. **typos**: a word the catalogue does not use may match the catalogue's words most like it
   by trigram similarity (``search_word``, indexed by an FTS5 ``trigram`` table on SQLite and
   ``pg_trgm`` on PostgreSQL).

:func:`expand` reads what a query needs for 2 and 3 (its synonyms and corrections) from the
database; :func:`product_match` turns the query into one full-text condition whose rank puts
every exact match above every pinyin or synonym match, and those above every corrected one.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from enum import Enum
from typing import Any, TypeVarTuple

from sqlalchemy import (
    ColumnElement,
    Float,
    Integer,
    Select,
    case,
    column,
    func,
    literal,
    literal_column,
    select,
    table,
    type_coerce,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from server.models import Category, Product, SearchWord, Synonym
from server.models.search import SEARCH_WORD_MAX

# CJK Unified Ideographs (+ Extension A), Hiragana/Katakana, Hangul syllables.
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_CJK_CHAR = re.compile(f"([{_CJK}])")
# A CJK run, or a run of other letters and digits: "sony耳机" is two terms, "sony" and "耳机".
_TOKEN = re.compile(f"[{_CJK}]+|[^\\W_{_CJK}]+", re.UNICODE)
_WORD = re.compile("[^\\W_]+", re.UNICODE)
# Chinese characters (the CJK Unified Ideographs and Extension A): what has pinyin.
_HAN_RUN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff]+")
_SYLLABLE = re.compile("[a-z]+")
# A word that may be a typo of a catalogue word: letters (and digits), at least one letter.
_CORRECTABLE = re.compile("[a-z0-9]*[a-z][a-z0-9]*")
# The columns of a select (its row type), kept through a narrowing.
_Ts = TypeVarTuple("_Ts")


def _pinyin(text: str) -> list[str]:
    # pypinyin loads its dictionaries on import (most of a second): only when pinyin is needed.
    from pypinyin import lazy_pinyin

    return list(lazy_pinyin(text))


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
    # A SKU's parts as words ("ZX-9031" as "zx 9031"): PostgreSQL's parser would read "-9031"
    # as a signed number, and a shopper typing "9031" would miss it.
    sku_words = " ".join(_WORD.findall(sku))
    title = segment(" ".join(filter(None, [name, brand or "", sku_words])))
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


# ---------------------------------------------------------------------------------------------
# Pinyin: what the title's Chinese words sound like, typed in Latin letters

# A Chinese word of the index is any run of up to this many characters of the title.
PINYIN_MAX_SYLLABLES = 6


def _pinyin_grams(text: str) -> Iterable[tuple[str, str, int]]:
    """(syllables joined, initials joined, characters) of every run of 1 to
    PINYIN_MAX_SYLLABLES Chinese characters in ``text``."""
    for run in _HAN_RUN.findall(text):
        # pypinyin's default reading of each character (its phrase dictionary picks the
        # reading of a heteronym in a known word: 银行 is yin hang, 行走 xing zou).
        syllables = [s if _SYLLABLE.fullmatch(s) else "" for s in _pinyin(run)]
        for i in range(len(syllables)):
            for j in range(i + 1, min(len(syllables), i + PINYIN_MAX_SYLLABLES) + 1):
                part = syllables[i:j]
                if all(part):
                    yield "".join(part), "".join(s[0] for s in part), j - i


def pinyin_text(*texts: str | None) -> str:
    """The pinyin index text of ``texts`` (a product's name and brand): for every run of
    Chinese characters, each sequence of its characters as syllables joined into one word
    (蓝牙耳机: lan, ya, lanya, erji, lanyaerji …) and, from two characters on, as initials
    (ly, ej, lyej …). Each word once, in order."""
    words: dict[str, None] = {}
    for text in texts:
        for full, initials, length in _pinyin_grams(text or ""):
            words[full] = None
            if length > 1:
                words[initials] = None
    return " ".join(words)


def index_words(title: str, pinyin: str) -> set[str]:
    """The words of a product's index text that a typo may be corrected to: the Latin words of
    its title and the words of its pinyin of four letters or more (shorter ones are single
    syllables and initials, which a typo turns into another word as often as not), each 3 to
    SEARCH_WORD_MAX characters long."""
    found = {w for w in _WORD.findall(title) if _CORRECTABLE.fullmatch(w)}
    found.update(w for w in pinyin.split() if len(w) >= MIN_CORRECTABLE)
    return {w for w in found if 3 <= len(w) <= SEARCH_WORD_MAX}


async def remember_words(session: AsyncSession, words: Iterable[str]) -> None:
    """Add ``words`` to the catalogue's words (those already there are left alone)."""
    rows = [{"word": w} for w in sorted(set(words))]
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
    for start in range(0, len(rows), 500):
        stmt = insert(SearchWord).values(rows[start : start + 500])
        await session.execute(stmt.on_conflict_do_nothing(index_elements=["word"]))


# ---------------------------------------------------------------------------------------------
# Trigram similarity (what pg_trgm computes)


def trigrams(word: str) -> set[str]:
    """The trigrams of one lower-case word as pg_trgm takes them: padded with two spaces in
    front and one behind ("cat": "  c", " ca", "cat", "at ")."""
    padded = f"  {word} "
    return {padded[i : i + 3] for i in range(len(padded) - 2)}


def similarity(a: str, b: str) -> float:
    """pg_trgm's ``similarity`` of two words: shared trigrams over all their trigrams."""
    ta, tb = trigrams(a), trigrams(b)
    union = len(ta | tb)
    return len(ta & tb) / union if union else 0.0


# A correction must be at least this similar (trigram similarity) to the word typed: below
# it, words share a trigram or two by chance ("phones" and "photos"), and nonsense would match
# something. pg_trgm's own threshold (``pg_trgm.similarity_threshold``, 0.3 by default) must
# not be above it: its ``%`` operator finds the candidates on PostgreSQL, through the GIN index.
SIMILARITY_THRESHOLD = 0.3
# Among the words similar enough, the closest one wins, by difflib's ratio (matching
# characters in order): trigrams alone miss a swap of two letters ("samsnug" shares as many
# trigrams with "samson" as with "samsung"). Words this close to the best are kept too.
CORRECTION_SPREAD = 0.05
MAX_CORRECTIONS = 3
# Words shorter than this have too few trigrams to tell a typo from another word.
MIN_CORRECTABLE = 4
# Candidates read from the trigram index per word before they are compared.
CORRECTION_CANDIDATES = 50
# At most this many words of one query are corrected.
MAX_CORRECTED_WORDS = 4


def closeness(a: str, b: str) -> float:
    """How alike two words are as strings: difflib's ratio (2 × matching characters over the
    characters of both)."""
    return SequenceMatcher(None, a, b, autojunk=False).ratio()


def best_corrections(word: str, candidates: Iterable[str]) -> tuple[str, ...]:
    """The candidates ``word`` may be a typo of, best first: similar enough by trigrams
    (SIMILARITY_THRESHOLD), then the closest (:func:`closeness`) and any within
    CORRECTION_SPREAD of it."""
    similar = [
        c for c in set(candidates) if c != word and similarity(word, c) >= SIMILARITY_THRESHOLD
    ]
    scored = sorted(((closeness(word, c), c) for c in similar), key=lambda sc: (-sc[0], sc[1]))
    if not scored:
        return ()
    floor = scored[0][0] - CORRECTION_SPREAD
    return tuple(c for s, c in scored[:MAX_CORRECTIONS] if s >= floor)


def query_terms(query: str) -> list[str]:
    """The query's terms: a CJK run is one term (matched as a phrase), other words as they are."""
    return [t for t in _TOKEN.findall(query.lower()) if t]


def normalize_term(text: str) -> str:
    """A synonym term as it is stored and looked up: its query terms, separated by a space."""
    return " ".join(query_terms(text))


def _is_cjk(term: str) -> bool:
    return _CJK_CHAR.match(term) is not None


# A query never has more terms than this: the rest of a pasted paragraph adds cost, not precision.
MAX_TERMS = 16
# A synonym term has at most this many words.
MAX_SYNONYM_WORDS = 4
# A CJK term is looked up in the synonyms by its parts of at least 2 and at most this many
# characters too (耳机 in 蓝牙耳机).
MAX_SYNONYM_CHARS = 8


# ---------------------------------------------------------------------------------------------
# A query and what it may stand for


@dataclass(frozen=True)
class Unit:
    """A part of a query: its terms (each a phrase; all must match) and what else may stand for
    them: its synonyms (each a list of phrases that must all match) and corrections (words the
    term may be a typo of)."""

    terms: tuple[str, ...]
    synonyms: tuple[tuple[str, ...], ...] = ()
    corrections: tuple[str, ...] = ()


@dataclass(frozen=True)
class SearchPlan:
    """A query as units, with its synonyms and corrections (see :func:`expand`)."""

    units: tuple[Unit, ...] = field(default_factory=tuple)

    @classmethod
    def plain(cls, query: str) -> SearchPlan:
        """The query without synonyms or corrections (pinyin needs neither)."""
        return cls(tuple(Unit((t,)) for t in query_terms(query)[:MAX_TERMS]))


def synonym_keys(terms: Sequence[str]) -> set[str]:
    """Every part of a query that a synonym term may be: runs of up to MAX_SYNONYM_WORDS terms,
    and the parts of 2 to MAX_SYNONYM_CHARS characters of each CJK term."""
    keys: set[str] = set()
    for i, term in enumerate(terms):
        for k in range(1, MAX_SYNONYM_WORDS + 1):
            if i + k <= len(terms):
                keys.add(" ".join(terms[i : i + k]))
        if _is_cjk(term):
            for a in range(len(term)):
                for b in range(a + 2, min(len(term), a + MAX_SYNONYM_CHARS) + 1):
                    keys.add(term[a:b])
    return keys


def _inside(term: str, synonyms: Mapping[str, Sequence[str]]) -> tuple[tuple[str, ...], ...]:
    """For a CJK term holding a synonym term (蓝牙耳机 holds 耳机): the term with that part
    replaced by each other term of its group, as phrases that must all match. The longest
    part first, then the earliest."""
    found = [
        (len(key), -term.find(key), key)
        for key in synonyms
        if _is_cjk(key) and len(key) < len(term) and key in term
    ]
    if not found:
        return ()
    _, _, key = max(found)
    start = term.find(key)
    before, after = term[:start], term[start + len(key) :]
    return tuple(tuple(p for p in (before, other, after) if p) for other in synonyms[key])


def plan_units(
    terms: Sequence[str],
    synonyms: Mapping[str, Sequence[str]],
    corrections: Mapping[str, Sequence[str]],
) -> tuple[Unit, ...]:
    """The query's units: the longest run of terms that is a synonym term becomes one unit
    (with the other terms of its group), any other term a unit of its own (with its
    corrections, and, for a CJK term holding a synonym term, the term with it replaced)."""
    units: list[Unit] = []
    i = 0
    while i < len(terms):
        for k in range(min(MAX_SYNONYM_WORDS, len(terms) - i), 0, -1):
            key = " ".join(terms[i : i + k])
            if key in synonyms:
                alternatives = tuple((other,) for other in synonyms[key])
                units.append(Unit(tuple(terms[i : i + k]), alternatives))
                i += k
                break
        else:
            term = terms[i]
            inside = _inside(term, synonyms) if _is_cjk(term) else ()
            units.append(Unit((term,), inside, tuple(corrections.get(term, ()))))
            i += 1
    return tuple(units)


async def _synonyms(session: AsyncSession, keys: Iterable[str]) -> dict[str, list[str]]:
    """Each of ``keys`` that is a synonym term -> the other terms of its group."""
    other = aliased(Synonym)
    rows = await session.execute(
        select(col(Synonym.term), col(other.term))
        .join(other, col(other.group_id) == col(Synonym.group_id))
        .where(col(Synonym.term).in_(sorted(keys)), col(other.id) != col(Synonym.id))
        .order_by(col(Synonym.term), col(other.position), col(other.id))
    )
    found: dict[str, list[str]] = defaultdict(list)
    for term, synonym in rows:
        found[term].append(synonym)
    return dict(found)


def _trigram_match(word: str) -> str:
    """An FTS5 query for words sharing a trigram with ``word`` (each trigram a quoted phrase)."""
    grams = sorted({word[i : i + 3] for i in range(len(word) - 2)})
    return " OR ".join('"' + g.replace('"', '""') + '"' for g in grams)


_word_trigrams = table("search_word_trgm", column("rowid", Integer), column("word"))
_word_trigrams_ref: ColumnElement[Any] = literal_column("search_word_trgm")


async def _candidates(session: AsyncSession, word: str) -> list[str]:
    """Catalogue words sharing trigrams with ``word``, from the trigram index, the most alike
    first (FTS5's rank on SQLite, pg_trgm's similarity on PostgreSQL)."""
    if session.get_bind().dialect.name == "sqlite":
        stmt: Select[Any] = (
            select(_word_trigrams.c.word)
            .where(_word_trigrams_ref.op("MATCH")(_trigram_match(word)))
            .order_by(literal_column("rank"))
            .limit(CORRECTION_CANDIDATES)
        )
    else:
        stmt = (
            select(col(SearchWord.word))
            .where(col(SearchWord.word).op("%")(word))
            .order_by(func.similarity(col(SearchWord.word), word).desc(), col(SearchWord.word))
            .limit(CORRECTION_CANDIDATES)
        )
    return list((await session.execute(stmt)).scalars())


async def _corrections(session: AsyncSession, words: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """For each of ``words`` the catalogue does not use, the catalogue words it may be a typo
    of (none for words it uses: they need no correction)."""
    wanted = [w for w in dict.fromkeys(words) if len(w) >= MIN_CORRECTABLE]
    wanted = [w for w in wanted if _CORRECTABLE.fullmatch(w) and len(w) <= SEARCH_WORD_MAX]
    if not wanted:
        return {}
    known = set(
        (
            await session.execute(
                select(col(SearchWord.word)).where(col(SearchWord.word).in_(wanted))
            )
        ).scalars()
    )
    found: dict[str, tuple[str, ...]] = {}
    for word in [w for w in wanted if w not in known][:MAX_CORRECTED_WORDS]:
        corrected = best_corrections(word, await _candidates(session, word))
        if corrected:
            found[word] = corrected
    return found


async def expand(session: AsyncSession, query: str) -> SearchPlan:
    """``query`` with its synonyms (read now: a change of the synonyms counts at once) and the
    corrections of the words the catalogue does not use."""
    terms = query_terms(query)[:MAX_TERMS]
    if not terms:
        return SearchPlan()
    synonyms = await _synonyms(session, synonym_keys(terms))
    corrections = await _corrections(session, terms)
    return SearchPlan(plan_units(terms, synonyms, corrections))


# ---------------------------------------------------------------------------------------------
# The full-text condition and its rank

# The FTS5 table over product.search_title / search_body / search_pinyin (migration 0006).
_fts = table("product_fts", column("rowid", Integer))
_fts_ref: ColumnElement[Any] = literal_column("product_fts")
# The generated tsvector column on PostgreSQL; it is not part of the ORM model.
_search_vector: ColumnElement[Any] = literal_column("product.search_vector")
# Weights {D, C, B, A}: body (B) 0.1 against title (A) 1.0, pinyin (C) between.
_RANK_WEIGHTS: ColumnElement[Any] = literal_column("'{0.1, 0.5, 0.1, 1.0}'::float4[]")
_TEXT_WEIGHTS: ColumnElement[Any] = literal_column("'{a,b}'::\"char\"[]")
_TEXT_COLUMNS = "{search_title search_body}"


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


class Tier(Enum):
    """How a query is matched; each tier is ranked above the next."""

    EXACT = 2
    FORGIVING = 1
    FUZZY = 0


def _tiers(plan: SearchPlan) -> list[Tier]:
    """The tiers a plan can match in. Pinyin is Latin letters: a query of Chinese terms alone,
    without synonyms, matches exactly or not at all."""
    tiers = [Tier.EXACT]
    latin = any(not _is_cjk(t) for u in plan.units for t in u.terms)
    if latin or any(u.synonyms for u in plan.units):
        tiers.append(Tier.FORGIVING)
    if any(u.corrections for u in plan.units):
        tiers.append(Tier.FUZZY)
    return tiers


def _options(unit: Unit, tier: Tier) -> list[tuple[str, ...]]:
    """What may match ``unit`` in ``tier``: lists of phrases that must all match."""
    options = [unit.terms]
    if tier is not Tier.EXACT:
        options += list(unit.synonyms)
    if tier is Tier.FUZZY:
        options += [(w,) for w in unit.corrections]
    return options


def _fts5_all(phrases: Sequence[str]) -> str:
    return "(" + " AND ".join(_fts5_phrase(p) for p in phrases) + ")"


def _fts5_query(plan: SearchPlan, tier: Tier) -> str:
    """The FTS5 query of ``plan`` in ``tier``. Exact terms match the title and body only;
    otherwise a term may match the pinyin too."""
    if tier is Tier.EXACT:
        every = [p for u in plan.units for p in u.terms]
        return f"{_TEXT_COLUMNS} : {_fts5_all(every)}"
    return " AND ".join(
        "(" + " OR ".join(_fts5_all(o) for o in _options(u, tier)) + ")" for u in plan.units
    )


def _ts_all(phrases: Sequence[str]) -> ColumnElement[Any]:
    query: ColumnElement[Any] = func.phraseto_tsquery("simple", segment(phrases[0]))
    for phrase in phrases[1:]:
        query = query.op("&&")(func.phraseto_tsquery("simple", segment(phrase)))
    return query


def _ts_query(plan: SearchPlan, tier: Tier) -> ColumnElement[Any]:
    """The tsquery of ``plan`` in ``tier`` (exact: to be matched against title and body)."""
    if tier is Tier.EXACT:
        return _ts_all([p for u in plan.units for p in u.terms])
    query: ColumnElement[Any] | None = None
    for unit in plan.units:
        options = [_ts_all(o) for o in _options(unit, tier)]
        either = options[0]
        for option in options[1:]:
            either = either.op("||")(option)
        query = either if query is None else query.op("&&")(either)
    assert query is not None
    return query


def _ranked(score: ColumnElement[Any], tier: ColumnElement[Any]) -> ColumnElement[float]:
    """The tier, plus the engine's score squeezed into [0, 1): each tier ranks whole."""
    return type_coerce(tier + score / (literal(1.0) + score), Float)


def product_match(dialect: str, query: str, plan: SearchPlan | None = None) -> TextMatch | None:
    """The condition and rank for a user's search text, or None when it has no terms.

    ``plan`` is the query expanded (:func:`expand`); without it the query is matched exactly
    and by pinyin. Every unit must match (AND): exactly (a CJK run as a phrase of its
    characters), else by pinyin or a synonym, else by a correction; the rank is the best tier
    every unit matched in, then the engine's score. User input is only ever data: FTS5
    phrases are double-quoted, PostgreSQL phrases go through phraseto_tsquery, which has no
    operators at all.
    """
    plan = plan if plan is not None else SearchPlan.plain(query)
    if not plan.units:
        return None
    tiers = _tiers(plan)
    if dialect == "sqlite":
        queries = [_fts5_query(plan, t) for t in tiers]
        whens = [
            (
                col(Product.id).in_(
                    select(_fts.c.rowid)
                    .where(_fts_ref.op("MATCH")(q))
                    .correlate(None)
                    .scalar_subquery()
                ),
                literal(t.value),
            )
            for q, t in zip(queries[:-1], tiers, strict=False)
        ]
        return TextMatch(
            condition=_fts_ref.op("MATCH")(queries[-1]),
            # bm25 is lower-is-better; weights: title 10, body 1, pinyin 1.
            rank=_ranked(
                -func.bm25(_fts_ref, 10.0, 1.0, 1.0),
                case(*whens, else_=literal(tiers[-1].value)) if whens else literal(tiers[0].value),
            ),
            join=(_fts, _fts.c.rowid == Product.id),
        )
    tsqueries = [_ts_query(plan, t) for t in tiers]
    tested = [
        func.ts_filter(_search_vector, _TEXT_WEIGHTS) if t is Tier.EXACT else _search_vector
        for t in tiers
    ]
    pg_whens = [
        (vector.op("@@")(q), literal(t.value))
        for vector, q, t in zip(tested[:-1], tsqueries[:-1], tiers, strict=False)
    ]
    return TextMatch(
        condition=_search_vector.op("@@")(tsqueries[-1]),
        rank=_ranked(
            func.ts_rank_cd(_RANK_WEIGHTS, _search_vector, tsqueries[-1]),
            case(*pg_whens, else_=literal(tiers[-1].value))
            if pg_whens
            else literal(tiers[0].value),
        ),
    )


def title_prefix_match(dialect: str, prefix: str) -> TextMatch | None:
    """Products whose title (name, brand, sku) or its pinyin has the words of ``prefix``, the
    last one possibly unfinished: what search suggestions complete. Both backends answer from
    the full-text index (FTS5 prefix queries, a GIN-indexed ``:*`` tsquery)."""
    terms = query_terms(prefix)[:MAX_TERMS]
    if not terms:
        return None
    last = len(terms) - 1
    if dialect == "sqlite":
        expression = " ".join(
            _fts5_phrase(t, prefix=i == last, column_name="{search_title search_pinyin}")
            for i, t in enumerate(terms)
        )
        return TextMatch(
            condition=_fts_ref.op("MATCH")(expression),
            rank=-func.bm25(_fts_ref, 1.0, 0.0, 0.5),
            join=(_fts, _fts.c.rowid == Product.id),
        )
    parts = []
    for i, term in enumerate(terms):
        tokens = segment(term).split()
        parts.append(
            " <-> ".join(
                _tsquery_lexeme(tok, prefix=i == last and j == len(tokens) - 1, weights="AC")
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


def _completes(text: str, prefix: str) -> bool:
    """Whether ``text`` or its pinyin has the words of ``prefix`` (see :func:`matches_prefix`)."""
    return matches_prefix(text, prefix) or matches_prefix(pinyin_text(text), prefix)


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
        if _completes(product.name, prefix):
            # Earlier rows ranked higher: weight falls with position.
            found = Suggestion(product.name, SuggestionKind.PRODUCT, product=product)
            candidates.append(_Candidate(found, _tier(product.name, prefix), -position))
        if product.brand and _completes(product.brand, prefix):
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
