"""What the runner knows about its cell, set when it is bound (module attributes, one runner per process)."""

job_uid = None  # the tenant's job uid, once bound
baseline = None  # the runner's own fingerprint at binding (cleanup.fingerprint)
wake_r = None  # the read end of the signal wake-up pipe
function = None  # the function version this cell is bound to: {"key", "handler", "deps", "code"}
zygote = None  # a Python function's zygote (zygote.Zygote), once initialised
door = False  # the host mounted a door (the egress proxy's socket) into this cell
secrets = []  # the [name, value] pairs written to /run/secrets
masker = None  # the current job's masker (masking.Masker), zeroed after the job
