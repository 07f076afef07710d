# Toombos Edge in a container: one process (PID 1), its data on a volume, non-root.
#   docker build -t toombos-edge .        (or: podman build --format docker -t toombos-edge .)
#   docker run -p 127.0.0.1:8000:8000 -v edge-data:/data toombos-edge
# The base is a build argument so that a mirror or a locally built image can stand in for
# the official one; it needs python3 with the venv module.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# Only what the server needs to install; the package goes in a venv of its own.
COPY pyproject.toml README.md /src/
COPY toombos_edge /src/toombos_edge
RUN python3 -m venv /opt/toombos-edge \
 && /opt/toombos-edge/bin/pip install --quiet /src \
 && /opt/toombos-edge/bin/python -m compileall -q /opt/toombos-edge/lib \
 && rm -rf /src \
 && mkdir -p /data \
 && chown 10001:10001 /data \
 && chmod 0700 /data

# Inside the container only, listen on every interface (the port is published by the
# runtime); the default elsewhere stays 127.0.0.1. The stop's deadline is under Docker's
# 10 s before SIGKILL.
ENV PATH=/opt/toombos-edge/bin:$PATH \
    HOME=/data \
    TOOMBOS_HOST=0.0.0.0 \
    TOOMBOS_PORT=8000 \
    TOOMBOS_DATA_DIR=/data \
    TOOMBOS_SHUTDOWN_TIMEOUT=8

USER 10001:10001
VOLUME ["/data"]
EXPOSE 8000
STOPSIGNAL SIGTERM
# /live with the image's own Python (no curl in a slim image). A self-signed certificate
# is the usual case on an edge box, so the probe of 127.0.0.1 does not verify it.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, ssl, urllib.request as r; tls = os.environ.get('TOOMBOS_TLS_CERT'); r.urlopen(('https' if tls else 'http') + '://127.0.0.1:' + os.environ.get('TOOMBOS_PORT', '8000') + '/live', timeout=4, context=ssl._create_unverified_context())"]
CMD ["toombos-edge", "serve"]
