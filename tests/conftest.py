"""Session-wide settings: quiet TensorFlow, TensorFlow as the Keras backend, a headless matplotlib."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("MPLBACKEND", "Agg")
