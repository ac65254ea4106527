# syntax=docker/dockerfile:1.7
# One image for every gridts process:
#   API:     docker run IMAGE                    -> python -m app
#   ingest:  docker run IMAGE ingest load SRC... -> python -m ingest load SRC...
# The ENTRYPOINT is `dumb-init -- python -m`: dumb-init runs as PID 1, forwards SIGTERM to Python
# (which, as PID 1 itself, would ignore it and wait out the pod's grace period) and reaps
# children; the first argument names the module to run. The Helm chart's containers pass exactly
# these arguments (tests/chart checks that they agree).
#
# PYTHON_IMAGE may be any Debian-like image with Python 3.11 as `python3` on PATH: the official
# python:3.11-slim-bookworm (the default; its python3 is under /usr/local) or Debian bookworm
# with python3, python3-venv and python3-pip from apt (/usr/bin/python3, pip "externally
# managed", no `python`).
# Both stages use the same base, so the venv's interpreter path exists in the runtime stage.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: resolve and install the locked dependencies, then the project, into a venv -------
FROM ${PYTHON_IMAGE} AS build
ARG UV_VERSION=0.13.9
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/opt/gridts/venv \
    UV_SYSTEM_CERTS=1
# UV_SYSTEM_CERTS: uv trusts the base image's CA store (/etc/ssl/certs), like pip and apt do,
# instead of its bundled roots, so a build behind a TLS-inspecting proxy works once that CA is
# in the store (the e2e mounts this machine's bundle into the RUN steps; nothing is committed).
# uv in a venv of its own: works where the system pip is "externally managed" (PEP 668), and
# keeps uv out of the interpreter the project venv is made from.
RUN python3 -m venv /opt/uv && /opt/uv/bin/pip install "uv==${UV_VERSION}"
WORKDIR /src

# Dependencies first, from the lock file alone: this layer is reused until uv.lock changes.
# The venv is made from `python3` as PATH finds it in this base image.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    /opt/uv/bin/uv sync --frozen --no-dev --extra ops --no-install-project --python "$(command -v python3)"

# Then the project itself, installed as a regular (non-editable) package.
COPY README.md ./
COPY src ./src
RUN --mount=type=cache,target=/root/.cache/uv \
    /opt/uv/bin/uv sync --frozen --no-dev --extra ops --no-editable --python "$(command -v python3)"

# ---- runtime: the same Python, the venv, a numeric non-root user; no pip, uv or compilers --------
FROM ${PYTHON_IMAGE} AS runtime
# No pip in the runtime image: Debian's python3-pip is purged with apt (pip refuses to uninstall
# what dpkg installed; --auto-remove takes the setuptools and wheel it pulled in), a pip installed
# into the interpreter itself (python:3.11-slim: pip, setuptools, wheel) is uninstalled by pip.
# The last line fails the build if `python3 -m pip` still works.
RUN set -eu; \
    groupadd --system --gid 10001 gridts; \
    useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin gridts; \
    if dpkg-query --show --showformat='${db:Status-Status}' python3-pip 2>/dev/null | grep -qx installed; then \
        apt-get purge --yes --auto-remove python3-pip; \
    fi; \
    if python3 -m pip --version >/dev/null 2>&1; then \
        PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip uninstall --yes --quiet pip setuptools wheel; \
    fi; \
    if python3 -m pip --version >/dev/null 2>&1; then \
        echo "pip is still importable in the runtime image" >&2; exit 1; \
    fi
COPY --from=build --chown=0:0 /opt/gridts/venv /opt/gridts/venv
# The venv's bin comes first: its `python` (a link to the base's python3; a Debian base may have
# no `python` of its own) and the `dumb-init` binary of the locked dumb-init wheel.
ENV PATH=/opt/gridts/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    API_PORT=8000
WORKDIR /tmp
USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["dumb-init", "--", "python", "-m"]
CMD ["app"]
