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
# response shapes for Engine API 1.51
#
# Field names and JSON types follow the definitions in moby's swagger for API 1.51, written out
# here as compact tables so the check lives in this file (no swagger download, no skip).
#
# Notation. A table is a dict {field: type}. Types: "str", "int", "num", "bool", "any",
# "obj" (any JSON object; used for swarm-only subtrees); [T] = array of T; {"*": T} = map
# (free keys) of T; a nested dict = object with its own table.
#   "!Name"  the field must be present: swagger's `required` plus the fields clients rely on.
#   "Name?"  the value may be null even though it is required or a scalar (swagger x-nullable,
#            or where dockerd itself sends null, e.g. a nil Go map).
# An optional (non-"!") array, map or object may be null: dockerd encodes nil slices, maps
# and pointers as null. Fields not in a table are not checked (dockerd adds some too).

_OCI_PLATFORM = {"architecture": "str", "os": "str", "os.version": "str",
                 "os.features": ["str"], "variant": "str"}
_OCI_DESCRIPTOR = {"mediaType": "str", "digest": "str", "size": "int", "urls?": ["str"],
                   "annotations?": {"*": "str"}, "data?": "str", "platform?": _OCI_PLATFORM,
                   "artifactType?": "str"}
_IMAGE_MANIFEST_SUMMARY = {
    "!ID": "str", "!Descriptor": _OCI_DESCRIPTOR, "!Available": "bool",
    "!Size": {"!Total": "int", "!Content": "int"}, "!Kind": "str",
    "ImageData?": {"!Platform?": _OCI_PLATFORM, "!Containers": ["str"], "!Size": {"!Unpacked": "int"}},
    "AttestationData?": {"!For": "str"},
}
_PORT_BINDINGS = {"*": [{"HostIp": "str", "HostPort": "str"}]}
_ENDPOINT = {
    "IPAMConfig?": {"IPv4Address": "str", "IPv6Address": "str", "LinkLocalIPs": ["str"]},
    "Links": ["str"], "MacAddress": "str", "Aliases": ["str"], "DriverOpts?": {"*": "str"},
    "GwPriority": "int", "NetworkID": "str", "EndpointID": "str", "Gateway": "str",
    "IPAddress": "str", "IPPrefixLen": "int", "IPv6Gateway": "str", "GlobalIPv6Address": "str",
    "GlobalIPv6PrefixLen": "int", "DNSNames": ["str"],
}
_MOUNT_POINT = {"Type": "str", "Name": "str", "Source": "str", "Destination": "str",
                "Driver": "str", "Mode": "str", "RW": "bool", "Propagation": "str"}
_HEALTH_CONFIG = {"Test": ["str"], "Interval": "int", "Timeout": "int", "Retries": "int",
                  "StartPeriod": "int", "StartInterval": "int"}
