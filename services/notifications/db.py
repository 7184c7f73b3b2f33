"""The notifications database: transactional mails (one per order and kind), subscribers and
their lists, campaigns with their audience and delivery records, the bulk rate limiter's
bucket, the outbox."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY

from shared.messaging.outbox import outbox_table

metadata = MetaData()

notifications = Table(
    "notifications",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("order_id", String(40), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("to", String(320), nullable=False),
    Column("status", String(16), nullable=False),  # sending|sent|failed
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text),
    Column("claimed_at", DateTime(timezone=True)),
    Column("sent_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # At most one mail of each kind per order, whatever is redelivered.
    UniqueConstraint("order_id", "kind", name="uq_notification_order_kind"),
)

subscribers = Table(
    "subscribers",
    metadata,
    # Identity ids give the audience a stable order (campaign batches are slices of it).
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("email", String(320), nullable=False, unique=True),  # normalised: lowercase ASCII
    Column("name", String(200)),
    # subscribed|unsubscribed|bounced|complained (domain.SubscriberStatus): only `subscribed`
    # addresses are in a campaign's audience, and a batch skips any other status it claims.
    Column("status", String(16), nullable=False, server_default="subscribed"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("unsubscribed_at", DateTime(timezone=True)),
    # When and why a bounce or a complaint took the address out (the SMTP reply, the campaign).
    Column("suppressed_at", DateTime(timezone=True)),
    Column("suppression", Text),
)

# Named audiences: a subscriber is in any number of lists; a campaign targets one, or all.
lists = Table(
    "lists",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

list_members = Table(
    "list_members",
    metadata,
    # (list, subscriber) first: a campaign's snapshot reads one list's members by this key.
    Column("list_id", String(40), ForeignKey("lists.id"), primary_key=True),
    Column("subscriber_id", BigInteger, ForeignKey("subscribers.id"), primary_key=True),
    Column("added_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("list_id", String(40), ForeignKey("lists.id")),  # null: every subscriber
    Column("subject", String(200), nullable=False),
    Column("body", Text, nullable=False),
    # queued|sending|paused|completed|cancelled
    Column("status", String(16), nullable=False),
    Column("total", Integer, nullable=False),
    Column("batch_size", Integer, nullable=False),
    # Progress counters, moved in the same transaction as the delivery rows they count; the
    # campaign is completed when sent + failed + skipped == total (no chord, no result backend).
    Column("sent", Integer, nullable=False, server_default="0"),
    Column("failed", Integer, nullable=False, server_default="0"),
    Column("skipped", Integer, nullable=False, server_default="0"),
    # Of `failed`, the hard bounces (5xx at RCPT or DATA); of `sent`, the complaints recorded.
    Column("bounced", Integer, nullable=False, server_default="0"),
    Column("complained", Integer, nullable=False, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("started_at", DateTime(timezone=True)),
    Column("completed_at", DateTime(timezone=True)),
)

# The audience, snapshotted when the campaign is created: one row per batch holding the
# subscriber ids it covers, so `total` is exact and a batch task reads ~4 kB, not the list.
campaign_batches = Table(
    "campaign_batches",
    metadata,
    Column("campaign_id", String(40), ForeignKey("campaigns.id"), primary_key=True),
    Column("batch_no", Integer, primary_key=True),
    Column("subscriber_ids", ARRAY(BigInteger), nullable=False),
    Column("status", String(16), nullable=False, server_default="pending"),  # pending|done
    Column("done_at", DateTime(timezone=True)),
)

# One row per (campaign, subscriber), inserted as the claim before the mail is sent: a
# redelivered or duplicated batch finds the row and never sends that address again.
campaign_deliveries = Table(
    "campaign_deliveries",
    metadata,
    Column("campaign_id", String(40), primary_key=True),
    Column("subscriber_id", BigInteger, ForeignKey("subscribers.id"), primary_key=True),
    Column("batch_no", Integer, nullable=False),
    Column("email", String(320), nullable=False),
    Column("status", String(16), nullable=False),  # sending|sent|failed|bounced|skipped
    Column("error", Text),
    Column("claimed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("sent_at", DateTime(timezone=True)),
    # A complaint about this mail (counted once in `campaigns.complained`).
    Column("complained_at", DateTime(timezone=True)),
    ForeignKeyConstraint(
        ["campaign_id", "batch_no"],
        ["campaign_batches.campaign_id", "campaign_batches.batch_no"],
        name="fk_delivery_batch",
    ),
    Index("ix_delivery_batch", "campaign_id", "batch_no"),
)

# Token buckets shared by every process of a pool (services/notifications/ratelimit.py). Times
# are PostgreSQL's clock in epoch seconds, so workers on different hosts agree.
rate_buckets = Table(
    "rate_buckets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("tokens", Float, nullable=False),
    Column("at", Float, nullable=False, server_default=text("extract(epoch from now())")),
)

outbox = outbox_table(metadata)
