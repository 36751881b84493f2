# Lambdasite application image (web, worker, scheduler and deliveries share it).
#
# One Dockerfile, two bases, chosen by a build argument:
# * BASE_IMAGE=python:3.11-slim-bookworm (the default) where a registry answers;
# * BASE_IMAGE=lambdasite/base:bookworm-minbase, the project's own Debian base (the one the
#   runtime images use, made with debootstrap where no registry answers): Python 3.11 comes
#   from Debian's packages. `scripts/compose-images` picks the base and builds this image.
# Multi-stage: the dependencies are installed in one stage, the final stage holds the
# virtualenv and the source only, and runs as a non-root user. No secret is baked in: every
# setting comes from the environment at run time.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS python
# the slim Python image has Python in /usr/local; the Debian base gets Debian's python3 (3.11)
RUN if ! command -v python3 >/dev/null 2>&1; then \
      apt-get update \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv \
      && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*; \
    fi \
 && useradd --uid 1000 --create-home --shell /usr/sbin/nologin lambdasite

FROM python AS deps
# build-ca.crt is optional: the certificates the building machine trusts, given to pip where TLS to
# the package index is intercepted by a proxy (it trusts downloads; it is not in the final image)
COPY requirements.txt build-ca.cr[t] /tmp/build/
RUN python3 -m venv /venv \
 && if [ -s /tmp/build/build-ca.crt ]; then export PIP_CERT=/tmp/build/build-ca.crt; fi \
 && /venv/bin/pip install --no-cache-dir --disable-pip-version-check -r /tmp/build/requirements.txt \
 && rm -rf /tmp/build

FROM python
COPY --from=deps /venv /venv
WORKDIR /app
COPY --chown=root:root . /app
ENV PATH=/venv/bin:$PATH \
    DJANGO_SETTINGS_MODULE=lambdasite.settings \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# the source is root's and read-only to the app user (static files are served from it by the
# finders); the bytecode is compiled here because the app cannot write it
RUN rm -f /app/build-ca.crt && mkdir -p /app/var/staticfiles && python -m compileall -q -x '/tests/' /app \
 && mkdir -m 0755 /build-proxy && chown lambdasite /build-proxy
# /build-proxy: a build worker's proxy sockets (BUILD_PROXY_DIR), in a named volume that its builders
# mount too (a new volume takes this directory's owner)
USER lambdasite
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"
CMD ["uvicorn", "lambdasite.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--no-access-log"]
