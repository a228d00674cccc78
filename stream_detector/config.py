"""Configuration of the streaming service, read once: file, then environment, then flags.

One frozen :class:`DetectorSettings` object per process. Sources, lowest priority first:

1. a YAML file (``configs/detector.yaml``),
2. environment variables ``STREAM_DETECTOR_<SECTION>__<KEY>`` (e.g.
   ``STREAM_DETECTOR_KAFKA__BOOTSTRAP_SERVERS``, ``STREAM_DETECTOR_THRESHOLD``),
3. command-line flags.

Unknown keys and wrong types are errors that name the key:

>>> DetectorSettings.load(overrides={"metrics": {"port": "x"}})
Traceback (most recent call last):
...
stream_detector.errors.ConfigError: config key 'metrics.port': Input should be a valid integer, unable to parse string as an integer (got 'x')
>>> DetectorSettings.load(overrides={"threshold": 0.7}).threshold
0.7
"""

from __future__ import annotations

import difflib
import itertools
import os
import re
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from stream_detector.errors import ConfigError
from stream_detector.metrics import SCORE_BUCKETS

__all__ = [
    "AdminSettings",
    "AlertRateSettings",
    "ColdStartSettings",
    "ConsumerSettings",
    "DedupeSettings",
    "DetectorSettings",
    "DriftSettings",
    "FeedbackSettings",
    "KafkaSettings",
    "LayeredSettings",
    "MetricsSettings",
    "NotifySettings",
    "OnlineSettings",
    "PriorSettings",
    "ProcessingGuarantee",
    "ProducerSettings",
    "ServeMetricsSettings",
    "SettingsSection",
    "StateSettings",
    "StoreKind",
    "ThresholdMode",
    "TopicSettings",
    "load_yaml_file",
    "settings_error",
]

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
OffsetReset = Literal["earliest", "latest"]
Assignor = Literal["range", "roundrobin", "sticky", "cooperative-sticky"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
ProcessingGuarantee = Literal["at_least_once", "exactly_once"]
"""``at_least_once``: commit offsets after every output is acknowledged, suppress replayed
alerts; ``exactly_once``: outputs and offsets in one Kafka transaction (Apache Kafka only)."""
ThresholdMode = Literal["fixed", "prior_corrected", "alert_rate"]
"""How the threshold in force is set: as given, corrected to the live class prior, or to keep
the share of flagged events near a budget (see :mod:`stream_detector.online.thresholds`)."""
PriorWindow = Literal["rolling", "ewm"]
StoreKind = Literal["memory", "redis"]
"""Where per-entity feature state lives: in the process, or in Redis (shared, durable)."""


class SettingsSection(BaseModel):
    """A nested group of settings (one YAML mapping): frozen, and unknown keys are errors.

    The base of every section of :class:`DetectorSettings` and of the training settings.

    >>> class Port(SettingsSection):
    ...     port: int = 9108
    >>> Port(port=1).port
    1
    >>> try:
    ...     Port(prot=1)
    ... except ValidationError as exc:
    ...     print(exc.errors()[0]["type"])
    extra_forbidden
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(SettingsSection):
    """How to reach the brokers, TLS and SASL included (passed through to kafka-python)."""

    bootstrap_servers: str = "127.0.0.1:9092"
    client_id: str = "stream-detector"
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_password: SecretStr | None = None
    ssl_check_hostname: bool = True
    request_timeout_ms: int = Field(default=30_000, gt=0)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    """How long start-up keeps retrying an unreachable broker before giving up (quietly
    while nothing listens at the address: one line when it gives up)."""
    give_up_after_s: float = Field(default=300.0, gt=0)
    """How long a running service keeps retrying a broker that stopped answering (nothing
    acknowledged, no stable group membership) before it exits with code 2."""
    reconnect_backoff_max_ms: int = Field(default=1_000, gt=0)
    """Longest pause between reconnection attempts to a lost broker."""

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for any kafka-python client.

        >>> KafkaSettings(bootstrap_servers="b:9092").client_kwargs()["bootstrap_servers"]
        ['b:9092']
        """
        kwargs: dict[str, Any] = {
            "bootstrap_servers": [
                s.strip() for s in self.bootstrap_servers.split(",") if s.strip()
            ],
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
            "request_timeout_ms": self.request_timeout_ms,
            "reconnect_backoff_max_ms": self.reconnect_backoff_max_ms,
        }
        if self.security_protocol.startswith("SASL"):
            if self.sasl_mechanism is None:
                raise ConfigError(
                    f"kafka.sasl_mechanism is required with security_protocol "
                    f"{self.security_protocol}; got none"
                )
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            if self.sasl_password is not None:
                kwargs["sasl_plain_password"] = self.sasl_password.get_secret_value()
        if self.security_protocol in ("SSL", "SASL_SSL"):
            kwargs["ssl_check_hostname"] = self.ssl_check_hostname
            for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
                if getattr(self, key) is not None:
                    kwargs[key] = getattr(self, key)
            if self.ssl_password is not None:
                kwargs["ssl_password"] = self.ssl_password.get_secret_value()
        return kwargs


class TopicSettings(SettingsSection):
    """Topic names (CONTRACT defaults)."""

    events: str = "events"
    labels: str = "labels"
    decisions: str = "decisions"
    alerts: str = "alerts"
    dead_letter: str = "events.dlq"


class ConsumerSettings(SettingsSection):
    """The consumer group and the micro-batch."""

    group_id: str = "stream-detector"
    batch_size: int = Field(default=500, ge=1, le=100_000)
    """At most this many messages are scored together (kafka-python ``max_poll_records``)."""
    poll_timeout_ms: int = Field(default=200, ge=0)
    auto_offset_reset: OffsetReset = "earliest"
    assignor: Assignor = "range"
    """How the group spreads partitions over its members (kafka-python's assignors).
    ``range`` keeps partition *i* of the events and labels topics on one member; the eager
    assignors (``range``, ``roundrobin``, ``sticky``) stop every member at each rebalance,
    ``cooperative-sticky`` moves only the partitions that change owner (KIP-429). All members
    of a group must use the same."""
    session_timeout_ms: int = Field(default=10_000, gt=0)
    heartbeat_interval_ms: int = Field(default=3_000, gt=0)
    max_poll_interval_ms: int = Field(default=300_000, gt=0)
    fetch_max_bytes: int = Field(default=52_428_800, gt=0)
    fetch_max_wait_ms: int = Field(default=100, ge=0)
    """Longest a fetch waits at the broker for data (kafka-python ``fetch_max_wait_ms``). Kafka
    answers as soon as data arrives; the embedded broker holds the fetch for this long, so it
    bounds the latency there: lower it for low latency on the embedded broker (the README's
    Performance section has the figures)."""


class ProducerSettings(SettingsSection):
    """Producer batching and durability for decisions, alerts and dead letters."""

    acks: Literal["all", "1", "0"] = "all"
    linger_ms: int = Field(default=5, ge=0)
    batch_size: int = Field(default=65_536, gt=0)
    compression_type: Literal["gzip", "snappy", "lz4", "zstd"] | None = None
    retries: int = Field(default=5, ge=0)
    transactional_id: str | None = Field(default=None, min_length=1, max_length=200)
    """``exactly_once`` only: stable and unique per replica; default ``<group_id>-<hostname>``."""
    transaction_timeout_ms: int = Field(default=60_000, gt=0)


class DedupeSettings(SettingsSection):
    """Duplicate-alert suppression: an event alerted once is not alerted again."""

    enabled: bool = True
    capacity: int = Field(default=200_000, ge=1)
    """Alerted event ids remembered; the least recently alerted are forgotten first."""
    readback_records: int = Field(default=10_000, ge=0)
    """When partitions are assigned (start, restart, rebalance), the ids of the latest
    this-many records of every alerts partition are read back; 0 turns the read-back off."""
    readback_timeout_s: float = Field(default=30.0, gt=0)


class MetricsSettings(SettingsSection):
    """Where ``/metrics``, ``/healthz`` and ``/readyz`` are served."""

    host: str = "127.0.0.1"
    port: int = Field(default=9108, ge=0, le=65_535)


class ServeMetricsSettings(MetricsSettings):
    """``serve``'s metrics: where they are served, and the score histogram's buckets.

    >>> ServeMetricsSettings(score_buckets=[0.001, 0.01, 1]).score_buckets
    (0.001, 0.01, 1.0)
    >>> try:
    ...     ServeMetricsSettings(score_buckets=[0.5, 0.1])
    ... except ValidationError as exc:
    ...     print(exc.errors()[0]["msg"])
    Value error, must be increasing numbers in (0, 1]; got [0.5, 0.1]
    """

    score_buckets: tuple[float, ...] = Field(default=SCORE_BUCKETS, min_length=1)
    """Upper bounds of the ``stream_detector_score`` histogram (``+Inf`` is added); the
    default is log-spaced from 1e-6, so the region around a rare-event threshold shows."""

    @field_validator("score_buckets")
    @classmethod
    def _increasing(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        ok = all(0.0 < b <= 1.0 for b in value) and all(a < b for a, b in itertools.pairwise(value))
        if not ok:
            raise ValueError(f"must be increasing numbers in (0, 1]; got {list(value)}")
        return value


class AdminSettings(SettingsSection):
    """The admin endpoint ``/admin/threshold`` on the metrics server; off without a token."""

    token: SecretStr | None = Field(default=None, min_length=16)
    """Bearer token the endpoint requires; set it through STREAM_DETECTOR_ADMIN__TOKEN."""


class PriorSettings(SettingsSection):
    """How the positive-class rate is tracked from feedback labels."""

    window: PriorWindow = "rolling"
    window_size: int = Field(default=20_000, ge=1)
    """Labels in the rolling window."""
    fading_factor: float = Field(default=0.0002, gt=0.0, le=1.0)
    """Weight of the newest label with ``window: ewm``."""
    strength: float = Field(default=2_000.0, ge=0.0)
    """Pseudo-labels at the bundle's prior the estimate is smoothed with."""
    max_ratio: float = Field(default=10.0, ge=1.0)
    """The estimate stays within [reference / max_ratio, reference * max_ratio]."""


class FeedbackSettings(SettingsSection):
    """Joining labels to recent decisions."""

    memory_size: int = Field(default=200_000, ge=1)
    """Decisions remembered (by event_id) for labels to join; the oldest are forgotten."""
    window_size: int = Field(default=1_000, ge=1)
    """Live precision over the last N labelled alerts, recall over the last N labelled frauds."""


class AlertRateSettings(SettingsSection):
    """``threshold_mode: alert_rate``: flag about ``budget`` of the events."""

    budget: float = Field(default=0.01, gt=0.0, lt=1.0)
    """Share of events to flag (the analysts' capacity)."""
    window_size: int = Field(default=10_000, ge=10)
    """Recent scores the streaming quantile is taken over."""
    min_scores: int = Field(default=1_000, ge=1)
    """Until this many scores were seen, the fixed threshold is in force."""


class DriftSettings(SettingsSection):
    """ADWIN drift detectors on the score stream, the feature means and the labels."""

    enabled: bool = True
    delta: float = Field(default=0.002, gt=0.0, lt=1.0)
    """ADWIN's confidence: smaller detects fewer, surer changes."""
    chunk_size: int = Field(default=500, ge=1)
    """Feature means are taken over chunks of this many events."""
    hold_s: float = Field(default=600.0, ge=0.0)
    """A signal counts as drifting on ``/healthz`` this long after a detection."""


class ColdStartSettings(SettingsSection):
    """The online anomaly scorer ``serve`` runs when no model bundle is given."""

    features: list[str] = Field(default_factory=lambda: ["amount"], min_length=1)
    """Numeric event fields the scorer reads."""
    threshold: float = Field(default=0.99, ge=0.0, le=1.0)
    """The fixed threshold; in ``alert_rate`` mode (the default here) the fallback."""
    warmup: int = Field(default=1_000, ge=1)
    """Events learned before anything is flagged."""
    class_prior: float = Field(default=0.01, gt=0.0, lt=1.0)
    """Positive rate assumed until labels arrive."""
    n_trees: int = Field(default=25, ge=1)
    height: int = Field(default=10, ge=1, le=20)
    window_size: int = Field(default=500, ge=1)
    random_state: int = 42


class OnlineSettings(SettingsSection):
    """The River side of ``serve``: class balance, thresholds, drift, cold start."""

    prior: PriorSettings = PriorSettings()
    feedback: FeedbackSettings = FeedbackSettings()
    alert_rate: AlertRateSettings = AlertRateSettings()
    drift: DriftSettings = DriftSettings()
    cold_start: ColdStartSettings = ColdStartSettings()


class StateSettings(SettingsSection):
    """Where the behavioural features' per-entity state lives (bundles with windowed features).

    ``memory`` keeps it in the process: the default, for one replica, the demo and the tests;
    it is lost on restart. ``redis`` keeps it in a Redis server: it survives restarts and is
    shared by every replica of the consumer group. An unreachable store is handled like an
    unreachable broker: the batch waits and is retried, ``/readyz`` answers 503, and after
    ``give_up_after_s`` the service exits with code 2; no decision is made on missing state.
    """

    store: StoreKind = "memory"
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    """``redis://[:password@]host:port/db`` (``rediss://`` for TLS); a secret, as it may hold a
    password: set STREAM_DETECTOR_STATE__REDIS_URL rather than writing one here."""
    key_prefix: str = Field(default="stream-detector", min_length=1, max_length=64)
    """Prefix of every Redis key (``<prefix>|``, then the feature spec's hash)."""
    timeout_s: float = Field(default=5.0, gt=0)
    """Connecting, or a Redis command, not answered within this long fails the attempt (and
    the batch is retried)."""
    retry_backoff_s: float = Field(default=0.5, gt=0)
    """Pause between two attempts of a batch while the store is unreachable."""
    give_up_after_s: float = Field(default=300.0, gt=0)
    """A store unreachable this long: the service exits with code 2."""
    backfill: str | None = None
    """A raw history file (CSV or Parquet) computed into the store at start-up, before the
    first batch (as ``stream-detector backfill`` does): how a ``memory`` store starts with
    the history; harmless on a ``redis`` store that holds it already."""


class NotifySettings(SettingsSection):
    """``stream-detector notify``: alerts from the alerts topic to an HTTP webhook."""

    url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+")
    """The webhook (a case-management API, a chat bridge); set STREAM_DETECTOR_NOTIFY__URL."""
    secret: SecretStr | None = Field(default=None, min_length=16)
    """Shared secret of the HMAC-SHA256 body signature; set STREAM_DETECTOR_NOTIFY__SECRET."""
    auth_token: SecretStr | None = Field(default=None, min_length=1)
    """Sent as ``Authorization: Bearer <token>`` when set (STREAM_DETECTOR_NOTIFY__AUTH_TOKEN)."""
    group_id: str = Field(default="stream-detector-notify", min_length=1)
    """The consumer group, apart from ``serve``'s: both read the alerts at their own pace."""
    dead_letter: str = Field(default="alerts.notify.dlq", min_length=1)
    """Alerts the webhook refused or never acknowledged go here, with the reason."""
    batch_size: int = Field(default=100, ge=1, le=10_000)
    """Alerts polled together; their offsets are committed once all are delivered or
    dead-lettered, so a crash repeats at most this many."""
    concurrency: int = Field(default=4, ge=1, le=64)
    """Requests in flight at once."""
    connect_timeout_s: float = Field(default=3.0, gt=0)
    read_timeout_s: float = Field(default=10.0, gt=0)
    max_attempts: int = Field(default=8, ge=1, le=100)
    """Attempts per alert before it is dead-lettered (``exhausted``)."""
    backoff_initial_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)
    """Pause before retry *n*: uniform in [0, min(max, initial * 2**(n-1))] (full jitter)."""
    status_interval_s: float = Field(default=60.0, ge=0.0)
    """``notify`` logs a one-line status this often (delivered, retries, failures, dead
    letters, lag, batches), and once when it stops; 0 turns the periodic line off."""
    metrics: MetricsSettings = MetricsSettings(port=9109)


_yaml_data: ContextVar[Mapping[str, Any] | None] = ContextVar("_yaml_data", default=None)


class _YamlSource(PydanticBaseSettingsSource):
    """The YAML file's contents, handed over through a context variable by ``load``."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return (_yaml_data.get() or {}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_yaml_data.get() or {})


def load_yaml_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML mapping, or raise ConfigError naming the file and the problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {p} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {p} cannot be read: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {p} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping; got {type(data).__name__}")
    return data


def settings_error(
    exc: ValidationError, source: str = "config", *, name_key: bool = True
) -> ConfigError:
    """Turn a pydantic ValidationError into a one-line ConfigError naming the key.

    A validator's own message (a ``ValueError``) already says what it received, so it is
    shown as written, without pydantic's "Value error," prefix and without the value again.
    ``name_key=False`` when ``source`` names the value already (an environment variable).
    """
    err = exc.errors()[0]
    key = ".".join(str(part) for part in err["loc"]) or "<root>"
    received = err.get("input")
    if err["type"] == "extra_forbidden":
        return ConfigError(f"{source}: unknown key '{key}'")
    where = f"{source} key '{key}'" if name_key else source
    cause = (err.get("ctx") or {}).get("error")
    if err["type"] == "value_error" and isinstance(cause, ValueError):
        return ConfigError(f"{where}: {cause}")
    secret = any(w in key for w in ("password", "token", "secret", "redis_url"))
    shown = "***" if secret else repr(received)
    return ConfigError(f"{where}: {err['msg']} (got {shown})")


def _unknown_key(model: type[BaseModel], path: Sequence[str]) -> tuple[int, str | None] | None:
    """Where ``path`` leaves ``model``'s fields: (index of the first unknown part, a near
    field name or None); None when every part down to a plain value is a field."""
    for i, part in enumerate(path):
        fields = model.model_fields
        if part not in fields:
            near = difflib.get_close_matches(part, list(fields), n=1)
            return i, near[0] if near else None
        annotation = fields[part].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None  # a value: what lies below it is the value's own validation
        model = annotation
    return None


class LayeredSettings(BaseSettings):
    """Settings read once from a YAML file, then the environment, then flags (overrides).

    Subclasses set their own ``model_config`` (environment prefix, ``extra="forbid"``,
    ``frozen``); :meth:`load` is the one way to build them. An environment variable with the
    prefix that names no setting is an error, as an unknown key in the file is (pydantic
    would ignore it): see :meth:`check_environment`.
    """

    env_prefixes_elsewhere: ClassVar[tuple[str, ...]] = ()
    """Longer prefixes of other settings objects sharing this one's (their variables are
    theirs to check)."""

    @classmethod
    def check_environment(cls, environ: Mapping[str, str]) -> None:
        """Refuse a variable with this settings' prefix that names no setting.

        >>> DetectorSettings.check_environment({"STREAM_DETECTOR_TRESHOLD": "0.5"})
        Traceback (most recent call last):
        ...
        stream_detector.errors.ConfigError: environment variable STREAM_DETECTOR_TRESHOLD: unknown key 'treshold' (did you mean STREAM_DETECTOR_THRESHOLD?)
        >>> DetectorSettings.check_environment({"STREAM_DETECTOR_KAFKA__BOOTSTRAP_SERVERS": "b:1"})
        """
        prefix = str(cls.model_config.get("env_prefix") or "").upper()
        delimiter = cls.model_config.get("env_nested_delimiter")
        if not prefix:
            return
        elsewhere = tuple(p.upper() for p in cls.env_prefixes_elsewhere)
        for name in sorted(environ):
            upper = name.upper()
            if not upper.startswith(prefix) or upper.startswith(elsewhere):
                continue
            rest = upper[len(prefix) :].lower()
            path = rest.split(delimiter) if delimiter else [rest]
            unknown = _unknown_key(cls, path)
            if unknown is None:
                continue
            index, near = unknown
            hint = ""
            if near is not None:
                parts = [*path[:index], near, *path[index + 1 :]]
                hint = f" (did you mean {prefix}{(delimiter or '').join(parts).upper()}?)"
            key = ".".join(path[: index + 1])
            raise ConfigError(f"environment variable {name}: unknown key '{key}'{hint}")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls))

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Self:
        """Read the file (if any), then the environment, then ``overrides`` (flags)."""
        cls.check_environment(os.environ)
        data = load_yaml_file(path) if path is not None else {}
        token = _yaml_data.set(data)
        try:
            return cls(**dict(overrides or {}))
        except ValidationError as exc:
            loc = tuple(str(part) for part in exc.errors()[0]["loc"])
            variable = cls.environment_variable(loc, overrides or {}, os.environ)
            if variable is not None:
                raise settings_error(
                    exc, f"environment variable {variable}", name_key=False
                ) from exc
            raise settings_error(exc, f"config {path}" if path else "config") from exc
        except SettingsError as exc:  # a section's variable holding no JSON object
            field = re.search(r'field "(\w+)"', str(exc))
            variable = None
            if field is not None:
                variable = cls.environment_variable((field.group(1),), {}, os.environ)
            if variable is None:
                raise ConfigError(str(exc).splitlines()[0]) from exc
            delimiter = cls.model_config.get("env_nested_delimiter") or "__"
            raise ConfigError(  # the value is not shown: a section may hold a password
                f"environment variable {variable}: not a JSON object; give one (or set one "
                f"key as {variable}{delimiter}<KEY>)"
            ) from exc
        finally:
            _yaml_data.reset(token)

    @classmethod
    def environment_variable(
        cls, loc: Sequence[str], overrides: Mapping[str, Any], environ: Mapping[str, str]
    ) -> str | None:
        """The environment variable a bad value at ``loc`` came from, or None (a flag or the
        file): the variable of ``loc`` itself or of a section holding it, unless a flag
        (``overrides``) set that value, which wins over the environment.

        >>> DetectorSettings.environment_variable(
        ...     ("notify", "max_attempts"), {}, {"STREAM_DETECTOR_NOTIFY__MAX_ATTEMPTS": "x"})
        'STREAM_DETECTOR_NOTIFY__MAX_ATTEMPTS'
        >>> DetectorSettings.environment_variable(
        ...     ("threshold",), {"threshold": 3}, {"STREAM_DETECTOR_THRESHOLD": "x"})
        """
        node: Any = overrides
        for part in loc:
            if not isinstance(node, Mapping) or part not in node:
                break
            node = node[part]
        else:
            return None  # the flag's value
        prefix = str(cls.model_config.get("env_prefix") or "")
        delimiter = cls.model_config.get("env_nested_delimiter") or ""
        names = {name.upper(): name for name in environ}
        for end in range(len(loc), 0, -1):
            wanted = (prefix + delimiter.join(loc[:end])).upper()
            if wanted in names:
                return names[wanted]
            if not delimiter:
                break
        return None


class DetectorSettings(LayeredSettings):
    """Everything ``serve`` needs, frozen once read."""

    model_config = SettingsConfigDict(
        env_prefix="STREAM_DETECTOR_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )
    env_prefixes_elsewhere = ("STREAM_DETECTOR_TRAIN_",)
    """The training settings' variables (``offline.config.TrainSettings``)."""

    kafka: KafkaSettings = KafkaSettings()
    topics: TopicSettings = TopicSettings()
    consumer: ConsumerSettings = ConsumerSettings()
    producer: ProducerSettings = ProducerSettings()
    metrics: ServeMetricsSettings = ServeMetricsSettings()
    model: str | None = None
    """Path of the model bundle directory."""
    threshold: float | None = None
    """Overrides the bundle's threshold when set; in [0, 1]."""
    threshold_mode: ThresholdMode | None = None
    """None: ``fixed`` with a trained model, ``alert_rate`` with the cold-start scorer (whose
    scores have no fixed meaning)."""
    online: OnlineSettings = OnlineSettings()
    admin: AdminSettings = AdminSettings()
    decisions_enabled: bool = True
    """Publish a decision for every valid event; off means alerts and dead letters only."""
    max_message_bytes: int = Field(default=1_048_576, gt=0)
    """Messages larger than this are dead-lettered before parsing."""
    dead_letter_max_bytes: int = Field(default=1_000_000, ge=0)
    """Dead letters whose value is larger are published truncated to this size, with headers
    ``error.truncated``, ``source.value_bytes`` and ``source.value_sha256``."""
    processing_guarantee: ProcessingGuarantee = "at_least_once"
    dedupe: DedupeSettings = DedupeSettings()
    reasons_top: int = Field(default=3, ge=0, le=50)
    state: StateSettings = StateSettings()
    log_level: LogLevel = "INFO"
    notify: NotifySettings = NotifySettings()
    status_interval_s: float = Field(default=60.0, ge=0.0)
    """``serve`` logs a one-line status this often (events, alerts, dead letters, lag,
    threshold, prior); 0 turns it off."""

    @field_validator("threshold")
    @classmethod
    def _threshold(cls, value: float | None) -> float | None:
        """In [0, 1], refused in the words of ``--threshold`` (:func:`flags.threshold_value`).

        >>> DetectorSettings.load(overrides={"threshold": 1.5})
        Traceback (most recent call last):
        ...
        stream_detector.errors.ConfigError: config key 'threshold': must be in [0, 1]; got 1.5
        """
        if value is not None and not 0.0 <= value <= 1.0:
            raise ValueError(f"must be in [0, 1]; got {value:g}")
        return value
