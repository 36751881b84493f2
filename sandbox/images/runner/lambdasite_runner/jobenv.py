"""A job's environment: its configuration, its secrets (as variables and as files) and the door's
proxy variables. Sent by the host over the runner's channel with each request, never through the
container's environment or labels; applied in the job's own process (or, for a function, in the
process that loads its module), after it has become the job's uid.

Secret files: ``/run/secrets/NAME`` on a small tmpfs the host mounts only in cells that hold secrets,
owned by the runner's uid with the job's group, setgid, mode 2750. The runner writes each file (mode
0440: the runner and the job's group, which only job processes have) when the cell first gets its
secrets, before any job code runs; the job can read them but neither change, remove nor add one. A
cell is keyed by the revisions of the secrets it holds, so every job it runs has exactly these
files, and a rotation gets another cell."""

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
    """As the runner: make /run/secrets hold exactly ``secrets`` (a file each, mode 0440)."""
    if not os.path.isdir(SECRETS_DIR):
        return
    for name in os.listdir(SECRETS_DIR):
        os.unlink(os.path.join(SECRETS_DIR, name))
    for name, value in secrets:
        fd = os.open(
            os.path.join(SECRETS_DIR, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o440
        )
        try:
            data = value.encode("utf-8", "surrogatepass")
            while data:
                data = data[os.write(fd, data) :]
        finally:
            os.close(fd)
