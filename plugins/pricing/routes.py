"""The signed webhook competitor-price feeds post to: ``POST
/plugins/pricing/competitor-prices``.

The body is JSON ``{"competitor": "…", "prices": [{"gtin"|"sku": "…", "amount": 1299,
"currency": "CNY", "observedAt": "2026-03-01T08:00:00Z"}]}`` (amounts in minor units), signed
with HMAC-SHA256 of the raw body under the ``webhook_secret`` setting, sent as
``X-Shopgraph-Signature: sha256=<hex>``. While the secret is empty every call is refused.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from plugins.pricing.models import ObservationSource
from plugins.pricing.service import competitors
from plugins.pricing.service.competitors import MAX_ROWS, BadPrices, PriceRow
from server.plugin import RouteError, require_signature, route_session

SIGNATURE_HEADER = "X-Shopgraph-Signature"
SIGNATURE_PREFIX = "sha256="


def _bad(code: str, message: str) -> RouteError:
    return RouteError(400, code, message)


def parse_body(body: bytes) -> tuple[str, list[PriceRow]]:
    """The competitor and its rows from a webhook body; RouteError 400 for anything else."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad("MALFORMED_JSON", f"the body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise _bad("MALFORMED_BODY", 'the body is an object: {"competitor", "prices"}')
    name, prices = data.get("competitor"), data.get("prices")
    if not isinstance(name, str):
        raise _bad("MALFORMED_BODY", "competitor is a string")
    if not isinstance(prices, list):
        raise _bad("MALFORMED_BODY", "prices is a list")
    if len(prices) > MAX_ROWS:
        raise _bad("TOO_MANY_ROWS", f"at most {MAX_ROWS} prices per call ({len(prices)} given)")
    rows: list[PriceRow] = []
    for i, item in enumerate(prices):
        rows.append(_row(i, item))
    return name, rows


def _row(i: int, item: Any) -> PriceRow:
    where = f"prices[{i}]"
    if not isinstance(item, dict):
        raise _bad("MALFORMED_BODY", f"{where} is an object")
    amount, currency, observed = item.get("amount"), item.get("currency"), item.get("observedAt")
    gtin, sku = item.get("gtin"), item.get("sku")
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise _bad("BAD_AMOUNT", f"{where}.amount is an integer of minor units")
    if not isinstance(currency, str):
        raise _bad("BAD_CURRENCY", f"{where}.currency is a 3-letter code")
    if not isinstance(observed, str):
        raise _bad("BAD_OBSERVED_AT", f"{where}.observedAt is an ISO 8601 moment")
    try:
        observed_at = datetime.fromisoformat(observed)
    except ValueError as exc:
        raise _bad("BAD_OBSERVED_AT", f"{where}.observedAt is an ISO 8601 moment") from exc
    for key, value in (("gtin", gtin), ("sku", sku)):
        if value is not None and not isinstance(value, str):
            raise _bad("BAD_IDENTIFIER", f"{where}.{key} is a string")
    return PriceRow(amount=amount, currency=currency, observed_at=observed_at, gtin=gtin, sku=sku)


def webhook_routes(config: Any) -> list[BaseRoute]:
    async def competitor_prices(request: Request) -> JSONResponse:
        if not config.webhook_secret:
            raise RouteError(
                403,
                "WEBHOOK_DISABLED",
                "The competitor-price webhook is off: set SHOPGRAPH_PRICING_WEBHOOK_SECRET.",
            )
        body = await require_signature(
            request, config.webhook_secret, SIGNATURE_HEADER, prefix=SIGNATURE_PREFIX
        )
        name, rows = parse_body(body)
        async with route_session(request, write=True) as session:
            try:
                done = await competitors.record_prices(
                    session, config, name, rows, ObservationSource.WEBHOOK
                )
            except BadPrices as exc:
                raise RouteError(400, exc.code, exc.message) from exc
            await session.commit()
        return JSONResponse(
            {
                "competitor": done.competitor,
                "recorded": done.recorded,
                "duplicates": done.duplicates,
                "unmatched": [
                    {
                        "row": u.row,
                        "reason": u.reason.value,
                        "message": u.message,
                        "gtin": u.gtin,
                        "sku": u.sku,
                    }
                    for u in done.unmatched
                ],
                "alertsRaised": len(done.alert_ids),
            }
        )

    return [Route("/competitor-prices", competitor_prices, methods=["POST"])]
