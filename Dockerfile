# The production image: the same image runs in every environment; configuration comes from the
# work pool's environment and Prefect blocks, never from the image.
FROM python:3.11-slim

ARG VERSION=0.1.0
ARG GIT_SHA=unknown
LABEL org.opencontainers.image.title="shipshape" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${GIT_SHA}"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SODA_CORE_TELEMETRY_ENABLED=false \
    SHIPSHAPE_PROJECT_DIR=/opt/shipshape \
    SHIPSHAPE_DATA_DIR=/var/lib/shipshape \
    SHIPSHAPE_CODE_VERSION=${GIT_SHA}

RUN useradd --create-home --uid 10001 shipshape \
    && mkdir -p /var/lib/shipshape && chown shipshape /var/lib/shipshape

WORKDIR /opt/shipshape
COPY requirements.lock ./
RUN pip install --no-deps -r requirements.lock

COPY pyproject.toml README.md ./
COPY shipshape ./shipshape
COPY tasks ./tasks
COPY flows ./flows
COPY deployments ./deployments
COPY infra ./infra
COPY demo ./demo
COPY pipelines ./pipelines
COPY checks ./checks
COPY prefect.yaml ./
RUN pip install --no-deps .

USER 10001
CMD ["shipshape", "--help"]