_CONTAINER_STATE = {
    "!Status": "str", "!Running": "bool", "!Paused": "bool", "!Restarting": "bool",
    "!OOMKilled": "bool", "!Dead": "bool", "!Pid": "int", "!ExitCode": "int", "!Error": "str",
    "!StartedAt": "str", "!FinishedAt": "str",
    "Health?": {"Status": "str", "FailingStreak": "int",
                "Log": [{"Start": "str", "End": "str", "ExitCode": "int", "Output": "str"}]},
}
_CONTAINER_CONFIG = {
    "!Hostname": "str", "Domainname": "str", "User": "str", "AttachStdin": "bool",
    "AttachStdout": "bool", "AttachStderr": "bool", "ExposedPorts?": {"*": "obj"}, "!Tty": "bool",
    "!OpenStdin": "bool", "StdinOnce": "bool", "!Env": ["str"], "!Cmd": ["str"],
    "Healthcheck": _HEALTH_CONFIG, "ArgsEscaped?": "bool", "!Image": "str",
    "Volumes": {"*": "obj"}, "WorkingDir": "str", "Entrypoint": ["str"], "NetworkDisabled?": "bool",
    "MacAddress?": "str", "OnBuild?": ["str"], "!Labels": {"*": "str"}, "StopSignal?": "str",
    "StopTimeout?": "int", "Shell?": ["str"],
}
_RATE_DEVICE = {"Path": "str", "Rate": "int"}
_HOST_CONFIG = {
    # Resources
    "CpuShares": "int", "Memory": "int", "CgroupParent": "str", "BlkioWeight": "int",
    "BlkioWeightDevice": [{"Path": "str", "Weight": "int"}], "BlkioDeviceReadBps": [_RATE_DEVICE],
    "BlkioDeviceWriteBps": [_RATE_DEVICE], "BlkioDeviceReadIOps": [_RATE_DEVICE],
    "BlkioDeviceWriteIOps": [_RATE_DEVICE], "CpuPeriod": "int", "CpuQuota": "int",
    "CpuRealtimePeriod": "int", "CpuRealtimeRuntime": "int", "CpusetCpus": "str", "CpusetMems": "str",
    "Devices": [{"PathOnHost": "str", "PathInContainer": "str", "CgroupPermissions": "str"}],
    "DeviceCgroupRules": ["str"],
    "DeviceRequests": [{"Driver": "str", "Count": "int", "DeviceIDs": ["str"],
                        "Capabilities": [["str"]], "Options": {"*": "str"}}],
    "KernelMemoryTCP": "int", "MemoryReservation": "int", "MemorySwap": "int",
    "MemorySwappiness": "int", "NanoCpus": "int", "OomKillDisable": "bool", "Init?": "bool",
    "PidsLimit?": "int", "Ulimits": [{"Name": "str", "Soft": "int", "Hard": "int"}],
    "CpuCount": "int", "CpuPercent": "int", "IOMaximumIOps": "int", "IOMaximumBandwidth": "int",
    # HostConfig proper
    "Binds": ["str"], "ContainerIDFile": "str",
    "LogConfig": {"Type": "str", "Config": {"*": "str"}}, "!NetworkMode": "str",
    "PortBindings": _PORT_BINDINGS, "RestartPolicy": {"Name": "str", "MaximumRetryCount": "int"},
    "AutoRemove": "bool", "VolumeDriver": "str", "VolumesFrom": ["str"],
    "Mounts": [{"Target": "str", "Source": "str", "Type": "str", "ReadOnly": "bool",
                "Consistency": "str", "BindOptions": "obj", "VolumeOptions": "obj",
                "ImageOptions": "obj", "TmpfsOptions": "obj"}],
    "ConsoleSize?": ["int"], "Annotations": {"*": "str"}, "CapAdd": ["str"], "CapDrop": ["str"],
    "CgroupnsMode": "str", "Dns": ["str"], "DnsOptions": ["str"], "DnsSearch": ["str"],
    "ExtraHosts": ["str"], "GroupAdd": ["str"], "IpcMode": "str", "Cgroup": "str",
    "Links": ["str"], "OomScoreAdj": "int", "PidMode": "str", "Privileged": "bool",
    "PublishAllPorts": "bool", "ReadonlyRootfs": "bool", "SecurityOpt": ["str"],
    "StorageOpt": {"*": "str"}, "Tmpfs": {"*": "str"}, "UTSMode": "str", "UsernsMode": "str",
    "ShmSize": "int", "Sysctls?": {"*": "str"}, "Runtime?": "str", "Isolation": "str",
    "MaskedPaths": ["str"], "ReadonlyPaths": ["str"],
}
_NETWORK_SETTINGS = {
    "Bridge": "str", "SandboxID": "str", "HairpinMode": "bool", "LinkLocalIPv6Address": "str",
    "LinkLocalIPv6PrefixLen": "int", "Ports": _PORT_BINDINGS, "SandboxKey": "str",
    "SecondaryIPAddresses?": [{"Addr": "str", "PrefixLen": "int"}],
    "SecondaryIPv6Addresses?": [{"Addr": "str", "PrefixLen": "int"}],
    "EndpointID": "str", "Gateway": "str", "GlobalIPv6Address": "str", "GlobalIPv6PrefixLen": "int",
    "IPAddress": "str", "IPPrefixLen": "int", "IPv6Gateway": "str", "MacAddress": "str",
    "Networks": {"*": _ENDPOINT},
}

