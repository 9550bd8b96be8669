"""Docker Engine API compatibility: the real Python `docker` SDK and Testcontainers against berthd.

Run through tests/compat/run-python.sh, which starts a private berthd, loads the busybox
fixture and sets DOCKER_HOST. Every container made here carries the label
$BERTH_COMPAT_LABEL (default berth.compat=python) and is removed by the test (and by the
runner's exit trap as a backstop).

Eventual states are polled with generous timeouts; nothing asserts on elapsed time.
"""

import io
import os
import re
import tarfile
import threading
import time
import uuid

import docker
import docker.constants
import docker.errors
import pytest

API_VERSION = "1.51"
IMAGE = "busybox"
LABEL_KEY, _, LABEL_VAL = os.environ.get("BERTH_COMPAT_LABEL", "berth.compat=python").partition("=")
LABELS = {LABEL_KEY: LABEL_VAL}
SWAGGER = os.environ.get("BERTH_SWAGGER", "/var/cache/berth-swagger/v1.51.yaml")
TIMEOUT = float(os.environ.get("BERTH_COMPAT_TIMEOUT", "60"))

# A long-running command that logs one numbered line every 0.2 s.
TICKER = ["sh", "-c", "i=0; while true; do echo line$i; i=$((i+1)); sleep 0.2; done"]
# A long-running command that does nothing (trap so SIGTERM from `stop` ends it promptly:
# a shell as PID 1 otherwise ignores SIGTERM).
SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"]


# ----------------------------------------------------------------------------------------------
# helpers


