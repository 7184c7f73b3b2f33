"""Provider reconciliation: the orders against the PaymentIntents the provider holds for them.

The charge path keeps one successful charge per order by itself (idempotency keys, the
settle under the row lock, the look-up by order id once a key may be forgotten). This is
the check behind it, run by `doorbuster reconcile` and periodically by beat: it lists the
provider's intents created in a window (List API: strongly consistent, unlike search),
groups them by `metadata.order_id`, and compares them with the orders. Three kinds of
discrepancy, each fixed through the same use cases the charge and the webhook use:

* `charged_not_paid`: a succeeded intent still holds money for an order that is not paid.
  A `reserved` order is settled with it (it becomes `paid`, as the charge task would have
  made it); any other is refunded (`paid_after_<status>`, as a late webhook is).
* `charged_twice`: more than one succeeded intent holds money for an order: every one but
  the order's own is refunded (reason `duplicate`, one refund key per intent).
* `paid_without_charge`: a paid (or refunded) order whose recorded intent is not a
  succeeded one at the provider. If another succeeded intent of the order holds its money,
  the order records it (the oldest; any further one is `charged_twice`); otherwise it
  needs an operator (the goods went out without the money), and stays a discrepancy.

An intent naming an order this database does not have (`unknown_order`) is reported, never
refunded: the account may be shared with another environment.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from prometheus_client import Counter

from services.orders import billing
from services.orders.domain import OrderStatus
from services.orders.payments import ChargeOutcome, ProviderIntent, StripeGateway
from services.orders.repository import Order, OrdersWork
from shared.messages.orders import RefundOrder

log = logging.getLogger(__name__)

PAID = (OrderStatus.PAID, OrderStatus.REFUNDED)
# Intents are listed from this much before the orders' window: an intent is made after its
# order, but by the provider's clock, which may lag ours.
CLOCK_MARGIN = timedelta(hours=1)
KINDS = ("charged_not_paid", "charged_twice", "paid_without_charge", "unknown_order")
# Every run counts each finding again, so an open one keeps counting hourly while it remains:
# `PaymentDiscrepancyOpen` fires on `fixed="false"` increasing (deploy/prometheus/alerts.yml).
FINDINGS = Counter(
    "doorbuster_payment_discrepancies",
    "Discrepancies the provider reconciliation found, by kind and whether it fixed them",
    ["kind", "fixed"],
)
for _kind in KINDS:  # present at zero, so the first one counts as an increase
    for _fixed in ("true", "false"):
        FINDINGS.labels(_kind, _fixed)


@dataclass
class Finding:
    kind: str  # charged_not_paid | charged_twice | paid_without_charge | unknown_order
    order_id: str
    detail: str
    done: list[str] = field(default_factory=list)
    fixed: bool = False

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "order_id": self.order_id,
            "detail": self.detail,
            "done": self.done,
            "fixed": self.fixed,
        }


@dataclass
class Reconciliation:
    since: datetime
    orders: int = 0
    intents: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def remaining(self) -> list[Finding]:
        return [finding for finding in self.findings if not finding.fixed]


async def reconcile(
    uow: OrdersWork, gateway: StripeGateway, since: datetime, fix: bool = True
) -> Reconciliation:
    """Compare the orders with the provider's intents created since `since`; with `fix`,
    settle or refund what can be, and say what was done."""
    intents = await gateway.list_intents(since - CLOCK_MARGIN)
    refunded = await gateway.refunded_amounts(since - CLOCK_MARGIN)
    by_order: dict[str, list[ProviderIntent]] = defaultdict(list)
    for intent in intents:
        if intent.order_id and intent.status == "succeeded":
            by_order[intent.order_id].append(intent)
    orders = {row["id"]: row for row in await uow.orders.charged_or_listed(since, list(by_order))}
    report = Reconciliation(since, orders=len(orders), intents=len(intents))
    for order_id in sorted(set(orders) | set(by_order)):
        succeeded = sorted(by_order.get(order_id, []), key=lambda intent: intent.created)
        holding = [i for i in succeeded if i.amount_received > refunded.get(i.id, 0)]
        order = orders.get(order_id)
        if order is None:
            if holding:
                ids = ", ".join(intent.id for intent in holding)
                report.findings.append(
                    Finding("unknown_order", order_id, f"{ids} succeeded for an order not here")
                )
            continue
        report.findings += await _check(uow, gateway, order, succeeded, holding, fix)
    for finding in report.findings:
        FINDINGS.labels(finding.kind, "true" if finding.fixed else "false").inc()
        log.warning(
            "reconcile: %s %s: %s; %s",
            finding.kind,
            finding.order_id,
            finding.detail,
            "; ".join(finding.done) or "nothing done",
        )
    return report


async def _check(
    uow: OrdersWork,
    gateway: StripeGateway,
    order: Order,
    succeeded: list[ProviderIntent],
    holding: list[ProviderIntent],
    fix: bool,
) -> list[Finding]:
    order_id, findings = order["id"], []
    recorded = order["payment_intent_id"]
    if order["status"] in PAID and recorded not in {intent.id for intent in succeeded}:
        finding = Finding(
            "paid_without_charge",
            order_id,
            f"{order['status']} with intent {recorded}, which did not succeed at the provider",
        )
        findings.append(finding)
        others = [intent for intent in holding if intent.id != recorded]
        if not others:
            finding.done.append("needs an operator: no succeeded intent of the order")
        elif fix:  # the oldest is the order's charge; any other is refunded below
            await _record(uow, order_id, others[0].id)
            finding.done.append(f"recorded {others[0].id} as the order's charge")
            finding.fixed = True
            order = await uow.orders.read(order_id)
    kept = order["payment_intent_id"] if order["status"] == OrderStatus.PAID else None
    extra = [intent for intent in holding if intent.id != kept]
    if not extra:
        return findings
    twice = kept is not None or len(extra) > 1
    finding = Finding(
        "charged_twice" if twice else "charged_not_paid",
        order_id,
        f"{', '.join(i.id for i in extra)} hold money for an order that is {order['status']}"
        + (f" and charged by {kept}" if kept else ""),
    )
    findings.append(finding)
    if fix:
        try:
            await _give_back(uow, gateway, order, extra, finding)
        except Exception as exc:  # one order's failure must not stop the run
            log.exception("reconcile: order %s could not be fixed", order_id)
            finding.done.append(f"failed: {exc!r}"[:300])
    return findings


async def _give_back(
    uow: OrdersWork,
    gateway: StripeGateway,
    order: Order,
    extra: list[ProviderIntent],
    finding: Finding,
) -> None:
    """Settle a reserved order with its first extra intent; refund every other one."""
    order_id = order["id"]
    if order["status"] == OrderStatus.RESERVED:
        await billing.settle_charge(uow, order_id, ChargeOutcome(True, extra[0].id))
        order = await uow.orders.read(order_id)
        finding.done.append(f"settled: the order is {order['status']} with {extra[0].id}")
    elif order["status"] != OrderStatus.PAID and order["payment_status"] not in (
        billing.MONEY_RECORDED
    ):
        # Money for an order that ended without it: recorded as a late payment (its refund
        # is queued too), then refunded now, so this run can tell it is done.
        await billing.settle_charge(uow, order_id, ChargeOutcome(True, extra[0].id))
        order = await uow.orders.read(order_id)
    for intent in extra:
        if order["status"] == OrderStatus.PAID and intent.id == order["payment_intent_id"]:
            continue
        if intent.id == order["payment_intent_id"] and order["payment_status"] != "refunded":
            await billing.refund_order(uow, gateway, RefundOrder(order_id=order_id))
            reason = (await uow.orders.read(order_id))["refund_reason"]
            finding.done.append(f"refunded {intent.id} ({reason})")
        else:
            await gateway.refund(order_id, intent.id, duplicate=True)
            finding.done.append(f"refunded {intent.id} (duplicate)")
    finding.fixed = True


async def _record(uow: OrdersWork, order_id: str, intent_id: str) -> None:
    async with uow:
        order = await uow.orders.get(order_id, lock=True)
        await uow.orders.set_payment(order, payment_intent_id=intent_id)
        await uow.commit()