SHAPE_VERSION = {
    "Platform": {"!Name": "str"},
    "Components": [{"!Name": "str", "!Version": "str", "Details?": {"*": "any"}}],
    "!Version": "str", "!ApiVersion": "str", "!MinAPIVersion": "str", "GitCommit": "str",
    "GoVersion": "str", "!Os": "str", "!Arch": "str", "KernelVersion": "str",
    "Experimental": "bool", "BuildTime": "str",
}
SHAPE_INFO = {
    "!ID": "str", "!Containers": "int", "!ContainersRunning": "int", "!ContainersPaused": "int",
    "!ContainersStopped": "int", "!Images": "int", "!Driver": "str", "DriverStatus": [["str"]],
    "!DockerRootDir": "str",
    "Plugins": {"Volume": ["str"], "Network": ["str"], "Authorization": ["str"], "Log": ["str"]},
    "MemoryLimit": "bool", "SwapLimit": "bool", "KernelMemoryTCP": "bool", "CpuCfsPeriod": "bool",
    "CpuCfsQuota": "bool", "CPUShares": "bool", "CPUSet": "bool", "PidsLimit": "bool",
    "OomKillDisable": "bool", "IPv4Forwarding": "bool", "Debug": "bool", "NFd": "int",
    "NGoroutines": "int", "SystemTime": "str", "LoggingDriver": "str", "CgroupDriver": "str",
    "CgroupVersion": "str", "NEventsListener": "int", "!KernelVersion": "str",
    "!OperatingSystem": "str", "OSVersion": "str", "!OSType": "str", "!Architecture": "str",
    "!NCPU": "int", "!MemTotal": "int", "IndexServerAddress": "str",
    "RegistryConfig?": {
        "InsecureRegistryCIDRs": ["str"], "Mirrors": ["str"],
        "IndexConfigs": {"*": {"Name": "str", "Mirrors": ["str"], "Secure": "bool", "Official": "bool"}},
    },
    "GenericResources": [{"NamedResourceSpec": {"Kind": "str", "Value": "str"},
                          "DiscreteResourceSpec": {"Kind": "str", "Value": "int"}}],
    "HttpProxy": "str", "HttpsProxy": "str", "NoProxy": "str", "!Name": "str", "Labels": ["str"],
    "ExperimentalBuild": "bool", "!ServerVersion": "str",
    "Runtimes": {"*": {"path": "str", "runtimeArgs?": ["str"], "status?": {"*": "str"}}},
    "DefaultRuntime": "str",
    "Swarm": {"NodeID": "str", "NodeAddr": "str", "LocalNodeState": "str", "ControlAvailable": "bool",
              "Error": "str", "RemoteManagers?": [{"NodeID": "str", "Addr": "str"}],
              "Nodes?": "int", "Managers?": "int", "Cluster?": "obj"},
    "LiveRestoreEnabled": "bool", "Isolation": "str", "InitBinary": "str",
    "ContainerdCommit": {"ID": "str"}, "RuncCommit": {"ID": "str"}, "InitCommit": {"ID": "str"},
    "SecurityOptions": ["str"], "ProductLicense": "str",
    "DefaultAddressPools": [{"Base": "str", "Size": "int"}],
    "FirewallBackend?": {"Driver": "str", "Info": [["str"]]},
    "DiscoveredDevices": [{"Source": "str", "ID": "str"}], "Warnings": ["str"],
    "CDISpecDirs": ["str"],
    "Containerd?": {"Address": "str", "Namespaces": {"Containers": "str", "Plugins": "str"}},
}
SHAPE_CONTAINER_SUMMARY = {
    "!Id": "str", "!Names": ["str"], "!Image": "str", "!ImageID": "str",
    "ImageManifestDescriptor?": _OCI_DESCRIPTOR, "!Command": "str", "!Created": "int",
    "!Ports": [{"IP": "str", "!PrivatePort": "int", "PublicPort": "int", "!Type": "str"}],
    "SizeRw?": "int", "SizeRootFs?": "int", "!Labels": {"*": "str"}, "!State": "str",
    "!Status": "str", "HostConfig": {"NetworkMode": "str", "Annotations?": {"*": "str"}},
    "NetworkSettings": {"Networks": {"*": _ENDPOINT}}, "!Mounts": [_MOUNT_POINT],
}
SHAPE_CONTAINER_INSPECT = {
    "!Id": "str", "!Created?": "str", "!Path": "str", "!Args": ["str"], "!State": _CONTAINER_STATE,
    "!Image": "str", "ResolvConfPath": "str", "HostnamePath": "str", "HostsPath": "str",
    "LogPath?": "str", "!Name": "str", "!RestartCount": "int", "Driver": "str", "Platform": "str",
    "ImageManifestDescriptor": _OCI_DESCRIPTOR, "MountLabel": "str", "ProcessLabel": "str",
    "AppArmorProfile": "str", "ExecIDs?": ["str"], "!HostConfig": _HOST_CONFIG,
    "GraphDriver": {"!Name": "str", "!Data": {"*": "str"}}, "SizeRw?": "int", "SizeRootFs?": "int",
    "!Mounts": [_MOUNT_POINT], "!Config": _CONTAINER_CONFIG, "!NetworkSettings": _NETWORK_SETTINGS,
}
SHAPE_CONTAINER_CREATE = {"!Id": "str", "!Warnings": ["str"]}
SHAPE_CONTAINER_WAIT = {"!StatusCode": "int", "Error": {"Message": "str"}}
SHAPE_IMAGE_SUMMARY = {
    "!Id": "str", "!ParentId": "str", "!RepoTags": ["str"], "!RepoDigests": ["str"],
    "!Created": "int", "!Size": "int", "!SharedSize": "int",
    "!Labels?": {"*": "str"},  # dockerd sends null for an image without labels
    "!Containers": "int", "Manifests": [_IMAGE_MANIFEST_SUMMARY], "Descriptor?": _OCI_DESCRIPTOR,
}
SHAPE_IMAGE_INSPECT = {
    "!Id": "str", "Descriptor?": _OCI_DESCRIPTOR, "Manifests?": [_IMAGE_MANIFEST_SUMMARY],
    "!RepoTags": ["str"], "!RepoDigests": ["str"], "Parent": "str", "Comment": "str",
    "!Created?": "str", "DockerVersion": "str", "Author": "str",
    "!Config": {
        "User": "str", "ExposedPorts?": {"*": "obj"}, "Env": ["str"], "Cmd": ["str"],
        "Healthcheck": _HEALTH_CONFIG, "ArgsEscaped?": "bool", "Volumes": {"*": "obj"},
        "WorkingDir": "str", "Entrypoint": ["str"], "OnBuild?": ["str"], "Labels": {"*": "str"},
        "StopSignal?": "str", "Shell?": ["str"],
    },
    "!Architecture": "str", "Variant?": "str", "!Os": "str", "OsVersion?": "str", "!Size": "int",
    "GraphDriver": {"!Name": "str", "!Data": {"*": "str"}},
    "!RootFS": {"!Type": "str", "Layers": ["str"]}, "Metadata": {"LastTagTime?": "str"},
}
SHAPE_VOLUME = {
    "!Name": "str", "!Driver": "str", "!Mountpoint": "str", "CreatedAt": "str",
    "Status": {"*": "obj"},
    "!Labels?": {"*": "str"}, "!Scope": "str", "ClusterVolume": "obj",
    "!Options?": {"*": "str"},  # dockerd sends null when the volume was made without options
    "UsageData?": {"!Size": "int", "!RefCount": "int"},
}
SHAPE_VOLUME_LIST = {"!Volumes": [SHAPE_VOLUME], "Warnings": ["str"]}
SHAPE_ID_RESPONSE = {"!Id": "str"}
SHAPE_EXEC_INSPECT = {
    "CanRemove": "bool", "DetachKeys": "str", "!ID": "str", "!Running": "bool",
    "!ExitCode?": "int",  # null until the exec process has exited (dockerd: *int)
    "!ProcessConfig": {"privileged": "bool", "user": "str", "!tty": "bool", "!entrypoint": "str",
                       "!arguments": ["str"]},
    "!OpenStdin": "bool", "!OpenStderr": "bool", "!OpenStdout": "bool", "!ContainerID": "str",
    "!Pid": "int",
}
SHAPE_CONTAINER_TOP = {"!Titles": ["str"], "!Processes": [["str"]]}
_CPU_STATS = {
    "!cpu_usage": {"!total_usage": "int", "percpu_usage?": ["int"], "usage_in_kernelmode": "int",
                   "usage_in_usermode": "int"},
    "system_cpu_usage?": "int", "online_cpus?": "int",
    "throttling_data?": {"periods": "int", "throttled_periods": "int", "throttled_time": "int"},
}
_BLKIO_ENTRY = {"major": "int", "minor": "int", "op": "str", "value": "int"}
SHAPE_CONTAINER_STATS = {
    "!name?": "str", "!id?": "str", "!read": "str", "preread": "str",
    "!pids_stats": {"current?": "int", "limit?": "int"},
    "blkio_stats?": {k: [_BLKIO_ENTRY] for k in (
        "io_service_bytes_recursive", "io_serviced_recursive", "io_queue_recursive",
        "io_service_time_recursive", "io_wait_time_recursive", "io_merged_recursive",
        "io_time_recursive", "sectors_recursive")},
    "num_procs": "int",
    "storage_stats?": {"read_count_normalized?": "int", "read_size_bytes?": "int",
                       "write_count_normalized?": "int", "write_size_bytes?": "int"},
    "!cpu_stats": _CPU_STATS, "precpu_stats?": _CPU_STATS,
    "!memory_stats": {"usage?": "int", "max_usage?": "int", "stats": {"*": "int"}, "failcnt?": "int",
                      "limit?": "int", "commitbytes?": "int", "commitpeakbytes?": "int",
                      "privateworkingset?": "int"},
    "networks?": {"*": {"rx_bytes": "int", "rx_packets": "int", "rx_errors": "int",
                        "rx_dropped": "int", "tx_bytes": "int", "tx_packets": "int",
                        "tx_errors": "int", "tx_dropped": "int", "endpoint_id?": "str",
                        "instance_id?": "str"}},
}
SHAPE_SYSTEM_DF = {
    "!LayersSize": "int", "!Images": [SHAPE_IMAGE_SUMMARY],
    "!Containers": [SHAPE_CONTAINER_SUMMARY], "!Volumes": [SHAPE_VOLUME],
    "BuildCache": [{"ID": "str", "Parents?": ["str"], "Type": "str", "Description": "str",
                    "InUse": "bool", "Shared": "bool", "Size": "int", "CreatedAt": "str",
                    "LastUsedAt?": "str", "UsageCount": "int"}],
}
SHAPE_ERROR = {"!message": "str"}
SHAPE_EVENT = {
    "!Type": "str", "!Action": "str", "!Actor": {"!ID": "str", "!Attributes": {"*": "str"}},
    "scope": "str", "!time": "int", "!timeNano": "int",
}

