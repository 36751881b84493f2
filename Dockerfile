# Lambdasite application image (web, worker, scheduler share it).
# Multi-stage: dependencies are built in one stage, the runtime stage holds only
# the virtualenv and the source, and runs as a non-root user.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS deps
RUN python -m venv /venv
COPY requirements.txt /tmp/requirements.txt
RUN /venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt

FROM ${PYTHON_IMAGE}
RUN useradd --uid 1000 --create-home --shell /usr/sbin/nologin lambdasite
COPY --from=deps /venv /venv
WORKDIR /app
COPY --chown=lambdasite:lambdasite . /app
ENV PATH=/venv/bin:$PATH \
    DJANGO_SETTINGS_MODULE=lambdasite.settings \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER lambdasite
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"
CMD ["uvicorn", "lambdasite.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--no-access-log"]
