"""Task state kept in Redis, one JSON string per task with a TTL of FLOWS_TASK_IDLE_TIMEOUT.

Every operation is one round trip: SET ... EX on put, GETEX ... EX on get (reading
refreshes the idle timeout), EXPIRE when a step leaves the state unchanged, DEL on
delete. Nothing ever scans keys: expired state is removed by Redis itself.

Ordering with the database: Redis is not transactional, so every write goes to a new
task id ("<instance>:<version>") before COMMIT, and the instance row's task_state_version,
committed with the step, decides which id is current (flowr.taskstate). A write whose
COMMIT never happens (a failed hook after it, a lost reply, a killed process, an outer
transaction rolled back) is never read, and expires by its TTL.
"""
import json
import threading
from contextlib import contextmanager

import redis
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError, NoPermissionError, RedisError, ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from .. import config
from .base import BaseStateStore, StateNotFound, StoreUnavailable, dumps

KEY_PREFIX = "flowr:task_state:"
#: Every command the store sends (SELECT only for a non-zero DB; redis-py's handshake
#: needs nothing else: AUTH/HELLO are always allowed, CLIENT SETINFO may be refused).
#: The README's ACL line, /healthz and the error messages all name this list.
REQUIRED_COMMANDS = ("get", "getex", "set", "expire", "del", "ping", "select")
ACL_RULES = f"~{KEY_PREFIX}* " + " ".join(f"+{name}" for name in REQUIRED_COMMANDS)
_HEALTH_KEY = KEY_PREFIX + "healthz"  # never a task id (those are instance ids)

_clients = {}  # connection settings -> redis.Redis on ONE ConnectionPool, per process
_clients_lock = threading.Lock()


def _connection_settings():
    """The connection settings, read when used (a tuple, the key of the pool)."""
    timeout = config.get("FLOWS_REDIS_STATE_STORE_SOCKET_TIMEOUT")
    connect = config.get("FLOWS_REDIS_STATE_STORE_CONNECT_TIMEOUT")
    return (
        config.get("FLOWS_REDIS_STATE_STORE_HOST"),
        int(config.get("FLOWS_REDIS_STATE_STORE_PORT")),
        int(config.get("FLOWS_REDIS_STATE_STORE_DB")),
        config.get("FLOWS_REDIS_STATE_STORE_USER") or None,
        config.get("FLOWS_REDIS_STATE_STORE_PASSWORD") or None,
        float(timeout) if timeout else None,
        float(connect) if connect else None,
    )


def client(settings=None):
    """The process-wide redis.Redis client for the given (default: current) settings."""
    settings = settings or _connection_settings()
    found = _clients.get(settings)
    if found is not None:
        return found
    with _clients_lock:
        if settings not in _clients:
            host, port, db, user, password, timeout, connect = settings
            pool = redis.ConnectionPool(
                host=host, port=port, db=db, username=user, password=password,
                socket_timeout=timeout, socket_connect_timeout=connect,
                # One immediate retry replaces a pooled connection the server closed;
                # a timeout is not retried, so a stalled Redis costs one timeout.
                retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            )
            _clients[settings] = redis.Redis(connection_pool=pool)
        return _clients[settings]


def _where(settings):
    host, port, db, user = settings[:4]
    who = f" as user '{user}'" if user else ""
    return f"Redis task-state store at {host}:{port}/{db}{who}"


def _explain(exc, settings):
    """A message naming the server and what to check, for a redis-py error."""
    where = _where(settings)
    text = str(exc)
    if isinstance(exc, AuthenticationError) or text.startswith(("WRONGPASS", "NOAUTH")):
        return (f"{where} refused the credentials ({text}). Check "
                f"FLOWS_REDIS_STATE_STORE_USER and FLOWS_REDIS_STATE_STORE_PASSWORD.")
    if isinstance(exc, NoPermissionError) or text.startswith("NOPERM"):
        return (f"{where} refused a command ({text}). {_acl_hint(settings)}")
    if isinstance(exc, ResponseError):
        return f"{where} answered with an error ({text})."
    if isinstance(exc, RedisTimeoutError) and "connecting" not in text:
        return (f"{where} did not answer within {settings[5]} s "
                f"(FLOWS_REDIS_STATE_STORE_SOCKET_TIMEOUT): it is stalled, paused or "
                f"overloaded. Nothing was changed; try again when Redis answers.")
    if isinstance(exc, RedisTimeoutError):
        return (f"{where} could not be connected to within {settings[6]} s "
                f"(FLOWS_REDIS_STATE_STORE_CONNECT_TIMEOUT). Check that Redis is running "
                f"there and reachable.")
    return (f"{where} cannot be reached ({type(exc).__name__}: {text}). Check that Redis "
            f"is running there and that FLOWS_REDIS_STATE_STORE_HOST, _PORT and _DB are "
            f"right.")