_SCALARS = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "num": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "obj": lambda v: isinstance(v, dict),
    "any": lambda v: True,
}


def _type_name(spec):
    if isinstance(spec, str):
        return spec
    if isinstance(spec, list):
        return "array"
    return "map" if "*" in spec else "object"


def shape_errors(spec, value, path="$"):
    """Every mismatch between a decoded JSON value and a shape table, as 'path: problem'."""
    if isinstance(spec, str):
        return [] if _SCALARS[spec](value) else [f"{path}: want {spec}, got {value!r:.80}"]
    if isinstance(spec, list):
        if not isinstance(value, list):
            return [f"{path}: want array, got {value!r:.80}"]
        return [e for i, v in enumerate(value) for e in shape_errors(spec[0], v, f"{path}[{i}]")]
    if not isinstance(value, dict):
        return [f"{path}: want {_type_name(spec)}, got {value!r:.80}"]
    if "*" in spec:
        return [e for k, v in value.items() for e in shape_errors(spec["*"], v, f"{path}.{k}")]
    errs = []
    for key, sub in spec.items():
        required, nullable = key.startswith("!"), key.endswith("?")
        name = key.lstrip("!").rstrip("?")
        if name not in value:
            if required:
                errs.append(f"{path}.{name}: missing (required)")
            continue
        v = value[name]
        if v is None:
            # A nil Go slice/map/pointer: fine for optional collections and objects.
            if nullable or (not required and not isinstance(sub, str)):
                continue
            errs.append(f"{path}.{name}: want {_type_name(sub)}, got null")
            continue
        errs += shape_errors(sub, v, f"{path}.{name}")
    return errs


