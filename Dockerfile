# syntax=docker/dockerfile:1
#
# Chatter as a container: one node, `chatter serve`, on port 4000.
# Build (from the repository root, with BuildKit):  docker build -t chatter:0.2.0 .
# Run:   docker run --init -e DATABASE_URL=... -e SECRET_KEY_BASE=... -p 4000:4000 chatter:0.2.0
# docs/DEPLOYMENT.md says how to run several behind haproxy (deploy/compose.yaml).
# The test suite lints this file with hadolint (tests/unit/test_deployment_files.py).

# ---- builder: the wheel, built by pip from the source, and the pinned wheels it needs.
FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /src
# .dockerignore lets in only what the wheel is built from.
COPY pyproject.toml requirements.lock README.md ./
COPY chatter ./chatter
COPY supervision ./supervision
COPY web ./web
# chatter-<version>-py3-none-any.whl and its dependencies, at the versions the
# test suite passed with (requirements.lock, as a constraint), into /wheels.
RUN pip wheel --no-cache-dir --constraint requirements.lock --wheel-dir /wheels .

# ---- runtime: a slim Python with the wheel installed, and nothing of the source.
FROM python:3.11-slim

LABEL org.opencontainers.image.title="chatter" \
      org.opencontainers.image.description="Chatter: a real-time chat room on an OTP-style supervision tree" \
      org.opencontainers.image.documentation="docs/DEPLOYMENT.md"

# A user of its own: the server never runs as root.
RUN groupadd --system --gid 10001 chatter \
 && useradd --system --uid 10001 --gid chatter --home-dir /var/lib/chatter \
      --create-home --shell /usr/sbin/nologin chatter

# Only the wheels: installed from the builder's /wheels (a bind mount, so no
# layer keeps them), never from the network.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels /wheels/chatter-*.whl

# CHATTER_ENV=prod makes DATABASE_URL and SECRET_KEY_BASE required: `chatter
# serve` refuses to start without them (exit status 2), since the embedded
# PostgreSQL is for development and tests. Pass both with `docker run -e` or an
# env file; never bake a secret into the image.
ENV CHATTER_ENV=prod \
    HOST=0.0.0.0 \
    PORT=4000 \
    CHATTER_DATA_DIR=/var/lib/chatter \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /var/lib/chatter
USER 10001:10001
EXPOSE 4000

# 200 while the database and the supervision tree are up, else 503 (urlopen
# raises, the check fails). The slim image has no curl: Python asks. A PORT
# other than 4000 needs this line changed too.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:4000/healthz', timeout=3)"]

# SIGTERM (docker stop) drains the node: it stops accepting, closes every
# WebSocket with 1001, stops its tree and exits 0 within a few seconds.
STOPSIGNAL SIGTERM
CMD ["chatter", "serve"]
