"""What a deploy may contain: names, handlers, Python requirements and Node dependencies (what a
version reaches and is given, its egress, env and secret bindings, follows ``jobs.policy``, the
rule inline jobs follow too).

Dependencies are names and version ranges only. A builder reaches the network,
so anything that would make it fetch from elsewhere than the package index (an
option such as ``--index-url``, a URL, a path, a git reference) is refused here,
before any build (and again inside the builder)."""

from __future__ import annotations

import re

from packaging.requirements import InvalidRequirement, Requirement

from lambdasite.exceptions import ValidationFailed

from .models import NAME_PATTERN

ALIAS_PATTERN = r"^[a-z][a-z0-9_-]{0,63}$"  # a letter first: a qualifier of digits is a version number
RESERVED_ALIASES = {"latest"}
MAX_DEPENDENCIES = 200
NPM_NAME = re.compile(r"^(@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*$")
NPM_RANGE = re.compile(r"^[0-9A-Za-z.^~<>=|*+\- ]{1,100}$")  # versions, ranges and dist-tags, nothing else


def _fail(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", details={"fields": {field: [message]}})


def function_name(name: str) -> str:
    if not isinstance(name, str) or not re.match(NAME_PATTERN, name):
        raise _fail("name", "use 1-64 lowercase letters, digits, '-' or '_', starting with a letter or digit")
    return name


def alias_name(name: str) -> str:
    if not isinstance(name, str) or not re.match(ALIAS_PATTERN, name) or name in RESERVED_ALIASES:
        raise _fail(
            "alias", "use 1-64 lowercase letters, digits, '-' or '_', starting with a letter (not 'latest')"
        )
    return name


def handler_name(runtime: str, handler: str) -> str:
    ok = handler.isidentifier() if runtime == "python" else re.match(r"^[A-Za-z_$][A-Za-z0-9_$]*$", handler)
    if not handler or len(handler) > 100 or not ok:
        raise _fail("handler", "must be a function name defined by the code")
    return handler


def requirements(text: str) -> str:
    """Normalised requirements.txt text: one ``name[extras] specifier ; marker`` per line, sorted."""
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        if line.startswith("-") or "://" in line or line.startswith((".", "/", "~")):
            raise _fail(
                "requirements", f"line {number}: only package names with version specifiers are allowed"
            )
        try:
            requirement = Requirement(line)
        except InvalidRequirement as exc:
            raise _fail("requirements", f"line {number}: {exc}") from None
        if requirement.url:
            raise _fail("requirements", f"line {number}: direct URLs are not allowed, only the package index")
        lines.append(str(requirement))
    if len(lines) > MAX_DEPENDENCIES:
        raise _fail("requirements", f"at most {MAX_DEPENDENCIES} requirements")
    names = [Requirement(line).name.lower().replace("_", "-") for line in lines]
    duplicate = next((name for name in names if names.count(name) > 1), None)
    if duplicate:
        raise _fail("requirements", f"{duplicate} is listed twice")
    return "\n".join(sorted(lines, key=str.lower)) + ("\n" if lines else "")


def dependencies(value) -> dict:
    """A package.json ``dependencies`` object of registry packages and version ranges."""
    if not isinstance(value, dict):
        raise _fail("dependencies", "must be an object of package names to version ranges")
    if len(value) > MAX_DEPENDENCIES:
        raise _fail("dependencies", f"at most {MAX_DEPENDENCIES} dependencies")
    out = {}
    for name, spec in value.items():
        if not isinstance(name, str) or len(name) > 214 or not NPM_NAME.match(name):
            raise _fail("dependencies", f"{name!r} is not a valid npm package name")
        if not isinstance(spec, str) or not NPM_RANGE.match(spec.strip()):
            raise _fail(
                "dependencies",
                f"{name}: {spec!r} is not a version or range (URLs, git, file: and aliases are not allowed)",
            )
        out[name] = spec.strip()
    return dict(sorted(out.items()))
