"""`python -m clr.model_check PATH`: whether a `.keras` file loads as a job would load it (safe mode, uncompiled),
run in a process of its own by the API, which imports no Keras. Prints the model's class name, or the reason it
cannot load on its last line of standard error and exits 1."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["CUDA_VISIBLE_DEVICES"] = ""  # loading needs no accelerator; a shared worker's GPUs stay free


def main(path: str) -> int:
    from clr.models import from_file

    try:
        model = from_file(path)
    except Exception as error:  # noqa: BLE001 (any reason Keras gives is the user's to read)
        print(f"{type(error).__name__}: {error}".replace("\n", " "), file=sys.stderr)
        return 1
    print(type(model).__name__)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
