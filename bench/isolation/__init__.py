"""Priority isolation: accept-to-paid latency with and without a 200,000-mail campaign backlog,
for our deployment and for a single-queue Celery deployment of the same tasks.

    python -m bench.isolation [--mails 200000] [--rate 5] [--seconds 60] [--cap 20] [--no-write]

(`make bench`; about 8 minutes. `--mails 20000 --seconds 20` for a quick look.)

Two deployments, one after the other, each a whole stack on its own ports, vhost and databases
(`devtools.harness.stack`, slot 8 unless DOORBUSTER_TEST_SLOT says otherwise):
- ours: the stack exactly as `make up` plans it (devtools/plan.py): four queues with
  message priorities, one pool per queue (payments 16 threads, orders 8, notifications 4,
  bulk 2);
- single-queue: the same APIs and the same task code, every task routed to Celery's default
  queue `celery` (no priorities) and consumed by ONE worker of 30 threads, the sum of our pools
  (bench/isolation/single_queue.py). That is what a project gets with default routing and one
  `celery worker`, and not a strawman: same threads, prefetch (1), acks and campaign throttle.

Each deployment, after a warm-up, takes the same open-loop load (checkouts through
POST /v1/orders at `--rate` per second, the Stripe emulator at a 200 ms median) in four windows
of `--seconds`/2: no backlog, backlog, backlog, no backlog. The machine is shared and its load
drifts; in this order a linear drift weighs the same on both conditions. Backlog: a campaign to
`--mails` subscribers (imported through POST /v1/subscribers, 10,000 a request) has queued its
batch tasks of 500 and the bulk path is sending at its real throttle (BULK_MAIL_RATE_PER_SECOND,
default 200/s, and the Celery rate limit on batches), so most of it is still queued when the
windows end (200,000 mails take about 1,000 s); then the campaign is cancelled and its queue
purged, and the last window runs without it.

Accept-to-paid per order comes from the orders database (`updated_at - created_at` of a paid
order: one clock, PostgreSQL's, and no polling error). After each window the bench waits for
its orders at most `--cap` seconds; an order unpaid by then has waited longer than the cap, and
a percentile that falls among such orders is shown as "> cap" (`cells.py`), never
guessed. Also recorded per condition: queue depths (ready messages, passive declares, each
second), how many campaign mails went out, and the CPU of the stack's processes and of the
PostgreSQL backends serving its databases, which is what the backlog can still take from
checkouts in our deployment. The figure is p99 with backlog / p99 without (target <= 1.2).


Modules: `stacks` (the two deployments), `single_queue` (the baseline's entry points), `load`
(windows, waits, depths, CPU), `cells` (pure: what a condition measured, percentiles),
`report` (the docs/benchmarks.md section), `__main__` (options, the run).
"""