def _acl_hint(settings):
    user = settings[3] or "default"
    return (f"Check the ACL of that Redis user: it needs these commands and keys: "
            f"ACL SETUSER {user} {ACL_RULES}")


class StateStore(BaseStateStore):
    """Task state in Redis as JSON, expiring after FLOWS_TASK_IDLE_TIMEOUT idle seconds."""

    transactional = False

    @contextmanager
    def _redis(self):
        settings = _connection_settings()
        try:
            yield client(settings)
        except RedisError as exc:
            raise StoreUnavailable(_explain(exc, settings), store="redis") from exc

    def get_state(self, task_id):
        timeout = config.task_idle_timeout()
        with self._redis() as r:
            key = KEY_PREFIX + task_id
            raw = r.getex(key, ex=timeout) if timeout else r.get(key)
        return self._decode(task_id, key, raw)

    def peek_state(self, task_id):
        with self._redis() as r:
            key = KEY_PREFIX + task_id
            raw = r.get(key)
        return self._decode(task_id, key, raw)

    def _decode(self, task_id, key, raw):
        if raw is None:
            raise StateNotFound(f"No task state for task {task_id}.", task_id=task_id)
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise StoreUnavailable(f"The task state of task {task_id} in Redis is not valid "
                                   f"JSON ({exc}); delete the key {key}.") from exc

    def put_state(self, task_id, state):
        payload = dumps(state)  # refuses non-JSON before anything is sent
        timeout = config.task_idle_timeout()
        with self._redis() as r:
            r.set(KEY_PREFIX + task_id, payload, ex=timeout or None)

    def delete_state(self, task_id):
        with self._redis() as r:
            r.delete(KEY_PREFIX + task_id)

    def touch_state(self, task_id):
        timeout = config.task_idle_timeout()
        if timeout:
            with self._redis() as r:
                r.expire(KEY_PREFIX + task_id, timeout)

    def retire(self, keep=(), delete=()):
        """EXPIRE the kept versions and DEL the superseded ones: one pipelined round trip."""
        timeout = config.task_idle_timeout()
        keep = [KEY_PREFIX + task_id for task_id in keep] if timeout else []
        delete = [KEY_PREFIX + task_id for task_id in delete]
        if not keep and not delete:
            return
        with self._redis() as r:
            pipe = r.pipeline(transaction=False)
            for key in keep:
                pipe.expire(key, timeout)
            if delete:
                pipe.delete(*delete)
            pipe.execute()

    def health(self):
        """Every command the store uses, on a health key: one pipelined round trip."""
        settings = _connection_settings()
        with self._redis() as r:  # a refused SELECT fails while connecting
            pipe = r.pipeline(transaction=False)
            pipe.ping().set(_HEALTH_KEY, "{}", ex=60).getex(_HEALTH_KEY, ex=60)
            pipe.get(_HEALTH_KEY).expire(_HEALTH_KEY, 60).delete(_HEALTH_KEY)
            results = pipe.execute(raise_on_error=False)
        names = ("PING", "SET", "GETEX", "GET", "EXPIRE", "DEL")
        refused = [(name, result) for name, result in zip(names, results, strict=True)
                   if isinstance(result, Exception)]
        if refused:
            raise StoreUnavailable(
                f"{_where(settings)} refused {', '.join(name for name, _ in refused)} "
                f"({refused[0][1]}). {_acl_hint(settings)}", store="redis")
