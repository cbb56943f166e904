"""The core's own payment gateways, written on the payment hooks like any plugin's gateway.

- ``test``: a card-like gateway for development. Any token is authorised, then captured,
  except ``tok_declined`` (declined) and ``tok_pending`` (PENDING, like a QR-code payment: its
  webhook settles it).
- ``manual``: staff (``orders.manage``) record money received outside shopgraph (a bank
  transfer, cash); the token, if given, is kept as the reference.

The test gateway's webhook takes ``{"reference": "...", "status": "CAPTURED"}`` (or DECLINED,
REFUNDED) as JSON, unsigned: like the gateway itself, it is for development only.
"""

from __future__ import annotations

import json
import secrets

from server.hooktypes import (
    PaymentGateway,
    PaymentOutcome,
    PaymentResult,
    PaymentUpdate,
    WebhookReply,
    hookimpl,
)
from server.models import Payment

TEST = "test"
MANUAL = "manual"
DECLINED_TEST_TOKEN = "tok_declined"
PENDING_TEST_TOKEN = "tok_pending"


def _reference(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(6)}"


@hookimpl
def payment_gateways() -> list[PaymentGateway]:
    return [
        PaymentGateway(code=TEST, label='Test card ("tok_declined" is declined)'),
        PaymentGateway(code=MANUAL, label="Received offline, recorded by staff", staff_only=True),
    ]


@hookimpl
def authorise_payment(gateway: str, token: str | None) -> PaymentResult:
    if gateway == MANUAL:
        return PaymentResult(PaymentOutcome.CAPTURED, token or _reference(MANUAL))
    if token == DECLINED_TEST_TOKEN:
        return PaymentResult(PaymentOutcome.DECLINED, _reference(TEST), "card declined")
    if token == PENDING_TEST_TOKEN:
        reference = _reference(TEST)
        return PaymentResult(
            PaymentOutcome.PENDING,
            reference,
            "waiting for the shopper",
            next_action=f"https://pay.example.invalid/test/{reference}",
        )
    return PaymentResult(PaymentOutcome.AUTHORISED, _reference(TEST))


@hookimpl
def capture_payment(payment: Payment) -> PaymentResult:
    return PaymentResult(PaymentOutcome.CAPTURED, payment.reference)


@hookimpl
def refund_payment(gateway: str, payment: Payment) -> PaymentResult:
    if gateway == MANUAL:
        return PaymentResult(
            PaymentOutcome.REFUNDED, payment.reference, "to be paid back outside shopgraph"
        )
    return PaymentResult(
        PaymentOutcome.REFUNDED, payment.reference, f"refunded {payment.reference}"
    )


@hookimpl
def refund_payment_part(gateway: str, payment: Payment, amount: int) -> PaymentResult:
    if gateway == MANUAL:
        return PaymentResult(
            PaymentOutcome.REFUNDED,
            _reference("manual_refund"),
            "to be paid back outside shopgraph",
        )
    reference = _reference("refund")
    return PaymentResult(
        PaymentOutcome.REFUNDED, reference, f"refunded {amount} of {payment.reference}"
    )


@hookimpl
def payment_webhook(gateway: str, body: bytes) -> WebhookReply:
    if gateway != TEST:
        raise ValueError(f"the {gateway} gateway takes no webhooks")
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("a test webhook is a JSON object")
    update = PaymentUpdate(
        reference=str(data["reference"]),
        status=PaymentOutcome(str(data["status"])),
        message=str(data.get("message", "")),
    )
    return WebhookReply(updates=(update,), body="ok")
