# A GPU worker: TensorFlow with CUDA, Keras 3, one Celery worker process serving one job at a time.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY clr clr
COPY api api
COPY worker worker
COPY clr_service clr_service
RUN pip install --no-cache-dir '.[gpu]'
CMD ["clr-service", "worker"]
