# The API image: FastAPI + Celery client + numpy/matplotlib, no TensorFlow.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY clr clr
COPY api api
COPY worker worker
COPY clr_service clr_service
RUN pip install --no-cache-dir '.[api]'
EXPOSE 8000
CMD ["clr-service", "api", "--host", "0.0.0.0", "--port", "8000"]