def check_shape(what, spec, value):
    errs = shape_errors(spec, value)
    assert not errs, f"{what}: {len(errs)} shape violation(s):\n  " + "\n  ".join(errs[:40])


def test_shape_checker_itself():
    """The checker must catch what it is meant to catch (guards against a vacuous pass)."""
    spec = {"!a": "int", "b": ["str"], "c": {"!d": "bool"}, "!e?": "str", "m": {"*": "int"}}
    assert shape_errors(spec, {"a": 1, "e": None}) == []
    assert shape_errors(spec, {"a": 1, "e": "x", "b": None, "c": None, "m": None, "zz": 0}) == []
    assert shape_errors(spec, {"e": "x"}) == ["$.a: missing (required)"]
    assert shape_errors(spec, {"a": True, "e": "x"}) == ["$.a: want int, got True"]
    assert shape_errors(spec, {"a": None, "e": "x"}) == ["$.a: want int, got null"]
    assert shape_errors(spec, {"a": 1, "e": "x", "b": ["s", 2]}) == ["$.b[1]: want str, got 2"]
    assert shape_errors(spec, {"a": 1, "e": "x", "c": {}}) == ["$.c.d: missing (required)"]
    assert shape_errors(spec, {"a": 1, "e": "x", "m": {"k": "v"}}) == ["$.m.k: want int, got 'v'"]
    assert shape_errors(spec, []) == ["$: want object, got []"]


