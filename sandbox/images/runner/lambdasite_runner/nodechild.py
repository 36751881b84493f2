"""Node job processes: one fresh node per job, started ahead of time (once the cell knows its tenant's
uid) so the job does not pay for interpreter start. A function's module is loaded by that process
before its job arrives. The process reads its request from fd 3 and writes its result to fd 4."""

import json
import os
import resource

from . import pychild
from .privileges import drop_to_job_uid
from .wire import MAX_FD, control_pair, job_pipes, pipe_through, write_all

NODE = "/usr/local/bin/node"
# the proxy agent Node 22 uses for NODE_USE_ENV_PROXY warns that it is experimental on every job
NODE_ARGS = ["node", "--stack-size=984", "--disable-warning=UNDICI-EHPA", "/opt/lambdasite/child.js"]
NODE_CPU_S = 3600  # RLIMIT_CPU backstop; the wall-clock limit is what ends a job


class NodeSpare:
    """``env``: what the process starts with beyond the runner's own environment (the door's
    variables, a function's configuration and secrets)."""

    def __init__(self, uid, function=None, env=None):
        (self.out_r, self.err_r, self.res_r, self.body_w), theirs = job_pipes()
        out_w, err_w, res_w, body_r = theirs
        self.ctl, ctl_theirs = control_pair()  # a durable run's records (fd 5; closed by any other job)
        self.pid = os.fork()
        if self.pid == 0:
            try:
                os.setsid()
                devnull = os.open("/dev/null", os.O_RDONLY)
                os.dup2(devnull, 0)
                os.dup2(out_w, 1)
                os.dup2(err_w, 2)
                os.dup2(body_r, 3)
                os.dup2(res_w, 4)
                os.dup2(ctl_theirs, 5)
                os.closerange(6, MAX_FD)
                pychild.reset_signals()
                os.chdir("/tmp")
                drop_to_job_uid(uid)
                resource.setrlimit(resource.RLIMIT_CPU, (NODE_CPU_S, NODE_CPU_S + 1))
                os.execve(NODE, NODE_ARGS, {**os.environ, **(env or {})})
            finally:
                os._exit(71)
        for fd in (*theirs, ctl_theirs):
            os.close(fd)
        if function is not None:
            # the module goes first, so the process loads it while no job waits for it
            code = function["code"]
            head = {
                "handler": function["handler"],
                "deps": function["deps"],
                "code_bytes": len(code),
            }
            try:
                write_all(self.body_w, json.dumps({"function": head}).encode() + b"\n" + code)
            except BrokenPipeError:
                pass  # it died starting: the job sees EOF and fails

    def feed(self, meta, size, extra=None):
        """Pass the job's header (with ``extra``: a snippet's variables) and its ``size``
        body bytes (from stdin) to the process."""
        header = (
            json.dumps({"max_result_bytes": meta.get("max_result_bytes"), **(extra or {})}).encode() + b"\n"
        )
        pipe_through(self.body_w, size, prefix=header)
