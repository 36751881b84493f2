"""The `lambdasite` command line (standard library only); the API client is lambdasite_client.

export LAMBDASITE_URL=http://127.0.0.1:8000 LAMBDASITE_KEY=lsk_...
lambdasite run handler.py --args '[2, 3]' --wait
lambdasite logs JOB_ID --follow
lambdasite jobs [--status failed,dead]
lambdasite get JOB_ID | cancel JOB_ID | retry JOB_ID
lambdasite deploy ./my-function --name slugify     # handler file + requirements.txt / package.json
lambdasite deploy ./notify --name notify --egress hooks.slack.com:443 --secret TOKEN=slack --env CHANNEL=ops
lambdasite secret set slack < token.txt             # or typed at a prompt; never an argument
lambdasite secret list | secret rm slack
lambdasite invoke slugify:prod --args '["Hello World"]' --wait
lambdasite deploy ./approve --name approve --durable # a durable function: its handler gets ctx first
lambdasite steps JOB_ID                              # a durable run's recorded steps
lambdasite event order.approved o-1234 --data '{"approved": true}'   # resume the runs waiting for it
lambdasite functions | versions NAME | alias NAME prod 3
lambdasite schedule create nightly --cron '30 2 * * *' --timezone Europe/Berlin --function report
lambdasite schedules
lambdasite webhook create https://example.com/hook --events job.failed,job.dead
lambdasite route add hello /hello/{name} --method GET           # -> its public URL
lambdasite route add stripe-events /stripe --auth hmac --preset stripe --secret stripe --async
lambdasite route list hello | route rm hello ROUTE_ID | route replay JOB_ID --qualifier 2 --wait
lambdasite deploy ./sync --name sync --max-concurrency 5 --concurrency-key '$[0].store_id'  # flow control
lambdasite limits sync --reserved-concurrency 2 --concurrency-per-key 1   # change it without deploying
lambdasite invoke sync --args '[{"store_id": 42}]' --priority 8      # 0-9, default 5; run takes it too
lambdasite deploy ./etl --name etl --pool default --overflow burst --after-wait 2  # also on run, invoke
"""

from __future__ import annotations

import argparse
import sys

try:
    from lambdasite_client import ApiError, Client
    from lambdasite_functions import add_function_commands
    from lambdasite_jobs import add_job_commands
    from lambdasite_output import UsageError
    from lambdasite_routes import add_route_commands
    from lambdasite_schedules import add_schedule_and_webhook_commands
    from lambdasite_secrets import add_secret_commands
except ImportError:  # in the repository: client/ is a package
    from .lambdasite_client import ApiError, Client
    from .lambdasite_functions import add_function_commands
    from .lambdasite_jobs import add_job_commands
    from .lambdasite_output import UsageError
    from .lambdasite_routes import add_route_commands
    from .lambdasite_schedules import add_schedule_and_webhook_commands
    from .lambdasite_secrets import add_secret_commands


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    opts = parser.parse_args(argv)
    try:
        return opts.command_fn(Client(), opts)
    except UsageError as exc:
        parser.error(str(exc))
    except (ApiError, OSError, ValueError) as exc:
        print(f"lambdasite: {exc}", file=sys.stderr)
        return 2


# The parser: each subcommand names its handler with set_defaults(command_fn=...).


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lambdasite", description="Run functions on a Lambdasite server.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_job_commands(sub)
    add_function_commands(sub)
    add_schedule_and_webhook_commands(sub)
    add_secret_commands(sub)
    add_route_commands(sub)
    return parser


if __name__ == "__main__":
    sys.exit(main())
