"""forgiving search: pinyin in the full-text index, the catalogue's words for typos, synonyms

Revision ID: 0006_core
Revises: 0005_core
Create Date: 2026-11-30 10:00:00

- ``product.search_pinyin``: the pinyin of the title's Chinese words (full and initials),
  filled here for every product; the full-text index covers it (SQLite: ``product_fts`` gets
  a third column and is rebuilt; PostgreSQL: ``search_vector`` gets it with weight C).
- ``search_word``: the words of the titles and their pinyin, what a misspelt word is
  corrected to, with a trigram index (SQLite: the FTS5 table ``search_word_trgm`` with the
  ``trigram`` tokenizer; PostgreSQL: the ``pg_trgm`` extension and a GIN index).
- ``synonym_group`` and ``synonym``: the synonym groups operators manage.

Downgrading drops all of it but the ``pg_trgm`` extension, which other objects of the
database may use.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from server.services import search

revision: str = "0006_core"
down_revision: str | Sequence[str] | None = "0005_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_product = sa.table(
    "product",
    sa.column("id", sa.Integer()),
    sa.column("name", sa.String()),
    sa.column("brand", sa.String()),
    sa.column("search_title", sa.Text()),
    sa.column("search_pinyin", sa.Text()),
)
_search_word = sa.table("search_word", sa.column("word", sa.String()))
_BATCH = 1000


def _fts5(columns: Sequence[str]) -> list[str]:
    """The product full-text table over ``columns`` and the triggers that keep it current."""
    names = ", ".join(columns)
    new = ", ".join(f"new.{c}" for c in columns)
    old = ", ".join(f"old.{c}" for c in columns)
    return [
        f"CREATE VIRTUAL TABLE product_fts USING fts5({names}, content='product', "
        "content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
        "CREATE TRIGGER product_fts_ai AFTER INSERT ON product BEGIN "
        f"INSERT INTO product_fts(rowid, {names}) VALUES (new.id, {new}); END",
        "CREATE TRIGGER product_fts_ad AFTER DELETE ON product BEGIN "
        f"INSERT INTO product_fts(product_fts, rowid, {names}) "
        f"VALUES ('delete', old.id, {old}); END",
        f"CREATE TRIGGER product_fts_au AFTER UPDATE OF {names} ON product BEGIN "
        f"INSERT INTO product_fts(product_fts, rowid, {names}) "
        f"VALUES ('delete', old.id, {old}); "
        f"INSERT INTO product_fts(rowid, {names}) VALUES (new.id, {new}); END",
        "INSERT INTO product_fts(product_fts) VALUES ('rebuild')",
    ]


_DROP_PRODUCT_FTS = [
    "DROP TRIGGER IF EXISTS product_fts_ai",
    "DROP TRIGGER IF EXISTS product_fts_ad",
    "DROP TRIGGER IF EXISTS product_fts_au",
    "DROP TABLE IF EXISTS product_fts",
]

_SQLITE_WORD_TRIGRAMS = [
    "CREATE VIRTUAL TABLE search_word_trgm USING fts5(word, content='search_word', "
    "content_rowid='id', tokenize='trigram')",
    "CREATE TRIGGER search_word_trgm_ai AFTER INSERT ON search_word BEGIN "
    "INSERT INTO search_word_trgm(rowid, word) VALUES (new.id, new.word); END",
    "CREATE TRIGGER search_word_trgm_ad AFTER DELETE ON search_word BEGIN "
    "INSERT INTO search_word_trgm(search_word_trgm, rowid, word) "
    "VALUES ('delete', old.id, old.word); END",
    "CREATE TRIGGER search_word_trgm_au AFTER UPDATE OF word ON search_word BEGIN "
    "INSERT INTO search_word_trgm(search_word_trgm, rowid, word) "
    "VALUES ('delete', old.id, old.word); "
    "INSERT INTO search_word_trgm(rowid, word) VALUES (new.id, new.word); END",
    "INSERT INTO search_word_trgm(search_word_trgm) VALUES ('rebuild')",
]


def _search_vector(with_pinyin: bool) -> list[str]:
    pinyin = " || setweight(to_tsvector('simple', search_pinyin), 'C')" if with_pinyin else ""
    return [
        "DROP INDEX IF EXISTS ix_product_search_vector",
        "ALTER TABLE product DROP COLUMN IF EXISTS search_vector",
        "ALTER TABLE product ADD COLUMN search_vector tsvector GENERATED ALWAYS AS ("
        "setweight(to_tsvector('simple', search_title), 'A') || "
        f"setweight(to_tsvector('simple', search_body), 'B'){pinyin}) STORED",
        "CREATE INDEX ix_product_search_vector ON product USING gin (search_vector)",
    ]


def _backfill() -> None:
    """Every product's pinyin, and the words of every title and its pinyin."""
    bind = op.get_bind()
    last = 0
    while True:
        rows = bind.execute(
            sa.select(_product.c.id, _product.c.name, _product.c.brand, _product.c.search_title)
            .where(_product.c.id > last)
            .order_by(_product.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        words: set[str] = set()
        updates = []
        for row in rows:
            pinyin = search.pinyin_text(row.name, row.brand)
            words.update(search.index_words(row.search_title, pinyin))
            if pinyin:
                updates.append({"pid": row.id, "pinyin": pinyin})
        if updates:
            bind.execute(
                sa.update(_product)
                .where(_product.c.id == sa.bindparam("pid"))
                .values(search_pinyin=sa.bindparam("pinyin")),
                updates,
            )
        known = set(
            bind.execute(
                sa.select(_search_word.c.word).where(_search_word.c.word.in_(sorted(words)))
            ).scalars()
        )
        fresh = [{"word": w} for w in sorted(words - known)]
        if fresh:
            bind.execute(sa.insert(_search_word), fresh)
        last = rows[-1].id


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    # Plain ADD COLUMN: SQLite needs no table rebuild for it (and a rebuild would drop the
    # full-text triggers on product).
    op.add_column(
        "product", sa.Column("search_pinyin", sa.Text(), nullable=False, server_default="")
    )
    op.create_table(
        "search_word",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("word", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_word")),
        sa.UniqueConstraint("word", name=op.f("uq_search_word_word")),
    )
    op.create_table(
        "synonym_group",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_synonym_group")),
    )
    op.create_table(
        "synonym",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("term", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["synonym_group.id"],
            name=op.f("fk_synonym_group_id_synonym_group"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_synonym")),
        sa.UniqueConstraint("term", name=op.f("uq_synonym_term")),
    )
    op.create_index(op.f("ix_synonym_group_id"), "synonym", ["group_id"], unique=False)
    _backfill()
    if sqlite:
        statements = (
            _DROP_PRODUCT_FTS
            + _fts5(["search_title", "search_body", "search_pinyin"])
            + _SQLITE_WORD_TRIGRAMS
        )
    else:
        statements = [
            "CREATE EXTENSION IF NOT EXISTS pg_trgm",
            *_search_vector(with_pinyin=True),
            "CREATE INDEX ix_search_word_trgm ON search_word USING gin (word gin_trgm_ops)",
        ]
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        for name in ("search_word_trgm_ai", "search_word_trgm_ad", "search_word_trgm_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS search_word_trgm")
        for statement in _DROP_PRODUCT_FTS:
            op.execute(statement)
    else:
        # The generated column reads search_pinyin: it goes first, and comes back without it.
        op.execute("DROP INDEX IF EXISTS ix_product_search_vector")
        op.execute("ALTER TABLE product DROP COLUMN IF EXISTS search_vector")
    op.drop_index(op.f("ix_synonym_group_id"), table_name="synonym")
    op.drop_table("synonym")
    op.drop_table("synonym_group")
    op.drop_table("search_word")
    op.drop_column("product", "search_pinyin")
    statements = _fts5(["search_title", "search_body"]) if sqlite else _search_vector(False)
    for statement in statements:
        op.execute(statement)
