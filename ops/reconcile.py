"""`doorbuster reconcile`: the orders against the provider's PaymentIntents, once, now.

The same use case the periodic task runs (services/orders/reconcile.py), through the orders
service's own runtime (its database, its outbox, the Stripe gateway), so what it settles or
refunds is recorded exactly as the charge and the webhook record it. Prints one line per
discrepancy with what was done, like `make audit`, and exits 1 while one remains.
"""

from __future__ import annotations

from datetime import datetime

from services.orders.reconcile import Reconciliation, reconcile
from services.orders.runtime import OrdersRuntime
from shared.infra.settings import Settings


async def run(settings: Settings, since: datetime, fix: bool) -> Reconciliation:
    runtime = OrdersRuntime(settings)
    await runtime.start(relay=False)
    try:
        # Outbox rows a fix writes are published now if the broker answers, else by the
        # orders API's relay: waiting is a nicety, not a condition.
        await runtime.wait_for_broker(5.0)
        return await reconcile(runtime.uow(), runtime.payments, since, fix=fix)
    finally:
        await runtime.stop()


def render(report: Reconciliation, fix: bool) -> str:
    lines = [
        f"reconcile since {report.since.isoformat(timespec='seconds')}: "
        f"{report.intents} intents, {report.orders} orders compared"
    ]
    for finding in report.findings:
        mark = "FIXED" if finding.fixed else "OPEN "
        done = "; ".join(finding.done) or ("nothing done" if fix else "dry run: nothing done")
        lines.append(f"[{mark}] {finding.kind} {finding.order_id}: {finding.detail} -> {done}")
    remaining = len(report.remaining)
    fixed = len(report.findings) - remaining
    if not report.findings:
        lines.append("verdict: the orders and the provider agree")
    else:
        lines.append(f"verdict: {fixed} discrepancy(ies) fixed, {remaining} remaining")
    return "\n".join(lines)
