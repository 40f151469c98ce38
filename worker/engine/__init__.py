"""The worker's Keras engine: everything that imports Keras or TensorFlow, from building a job's data, model and
optimizer out of its spec to running each kind of job, checkpointing, resuming and saving its models. The rest of the
worker (runner, reporter, store, Celery app) imports none of it at module level; a job's process imports it through
the kinds' registry (`worker.kinds`)."""
