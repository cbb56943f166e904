"""Returns, exchanges and repairs (reverse logistics): request, decision, the way back,
inspection, and the refund (following the discount ledger when a plugin keeps one)."""

from __future__ import annotations
