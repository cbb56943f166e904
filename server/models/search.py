"""What forgiving search keeps besides the products' index text: the words the catalogue uses
(for typo correction) and the synonym groups operators manage."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, Integer, String
from sqlmodel import Field, SQLModel

from server.models.base import created_at_field, datetime_field

# The longest synonym term, in characters (after normalisation).
SYNONYM_TERM_MAX = 64
# The longest word kept for typo correction: longer ones are codes, not words.
SEARCH_WORD_MAX = 40


class SearchWord(SQLModel, table=True):
    """A word of the catalogue's index text (titles and their pinyin): what a misspelt query
    word is corrected to. Words are added as products are indexed and never removed (a word
    no product uses any more corrects to a search that finds nothing)."""

    __tablename__ = "search_word"

    id: int | None = Field(default=None, primary_key=True)
    word: str = Field(sa_column=Column(String(SEARCH_WORD_MAX), nullable=False, unique=True))


class SynonymGroup(SQLModel, table=True):
    """Terms that mean the same to a shopper: a query term in the group matches any of them."""

    __tablename__ = "synonym_group"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = created_at_field()
    updated_at: datetime | None = datetime_field()


class Synonym(SQLModel, table=True):
    """One term of a group, normalised (lower-case words separated by one space). A term
    belongs to one group at most."""

    __tablename__ = "synonym"

    id: int | None = Field(default=None, primary_key=True)
    group_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("synonym_group.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    term: str = Field(sa_column=Column(String(SYNONYM_TERM_MAX), nullable=False, unique=True))
    position: int = 0
