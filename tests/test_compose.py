"""docker-compose.yml, the Dockerfile, Prometheus and Grafana agree with the code.

The deployment files name commands, flags, ports, topics, metric names and paths that the code
defines; these tests read both sides, so a change on one side that the other does not follow
fails here rather than in a user's ``docker compose up``.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from stream_detector.config import (
    DetectorSettings,
    MetricsSettings,
    NotifySettings,
    TopicSettings,
)
from stream_detector.devbroker import DEFAULT_TOPICS
from stream_detector.metrics import DeliveryMetrics, DetectorMetrics, NotifyMetrics
from stream_detector.simulate import TransactionSimulator

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
MANAGED_KAFKA_FILE = ROOT / "docker-compose.managed-kafka.yml"
DOCKERFILE = ROOT / "Dockerfile"
PROMETHEUS_CONFIG = ROOT / "configs" / "prometheus.yml"
ALERTMANAGER_CONFIG = ROOT / "configs" / "alertmanager.yml"
GRAFANA = ROOT / "configs" / "grafana"
DEFAULT_METRICS_PORT = 9108
NOTIFY_METRICS_PORT = 9109
MANAGED_KAFKA_ENV = {
    "KAFKA_BOOTSTRAP_SERVERS": "broker-1.example.org:9092,broker-2.example.org:9092",
    "KAFKA_SASL_USERNAME": "detector",
    "KAFKA_SASL_PASSWORD": "a-password-never-logged",
}


# -- helpers ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


@pytest.fixture(scope="module")
def parser() -> argparse.ArgumentParser:
    """The real command-line parser, built-in and plugin commands included."""
    import stream_detector.cli as cli

    build_parser = getattr(cli, "build_parser", None)
    if build_parser is None:
        pytest.skip("stream_detector.cli.build_parser does not exist")
    built: argparse.ArgumentParser = build_parser()
    return built


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse like the CLI does; a usage error fails the test with argparse's message."""
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"stream-detector rejects {shlex.join(argv)!r} (exit {exc.code})")


def script_lines(service: dict[str, Any]) -> list[str]:
    """Lines of a service's ``sh -c`` script: the entrypoint's third item (the arguments of
    ``docker compose run SERVICE ARGS`` then reach it), or the command when the entrypoint ends
    with ``-c``."""
    entrypoint = service["entrypoint"]
    assert entrypoint[0] in ("/bin/sh", "/bin/bash"), entrypoint
    assert re.fullmatch(r"-\w*c", entrypoint[1]), entrypoint
    if len(entrypoint) >= 3:
        script = entrypoint[2]
    else:
        (script,) = service["command"]
    return [line.strip() for line in script.splitlines() if line.strip()]


def stream_detector_commands(service: dict[str, Any]) -> list[list[str]]:
    """The ``stream-detector ...`` invocations of a script service, as argv lists."""
    commands = [shlex.split(line) for line in script_lines(service)]
    return [argv[1:] for argv in commands if argv[0] == "stream-detector"]


def host_port(mapping: str | dict[str, Any], container_port: int) -> int | None:
    if isinstance(mapping, dict):
        matches = int(mapping["target"]) == container_port
        return int(mapping["published"]) if matches else None
    parts = str(mapping).split(":")
    if int(parts[-1].split("/")[0]) != container_port:
        return None
    return int(parts[-2]) if len(parts) >= 2 else None


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def dockerfile(instruction: str) -> list[str]:
    return [args for name, args in dockerfile_instructions() if name == instruction]


def exposed_metric_names() -> dict[str, set[str]]:
    """Family name -> the series names Prometheus sees for it."""
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "gauge": ("",),
        "info": ("_info",),
    }
    registry = CollectorRegistry()
    DetectorMetrics(registry)
    DeliveryMetrics(registry)
    NotifyMetrics(registry)
    return {
        family.name: {family.name + suffix for suffix in suffixes[family.type]}
        for family in registry.collect()
    }


def dashboard_panels() -> Iterator[dict[str, Any]]:
    for path in sorted((GRAFANA / "dashboards").glob("*.json")):
        yield from json.loads(path.read_text())["panels"]


def dashboard_exprs() -> Iterator[str]:
    for panel in dashboard_panels():
        for target in panel.get("targets", []):
            yield target["expr"]


