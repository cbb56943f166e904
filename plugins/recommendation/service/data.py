"""What a rebuild learns from, as arrays: the catalogue, the orders and the behaviour.

``load_training_data`` reads it from a shop's database (everything before ``until``), so the
job and the offline evaluation (on the shop, or on an imported order log in a scratch
database) fit the same components from the same shape of data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ProductRow:
    id: int
    name: str
    description: str
    category_id: int | None
    brand: str | None
    tags: tuple[str, ...]
    attributes: dict[str, Any]
    created_at: datetime
    is_active: bool


@dataclass
class Purchases:
    """One row per order line: who (customer id), which order (order id), what, when (epoch
    seconds, UTC). Rows are in time order."""

    customer: IntArray
    order: IntArray
    product: IntArray
    at: FloatArray


@dataclass
class Behaviour:
    """One row per product event (VIEW, FAVORITE, ADD_TO_CART): the visitor (a customer id,
    or a negative code per anonymous session), the product, its weight (the settings' weight
    of its kind) and when (epoch seconds, UTC)."""

    visitor: IntArray
    product: IntArray
    weight: FloatArray
    at: FloatArray


@dataclass
class TrainingData:
    products: list[ProductRow]
    parents: dict[int, int | None]  # category id -> parent id
    category_names: dict[int, str]
    purchases: Purchases
    behaviour: Behaviour
    now: datetime
    stats: dict[str, int] = field(default_factory=dict)
