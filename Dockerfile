# Curate server image. The PyPI torch wheel for Linux x86_64 is a CUDA build: run with
# `docker run --gpus all -p 8000:8000 -v curate-data:/data curate` to train on the GPU.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 CURATE_DATA_DIR=/data
WORKDIR /app

RUN pip install torch==2.14.1 torchvision==0.29.1
COPY pyproject.toml README.md ./
COPY models ./models
COPY scoring ./scoring
COPY service ./service
RUN pip install .

VOLUME /data
EXPOSE 8000
CMD ["curate", "serve", "--host", "0.0.0.0", "--port", "8000"]
