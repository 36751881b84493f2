"""A job's environment: its configuration, its secrets (as variables and as files) and the door's
proxy variables. Sent by the host over the runner's channel with each request, never through the
container's environment or labels; applied in the job's own process (or, for a function, in the
process that loads its module), after it has become the job's uid.

Secret files: ``/run/secrets/NAME``, mode 0400, owned by the job's uid, on a small tmpfs the host
mounts only in cells that hold secrets (owned by the job's uid, listable by the runner's group,
readable by no one else). The job's process writes them before the job's code runs; the cleaner
removes them after every job, like everything else the job's uid leaves."""

import os

from . import door

SECRETS_DIR = "/run/secrets"


def variables(meta, with_door):
    """The variables to add for a request: configuration, then secrets, then the door's."""
    env = dict(meta.get("env") or {})
    env.update((name, value) for name, value in meta.get("secrets") or [])
    if with_door and meta.get("egress"):
        env.update(door.proxy_env())
    return env


def apply(env):
    os.environ.update(env)


def write_files(secrets):
    """Write each secret to /run/secrets/NAME as the current (job) uid, readable by it alone."""
    if not secrets or not os.path.isdir(SECRETS_DIR):
        return
    for name, value in secrets:
        path = os.path.join(SECRETS_DIR, name)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o400)
        try:
            data = value.encode("utf-8", "surrogatepass")
            while data:
                data = data[os.write(fd, data) :]
        finally:
            os.close(fd)
