"""RQ integration: a job class that runs jobs in the host app's context, and our worker.

Binding the app follows pallets-eco/flask-rq: a :class:`FlaskJob` subclass wraps the job
function so it runs inside ``app.app_context()``.

* ``flask --app HOST webhooks worker [--burst]`` runs :class:`DeliveryWorker` with a job
  class bound to that app, always with RQ's scheduler (retries are scheduled jobs), and
  sweeps for forgotten deliveries every ``TRAKKR_WEBHOOKS_SWEEP_INTERVAL`` seconds. When
  RQ's loop quits on an error (Redis went away in the middle of a job), it serves again
  once Redis answers.
* A plain ``rq worker --with-scheduler -j flask_trakkr_webhooks.worker.FlaskJob QUEUE``
  works too: the unbound :class:`FlaskJob` loads the app named by ``TRAKKR_WEBHOOKS_APP``
  (or ``FLASK_APP``), e.g. ``example_app:create_app()``, once per process. Add
  ``-w flask_trakkr_webhooks.worker.DeliveryWorker`` for our worker class (no fork per
  job, and the periodic sweep); otherwise run ``flask webhooks dispatch`` from cron.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import weakref
from functools import update_wrapper
from typing import Any

import redis
from flask import Flask
from flask.cli import ScriptInfo
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from rq.scheduler import RQScheduler
from rq.worker import SimpleWorker

from . import dispatch, engine, ids, metrics, retention, status
from .state import WebhooksState, get_state

log = logging.getLogger("flask_trakkr_webhooks")

#: Longest wait, in seconds, of RQ's command listener (the pubsub thread) between checks of its
#: stop flag. RQ uses 60 s, and redis-py 8.2's ``stop()`` joins that thread without a timeout:
#: a worker stopping then hung up to a minute whenever the thread had already seen its
#: unsubscribe reply (a warm shutdown outlasting a container's grace period).
PUBSUB_WAKE = 1.0

#: Environment variables naming the app (import path or factory) for plain ``rq worker``.
APP_ENV_VARS = ("TRAKKR_WEBHOOKS_APP", "FLASK_APP")
#: Seconds between two polls of RQ's scheduler (RQ's default is 1 s): a retry is
#: enqueued at most this late, so 1 s, 2 s, 4 s backoffs stay close to their delays.
SCHEDULER_INTERVAL = 0.2
#: How often our worker retries taking RQ's scheduler lock (RQ's default is 10 minutes;
#: a worker that was killed holds the lock for about a minute).
MAINTENANCE_INTERVAL = 60
#: Seconds ``flask webhooks worker`` waits before serving again after RQ's loop quit on an
#: error (doubling up to 30 s while it keeps happening).
RESTART_PAUSE = 1.0
#: Most seconds between two tries of the prune lock (it is free once per PRUNE_INTERVAL).
PRUNE_POLL = 60.0
#: Seconds the prune lock is held at least while a prune runs (renewed after each batch).
PRUNE_LOCK_HOLD = 60.0

_loaded_app: Flask | None = None
_load_lock = threading.Lock()


def load_app() -> Flask:
    """The host app named by ``TRAKKR_WEBHOOKS_APP`` or ``FLASK_APP`` (loaded once per process)."""
    global _loaded_app
    if _loaded_app is not None:
        return _loaded_app
    with _load_lock:
        if _loaded_app is None:
            path = next((os.environ[v] for v in APP_ENV_VARS if os.environ.get(v)), None)
            if not path:
                raise RuntimeError(
                    "flask_trakkr_webhooks.worker.FlaskJob does not know the app: set TRAKKR_WEBHOOKS_APP "
                    "(or FLASK_APP) to the app or its factory, e.g. TRAKKR_WEBHOOKS_APP='myapp:create_app()'"
                )
            _loaded_app = ScriptInfo(app_import_path=path).load_app()
    return _loaded_app


class FlaskJob(Job):
    """An RQ job class whose function runs inside the Flask app's context.

    Subclasses made by :func:`make_job_class` carry their app; this class itself loads
    it from the environment (:func:`load_app`), for ``rq worker -j``.
    """

    _flask_app: weakref.ref[Flask] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self._flask_app is None and _loaded_app is None:
            # Load in the worker's main process (jobs are fetched there), so a forking
            # worker's children inherit the app instead of each building it again.
            try:
                load_app()
            except Exception:  # reported clearly when the job runs
                log.debug("flask_trakkr_webhooks: app not loadable yet", exc_info=True)

    @classmethod
    def app(cls) -> Flask:
        """The app jobs of this class run in."""
        if cls._flask_app is not None:
            app = cls._flask_app()
            if app is None:  # pragma: no cover - the CLI keeps its app alive
                raise RuntimeError("the Flask app bound to this job class is gone")
            return app
        return load_app()

    @property
    def func(self) -> Any:
        """The job function, wrapped to run in a fresh app context (its own database session)."""
        func = super().func
        if func is None:
            return None
        app = self.app()

        def in_app_context(*args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return func(*args, **kwargs)

        return update_wrapper(in_app_context, func)


def make_job_class(app: Flask) -> type[FlaskJob]:
    """A :class:`FlaskJob` subclass bound to ``app``."""
    return type("BoundFlaskJob", (FlaskJob,), {"_flask_app": weakref.ref(app)})


class _PreciseScheduledJobRegistry(ScheduledJobRegistry):
    """Due jobs by the current time with sub-second precision (RQ compares whole seconds)."""

    def get_jobs_to_schedule(self, timestamp: Any = None, chunk_size: int = 1000) -> list[str]:
        """Job ids whose score (exact time, see :func:`dispatch.schedule_retry`) has passed."""
        return super().get_jobs_to_schedule(time.time(), chunk_size)  # type: ignore[arg-type]  # a float score: RQ passes it to ZRANGEBYSCORE


class _FastScheduler(RQScheduler):
    """RQ's scheduler, polling every :data:`SCHEDULER_INTERVAL` seconds with sub-second precision.

    RQ derives its lock TTLs from an integer ``interval`` (kept at 1 s); only the sleep
    between two polls is shorter. Retries are scored with their exact time, so a 1 s
    backoff is 1.0 to 1.2 s here (RQ's own scheduler: 1 to 2 s, never early).
    """

    def prepare_registries(self, queue_names: Any = None) -> None:
        """RQ's registries, with sub-second due times."""
        self._scheduled_job_registries = [
            _PreciseScheduledJobRegistry(name, connection=self.connection, serializer=self.serializer)  # type: ignore[no-untyped-call]  # unannotated in rq
            for name in (queue_names or self._acquired_locks)
        ]

    def work(self) -> None:
        """RQ's scheduler loop with the shorter sleep, surviving a Redis outage."""
        self._install_signal_handlers()  # type: ignore[no-untyped-call]  # unannotated in rq
        self.register_birth()
        while True:
            if self._stop_requested:
                self.stop()  # type: ignore[no-untyped-call]  # unannotated in rq
                break
            try:
                if self.should_reacquire_locks:
                    self.acquire_locks()  # type: ignore[no-untyped-call]  # unannotated in rq
                self.heartbeat()  # type: ignore[no-untyped-call]  # unannotated in rq
                self.enqueue_scheduled_jobs()  # type: ignore[no-untyped-call]  # unannotated in rq
            except (RedisConnectionError, RedisTimeoutError) as exc:
                # RQ's loop dies here and nothing restarts it; keep polling until Redis is back.
                self.log.warning("trakkr_webhooks scheduler: Redis unreachable (%s); retrying", exc)
                time.sleep(1.0)
                continue
            time.sleep(SCHEDULER_INTERVAL)


class DeliveryWorker(SimpleWorker):
    """An RQ worker for webhook jobs: no fork per job, and a periodic sweep.

    Jobs run in this process, so the HTTP keep-alive connections and the delivery
    threads live as long as the worker. Between jobs (and at least every
    ``SWEEP_INTERVAL`` seconds while idle) it runs :func:`dispatch.sweep`, guarded by a
    Redis lock so that one worker per interval sweeps.
    """

    def __init__(self, *args: Any, app: Flask | None = None, **kwargs: Any) -> None:
        self._app = app
        self._next_sweep = 0.0
        #: One sweep at a time in this process (the heartbeat and the sweeper thread both try).
        self._sweeping = threading.Lock()
        self._sweeper: threading.Thread | None = None
        self._sweeper_stop = threading.Event()
        self._pruner: threading.Thread | None = None
        #: A warm shutdown was asked for (SIGTERM/SIGINT), so :func:`run_worker` does not serve again.
        self.stop_was_requested = False
        kwargs.setdefault("maintenance_interval", MAINTENANCE_INTERVAL)
        super().__init__(*args, **kwargs)

    def subscribe(self) -> None:
        """RQ's command channel, listened to by a thread that wakes every :data:`PUBSUB_WAKE` s."""
        self.log.info("Worker %s: subscribing to channel %s", self.name, self.pubsub_channel_name)
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(  # type: ignore[assignment]  # rq declares it None
            sleep_time=PUBSUB_WAKE, daemon=True, exception_handler=getattr(self, "_pubsub_exception_handler", None)
        )

    def request_stop(self, signum: Any, frame: Any) -> None:
        """RQ's warm shutdown, remembered."""
        self.stop_was_requested = True
        super().request_stop(signum, frame)  # type: ignore[no-untyped-call]  # unannotated in rq

    @property
    def flask_app(self) -> Flask:
        """The host app (bound, or loaded from the environment)."""
        if self._app is None:
            job_class: type[Job] = self.job_class if isinstance(self.job_class, type) else FlaskJob
            self._app = job_class.app() if issubclass(job_class, FlaskJob) else load_app()
        return self._app

    def _webhooks_state(self) -> WebhooksState:
        return get_state(self.flask_app)

    @property
    def dequeue_timeout(self) -> int:
        """Wake up at least every sweep interval to sweep."""
        try:
            interval = self._webhooks_state().settings.sweep_interval
        except Exception:  # the app is not loadable yet: RQ's own default applies
            return super().dequeue_timeout
        return max(1, min(int(interval), self.worker_ttl - 15))

    def _start_scheduler(
        self,
        burst: bool = False,
        logging_level: Any = "INFO",
        date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
        log_format: str = DEFAULT_LOGGING_FORMAT,
    ) -> None:
        """RQ's scheduler start-up, with a poll interval of :data:`SCHEDULER_INTERVAL`."""
        self.scheduler = _FastScheduler(
            self.queues,
            connection=self.connection,
            logging_level=logging_level if logging_level is not None else self.log.level,
            date_format=date_format,
            log_format=log_format,
            serializer=self.serializer,
        )
        self.scheduler.acquire_locks()  # type: ignore[no-untyped-call]  # unannotated in rq
        if not self.scheduler.acquired_locks:
            return  # another live scheduler has the queue; maintenance retries every minute
        if burst:
            try:
                self.scheduler.register_birth()
                self.scheduler.enqueue_scheduled_jobs()  # type: ignore[no-untyped-call]  # unannotated in rq
            finally:
                self.scheduler.release_locks()  # type: ignore[no-untyped-call]  # unannotated in rq
                self.scheduler.register_death()
        else:
            self.scheduler.start()  # type: ignore[no-untyped-call]  # unannotated in rq

    def execute_job(self, job: Job, queue: Queue) -> Any:
        """Run the job; the first one starts this process's delivery engine (after RQ forked its scheduler)."""
        engine.start(self.flask_app)
        return super().execute_job(job, queue)

    def teardown(self) -> None:
        """Finish the attempts in flight (up to TIMEOUT + 5 s), then RQ's own teardown."""
        self._sweeper_stop.set()
        try:
            state = self._webhooks_state()
            running = engine.current(state)
            if running is not None:
                running.stop(timeout=state.settings.timeout + 5)
        except Exception:
            self.log.warning("trakkr_webhooks: could not drain the delivery engine", exc_info=True)
        try:
            super().teardown()  # type: ignore[no-untyped-call]  # unannotated in rq
        except (RedisConnectionError, RedisTimeoutError) as exc:  # Redis is gone: nothing to unregister from
            self.log.warning("trakkr_webhooks: could not unregister the worker from Redis (%s)", exc)

    def heartbeat(self, *args: Any, **kwargs: Any) -> Any:
        """RQ's heartbeat, plus the periodic sweep (the loop calls this between jobs and when idle)."""
        result = super().heartbeat(*args, **kwargs)
        if kwargs.get("pipeline") is None and not args[1:]:  # not while RQ builds a pipeline
            self._start_sweeper()
            self._start_pruner()
            self.maybe_sweep()
        return result

    def _start_sweeper(self) -> None:
        """Sweep from a thread too: RQ calls the heartbeat only between jobs, and a job held by
        back-pressure would otherwise delay the sweep past ``SWEEP_INTERVAL`` (the recovery
        bound after a worker death is ``STUCK_AFTER + SWEEP_INTERVAL``)."""
        if self._sweeper is not None:
            return
        self._sweeper = threading.Thread(target=self._sweep_loop, name="trakkr-sweep", daemon=True)
        self._sweeper.start()

    def _sweep_loop(self) -> None:
        while True:
            try:
                interval = self._webhooks_state().settings.sweep_interval
            except Exception:  # the app is not loadable: the heartbeat reports it
                interval = 1.0
            if self._sweeper_stop.wait(max(0.05, min(interval, self._next_sweep - time.monotonic()))):
                return
            self.maybe_sweep()

    def maybe_sweep(self) -> None:
        """Sweep when the interval has passed and no other worker holds the sweep lock."""
        if not self._sweeping.acquire(blocking=False):
            return  # this process is sweeping right now
        try:
            now = time.monotonic()
            if now < self._next_sweep:
                return
            state = self._webhooks_state()
            interval = state.settings.sweep_interval
            self._next_sweep = now + interval
            with self.flask_app.app_context():
                if dispatch.sweep_lock(state, interval):
                    found = dispatch.periodic_sweep(state)
                    if found.enqueued:
                        self.log.info("trakkr_webhooks sweep re-enqueued %s", found.as_dict())
        except Exception:  # a sweep failure (Redis or DB blip) must not stop the worker
            self.log.warning("trakkr_webhooks: sweep failed", exc_info=True)
        finally:
            self._sweeping.release()

    def _start_pruner(self) -> None:
        """Prune on a thread of its own, every ``PRUNE_INTERVAL`` seconds (when retention is set)."""
        if self._pruner is None:
            self._pruner = threading.Thread(target=self._prune_loop, name="trakkr-prune", daemon=True)
            self._pruner.start()

    def _prune_loop(self) -> None:
        while True:
            try:
                settings = self._webhooks_state().settings
            except Exception:  # the app is not loadable: the heartbeat reports it
                settings = None
            if settings is not None and settings.prune_interval <= 0:
                return  # scheduled pruning is off
            self.maybe_prune()
            poll = min(settings.prune_interval, PRUNE_POLL) if settings is not None else 1.0
            if self._sweeper_stop.wait(poll):
                return

    def maybe_prune(self) -> None:
        """Prune when no other worker has in the last ``PRUNE_INTERVAL`` seconds (a Redis lock)."""
        try:
            state = self._webhooks_state()
            settings = state.settings
            if settings.retention is None and settings.body_retention is None:
                return
            interval = settings.prune_interval
            token = retention.prune_lock(state, max(interval, PRUNE_LOCK_HOLD))
            if token is None:
                return  # another worker prunes, or did within the interval

            def should_stop() -> bool:
                # Stop on shutdown, or if the lock was lost (another worker may prune now).
                hold = max(interval, PRUNE_LOCK_HOLD)
                return self._sweeper_stop.is_set() or not retention.hold_prune_lock(state, token, hold)

            with self.flask_app.app_context():
                started = time.monotonic()
                counts = retention.prune(state, retention.Cutoffs.of(state), should_stop=should_stop)
            retention.hold_prune_lock(state, token, interval)  # the next prune: an interval from now
            self.log.info("trakkr_webhooks pruned %s in %.1f s", counts.as_dict(), time.monotonic() - started)
        except Exception:  # a prune failure (Redis or DB blip) must not stop the worker
            self.log.warning("trakkr_webhooks: prune failed", exc_info=True)


def _log_to_stderr() -> None:
    """The package's log lines (one per attempt included) on stderr at INFO, unless the host
    configured logging itself (a handler on the root logger or on ours)."""
    ours = logging.getLogger("flask_trakkr_webhooks")
    if ours.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    ours.addHandler(handler)
    ours.setLevel(logging.INFO)


def serve_metrics(app: Flask, port: int) -> None:
    """Serve this process's metrics at ``http://METRICS_ADDRESS:port/metrics``, with the backlog
    read from the app's database on scrape (at most every 5 s)."""
    state = get_state(app)

    def read_backlog() -> metrics.Backlog:
        with app.app_context():
            try:
                return metrics.Backlog(status.backlog(state), status.oldest_waiting(state, ids.utcnow()))
            finally:
                state.db.session.remove()

    metrics.register_backlog(read_backlog)
    metrics.serve(port, state.settings.metrics_address)
    log.info("trakkr_webhooks: metrics at http://%s:%s/metrics", state.settings.metrics_address, port)


def run_worker(app: Flask, *, burst: bool = False, name: str | None = None, metrics_port: int | None = None) -> bool:
    """Run a :class:`DeliveryWorker` with RQ's scheduler on the app's queue; return whether it worked.

    ``metrics_port`` (default ``TRAKKR_WEBHOOKS_METRICS_PORT``): serve Prometheus metrics there.
    """
    state = get_state(app)
    settings = state.settings
    _log_to_stderr()
    port = metrics_port if metrics_port is not None else settings.metrics_port
    if port is not None:
        serve_metrics(app, port)
    # A claimed delivery may wait behind its host's attempts in flight, one wave the engine
    # keeps waiting (engine.Engine.submit) and its own batch.
    per_host = max(1, min(settings.per_host_concurrency, settings.concurrency))
    waves = -(-settings.batch_size // per_host) + 2
    if settings.stuck_after <= waves * settings.timeout:
        log.warning(
            "trakkr_webhooks: TRAKKR_WEBHOOKS_STUCK_AFTER (%ss) should exceed (BATCH_SIZE / PER_HOST_CONCURRENCY + 2) "
            "x TIMEOUT = %ss: a delivery waiting for a busy host could otherwise look stuck and be sent twice",
            settings.stuck_after,
            waves * settings.timeout,
        )
    # Its own connection: RQ raises the socket timeout for blocking pops.
    connection = redis.Redis.from_url(settings.redis_url)
    job_class = make_job_class(app)
    queue = Queue(settings.queue, connection=connection, job_class=job_class)
    # RQ installs its SIGINT/SIGTERM handlers and leaves them: a process that runs a worker
    # in-process (a test, an embedding host) gets its own handlers back when it returns.
    in_main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)} if in_main else {}
    previous = {sig: handler for sig, handler in previous.items() if handler is not None}  # None: not set from Python
    try:
        pause, restarts = RESTART_PAUSE, 0
        while True:
            worker = DeliveryWorker(
                [queue],
                connection=connection,
                job_class=job_class,
                app=app,
                name=f"{name}-{restarts}" if name and restarts else name,
            )
            started = time.monotonic()
            worked = worker.work(burst=burst, with_scheduler=True, logging_level="INFO")
            if burst or worker.stop_was_requested:
                return worked
            # RQ quits on an error outside its dequeue loop, e.g. Redis going away in the middle
            # of a job. Serve again once Redis answers; what that job held is swept.
            if time.monotonic() - started > 60:
                pause = RESTART_PAUSE
            log.warning(
                "trakkr_webhooks: the worker stopped on an error; serving again once Redis answers "
                "(in %.0f s at the earliest)",
                pause,
            )
            if not _wait_for_redis(connection, pause):
                return worked
            pause = min(pause * 2, 30.0)
            restarts += 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _wait_for_redis(connection: redis.Redis, pause: float) -> bool:
    """Sleep ``pause`` seconds, then until Redis answers; False if SIGTERM/SIGINT came first."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        if stop.wait(pause):
            return False
        while True:
            try:
                connection.ping()
                return True
            except (RedisConnectionError, RedisTimeoutError):
                if stop.wait(1.0):
                    return False
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
