# A GPU worker: TensorFlow with CUDA, Keras 3, one Celery worker process serving one job at a time.
FROM python:3.11-slim
WORKDIR /app
RUN pip install --no-cache-dir 'tensorflow[and-cuda]==2.21.0' 'keras>=3.10' 'scikit-learn>=1.4'
COPY pyproject.toml README.md ./
COPY clr clr
COPY api api
COPY worker worker
RUN pip install --no-cache-dir '.[api]'
CMD ["clr-service", "worker"]