def _get_json(client, path, **params):
    r = client.api._get(client.api._url(path), params=params)
    assert r.status_code == 200, (path, r.status_code, r.text[:300])
    return r.json()


def test_shape_version(client):
    check_shape("GET /version", SHAPE_VERSION, _get_json(client, "/version"))


def test_shape_info(client):
    check_shape("GET /info", SHAPE_INFO, _get_json(client, "/info"))


def test_shape_images(client):
    images = _get_json(client, "/images/json")
    assert images, "no images listed"
    check_shape("GET /images/json", [SHAPE_IMAGE_SUMMARY], images)
    check_shape("GET /images/busybox/json", SHAPE_IMAGE_INSPECT, _get_json(client, "/images/busybox/json"))


def test_shape_containers(client, made):
    c = run_bg(client, made, SLEEPER)
    wait_status(c, "running")
    done = run_bg(client, made, ["true"])
    done.wait(timeout=TIMEOUT)
    wait_status(done, "exited")
    listed = _get_json(client, "/containers/json", all=1)
    states = {x.get("Id"): x.get("State") for x in listed}
    assert states.get(c.id) == "running" and states.get(done.id) == "exited", states
    check_shape("GET /containers/json?all=1", [SHAPE_CONTAINER_SUMMARY], listed)
    check_shape("GET /containers/{running}/json", SHAPE_CONTAINER_INSPECT,
                _get_json(client, f"/containers/{c.id}/json"))
    check_shape("GET /containers/{exited}/json", SHAPE_CONTAINER_INSPECT,
                _get_json(client, f"/containers/{done.id}/json"))


