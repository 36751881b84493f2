"""Every state transition of a job happens in this package, one concern per module.

Delivery guarantee: PostgreSQL is the source of truth and RQ only carries job
ids. A job row is committed before its id reaches Redis (``submit`` then
``dispatch`` after commit); a worker claims it with a compare-and-set and holds a
lease it renews while the job runs (``lifecycle``); only the job's current
attempt may write an outcome (the attempt fence); ``reconcile`` re-dispatches what
Redis lost and retries attempts whose lease expired. The result is at-least-once
execution with exactly one visible outcome per job.

Modules, in the order a job meets them: ``admission`` (may this tenant start work
now), ``submit`` (validate, insert, idempotency), ``dispatch`` (fill the tenant's
slots, enqueue), ``lifecycle`` (claim, renew, finish, internal error, hand-back,
lease expiry), ``retry`` (the pure retry/terminal decision), ``actions`` (cancel,
requeue, delete), ``reconcile`` (the reconciler's pass), ``notify`` (what each
transition tells logs, live pages and Redis after commit). Modules import their
siblings directly; nothing imports this package's namespace.
"""
