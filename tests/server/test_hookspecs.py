"""Every hook specification is typed, documented, keyword-called, tested and in the guide
(the idea of datasette's test_plugin_hooks_have_tests)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from server import hookspecs
from server.plugin import PROJECT

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "plugins.md"
SPEC_MARKER = f"{PROJECT}_spec"
INJECTED = {"plugins", "config"}

SPECS = sorted(
    name
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
    if hasattr(fn, SPEC_MARKER)
)


def _test_names() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        names.update(re.findall(r"def (test_hook_\w+)\(", path.read_text(encoding="utf-8")))
    return names


def test_the_core_declares_the_hooks_of_the_design() -> None:
    assert set(SPECS) >= {
        "graphql_types",
        "graphql_queries",
        "graphql_mutations",
        "graphql_subscriptions",
        "graphql_type_extensions",
        "cacheable_fields",
        "models",
        "migration_locations",
        "list_prices",
        "price_adjustments",
        "price_guardrails",
        "order_adjustments",
        "shipping_quotes",
        "validate_checkout",
        "order_placing",
        "order_cancelling",
        "plan_shipments",
        "payment_gateways",
        "authorise_payment",
        "capture_payment",
        "refund_payment",
        "payment_webhook",
        "order_placed",
        "order_status_changed",
        "payment_captured",
        "shipment_created",
        "shipment_status_changed",
        "tracking_event_recorded",
        "customer_event_recorded",
        "product_changed",
        "category_changed",
        "stock_level_set",
        "stock_adjusted",
        "permissions",
        "settings",
        "jobs",
        "startup",
        "shutdown",
    }


@pytest.mark.parametrize("hook", SPECS)
def test_hook_has_a_test(hook: str) -> None:
    assert f"test_hook_{hook}" in _test_names(), f"write a test named test_hook_{hook}"


@pytest.mark.parametrize("hook", SPECS)
def test_hook_is_documented_in_the_plugin_guide(hook: str) -> None:
    guide = GUIDE.read_text(encoding="utf-8")
    match = re.search(rf"^### `{hook}\((.*?)\)`", guide, re.MULTILINE)
    assert match, f"docs/plugins.md needs a section '### `{hook}(...)`'"
    documented = {a.split(":")[0].strip() for a in match.group(1).split(",") if a.strip()}
    declared = set(inspect.signature(getattr(hookspecs, hook)).parameters)
    assert documented == declared, f"{hook}: the guide says {documented}, the spec {declared}"


@pytest.mark.parametrize("hook", SPECS)
def test_hook_is_typed_and_explains_what_to_return(hook: str) -> None:
    fn = getattr(hookspecs, hook)
    signature = inspect.signature(fn)
    for param in signature.parameters.values():
        # Ordinary parameters: pluggy matches implementations' arguments to them by name
        # (it ignores keyword-only ones); callers must pass them by keyword.
        assert param.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        assert param.annotation is not inspect.Parameter.empty, f"{hook}({param.name}) untyped"
    assert signature.return_annotation is not inspect.Signature.empty
    assert fn.__doc__ and len(fn.__doc__.split()) >= 8


def test_only_the_shipment_plan_and_the_refund_of_lines_are_firstresult_and_say_so() -> None:
    # Every other core hook composes all plugins' answers (or, for payments, asks the plugin
    # of the payment's gateway); a plan and a refund have one right answer, the first given.
    firstresult = [n for n in SPECS if getattr(hookspecs, n).shopgraph_spec.get("firstresult")]
    assert firstresult == ["plan_shipments", "refund_for_lines"]
    for name in firstresult:
        assert "firstresult" in getattr(hookspecs, name).__doc__


def test_runtime_hooks_offer_the_plugin_set_and_its_settings() -> None:
    startup_time = {
        "graphql_types",
        "graphql_queries",
        "graphql_mutations",
        "graphql_subscriptions",
        "graphql_type_extensions",
        "cacheable_fields",
        "models",
        "migration_locations",
        "permissions",
        "settings",
    }
    for hook in set(SPECS) - startup_time:
        assert set(inspect.signature(getattr(hookspecs, hook)).parameters) >= INJECTED, hook
