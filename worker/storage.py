"""Where the service keeps its files (uploaded datasets and models, checkpoints, trained models) for every host to
reach: the data volume by default, or any fsspec URL in `CLR_STORAGE_URL` (`s3://bucket/prefix` for an
S3-compatible bucket), so that API and worker hosts need no shared filesystem.

Each process works on files under its own data dir, named as they are kept; `Storage` publishes a finished file
(an object appears whole or not at all) and fetches one this host lacks."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import fsspec


class Storage:
    """The files under `local_root`, kept at `url` as well when one is set (otherwise the local folder is the
    storage, and publishing and fetching do nothing)."""

    def __init__(self, url: str | None, local_root: Path) -> None:
        self.local_root = local_root
        self.remote, self.remote_root = fsspec.core.url_to_fs(url) if url else (None, "")

    def _key(self, local: Path) -> str:
        return f"{self.remote_root.rstrip('/')}/{local.relative_to(self.local_root).as_posix()}"

    def publish(self, local: Path) -> None:
        """Copy a finished file, or every file of a folder, to the storage."""
        if self.remote is None:
            return
        files = sorted(path for path in local.rglob("*") if path.is_file()) if local.is_dir() else [local]
        for path in files:
            self.remote.put_file(str(path), self._key(path))

    def fetch(self, local: Path) -> bool:
        """Make sure the file or folder `local` is on this host, downloaded from the storage if it is not; whether
        it is there now. A download lands under a temporary name first: a reader never sees half a file."""
        if local.exists():
            return True
        if self.remote is not None:
            self.remote.invalidate_cache()  # another host may have published it since this one last looked
        if self.remote is None or not self.remote.exists(key := self._key(local)):
            return False
        temporary = local.with_name(f".{local.name}.{uuid.uuid4().hex}.download")
        local.parent.mkdir(parents=True, exist_ok=True)
        self.remote.get(key, str(temporary), recursive=self.remote.isdir(key))
        try:
            os.replace(temporary, local)
        except OSError:  # a folder another process on this host fetched meanwhile
            if not local.exists():
                raise
            shutil.rmtree(temporary)
        return True

    def delete(self, local: Path) -> None:
        """Delete a file or folder here and from the storage."""
        if local.is_dir():
            shutil.rmtree(local)
        else:
            local.unlink(missing_ok=True)
        self.remove(local)

    def remove(self, local: Path) -> None:
        """Delete a file or folder from the storage (the caller removes the local copy)."""
        if self.remote is None:
            return
        self.remote.invalidate_cache()
        if self.remote.exists(key := self._key(local)):
            self.remote.rm(key, recursive=True)
