# One image for every Doorbuster process: the three APIs, the four pools, the emulator, the sink,
# and the `doorbuster` ops CLI. The command chooses the process (see compose.yaml and
# deploy/k8s/). It runs as uid 10001 on a read-only root filesystem (Kubernetes mounts /tmp).
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HOME=/tmp
WORKDIR /app
COPY pyproject.toml constraints.txt ./
COPY shared ./shared
COPY services ./services
COPY workers ./workers
COPY ops ./ops
COPY devtools ./devtools
RUN pip install -c constraints.txt . \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin doorbuster
USER 10001:10001
# 8000: an API; 9100: a pool's /metrics, /healthz and /readyz.
EXPOSE 8000 9100
CMD ["python", "-m", "uvicorn", "services.orders.main:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000"]
