"""Lambdasite cell runner: PID 1 of every sandbox container, runs one job per fresh process.

Security decisions, each deliberate:

* The runner is PID 1 of the container's PID namespace, so user code cannot
  kill or stop it (the kernel ignores SIGKILL/SIGSTOP sent to init from
  inside its namespace, and ``kill(-1, ...)`` skips init).
* User code never runs as the runner's uid. The container starts as root with
  only CAP_SETUID, CAP_SETGID, CAP_SETPCAP and CAP_KILL; when the cell is bound
  to its tenant (the first request names the tenant's job uid J), the runner
  drops to uid J-1 keeping just those four capabilities. Every job process is
  uid J with an empty capability set and an empty bounding set. A job can
  therefore neither signal, ptrace, prlimit, renice nor re-pin the runner, and
  per-uid kernel budgets (POSIX message queues, pipe buffers, inotify) are the
  tenant's own, never shared with another tenant's cells.
* The runner is non-dumpable, so no process can open ``/proc/1/fd/*`` or
  ``/proc/1/mem`` to read the request stream that carries later jobs.
* User code never writes to the container's stdout: its stdout/stderr are
  pipes that the runner reads and frames, and its result travels on a third
  pipe. The runner parses none of those bytes: output is relayed as opaque
  frames, the result as one opaque frame, and the job's CPU time comes from the
  container's cgroup, never from anything the job could write.
* The runner never holds a job's data in memory it does not zero: arguments go
  straight to the child, output and result pass through two preallocated
  buffers with ``readv``/``writev`` (no copies) that are zeroed after each job,
  so a child forked later finds nothing of an earlier job.
* After each job every other process is killed (CAP_KILL), then a cleaner
  running as the job's uid removes everything the job could leave: files under
  ``/tmp`` and ``/dev/shm`` (iteratively: any depth, any mode), POSIX message
  queues and SysV shared memory, semaphores and message queues. The runner then
  compares what can be compared with the state at binding (its rlimits, nice
  value and CPU affinity, the writable paths, IPC objects, processes) and
  reports a ``C`` frame; on any difference or cleanup error the host retires
  the cell and the runner exits.
* The wall-clock limit holds whatever the job prints: an interval timer kills
  the job even while the runner is blocked relaying output to a slow host.

Deployed functions (``zygote.py``, ``nodechild.py``): a cell is bound to one
function version as well as to its tenant. Python: a zygote, forked from the
runner as the job uid, runs the module's initialisation once; every job is a
fresh fork of the zygote, which itself never runs a job. The zygote may keep
no threads, no open descriptors and no shared writable memory from its
initialisation (they would carry one job's writes to the next), seals itself
(non-dumpable, signals blocked), and after every job the runner checks that no
job changed it (alive, not stopped, same rlimits, nice value, scheduling policy
and CPU affinity) or retires the cell. Node: every pre-started process loads
the module before its job arrives. The runner itself never runs user code.

Protocol. Host -> runner (stdin): ``b"J" + u32 length + header JSON`` then the
body, ``header["body"]`` bytes: for a snippet ``{"code", "handler", "args"}`` as
JSON; for a function, the module's code (``header["code_bytes"]``, only on the
first request to a cell) followed by the arguments as JSON. A header with
``"warm": true`` only initialises the function.
Runner -> host (stdout): frames ``kind(1) + u32 length + payload``:
``H`` hello, ``I`` a function's initialisation ended (``1`` + JSON, or ``0`` and
the error as JSON), ``1``/``2`` stdout/stderr bytes, ``T`` a log cap was reached,
``R`` result bytes, ``X`` exit summary JSON, ``C`` cleanliness report JSON
(after each job, before the runner reads the next request).

Durable runs (``header["durable"]``): the body carries the run's id and journal
(a snippet's JSON gets ``"durable"``; a function's arguments become ``{"args",
"durable"}``), and the job's process gets a record channel, a socket at fd 5
(every other job's process closes it). Each length-prefixed record it sends is
relayed whole, unparsed and masked like output, as an ``S`` frame; the host
stores it and answers with ``b"A" + u32 length + JSON`` on stdin, which the
runner passes back on the channel (one answer per record; an answer that comes
after its job ended is skipped before the next request). The runner's end is
non-blocking: a process that does not read its answers loses the channel."""
