# The production image: the same image runs in every environment; configuration comes from the
# work pool's environment and Prefect blocks, never from the image. Build it with `make image`.
# The base is a build argument so that CI builds on a digest (the build job refuses anything else): a tag such as
# python:3.11-slim moves to new bytes without notice. The default serves local builds and the tests' stand-in base.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    SODA_CORE_TELEMETRY_ENABLED=false \
    SHIPSHAPE_PROJECT_DIR=/opt/shipshape \
    SHIPSHAPE_DATA_DIR=/var/lib/shipshape

# --no-log-init: with a high UID, useradd would write a multi-MB sparse /var/log/lastlog that layers store in full.
RUN groupadd --gid 10001 shipshape \
    && useradd --uid 10001 --gid 10001 --create-home --no-log-init shipshape \
    && mkdir -p /var/lib/shipshape \
    && chown 10001:10001 /var/lib/shipshape

WORKDIR /opt/shipshape
# Dependencies come from the lock alone, before any source: this slow layer stays cached until the lock changes.
# --require-hashes: every file must match the sha256 the lock recorded, whatever index or proxy served it.
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock

COPY pyproject.toml README.md prefect.yaml ./
COPY shipshape ./shipshape
COPY runtime ./runtime
COPY cli ./cli
COPY tasks ./tasks
COPY flows ./flows
COPY deployments ./deployments
COPY infra ./infra
COPY demo ./demo
COPY pipelines ./pipelines
COPY checks ./checks
# The in-tree build leaves build/ and *.egg-info behind; they are not part of the project.
RUN pip install --no-deps . \
    && rm -rf build shipshape.egg-info

# Version and revision last: a new commit changes only these metadata layers, never the cached installs above
# (build args are visible to every later RUN, so declaring them earlier would reinstall all dependencies per commit).
ARG VERSION=unknown
ARG GIT_SHA=unknown
LABEL org.opencontainers.image.title="shipshape" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${GIT_SHA}"
ENV SHIPSHAPE_CODE_VERSION=${GIT_SHA}

USER 10001:10001
CMD ["shipshape", "--help"]
