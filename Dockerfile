# One image for every RoofCRM process; each Deployment runs it with its own command, e.g.
#   nameko run --config /etc/roofcrm/config.yaml services.deals.service:DealsService
#   python -m crm_platform.migrate deals
# Build: docker build -t roofcrm:0.1.0 .
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# -- builder: the project and its pinned dependencies as wheels ----------------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY libs ./libs
COPY services ./services
COPY gateway ./gateway
COPY tools ./tools
RUN python -m pip wheel --wheel-dir /wheels .

# -- runtime: slim base, the wheels installed, no compilers, no source tree ------------------------
FROM ${PYTHON_IMAGE}
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONWARNINGS="ignore::DeprecationWarning,ignore::UserWarning:nameko.cli.main" \
    CRM_HTTP_ADDRESS=0.0.0.0:8000
RUN groupadd --system --gid 10001 crm \
 && useradd --system --uid 10001 --gid crm --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin crm
COPY --from=builder /wheels /tmp/wheels
RUN python -m pip install --no-cache-dir --no-index --find-links /tmp/wheels roofcrm \
 && rm -rf /tmp/wheels
# config.yaml holds only ${ENV:default} placeholders; alembic migrations ship inside the wheel
# (services/<name>/migrations, package data).
COPY config.yaml /etc/roofcrm/config.yaml
WORKDIR /tmp
USER 10001
EXPOSE 8000
CMD ["nameko", "run", "--config", "/etc/roofcrm/config.yaml", "gateway.service:GatewayService"]