def panel_metrics(panel: dict[str, Any]) -> set[str]:
    return {
        name
        for target in panel.get("targets", [])
        for name in re.findall(r"stream_detector_\w+", target["expr"])
    }


def environment_of(service: dict[str, Any], placeholders: dict[str, str]) -> dict[str, str]:
    """A service's environment with ``${VAR:-default}`` resolved from ``placeholders``."""

    def resolve(value: object) -> str:
        def one(match: re.Match[str]) -> str:
            name, default = match[1], match[3] or ""
            return placeholders.get(name, default)

        return re.sub(r"\$\{(\w+)(:[-?]([^}]*))?\}", one, str(value))

    return {key: resolve(value) for key, value in service.get("environment", {}).items()}


# -- images and the Dockerfile -------------------------------------------------------------------


def test_every_image_is_pinned(services: dict[str, dict[str, Any]]) -> None:
    project_version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for name, service in services.items():
        image = service.get("image")
        assert image, f"service {name} has no image"
        repository, _, tag = image.rpartition(":")
        assert repository, f"service {name}: image {image!r} has no tag"
        assert "/" not in tag, f"service {name}: image {image!r} has no tag"
        assert tag != "latest", f"service {name}: image {image!r} is not pinned"
        assert re.fullmatch(r"v?\d+(\.\d+)+", tag), f"service {name}: tag {tag!r} is no version"
        if "build" in service:
            assert image == f"stream-detector:{project_version}", name


def test_the_dockerfile_matches_the_cli_and_the_port(parser: argparse.ArgumentParser) -> None:
    (base,) = dockerfile("FROM")
    assert base == "python:3.11-slim"
    assert dockerfile("EXPOSE") == [str(DEFAULT_METRICS_PORT)]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    (entrypoint,) = dockerfile("ENTRYPOINT")
    assert json.loads(entrypoint) == ["stream-detector"]
    assert "stream-detector" in scripts
    (cmd,) = dockerfile("CMD")
    args = parse(parser, json.loads(cmd))
    assert args.command == "serve"
    assert (ROOT / Path(args.config).relative_to("/app")).is_file()
    users = dockerfile("USER")
    assert users, "the image must not run as root"
    assert users[-1] not in ("root", "0")


def test_the_image_installs_without_development_extras() -> None:
    installs = [args for args in dockerfile("RUN") if "pip install" in args]
    assert installs
    assert not any("[dev]" in args or "-e " in args for args in installs)


