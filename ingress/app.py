"""`create_app()`: the FastAPI app and the lifespan that builds its shared services once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from ingress.demo import mount_demo
from ingress.dispatch import Dispatcher, connect_redis
from ingress.keys import KeyStore
from ingress.load import LoadGauge
from ingress.metrics import Metrics
from ingress.realtime.route import router as realtime_router
from ingress.resume import ResumeStore
from ingress.routes import router
from ingress.services import Services
from ingress.shutdown import drain, run_before_sigterm
from ingress.vad import SileroVad
from service.settings import Settings, load_settings
from tasks.celery_app import create_celery_app

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    metrics = Metrics.create()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        keys = KeyStore.from_settings(settings)
        redis_client = connect_redis(
            settings.broker_url, settings.redis_max_connections, settings.redis_pool_timeout_s
        )
        load = LoadGauge(limit_s=settings.saturation_round_trip_s)
        dispatcher = Dispatcher(redis_client, create_celery_app(settings), metrics, load)
        vad = await asyncio.to_thread(SileroVad, settings.vad_model_path)
        await dispatcher.start()
        services = Services(
            settings=settings,
            dispatcher=dispatcher,
            vad=vad,
            keys=keys,
            redis=redis_client,
            metrics=metrics,
            resume=ResumeStore(redis_client, settings.resume_ttl_s) if settings.resume_ttl_s else None,
        )
        app.state.services = services
        restore_sigterm = run_before_sigterm(lambda: drain(services))
        if settings.bypass_authorization:
            logger.warning("BYPASS_AUTHORIZATION is on: anyone who can reach this server can use it")
        logger.info("ingress %s ready", dispatcher.ingress_id)
        try:
            yield
        finally:
            restore_sigterm()
            await dispatcher.stop()
            await redis_client.aclose()
            vad.close()
            if keys is not None:
                await keys.aclose()

    app = FastAPI(title="Streaming Whisper", lifespan=lifespan)
    app.include_router(router)
    app.include_router(realtime_router)
    mount_demo(app)
    return app
