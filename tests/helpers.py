"""Helpers shared by the service tests."""

import io
import json
import os
import subprocess
import sys
import time
import zipfile

import httpx
import numpy as np

from clr import datasets


def wait_for_state(client: httpx.Client, job_id: str, states: set[str], timeout: float = 180) -> dict:
    """Poll a job until it reaches one of `states`."""
    deadline = time.monotonic() + timeout
    job = client.get(f"/jobs/{job_id}").json()
    while job["state"] not in states:
        assert time.monotonic() < deadline, f"job {job_id} still {job['state']} after {timeout}s: {job}"
        time.sleep(0.2)
        job = client.get(f"/jobs/{job_id}").json()
    return job


def wait_until(condition, what: str, timeout: float = 120):
    """Poll `condition()` until it returns something truthy; return it."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s"
        time.sleep(0.1)
    return value


# Loads a downloaded model where neither this package nor its schedules can be imported, as a serving team or a
# notebook would, and scores it on the test split.
PLAIN_KERAS = """
import json, sys
sys.modules.update(clr=None, worker=None, api=None)
import keras, numpy as np
model, test = keras.saving.load_model(sys.argv[1]), np.load(sys.argv[2])
scores = model.evaluate(test["x"], test["y"], verbose=0, return_dict=True)
print(json.dumps({"accuracy": scores["accuracy"], "optimizer": type(model.optimizer).__name__,
                  "lr": float(model.optimizer.learning_rate), "iterations": int(model.optimizer.iterations),
                  "momentum": float(getattr(model.optimizer, "momentum", 0.0)),
                  "dtype_policies": sorted({layer.dtype_policy.name for layer in model.layers if layer.weights})}))
"""


def in_plain_keras(client: httpx.Client, job_id: str, which: str, folder) -> dict:
    """What plain Keras, without this package, makes of the job's downloaded model."""
    response = client.get(f"/jobs/{job_id}/model", params={"which": which})
    assert response.status_code == 200, response.text
    (folder / f"{which}.keras").write_bytes(response.content)
    digits = datasets.digits()
    np.savez(folder / "test.npz", x=digits.x_test, y=digits.y_test)
    run = subprocess.run([sys.executable, "-c", PLAIN_KERAS, str(folder / f"{which}.keras"), str(folder / "test.npz")],
                         capture_output=True, text=True, timeout=120, cwd=folder,
                         env=os.environ | {"PYTHONPATH": "", "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def image_bytes(brightness: int, image_format: str, size: tuple[int, int] = (12, 10)) -> bytes:
    """An RGB image of one brightness (with some noise), encoded as `image_format` (Pillow's name)."""
    from PIL import Image

    noise = np.random.default_rng(brightness).integers(0, 30, (*size, 3))
    pixels = np.clip(brightness + noise, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=image_format)
    return buffer.getvalue()


def image_folder_zip(per_class: int = 12, broken: bool = True) -> bytes:
    """A zip of `train/<class>/` folders of dark and bright images (JPEG and PNG) and a `test/` folder; with `broken`,
    a truncated JPEG, a text file named `.jpg` and a PNG named `.jpg` beside them."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for split, count in (("train", per_class), ("test", per_class // 3)):
            for name, brightness in (("dark", 40), ("bright", 200)):
                for index in range(count):
                    image_format, suffix = ("JPEG", "jpg") if index % 2 else ("PNG", "png")
                    archive.writestr(f"{split}/{name}/{index}.{suffix}", image_bytes(brightness + index, image_format))
        if broken:
            archive.writestr("train/dark/truncated.jpg", image_bytes(41, "JPEG")[:200])
            archive.writestr("train/bright/notes.jpg", b"this is a text file, not an image\n")
            archive.writestr("train/bright/actually_png.jpg", image_bytes(210, "PNG"))
    return buffer.getvalue()