def test_dockerfile_copies_exist_and_reach_the_build_context() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        verdict = False
        for pattern in patterns:
            negated = pattern.startswith("!")
            bare = pattern.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, bare) or path.startswith(bare + "/"):
                verdict = not negated
        return verdict

    copies = dockerfile("COPY")
    assert copies
    for args in copies:
        *sources, _destination = [a for a in args.split() if not a.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: missing from the repository"
            assert not ignored(source), f"COPY {source}: excluded by .dockerignore"


# -- the services' commands use the real command line --------------------------------------------


def test_the_detector_command_is_accepted_by_the_cli(
    services: dict[str, dict[str, Any]], parser: argparse.ArgumentParser
) -> None:
    detector = services["detector"]
    assert "entrypoint" not in detector  # the image's ENTRYPOINT: stream-detector
    args = parse(parser, [str(a) for a in detector["command"]])
    assert args.command == "serve"
    assert args.bootstrap_servers == "kafka:9092"
    assert args.model == "/models/current"
    assert args.config == "/app/configs/detector.yaml"


def test_the_trainer_trains_the_model_the_detector_serves(
    services: dict[str, dict[str, Any]], parser: argparse.ArgumentParser
) -> None:
    commands = [parse(parser, argv) for argv in stream_detector_commands(services["trainer"])]
    assert [args.command for args in commands] == ["simulate", "train", "backfill"]
    simulate, train, backfill = commands
    assert simulate.output == train.data == backfill.data
    assert train.label == "is_fraud"
    assert train.config == "/app/configs/train.yaml"  # the behavioural features
    assert train.technique == "auto"  # the comparison's winner, not the default technique
    detector_model = parse(parser, [str(a) for a in services["detector"]["command"]]).model
    assert train.out == detector_model == backfill.model
    assert services["trainer"]["image"] == services["detector"]["image"]


def test_the_detector_and_the_backfill_share_a_persistent_redis(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    redis = services["redis"]
    assert "--appendonly" in redis["command"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert any(volume.endswith(":/data") for volume in redis["volumes"])
    urls = set()
    for name in ("detector", "trainer"):
        environment = services[name]["environment"]
        for key, value in environment.items():
            monkeypatch.setenv(key, str(value))
        settings = DetectorSettings.load(ROOT / "configs" / "detector.yaml")
        assert settings.state.store == "redis"
        urls.add(settings.state.redis_url.get_secret_value())
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert urls == {"redis://redis:6379/0"}


def test_the_trainer_keeps_an_existing_model_unless_forced(
    services: dict[str, dict[str, Any]], parser: argparse.ArgumentParser
) -> None:
    trainer = services["trainer"]
    assert "command" not in trainer  # `docker compose run --rm trainer --force` passes $1
    lines = script_lines(trainer)
    train = parse(
        parser, next(argv for argv in stream_detector_commands(trainer) if argv[0] == "train")
    )
    guard = lines[0]
    assert f"-f {train.out}/manifest.json" in guard
    assert '"$${1:-}" != "--force"' in guard
    assert lines[1].startswith("echo")
    assert lines[2] == "exit 0"
    # The model is removed only when retraining.
    assert lines.index(f"rm -rf {train.out}") > lines.index("fi")


def test_the_simulator_streams_into_the_compose_broker(
    services: dict[str, dict[str, Any]], parser: argparse.ArgumentParser
) -> None:
    args = parse(parser, [str(a) for a in services["simulator"]["command"]])
    assert args.command == "simulate"
    assert args.bootstrap_servers == "kafka:9092"
    assert args.output is None
    # It continues the trainer's history on the wall clock: the same day 0, days after it.
    history = next(
        parse(parser, argv)
        for argv in stream_detector_commands(services["trainer"])
        if argv[0] == "simulate"
    )
    assert args.clock == "wall"
    assert args.start_date == history.start_date != "2018-04-01"
    assert (args.preset, args.seed) == (history.preset, history.seed)
    assert args.start_day == 42 == TransactionSimulator.from_preset(history.preset).n_days


# -- ports and metrics ---------------------------------------------------------------------------


def test_metrics_port_is_published_scraped_and_the_default(
    services: dict[str, dict[str, Any]],
) -> None:
    assert MetricsSettings().port == DEFAULT_METRICS_PORT
    settings = DetectorSettings.load(ROOT / "configs" / "detector.yaml")
    assert settings.metrics.port == DEFAULT_METRICS_PORT
    published = {host_port(p, DEFAULT_METRICS_PORT) for p in services["detector"]["ports"]}
    assert DEFAULT_METRICS_PORT in published

    prometheus = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    assert set(jobs) == {"stream-detector", "stream-detector-notify"}
    for job in jobs.values():
        assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = {
        name: [t for config in job["static_configs"] for t in config["targets"]]
        for name, job in jobs.items()
    }
    assert targets["stream-detector"] == [f"detector:{DEFAULT_METRICS_PORT}"]
    assert targets["stream-detector-notify"] == [f"notify:{NOTIFY_METRICS_PORT}"]
    assert NotifySettings().metrics.port == NOTIFY_METRICS_PORT
    assert settings.notify.metrics.port == NOTIFY_METRICS_PORT
    published = {host_port(p, NOTIFY_METRICS_PORT) for p in services["notify"]["ports"]}
    assert NOTIFY_METRICS_PORT in published


def test_the_detector_environment_is_valid_settings(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = services["detector"]["environment"]
    assert environment["STREAM_DETECTOR_METRICS__HOST"] == "0.0.0.0"
    for key, value in environment.items():
        monkeypatch.setenv(key, str(value))
    settings = DetectorSettings.load(ROOT / "configs" / "detector.yaml")
    assert settings.metrics.host == "0.0.0.0"  # reachable by Prometheus in another container


def test_prometheus_rule_files_exist_and_are_mounted(
    services: dict[str, dict[str, Any]],
) -> None:
    prometheus = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    rule_files = prometheus.get("rule_files") or []
    mounts = {
        volume.split(":")[1]: volume.split(":")[0] for volume in services["prometheus"]["volumes"]
    }
    for rule_file in rule_files:
        assert rule_file in mounts, f"rule file {rule_file} is not mounted into prometheus"
        assert (ROOT / mounts[rule_file]).is_file()
    if (ROOT / "configs" / "alerts.yml").exists():
        assert "./configs/alerts.yml" in mounts.values(), "configs/alerts.yml is not used"


def test_the_dashboard_shows_every_metric_and_only_real_ones() -> None:
    exposed = exposed_metric_names()
    every_series = set().union(*exposed.values())
    used = {name for expr in dashboard_exprs() for name in re.findall(r"stream_detector_\w+", expr)}
    assert used <= every_series, f"unknown metrics on the dashboard: {used - every_series}"
    unused = {family for family, series in exposed.items() if not series & used}
    assert not unused, f"metrics without a dashboard panel: {unused}"


def test_grafana_provisioning_matches_the_mounts(services: dict[str, dict[str, Any]]) -> None:
    mounts = {
        volume.split(":")[0]: volume.split(":")[1] for volume in services["grafana"]["volumes"]
    }
    provisioning = GRAFANA / "provisioning"
    assert mounts["./configs/grafana/provisioning"] == "/etc/grafana/provisioning"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "stream-detector.yml").read_text())[
        "providers"
    ]
    assert mounts["./configs/grafana/dashboards"] == provider["options"]["path"]
    (datasource,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert datasource["url"] == "http://prometheus:9090"
    assert any(host_port(p, 9090) for p in services["prometheus"]["ports"])
    for path in (GRAFANA / "dashboards").glob("*.json"):
        for panel in json.loads(path.read_text())["panels"]:
            if "datasource" in panel:
                assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]


# -- topics, dependencies, mounts ----------------------------------------------------------------


def test_kafka_init_creates_the_default_topics(services: dict[str, dict[str, Any]]) -> None:
    created: dict[str, int] = {}
    configs: dict[str, list[str]] = {}
    for line in script_lines(services["kafka-init"]):
        if match := re.search(r"--topic (\S+) --partitions (\d+)", line):
            created[match[1]] = int(match[2])
            configs[match[1]] = re.findall(r"--config (\S+)", line)
    assert set(created) == {*TopicSettings().model_dump().values(), NotifySettings().dead_letter}
    assert created == DEFAULT_TOPICS  # the same layout as `stream-detector broker`
    assert configs[TopicSettings().alerts] == ["cleanup.policy=compact"]
    kafka_image = services["kafka"]["image"]
    assert services["kafka-init"]["image"] == kafka_image  # ships the same kafka-topics.sh


def test_kafka_is_the_version_the_tests_run(services: dict[str, dict[str, Any]]) -> None:
    from stream_detector.devbroker import kafka_version

    assert services["kafka"]["image"] == f"apache/kafka:{kafka_version()}"


def test_kafka_listens_for_containers_at_kafka_9092(services: dict[str, dict[str, Any]]) -> None:
    environment = services["kafka"]["environment"]
    assert environment["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    advertised = environment["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert "PLAINTEXT://kafka:9092" in advertised
    assert "PLAINTEXT://:9092" in environment["KAFKA_LISTENERS"].split(",")


def test_dependencies_exist_and_one_shot_services_finish(
    services: dict[str, dict[str, Any]],
) -> None:
    conditions = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        if isinstance(depends_on, list):
            depends_on = {dependency: {"condition": "service_started"} for dependency in depends_on}
        for dependency, spec in depends_on.items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            assert spec["condition"] in conditions
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck"
            if spec["condition"] == "service_completed_successfully":
                assert services[dependency].get("restart") == "no", dependency
    detector_needs = services["detector"]["depends_on"]
    assert detector_needs["kafka"]["condition"] == "service_healthy"
    assert detector_needs["kafka-init"]["condition"] == "service_completed_successfully"
    assert detector_needs["trainer"]["condition"] == "service_completed_successfully"


def test_mounted_files_exist_and_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name} uses undeclared volume {source}"


@pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="docker-compose is not installed"
)
def test_docker_compose_validates_the_file() -> None:
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# -- operations: readiness, notify, Alertmanager, Grafana, managed Kafka ------------------------


def healthcheck_url(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"], test
    (url,) = re.findall(r"urlopen\('([^']+)'", test[3])
    return str(url)


def test_healthchecks_probe_readiness(services: dict[str, dict[str, Any]]) -> None:
    # /healthz answers 200 whenever the process runs; /readyz only once it serves.
    assert (
        healthcheck_url(services["detector"]) == f"http://127.0.0.1:{DEFAULT_METRICS_PORT}/readyz"
    )
    assert healthcheck_url(services["notify"]) == f"http://127.0.0.1:{NOTIFY_METRICS_PORT}/readyz"


def test_notify_consumes_the_compose_broker_and_posts_to_the_sink(
    services: dict[str, dict[str, Any]],
    parser: argparse.ArgumentParser,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    notify = services["notify"]
    assert notify["entrypoint"][-1] == "notify"  # $0 of the wrapper; the command is "$@"
    assert script_lines(notify)[-1] == 'exec stream-detector "$$@"'
    args = parse(parser, [str(a) for a in notify["command"]])
    assert args.command == "notify"
    assert args.bootstrap_servers == "kafka:9092"
    assert args.config == "/app/configs/detector.yaml"
    # The default: webhook-sink, at the port its receiver listens on.
    environment = environment_of(notify, {"NOTIFY_WEBHOOK_SECRET": "s" * 32})
    del environment["STREAM_DETECTOR_NOTIFY__AUTH_TOKEN"]  # empty: the wrapper unsets it
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    settings = DetectorSettings.load(ROOT / "configs" / "detector.yaml")
    assert settings.notify.url == "http://webhook-sink:8080/alerts"
    assert settings.notify.metrics.host == "0.0.0.0"
    sink = script_lines(services["webhook-sink"])
    assert sink[-1] == "exec python -m stream_detector.notify.receiver --port 8080"
    # Both read the generated secret from one volume; the sink writes it, notify only reads.
    assert "notify-secret:/secrets:ro" in notify["volumes"]
    assert "notify-secret:/secrets" in services["webhook-sink"]["volumes"]
    assert any("/secrets/notify" in line for line in script_lines(notify))
    assert "RUN useradd" in DOCKERFILE.read_text()
    assert "/secrets" in next(args for args in dockerfile("RUN") if "useradd" in args)


def test_notify_points_at_any_webhook_through_the_environment(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = {
        "NOTIFY_WEBHOOK_URL": "https://cases.example.org/api/v2/alerts",
        "NOTIFY_WEBHOOK_SECRET": "shared-with-the-case-system",
        "NOTIFY_WEBHOOK_TOKEN": "case-api-token",
    }
    for key, value in environment_of(services["notify"], chosen).items():
        monkeypatch.setenv(key, value)
    n = DetectorSettings.load(ROOT / "configs" / "detector.yaml").notify
    assert n.url == chosen["NOTIFY_WEBHOOK_URL"]
    assert n.secret is not None
    assert n.secret.get_secret_value() == chosen["NOTIFY_WEBHOOK_SECRET"]
    assert n.auth_token is not None
    assert n.auth_token.get_secret_value() == chosen["NOTIFY_WEBHOOK_TOKEN"]


def test_prometheus_sends_to_alertmanager_which_routes_to_the_sink(
    services: dict[str, dict[str, Any]],
) -> None:
    prometheus = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    (alertmanagers,) = prometheus["alerting"]["alertmanagers"]
    targets = [t for config in alertmanagers["static_configs"] for t in config["targets"]]
    assert targets == ["alertmanager:9093"]
    alertmanager = services["alertmanager"]
    assert any(host_port(p, 9093) for p in alertmanager["ports"])
    assert (
        "./configs/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro"
        in (alertmanager["volumes"])
    )
    assert "alertmanager" in services["prometheus"]["depends_on"]
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    urls = [hook["url"] for receiver in config["receivers"] for hook in receiver["webhook_configs"]]
    assert urls
    assert all(url.startswith("http://webhook-sink:8080/") for url in urls)
    assert "webhook-sink" in services


def test_grafana_takes_its_admin_password_from_the_environment(
    services: dict[str, dict[str, Any]],
) -> None:
    grafana = services["grafana"]
    environment = grafana["environment"]
    assert environment["GF_SECURITY_ADMIN_PASSWORD"] == "${GRAFANA_ADMIN_PASSWORD:-}"
    lines = script_lines(grafana)
    assert lines[0] == 'if [ -z "$${GF_SECURITY_ADMIN_PASSWORD:-}" ]; then'
    assert "/dev/urandom" in lines[1]  # unset: a random password, never admin/admin
    assert lines[-1] == "exec /run.sh"  # the image's own entrypoint
    assert "admin / admin" not in COMPOSE_FILE.read_text()


def test_the_dashboard_sets_the_threshold_against_quantiles_and_live_against_validation() -> None:
    panels = list(dashboard_panels())
    assert any(
        {"stream_detector_threshold", "stream_detector_score_bucket"} <= panel_metrics(panel)
        for panel in panels
    )
    assert any(
        {
            "stream_detector_alert_precision",
            "stream_detector_validation_precision",
            "stream_detector_alert_recall",
            "stream_detector_validation_recall",
        }
        <= panel_metrics(panel)
        for panel in panels
    )
    notify = {name for panel in panels for name in panel_metrics(panel) if "_notify_" in name}
    assert {
        "stream_detector_notify_delivered_total",
        "stream_detector_notify_retries_total",
        "stream_detector_notify_failures_total",
        "stream_detector_notify_dead_letters_total",
        "stream_detector_notify_delivery_seconds_bucket",
        "stream_detector_notify_consumer_lag",
    } <= notify
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))


@pytest.fixture(scope="module")
def managed_kafka() -> dict[str, Any]:
    data = yaml.safe_load(MANAGED_KAFKA_FILE.read_text())
    assert isinstance(data, dict)
    return data


def test_the_managed_kafka_override_reaches_the_cluster_through_the_environment(
    managed_kafka: dict[str, Any],
    services: dict[str, dict[str, Any]],
    parser: argparse.ArgumentParser,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    overridden = managed_kafka["services"]
    assert set(overridden) == {"detector", "notify"}
    for name, service in overridden.items():
        assert name in services
        args = parse(parser, [str(a) for a in service["command"]])
        assert args.command == name.replace("detector", "serve")
        assert args.bootstrap_servers is None  # a flag would win over the environment
        base = parse(parser, [str(a) for a in services[name]["command"]])
        assert {k: v for k, v in vars(args).items() if k != "bootstrap_servers"} == {
            k: v for k, v in vars(base).items() if k != "bootstrap_servers"
        }
        environment = environment_of(service, MANAGED_KAFKA_ENV)
        with monkeypatch.context() as patch:
            for key in os.environ:
                if key.startswith("STREAM_DETECTOR_"):
                    patch.delenv(key)
            for key, value in environment.items():
                patch.setenv(key, value)
            settings = DetectorSettings.load(ROOT / "configs" / "detector.yaml")
        kwargs = settings.kafka.client_kwargs()
        assert kwargs["bootstrap_servers"] == MANAGED_KAFKA_ENV["KAFKA_BOOTSTRAP_SERVERS"].split(
            ","
        )
        assert kwargs["security_protocol"] == "SASL_SSL"
        assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
        assert kwargs["sasl_plain_password"] == MANAGED_KAFKA_ENV["KAFKA_SASL_PASSWORD"]
        assert MANAGED_KAFKA_ENV["KAFKA_SASL_PASSWORD"] not in repr(settings)


@pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="docker-compose is not installed"
)
def test_docker_compose_validates_the_managed_kafka_override() -> None:
    base = ["docker-compose", "-f", str(COMPOSE_FILE), "-f", str(MANAGED_KAFKA_FILE), "config"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    missing = subprocess.run(
        [*base, "-q"], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert missing.returncode != 0
    assert "KAFKA_BOOTSTRAP_SERVERS" in missing.stderr  # a clear refusal, not a silent default
    result = subprocess.run(
        base,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, **MANAGED_KAFKA_ENV},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    merged = yaml.safe_load(result.stdout)["services"]
    assert "--bootstrap-servers" not in merged["detector"]["command"]
    notify_env = merged["notify"]["environment"]
    assert notify_env["STREAM_DETECTOR_KAFKA__SASL_USERNAME"] == "detector"
    assert notify_env["STREAM_DETECTOR_NOTIFY__URL"] == "http://webhook-sink:8080/alerts"