def poll(fn, what, timeout=TIMEOUT, interval=0.1):
    """Call fn() until it returns something truthy; fail with `what` and the last value."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = fn()
        except docker.errors.NotFound as e:  # transient while an object appears/disappears
            last = e
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")
        time.sleep(interval)


def wait_status(c, status, timeout=TIMEOUT):
    def check():
        c.reload()
        return c.status == status

    poll(check, f"container {c.short_id} to be {status!r} (is {c.status!r})", timeout)


def wait_gone(client, cid, timeout=TIMEOUT):
    def gone():
        try:
            client.containers.get(cid)
        except docker.errors.NotFound:
            return True
        return False

    poll(gone, f"container {cid[:12]} to be removed", timeout)


def force_remove(c):
    try:
        c.remove(force=True)
    except docker.errors.NotFound:
        pass


@pytest.fixture
def made(client):
    """Collects containers a test makes; removes them (force) afterwards."""
    items = []
    yield items
    for c in items:
        force_remove(c)


def run_bg(client, made, command, **kw):
    kw.setdefault("labels", dict(LABELS))
    c = client.containers.run(IMAGE, command, detach=True, **kw)
    made.append(c)
    return c


def read_stream_lines(gen, want, timeout=TIMEOUT):
    """Read chunks from a blocking generator in a thread until `want` lines arrived."""
    buf = bytearray()
    done = threading.Event()
    err = []

    def reader():
        try:
            for chunk in gen:
                buf.extend(chunk)
                if buf.count(b"\n") >= want:
                    break
        except Exception as e:  # noqa: BLE001 - reported below
            err.append(e)
        finally:
            done.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    done.wait(timeout)
    return bytes(buf), err, done.is_set()


# ----------------------------------------------------------------------------------------------
# clients


@pytest.fixture(scope="module")
def client():
    c = docker.from_env(version="auto", timeout=120)
    yield c
    c.close()


def test_from_env_auto_version():
    c = docker.from_env(version="auto", timeout=60)
    try:
        assert c.api.api_version == API_VERSION
        assert c.ping() is True
        assert c.version()["ApiVersion"] == API_VERSION
        assert isinstance(c.containers.list(all=True), list)
    finally:
        c.close()


def test_from_env_default_fixed_version():
    """The SDK's own fixed default, DEFAULT_DOCKER_API_VERSION, sent as the /vX.Y path prefix.

    (docker-py >= 6 negotiates when version= is not given; the fixed default is what
    clients pinned to the SDK constant send.)
    """
    fixed = docker.constants.DEFAULT_DOCKER_API_VERSION
    c = docker.from_env(version=fixed, timeout=60)
    try:
        assert c.api.api_version == fixed
        assert c.ping() is True
        v = c.version()
        assert v["ApiVersion"] == API_VERSION
        assert isinstance(c.containers.list(all=True), list)
        assert any(t.startswith("busybox") for i in c.images.list() for t in i.tags)
        assert c.containers.run(IMAGE, "echo fixed", remove=True, labels=dict(LABELS)) == b"fixed\n"
    finally:
        c.close()


def test_from_env_no_version_negotiates():
    c = docker.from_env(timeout=60)
    try:
        assert c.api.api_version == API_VERSION
    finally:
        c.close()


def test_too_new_version_rejected():
    c = docker.DockerClient(base_url=os.environ["DOCKER_HOST"], version="9.99", timeout=60)
    try:
        with pytest.raises(docker.errors.APIError) as ei:
            c.containers.list()
        assert ei.value.status_code == 400
        assert "too new" in str(ei.value.explanation)
    finally:
        c.close()


# ----------------------------------------------------------------------------------------------
# system


def test_ping(client):
    assert client.ping() is True
    r = client.api.get(client.api.base_url + "/_ping")
    assert r.status_code == 200
    assert r.text == "OK"
    assert r.headers.get("Api-Version") == API_VERSION
    assert r.headers.get("Ostype") == "linux"


def test_version(client):
    v = client.version()
    assert v["ApiVersion"] == API_VERSION
    assert v["Os"] == "linux"
    assert v["Arch"]
    assert v["Version"]
    assert v["MinAPIVersion"]
    assert any(comp["Name"] == "Engine" for comp in v.get("Components", []))


def test_info(client):
    i = client.info()
    for k in ("ID", "Containers", "ContainersRunning", "ContainersPaused", "ContainersStopped",
              "Images", "ServerVersion", "OperatingSystem", "OSType", "Architecture",
              "NCPU", "MemTotal", "DockerRootDir", "Driver"):
        assert k in i, f"info lacks {k}: {sorted(i)}"
    assert i["OSType"] == "linux"
    assert i["NCPU"] > 0
    assert i["MemTotal"] > 0
    assert i["Images"] >= 1
    assert i["Containers"] == i["ContainersRunning"] + i["ContainersPaused"] + i["ContainersStopped"]


# ----------------------------------------------------------------------------------------------
# images


def test_images_list_finds_busybox(client):
    imgs = client.images.list()
    tagged = [i for i in imgs if "busybox:latest" in i.tags]
    assert tagged, f"busybox:latest not in {[i.tags for i in imgs]}"
    img = client.images.get("busybox")
    assert img.id == tagged[0].id
    assert img.id.startswith("sha256:")
    assert img.attrs["Os"] == "linux"
    assert "busybox:latest" in img.attrs["RepoTags"]
    assert client.images.list(name="busybox"), "images.list(name='busybox') is empty"


# ----------------------------------------------------------------------------------------------
# containers


def test_run_echo_remove(client):
    before = {c.id for c in client.containers.list(all=True)}
    out = client.containers.run(IMAGE, "echo hi", remove=True, labels=dict(LABELS))
    assert out == b"hi\n"
    # remove=True: nothing new left behind
    poll(lambda: {c.id for c in client.containers.list(all=True)} <= before,
         "the run --rm container to disappear")


def test_run_detached_attrs(client, made):
    c = run_bg(client, made, TICKER, name="berth-py-" + uuid.uuid4().hex[:8])
    wait_status(c, "running")
    c.reload()
    a = c.attrs
    assert a["Id"] == c.id and re.fullmatch(r"[0-9a-f]{64}", c.id)
    assert a["Name"].startswith("/berth-py-")
    assert c.name == a["Name"][1:]
    assert a["State"]["Status"] == "running"
    assert a["State"]["Running"] is True
    assert a["State"]["Pid"] > 0
    assert a["State"]["StartedAt"].startswith("20")
    assert a["Created"].startswith("20")
    assert a["Path"] == "sh"
    assert a["Args"] == TICKER[1:]
    assert a["Config"]["Image"] == IMAGE
    assert a["Config"]["Cmd"] == TICKER
    assert a["Config"]["Labels"].get(LABEL_KEY) == LABEL_VAL
    assert a["Image"].startswith("sha256:")
    assert a["Image"] == client.images.get(IMAGE).id
    assert isinstance(a["HostConfig"], dict)
    assert a["HostConfig"]["LogConfig"]["Type"]
    assert isinstance(a["NetworkSettings"], dict)
    assert isinstance(a.get("Mounts"), list)
    assert c.image.id == a["Image"]
    assert c.labels.get(LABEL_KEY) == LABEL_VAL
    # listed while running
    assert c.id in [x.id for x in client.containers.list()]


def test_logs(client, made):
    c = run_bg(client, made, TICKER)
    poll(lambda: b"line3\n" in c.logs(), "line3 in logs()")
    out = c.logs()
    assert out.startswith(b"line0\nline1\nline2\nline3\n")
    assert c.logs(stdout=False, stderr=True) == b""


def test_logs_stream_follow(client, made):
    c = run_bg(client, made, TICKER)
    wait_status(c, "running")
    gen = c.logs(stream=True, follow=True)
    data, err, finished = read_stream_lines(gen, want=5)
    try:
        gen.close()
    except Exception:  # noqa: BLE001
        pass
    assert not err, f"stream raised {err!r}"
    assert finished, f"follow stream did not deliver 5 lines; got {data!r}"
    lines = data.decode().splitlines()
    assert lines[:5] == [f"line{i}" for i in range(5)], lines


def test_logs_timestamps_tail(client, made):
    c = run_bg(client, made, TICKER)
    poll(lambda: b"line2\n" in c.logs(), "line2 in logs()")
    out = c.logs(timestamps=True, tail=1).decode()
    lines = out.splitlines()
    assert len(lines) == 1, out
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)) (line\d+)", lines[0])
    assert m, f"not '<RFC3339Nano> lineN': {lines[0]!r}"
    assert c.logs(tail=0) == b""


def test_exec_run(client, made):
    c = run_bg(client, made, SLEEPER)
    wait_status(c, "running")
    r = c.exec_run("echo hello")
    assert r.exit_code == 0
    assert r.output == b"hello\n"
    r = c.exec_run(["sh", "-c", "echo out; echo err >&2; exit 3"], demux=True)
    assert r.exit_code == 3
    assert r.output == (b"out\n", b"err\n")


def test_exec_run_output_not_lost(client, made):
    """Short-lived execs, one after another: every one must deliver its output."""
    c = run_bg(client, made, SLEEPER)
    wait_status(c, "running")
    bad = []
    for i in range(30):
        r = c.exec_run(["echo", f"mark{i}"])
        if (r.exit_code, r.output) != (0, f"mark{i}\n".encode()):
            bad.append((i, r.exit_code, r.output))
    assert not bad, f"{len(bad)}/30 execs returned wrong output (exit_code, output): {bad}"


def test_exec_inspect(client, made):
    c = run_bg(client, made, SLEEPER)
    wait_status(c, "running")
    eid = client.api.exec_create(c.id, ["sh", "-c", "exit 5"])["Id"]
    i = client.api.exec_inspect(eid)
    assert i["Running"] is False and i["ContainerID"] == c.id
    client.api.exec_start(eid)
    poll(lambda: client.api.exec_inspect(eid)["ExitCode"] == 5, "exec ExitCode 5")
    with pytest.raises(docker.errors.NotFound):
        client.api.exec_inspect("no-such-exec-" + uuid.uuid4().hex[:8])


def test_run_failure_raises_container_error(client):
    with pytest.raises(docker.errors.ContainerError) as ei:
        client.containers.run(IMAGE, ["sh", "-c", "echo oops >&2; exit 2"], remove=True,
                              labels=dict(LABELS))
    assert ei.value.exit_status == 2
    assert ei.value.stderr == b"oops\n"


def test_wait_exit_code(client, made):
    c = run_bg(client, made, ["sh", "-c", "exit 7"])
    r = c.wait(timeout=TIMEOUT)
    assert r["StatusCode"] == 7
    c.reload()
    assert c.status == "exited"
    assert c.attrs["State"]["ExitCode"] == 7
    assert c.attrs["State"]["FinishedAt"].startswith("20")


def test_stop_start_restart(client, made):
    c = run_bg(client, made, SLEEPER)
    wait_status(c, "running")
    c.stop(timeout=10)
    wait_status(c, "exited")
    assert c.attrs["State"]["Running"] is False
    c.start()
    wait_status(c, "running")
    started = c.attrs["State"]["StartedAt"]
    pid = c.attrs["State"]["Pid"]
    c.restart(timeout=10)
    wait_status(c, "running")
    assert c.attrs["State"]["Pid"] > 0
    assert (c.attrs["State"]["StartedAt"], c.attrs["State"]["Pid"]) != (started, pid), \
        "restart did not start a new process"


def test_kill(client, made):
    c = run_bg(client, made, SLEEPER)
    wait_status(c, "running")
    c.kill()
    wait_status(c, "exited")
    assert c.attrs["State"]["ExitCode"] == 137


def test_kill_signal(client, made):
    c = run_bg(client, made, ["sh", "-c", "trap 'exit 42' USR1; echo armed; while true; do sleep 0.1; done"])
    poll(lambda: b"armed" in c.logs(), "the USR1 trap to be set")
    c.kill(signal="SIGUSR1")
    assert c.wait(timeout=TIMEOUT)["StatusCode"] == 42


def test_pause_unpause(client, made):
    c = run_bg(client, made, TICKER)
    wait_status(c, "running")
    c.pause()
    wait_status(c, "paused")
    assert c.attrs["State"]["Paused"] is True
    n = len(c.logs())
    c.unpause()
    wait_status(c, "running")
    assert c.attrs["State"]["Paused"] is False
    poll(lambda: len(c.logs()) > n, "new log lines after unpause")


def test_remove_force(client, made):
    c = run_bg(client, made, SLEEPER)
    wait_status(c, "running")
    c.remove(force=True)
    wait_gone(client, c.id)
    assert c.id not in [x.id for x in client.containers.list(all=True)]


def test_list_filters(client, made):
    tag = uuid.uuid4().hex[:8]
    running = run_bg(client, made, SLEEPER, labels={**LABELS, "x": "y", "run": tag})
    exited = run_bg(client, made, ["true"], labels={**LABELS, "run": tag})
    wait_status(running, "running")
    exited.wait(timeout=TIMEOUT)
    wait_status(exited, "exited")

    ids = lambda **kw: {c.id for c in client.containers.list(**kw)}  # noqa: E731
    by_label = ids(all=True, filters={"label": "x=y"})
    assert running.id in by_label and exited.id not in by_label
    by_key = ids(all=True, filters={"label": ["run=" + tag]})
    assert by_key >= {running.id, exited.id}
    by_status = ids(all=True, filters={"status": "exited"})
    assert exited.id in by_status and running.id not in by_status
    by_running = ids(all=True, filters={"status": "running"})
    assert running.id in by_running and exited.id not in by_running
    default = ids()
    assert running.id in default and exited.id not in default
    everything = ids(all=True)
    assert {running.id, exited.id} <= everything
    by_id = ids(all=True, filters={"id": exited.id})
    assert by_id == {exited.id}
    assert client.containers.list(all=True, filters={"label": "x=nope-" + tag}) == []


def test_rename(client, made):
    c = run_bg(client, made, SLEEPER)
    new = "berth-py-renamed-" + uuid.uuid4().hex[:8]
    c.rename(new)
    c.reload()
    assert c.name == new
    assert client.containers.get(new).id == c.id


def test_events(client, made):
    since = int(time.time()) - 1
    c = run_bg(client, made, ["true"])
    c.wait(timeout=TIMEOUT)

    def actions():
        until = int(time.time()) + 1
        evs = client.events(since=since, until=until, decode=True, filters={"container": c.id})
        return [e.get("Action") for e in evs]

    got = poll(lambda: (lambda a: a if {"create", "start", "die"} <= set(a) else None)(actions()),
               "create/start/die events")
    assert got.index("create") < got.index("start") < got.index("die")


# ----------------------------------------------------------------------------------------------
# errors


def test_error_container_not_found(client):
    with pytest.raises(docker.errors.NotFound) as ei:
        client.containers.get("no-such-container-" + uuid.uuid4().hex)
    assert ei.value.status_code == 404
    assert "no-such-container" in str(ei.value.explanation).lower() or \
        "no such container" in str(ei.value.explanation).lower()


def test_error_remove_running_conflict(client, made):
    c = run_bg(client, made, SLEEPER)
    wait_status(c, "running")
    with pytest.raises(docker.errors.APIError) as ei:
        c.remove()
    assert ei.value.status_code == 409
    assert ei.value.explanation
    c.reload()
    assert c.status == "running"


def test_error_image_not_found(client):
    with pytest.raises(docker.errors.ImageNotFound) as ei:
        client.images.get("no-such-image-" + uuid.uuid4().hex[:8] + ":latest")
    assert ei.value.status_code == 404
    with pytest.raises(docker.errors.ImageNotFound):
        client.containers.create("no-such-image-" + uuid.uuid4().hex[:8] + ":latest", "true",
                                 labels=dict(LABELS))


# ----------------------------------------------------------------------------------------------
# archive and volumes


def _tar_of(name, data, mode=0o644):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = mode
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_put_get_archive(client, made):
    c = run_bg(client, made, SLEEPER)
    wait_status(c, "running")
    payload = b"hello from put_archive\n"
    assert c.put_archive("/tmp", _tar_of("berth-put.txt", payload)) is True
    chunks, stat = c.get_archive("/tmp/berth-put.txt")
    assert stat["name"] == "berth-put.txt"
    assert stat["size"] == len(payload)
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        m = tar.getmember("berth-put.txt")
        assert tar.extractfile(m).read() == payload
    with pytest.raises(docker.errors.NotFound):
        c.get_archive("/no/such/path")


def test_volumes(client):
    name = "berth-py-vol-" + uuid.uuid4().hex[:8]
    v = client.volumes.create(name=name, labels=dict(LABELS))
    try:
        assert v.name == name
        assert v.attrs["Driver"] == "local"
        assert v.attrs["Mountpoint"]
        assert name in [x.name for x in client.volumes.list()]
        assert client.volumes.get(name).name == name
        assert name in [x.name for x in client.volumes.list(filters={"label": LABEL_KEY})]
    finally:
        v.remove()
    with pytest.raises(docker.errors.NotFound):
        client.volumes.get(name)


# ----------------------------------------------------------------------------------------------
# testcontainers


@pytest.fixture
def tc_container():
    from testcontainers.core.container import DockerContainer

    assert os.environ.get("TESTCONTAINERS_RYUK_DISABLED") == "true"
    c = DockerContainer(IMAGE).with_command("sh -c 'echo ready; sleep 30'")
    started = False
    try:
        c.start()
        started = True
        yield c
    finally:
        if started:
            c.stop()


def test_testcontainers_start_wait_stop(client, tc_container):
    from testcontainers.core.waiting_utils import wait_for_logs

    cid = tc_container.get_wrapped_container().id
    wait_for_logs(tc_container, "ready", timeout=TIMEOUT)
    tc_container.reload()
    assert tc_container.status == "running"  # it sleeps 30 s after "ready"
    assert tc_container.get_logs()[0].startswith(b"ready\n")
    labels = client.containers.get(cid).labels
    assert labels.get("org.testcontainers") == "true", labels
    tc_container.stop()
    wait_gone(client, cid)
    tc_container._container = None  # already stopped; keep the fixture's stop() a no-op


def test_testcontainers_exec(tc_container):
    from testcontainers.core.waiting_utils import wait_for_logs

    wait_for_logs(tc_container, "ready", timeout=TIMEOUT)
    r = tc_container.exec(["sh", "-c", "echo from-exec"])
    assert r.exit_code == 0
    assert r.output == b"from-exec\n"


def test_testcontainers_copy(tc_container, tmp_path):
    if not hasattr(tc_container, "copy_into_container") or not hasattr(tc_container, "copy_from_container"):
        pytest.skip("this testcontainers has no copy_into_container/copy_from_container")
    from testcontainers.core.waiting_utils import wait_for_logs

    wait_for_logs(tc_container, "ready", timeout=TIMEOUT)
    tc_container.copy_into_container(b"copied in\n", "/tmp/tc-in.txt")
    out = tmp_path / "tc-out.txt"
    tc_container.copy_from_container("/tmp/tc-in.txt", out)
    assert out.read_bytes() == b"copied in\n"


# ----------------------------------------------------------------------------------------------
# schema: responses against moby's swagger for API 1.51 (cached outside the repo)


def _nullable(node):
    """Swagger 2.0 -> JSON Schema draft 4: honour x-nullable.

    Also admit null for arrays and for maps (objects with only additionalProperties):
    dockerd itself encodes Go nil slices/maps as null there (e.g. /info RegistryConfig.Mirrors,
    EndpointSettings.Aliases), and every client copes. Objects with properties stay strict.
    """
    if isinstance(node, dict):
        out = {k: _nullable(v) for k, v in node.items()}
        is_map = out.get("type") == "object" and "properties" not in out and "additionalProperties" in out
        if out.get("type") == "array" or is_map:
            out["x-nullable"] = True
        if out.get("x-nullable") is True:
            if isinstance(out.get("type"), str):
                out["type"] = [out["type"], "null"]
            elif "$ref" in out:
                out = {"anyOf": [{"$ref": out["$ref"]}, {"type": "null"}]}
        return out
    if isinstance(node, list):
        return [_nullable(v) for v in node]
    return node


@pytest.fixture(scope="module")
def swagger():
    if not os.path.isfile(SWAGGER):
        pytest.skip(f"no cached moby swagger at {SWAGGER} (set BERTH_SWAGGER)")
    yaml = pytest.importorskip("yaml")
    with open(SWAGGER) as f:
        doc = yaml.safe_load(f)
    assert str(doc["info"]["version"]) == API_VERSION, doc["info"]["version"]
    return {"definitions": _nullable(doc["definitions"]), "paths": doc["paths"]}


def _schema_errors(swagger, schema, instance):
    import jsonschema

    root = {"definitions": swagger["definitions"], "allOf": [schema]}
    v = jsonschema.Draft4Validator(root)
    return sorted(
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:200]}"
        for e in v.iter_errors(instance)
    )


def _check(swagger, schema, instance):
    errs = _schema_errors(swagger, schema, instance)
    assert not errs, "schema violations:\n  " + "\n  ".join(errs[:40])


def _ref(name):
    return {"$ref": f"#/definitions/{name}"}


def _get_json(client, path, **params):
    r = client.api._get(client.api._url(path), params=params)
    assert r.status_code == 200, (path, r.status_code, r.text[:300])
    return r.json()


def test_schema_version(client, swagger):
    _check(swagger, _ref("SystemVersion"), _get_json(client, "/version"))


def test_schema_info(client, swagger):
    _check(swagger, _ref("SystemInfo"), _get_json(client, "/info"))


def test_schema_images(client, swagger):
    _check(swagger, {"type": "array", "items": _ref("ImageSummary")}, _get_json(client, "/images/json"))
    _check(swagger, _ref("ImageInspect"), _get_json(client, "/images/busybox/json"))


def test_schema_containers(client, made, swagger):
    c = run_bg(client, made, SLEEPER)
    wait_status(c, "running")
    done = run_bg(client, made, ["true"])
    done.wait(timeout=TIMEOUT)
    _check(swagger, {"type": "array", "items": _ref("ContainerSummary")},
           _get_json(client, "/containers/json", all=1))
    _check(swagger, _ref("ContainerInspectResponse"), _get_json(client, f"/containers/{c.id}/json"))
    _check(swagger, _ref("ContainerInspectResponse"), _get_json(client, f"/containers/{done.id}/json"))


def test_schema_create_wait_responses(client, swagger):
    r = client.api._post_json(client.api._url("/containers/create"),
                              data={"Image": IMAGE, "Cmd": ["true"], "Labels": LABELS})
    assert r.status_code == 201, (r.status_code, r.text[:300])
    body = r.json()
    try:
        _check(swagger, _ref("ContainerCreateResponse"), body)
        assert client.api._post(client.api._url("/containers/{0}/start", body["Id"])).status_code == 204
        w = client.api._post(client.api._url("/containers/{0}/wait", body["Id"]), timeout=TIMEOUT)
        assert w.status_code == 200
        _check(swagger, _ref("ContainerWaitResponse"), w.json())
    finally:
        client.api.remove_container(body["Id"], force=True)


def test_schema_error_response(client, swagger):
    r = client.api._get(client.api._url("/containers/{0}/json", "no-such-" + uuid.uuid4().hex[:8]))
    assert r.status_code == 404
    assert r.headers.get("Content-Type", "").startswith("application/json")
    _check(swagger, _ref("ErrorResponse"), r.json())
