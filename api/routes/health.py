"""Is the service able to run jobs?"""

from __future__ import annotations

from fastapi import APIRouter, Response
from redis.exceptions import RedisError

from api.deps import CeleryDep, StoreDep

router = APIRouter(tags=["health"])


@router.get("/health")
def health(store: StoreDep, celery: CeleryDep, response: Response) -> dict[str, object]:
    """Redis reachability and the workers that answer a ping."""
    try:
        store.redis.ping()
    except RedisError as error:
        response.status_code = 503
        return {"redis": f"unreachable: {error}", "workers": []}
    workers = sorted(name for reply in celery.control.ping(timeout=0.5) for name in reply)
    return {"redis": "ok", "workers": workers}