def test_shape_create_wait(client):
    r = client.api._post_json(client.api._url("/containers/create"),
                              data={"Image": IMAGE, "Cmd": ["true"], "Labels": LABELS})
    assert r.status_code == 201, (r.status_code, r.text[:300])
    body = r.json()
    try:
        check_shape("POST /containers/create", SHAPE_CONTAINER_CREATE, body)
        assert client.api._post(client.api._url("/containers/{0}/start", body["Id"])).status_code == 204
        w = client.api._post(client.api._url("/containers/{0}/wait", body["Id"]), timeout=TIMEOUT)
        assert w.status_code == 200
        check_shape("POST /containers/{id}/wait", SHAPE_CONTAINER_WAIT, w.json())
    finally:
        client.api.remove_container(body["Id"], force=True)


def test_shape_volumes(client):
    name = "berth-py-shape-" + uuid.uuid4().hex[:8]
    client.volumes.create(name=name, labels=dict(LABELS))
    try:
        check_shape("GET /volumes", SHAPE_VOLUME_LIST, _get_json(client, "/volumes"))
        check_shape("GET /volumes/{name}", SHAPE_VOLUME, _get_json(client, f"/volumes/{name}"))
    finally:
        client.api.remove_volume(name, force=True)


def test_shape_exec(client, made):
    c = run_bg(client, made, SLEEPER)
    wait_status(c, "running")
    r = client.api._post_json(client.api._url("/containers/{0}/exec", c.id),
                              data={"Cmd": ["sh", "-c", "exit 4"], "AttachStdout": True})
    assert r.status_code == 201, (r.status_code, r.text[:300])
    body = r.json()
    check_shape("POST /containers/{id}/exec", SHAPE_ID_RESPONSE, body)
    eid = body["Id"]
    check_shape("GET /exec/{id}/json (created)", SHAPE_EXEC_INSPECT, _get_json(client, f"/exec/{eid}/json"))
    client.api.exec_start(eid)
    poll(lambda: client.api.exec_inspect(eid)["ExitCode"] == 4, "exec ExitCode 4")
    check_shape("GET /exec/{id}/json (exited)", SHAPE_EXEC_INSPECT, _get_json(client, f"/exec/{eid}/json"))


def test_shape_top_stats(client, made):
    c = run_bg(client, made, SLEEPER)
    wait_status(c, "running")
    top = _get_json(client, f"/containers/{c.id}/top")
    check_shape("GET /containers/{id}/top", SHAPE_CONTAINER_TOP, top)
    assert top["Processes"], top
    check_shape("GET /containers/{id}/stats?stream=false", SHAPE_CONTAINER_STATS,
                _get_json(client, f"/containers/{c.id}/stats", stream="false"))


def test_shape_system_df(client, made):
    v = "berth-py-shape-df-" + uuid.uuid4().hex[:8]
    client.volumes.create(name=v, labels=dict(LABELS))
    try:
        done = run_bg(client, made, ["true"])
        done.wait(timeout=TIMEOUT)
        df = _get_json(client, "/system/df")
        check_shape("GET /system/df", SHAPE_SYSTEM_DF, df)
        assert df["Images"] and df["Containers"] and df["Volumes"], df
    finally:
        client.api.remove_volume(v, force=True)


def test_shape_error_response(client):
    r = client.api._get(client.api._url("/containers/{0}/json", "no-such-" + uuid.uuid4().hex[:8]))
    assert r.status_code == 404
    assert r.headers.get("Content-Type", "").startswith("application/json")
    check_shape("404 error body", SHAPE_ERROR, r.json())


def test_shape_event(client, made):
    since = int(time.time()) - 1
    c = run_bg(client, made, ["true"])
    c.wait(timeout=TIMEOUT)

    def start_event():
        evs = client.events(since=since, until=int(time.time()) + 1, decode=True,
                            filters={"container": c.id})
        return next((e for e in evs if e.get("Action") == "start"), None)

    ev = poll(start_event, "a start event")
    check_shape("GET /events line", SHAPE_EVENT, ev)
    assert ev["Type"] == "container" and ev["Actor"]["ID"] == c.id, ev
