# One image for every Vigil service; compose.yaml picks the service with `vigil run <service>`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIGIL_STATE_DIR=/var/lib/vigil

WORKDIR /app
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY services ./services
RUN pip install --no-cache-dir . \
 && useradd --system --home-dir /var/lib/vigil --create-home vigil
# The routing policy, the runbook catalogue and its scripts: data the services read at start.
COPY runbooks ./runbooks

USER vigil
ENTRYPOINT ["vigil"]
CMD ["--help"]
