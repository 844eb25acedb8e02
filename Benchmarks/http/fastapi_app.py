"""FastAPI + fastapi-cache (in-memory backend): the same endpoints as the Swift examples.

    uvicorn fastapi_app:app --host 127.0.0.1 --port 8082 --no-access-log

/hello          trivial JSON, no cache
/cached/hello   the same JSON through @cache (fastapi-cache's InMemoryBackend)
/slow           200 ms computation through @cache
"""
import asyncio
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_cache import FastAPICache
from fastapi_cache.backends.inmemory import InMemoryBackend
from fastapi_cache.decorator import cache


@asynccontextmanager
async def lifespan(_: FastAPI):
    FastAPICache.init(InMemoryBackend(), prefix="fastapi-cache")
    yield


app = FastAPI(lifespan=lifespan)
HELLO = {"message": "hello", "items": [1, 2, 3]}


@app.get("/hello")
async def hello():
    return HELLO


@app.get("/cached/hello")
@cache(expire=60)
async def cached_hello():
    return HELLO


@app.get("/slow")
@cache(expire=60)
async def slow():
    await asyncio.sleep(0.2)
    return {"message": "computed slowly", "computedAt": int(time.time())}
