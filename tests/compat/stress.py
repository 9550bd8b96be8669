"""Stress scenarios for berthd, driven through the Docker SDK (run by tests/compat/run-stress.sh).

    stress.py load  --sock S --tmp T [--clients 100]
    stress.py crash --sock S --tmp T --bin-dir B --pid-file F [--rounds 50]
    stress.py restart20 --sock S --tmp T --bin-dir B --pid-file F

load   N concurrent clients (threads, one DockerClient each) create, start, stop (timeout 1)
       and remove a busybox `sleep 30` container; reports failures, wall time, operations
       per second and the 95th-percentile latency per operation; then checks nothing leaked.
crash  a background thread runs create/start/stop/rm rounds while the main thread kill -9s
       berthd (by PID) at random 50-400 ms intervals and restarts it on the same root,
       exec-root and socket; afterwards every container `ps -a` lists must be whole
       (inspect, start, stop, remove) and nothing may leak.
restart20  20 busybox containers (5 with a tty and 10 without logging continuously, 3
       `sleep 600`, 2 restart=always `sleep 2; exit 3`); berthd is kill -9'd for ~4 s, during
       which every container process must live, every log grow and every monitor serve an
       attach (T/run/<id32>/monitor.sock, no daemon); berthd restarted on the same state must
       list all 20 running, serve logs (with the lines written while it was down), exec,
       SDK attach, resume the restart policies (RestartCount grows), stop and remove them
       all; nothing may leak. Reports the time from the restart to /_ping (re-adoption).

Figures are reported, never asserted. Exit status 1 on any failure. The IDs this run made
(or saw) are appended to T/ids.txt so that the runner can clean their cgroups up.
"""

import argparse
import glob
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import traceback

import docker
import requests

IMAGE = "busybox:latest"
LABEL = {"berth.stress": "1"}
ID_RE = re.compile(r"\b[0-9a-f]{64}\b")
CGROUP_ROOT = "/sys/fs/cgroup"


def log(msg):
    sys.stderr.write("[stress %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def client(sock, timeout=300):
    return docker.DockerClient(base_url="unix://" + sock, version="1.51", timeout=timeout)


def percentile(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


def record_ids(tmp, ids):
    with open(os.path.join(tmp, "ids.txt"), "a") as f:
        for i in sorted(ids):
            f.write(i + "\n")


# --- leak checks ---------------------------------------------------------------------------

def monitors_of(tmp):
    """PIDs and command lines of berth-monitor processes whose command line contains tmp."""
    out = []
    for d in glob.glob("/proc/[0-9]*"):
        try:
            with open(d + "/comm") as f:
                if f.read().strip() != "berth-monitor":
                    continue
            with open(d + "/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if tmp in cmd:
            out.append((int(d[6:]), cmd))
    return out


def mounts_under(tmp):
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if mp == tmp or mp.startswith(tmp + "/"):
                out.append(mp)
    return out


def run_leftovers(tmp):
    """Entries of T/run other than runtime/ and berth's own files, and runtime state
    entries (directories) left in T/run/runtime."""
    run = os.path.join(tmp, "run")
    out = []
    for e in sorted(os.listdir(run)) if os.path.isdir(run) else []:
        p = os.path.join(run, e)
        if e == "runtime":
            # The runtime's own state (e.g. .seccomp-cache, shared by all containers) is
            # allowed; a per-container state directory is not.
            for r in sorted(os.listdir(p)):
                if not r.startswith(".") and os.path.isdir(os.path.join(p, r)):
                    out.append(os.path.join(p, r))
        elif os.path.isdir(p):
            out.append(p)
    return out


def container_dirs(tmp):
    d = os.path.join(tmp, "root", "containers")
    return [os.path.join(d, e) for e in sorted(os.listdir(d))] if os.path.isdir(d) else []


def cgroups_of(ids):
    """berth-<id> cgroups of the given IDs in any hierarchy (v1 controllers, named, unified)."""
    out = []
    for p in glob.glob(CGROUP_ROOT + "/*/berth-*") + glob.glob(CGROUP_ROOT + "/*/*/berth-*"):
        name = os.path.basename(p)
        if name[len("berth-"):] in ids and os.path.isdir(p):
            out.append(p)
    return sorted(set(out))


def ids_from_disk(tmp):
    """Container IDs visible in T: container directories, monitor directories, runtime
    state, and the daemon log (which names every container it touched)."""
    ids = set()
    for p in container_dirs(tmp):
        ids.update(ID_RE.findall(os.path.basename(p)))
    for p in glob.glob(os.path.join(tmp, "run", "runtime", "*")):
        ids.update(ID_RE.findall(os.path.basename(p)))
    for lf in glob.glob(os.path.join(tmp, "daemon*.log")):
        try:
            with open(lf, errors="replace") as f:
                ids.update(ID_RE.findall(f.read()))
        except OSError:
            pass
    return ids


def leak_report(tmp, ids, c=None):
    """Everything left behind, as a list of strings (empty: clean)."""
    leaks = []
    if c is not None:
        try:
            left = c.api.containers(all=True)
            for ct in left:
                leaks.append("container listed: %s %s %s" % (ct["Id"][:12], ct.get("Names"), ct.get("State")))
        except Exception as e:  # noqa: BLE001
            leaks.append("cannot list containers: %s" % e)
    for pid, cmd in monitors_of(tmp):
        leaks.append("berth-monitor alive: pid %d %s" % (pid, cmd))
    for mp in mounts_under(tmp):
        leaks.append("mount: %s" % mp)
    for p in run_leftovers(tmp):
        try:
            inside = sorted(os.listdir(p))
        except OSError:
            inside = []
        leaks.append("exec-root entry: %s %s" % (p, inside))
    for p in container_dirs(tmp):
        try:
            inside = sorted(os.listdir(p))
        except OSError:
            inside = []
        leaks.append("container directory: %s %s" % (p, inside))
    for p in cgroups_of(ids):
        leaks.append("cgroup: %s" % p)
    return leaks


def settle_leaks(tmp, ids, c, grace=10.0):
    """Leak report after letting asynchronous clean-up (watchers, monitors' exits) finish:
    polls up to `grace` seconds; returns (leaks, seconds waited)."""
    t0 = time.monotonic()
    while True:
        leaks = leak_report(tmp, ids, c)
        if not leaks or time.monotonic() - t0 > grace:
            return leaks, time.monotonic() - t0
        time.sleep(0.25)


def print_leaks(name, leaks):
    for l in leaks[:60]:
        log("%s: LEAK %s" % (name, l))
    if len(leaks) > 60:
        log("%s: ... and %d more" % (name, len(leaks) - 60))


# --- scenario 1: load ----------------------------------------------------------------------

OPS = ("create", "start", "stop", "remove")


def load(args):
    n = args.clients
    tag = "%x" % random.getrandbits(32)
    lat = {op: [] for op in OPS}
    failures = []
    ids = set()
    lock = threading.Lock()
    barrier = threading.Barrier(n)

    def worker(i):
        name = "stress-load-%s-%03d" % (tag, i)
        c = client(args.sock)
        cid = None
        failed = False
        try:
            try:
                barrier.wait(timeout=120)
            except threading.BrokenBarrierError:
                pass
            steps = [
                ("create", lambda: c.api.create_container(IMAGE, ["sleep", "30"], name=name, labels=LABEL)),
                ("start", lambda: c.api.start(cid)),
                ("stop", lambda: c.api.stop(cid, timeout=1)),
                ("remove", lambda: c.api.remove_container(cid)),
            ]
            for op, fn in steps:
                t0 = time.monotonic()
                try:
                    r = fn()
                except Exception as e:  # noqa: BLE001
                    with lock:
                        failures.append("%s %s: %s" % (name, op, e))
                    failed = True
                    return
                dt = time.monotonic() - t0
                with lock:
                    lat[op].append(dt)
                if op == "create":
                    cid = r["Id"]
                    with lock:
                        ids.add(cid)
        finally:
            if cid is not None and failed:
                # Leave nothing behind for the leak check to blame on a failed step.
                try:
                    c.api.remove_container(cid, force=True)
                except Exception:  # noqa: BLE001
                    pass
            c.close()

    log("load: %d clients, each create/start/stop(1)/rm of busybox sleep 30" % n)
    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    record_ids(args.tmp, ids)

    ops_done = sum(len(v) for v in lat.values())
    c = client(args.sock)
    leaks, waited = settle_leaks(args.tmp, ids, c)
    # Only this run's containers count; the daemon is private, so all of them are ours.
    for f in failures[:40]:
        log("load: FAIL %s" % f)
    print_leaks("load", leaks)
    p95 = " ".join("%s=%.0fms" % (op, 1000 * percentile(lat[op], 95)) for op in OPS)
    ok = not failures and not leaks
    print(
        "load: %s clients=%d failures=%d wall=%.1fs ops=%d ops/s=%.1f p95[%s] leaks=%d (settled after %.1fs)"
        % ("PASS" if ok else "FAIL", n, len(failures), wall, ops_done, ops_done / wall if wall else 0.0,
           p95, len(leaks), waited),
        flush=True,
    )
    return ok


# --- scenario 2: crash loop ----------------------------------------------------------------

class Daemon:
    """The berthd this scenario kills and restarts (by PID, recorded in the PID file)."""

    def __init__(self, args):
        self.args = args
        self.pid = int(open(args.pid_file).read().strip())
        self.proc = None  # a Popen once we restarted it ourselves
        self.starts = 0
        self.kills = 0

    def kill(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.proc is not None:
            self.proc.wait()
        else:
            # The runner's child: it reaps it; wait until it is gone or a zombie.
            for _ in range(200):
                try:
                    with open("/proc/%d/stat" % self.pid) as f:
                        if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                            break
                except OSError:
                    break
                time.sleep(0.01)
        self.kills += 1

    def start(self):
        a = self.args
        self.starts += 1
        env = dict(os.environ, NO_COLOR="1", PATH=a.bin_dir + ":" + os.environ.get("PATH", ""))
        logf = open(os.path.join(a.tmp, "daemon.log"), "ab")
        logf.write(b"\n===== stress: restart %d =====\n" % self.starts)
        logf.flush()
        self.proc = subprocess.Popen(
            [os.path.join(a.bin_dir, "berthd"), "-D", "--root", os.path.join(a.tmp, "root"),
             "--exec-root", os.path.join(a.tmp, "run"), "-H", "unix://" + a.sock],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, env=env,
        )
        logf.close()
        self.pid = self.proc.pid
        with open(a.pid_file + ".tmp", "w") as f:
            f.write("%d\n" % self.pid)
        os.rename(a.pid_file + ".tmp", a.pid_file)

    def wait_ready(self, limit=120.0):
        t0 = time.monotonic()
        while time.monotonic() - t0 < limit:
            if self.proc is not None and self.proc.poll() is not None:
                return False
            if ping(self.args.sock):
                return True
            time.sleep(0.02)
        return False


def ping(sock):
    try:
        c = client(sock, timeout=2)
        try:
            return c.api.ping()
        finally:
            c.close()
    except Exception:  # noqa: BLE001
        return False


def is_not_found(e):
    return isinstance(e, docker.errors.NotFound)


def is_conflict(e):
    return isinstance(e, docker.errors.APIError) and getattr(e, "status_code", None) == 409


def transient(e):
    """An error the daemon's absence explains (connection refused/reset, timeout, 5xx)."""
    if isinstance(e, (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                      ConnectionError, OSError)):
        return True
    if isinstance(e, docker.errors.DockerException) and not isinstance(e, docker.errors.APIError):
        return True
    return False


def crash(args):
    rounds = args.rounds
    tag = "%x" % random.getrandbits(32)
    stats = {"rounds_complete": 0, "rounds_partial": 0, "op_errors": 0, "unexpected": []}
    ids = set()
    lock = threading.Lock()
    done = threading.Event()

    def attempt(c, desc, fn, tries=12):
        """Runs fn until it works; transient errors are retried, 404/409 are returned."""
        last = None
        for _ in range(tries):
            try:
                return ("ok", fn())
            except Exception as e:  # noqa: BLE001
                last = e
                with lock:
                    stats["op_errors"] += 1
                if is_not_found(e):
                    return ("notfound", e)
                if is_conflict(e):
                    return ("conflict", e)
                if not transient(e) and not isinstance(e, docker.errors.APIError):
                    raise
                time.sleep(0.05 + random.random() * 0.1)
        return ("gaveup", last)

    def worker():
        c = client(args.sock, timeout=30)
        try:
            for i in range(rounds):
                name = "stress-crash-%s-%02d" % (tag, i)
                # Half the rounds stop through SIGKILL escalation (sleep as PID 1 ignores
                # SIGTERM), half through a SIGTERM the shell traps.
                cmd = ["sleep", "30"] if i % 2 == 0 else \
                    ["sh", "-c", "trap 'exit 0' TERM; sleep 30 & wait"]
                complete = True
                st, r = attempt(c, "create", lambda: c.api.create_container(IMAGE, cmd, name=name, labels=LABEL))
                if st == "ok":
                    cid = r["Id"]
                elif st == "conflict":
                    # An earlier attempt made it before the daemon died.
                    st2, r2 = attempt(c, "inspect", lambda: c.api.inspect_container(name))
                    if st2 != "ok":
                        with lock:
                            stats["rounds_partial"] += 1
                        continue
                    cid = r2["Id"]
                else:
                    with lock:
                        stats["rounds_partial"] += 1
                    continue
                with lock:
                    ids.add(cid)
                for op, fn in (("start", lambda: c.api.start(cid)),
                               ("stop", lambda: c.api.stop(cid, timeout=1)),
                               ("remove", lambda: c.api.remove_container(cid))):
                    st, r = attempt(c, op, fn)
                    if st == "ok":
                        continue
                    if op == "remove" and st == "notfound":
                        continue  # an interrupted remove that the restarted daemon finished
                    if op == "stop" and st == "gaveup":
                        complete = False
                        continue
                    if st == "gaveup" or st == "notfound":
                        complete = False
                        break
                    # Other API errors (e.g. 304/409 for a start or stop whose reply was
                    # lost with the daemon): go on with the next step.
                with lock:
                    stats["rounds_complete" if complete else "rounds_partial"] += 1
        except Exception as e:  # noqa: BLE001
            with lock:
                stats["unexpected"].append("worker: %s\n%s" % (e, traceback.format_exc()))
        finally:
            c.close()
            done.set()

    d = Daemon(args)
    log("crash: %d rounds of create/start/stop(1)/rm while berthd is kill -9'd every 50-400 ms" % rounds)
    th = threading.Thread(target=worker, daemon=True)
    t0 = time.monotonic()
    th.start()
    restart_times = []
    failures = []
    while not done.is_set():
        time.sleep(random.uniform(0.05, 0.4))
        if done.is_set():
            break
        d.kill()
        r0 = time.monotonic()
        d.start()
        if not d.wait_ready():
            failures.append("berthd did not come back after kill %d (see daemon.log)" % d.kills)
            break
        restart_times.append(time.monotonic() - r0)
        if time.monotonic() - t0 > args.max_seconds:
            failures.append("crash loop still running after %ds; stopped it" % args.max_seconds)
            break
    th.join(timeout=300)
    loop_wall = time.monotonic() - t0
    if th.is_alive():
        failures.append("the client thread did not finish")
    failures += stats["unexpected"]

    # End state, with berthd running (one last clean restart is not needed: the last one
    # is running). Every container it lists must be whole.
    if not d.wait_ready(30):
        failures.append("berthd not answering after the loop")
    c = client(args.sock, timeout=120)
    seen = whole = 0
    try:
        listed = c.api.containers(all=True)
    except Exception as e:  # noqa: BLE001
        listed = []
        failures.append("ps -a failed after the loop: %s" % e)
    for ct in listed:
        seen += 1
        cid = ct["Id"]
        ids.add(cid)
        step = "inspect"
        try:
            info = c.api.inspect_container(cid)
            state = info["State"]["Status"]
            if state in ("running", "paused", "restarting"):
                step = "stop (was %s)" % state
                c.api.stop(cid, timeout=1)
            step = "start"
            c.api.start(cid)
            step = "inspect after start"
            if not c.api.inspect_container(cid)["State"]["Running"]:
                raise RuntimeError("not running after start")
            step = "stop"
            c.api.stop(cid, timeout=1)
            step = "remove"
            c.api.remove_container(cid)
            whole += 1
        except Exception as e:  # noqa: BLE001
            failures.append("container %s %s (listed state %r, status %r) not whole: %s: %s"
                            % (cid[:12], ct.get("Names"), ct.get("State"), ct.get("Status"), step, e))
            try:
                c.api.remove_container(cid, force=True)
            except Exception as e2:  # noqa: BLE001
                failures.append("container %s: force remove failed too: %s" % (cid[:12], e2))

    ids |= ids_from_disk(args.tmp)
    record_ids(args.tmp, ids)
    leaks, waited = settle_leaks(args.tmp, ids, c)
    c.close()
    for f in failures[:40]:
        log("crash: FAIL %s" % f)
    print_leaks("crash", leaks)
    ok = not failures and not leaks
    rt = " restart avg=%.0fms max=%.0fms" % (1000 * sum(restart_times) / len(restart_times),
                                              1000 * max(restart_times)) if restart_times else ""
    print(
        "crash: %s rounds=%d complete=%d partial=%d kills=%d loop=%.1fs client-errors=%d%s "
        "listed-after=%d whole=%d not-whole=%d failures=%d leaks=%d (settled after %.1fs)"
        % ("PASS" if ok else "FAIL", rounds, stats["rounds_complete"], stats["rounds_partial"], d.kills,
           loop_wall, stats["op_errors"], rt, seen, whole, seen - whole, len(failures), len(leaks), waited),
        flush=True,
    )
    return ok


# --- scenario 3: restart with 20 running containers ----------------------------------------

R20_TTY, R20_LOG, R20_SLEEP, R20_ALWAYS = 5, 10, 3, 2


def proc_alive(pid):
    """Whether PID runs (exists and is not a zombie)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def log_path(tmp, cid):
    return os.path.join(tmp, "root", "containers", cid, cid + "-json.log")


def log_size(tmp, cid):
    try:
        return os.path.getsize(log_path(tmp, cid))
    except OSError:
        return -1


def monitor_attach(tmp, cid, tty, want_output, wait=4.0):
    """Attaches to the container's monitor directly (no daemon): sends the attach request,
    reads the one-line reply, then (if want_output) waits for new output. Returns
    (ok, detail, seconds to the first output)."""
    import socket
    path = os.path.join(tmp, "run", cid[:32], "monitor.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(wait)
    t0 = time.monotonic()
    try:
        s.connect(path)
        s.sendall(b'{"op":"attach","stdin":false,"stdout":true,"stderr":true}\n')
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                return False, "monitor closed the connection before replying (got %r)" % buf[:200], None
            buf += chunk
        line, rest = buf.split(b"\n", 1)
        try:
            reply = json.loads(line)
        except ValueError:
            return False, "reply is not JSON: %r" % line[:200], None
        if reply.get("reply") != "ok":
            return False, "reply %r" % reply, None
        if not want_output:
            return True, "reply %s" % line.decode(errors="replace"), None
        data = rest
        deadline = t0 + wait
        need = 9 if not tty else 1
        while len(data) < need and time.monotonic() < deadline:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = s.recv(4096)
            except socket.timeout:
                break
            if not chunk:
                return False, "monitor closed the stream (got %r)" % data[:100], None
            data += chunk
        if len(data) < need:
            return False, "no output within %.1fs after the reply" % wait, None
        first = time.monotonic() - t0
        if tty:
            if b"tty-" not in data:
                # More than one read may be needed for a whole line.
                end = time.monotonic() + 1.0
                while b"tty-" not in data and time.monotonic() < end:
                    s.settimeout(max(0.05, end - time.monotonic()))
                    try:
                        chunk = s.recv(4096)
                    except socket.timeout:
                        break
                    if not chunk:
                        break
                    data += chunk
                if b"tty-" not in data:
                    return False, "raw tty output without 'tty-': %r" % data[:100], first
            if data[:1] in (b"\x01", b"\x02") and data[1:4] == b"\0\0\0":
                return False, "tty output is framed: %r" % data[:16], first
        else:
            hdr = data[:8]
            n = int.from_bytes(hdr[4:8], "big")
            if hdr[0] not in (1, 2) or hdr[1:4] != b"\0\0\0" or not 0 < n < 1 << 20:
                return False, "bad frame header %r" % hdr, first
            end = time.monotonic() + 1.0
            while len(data) < 8 + n and time.monotonic() < end:
                s.settimeout(max(0.05, end - time.monotonic()))
                try:
                    chunk = s.recv(4096)
                except socket.timeout:
                    break
                if not chunk:
                    break
                data += chunk
            if b"log" not in data[8:8 + n]:
                return False, "unexpected payload of the first frame %r" % data[8:8 + min(n, 40)], first
        return True, "ok", first
    except OSError as e:
        return False, "%s: %s" % (type(e).__name__, e), None
    finally:
        s.close()


def sdk_attach(sock, cid, needle, wait=6.0):
    """docker-SDK attach (stream=True, logs=False): the first output chunk containing
    needle within wait seconds. Returns (ok, detail)."""
    out = {"data": b"", "err": None}
    got = threading.Event()

    def run():
        c = client(sock, timeout=wait + 2)
        try:
            gen = c.containers.get(cid).attach(stream=True, logs=False)
            for chunk in gen:
                out["data"] += chunk
                if needle in out["data"]:
                    got.set()
                    break
        except Exception as e:  # noqa: BLE001
            out["err"] = "%s: %s" % (type(e).__name__, e)
        finally:
            got.set()
            c.close()

    th = threading.Thread(target=run, daemon=True)
    th.start()
    got.wait(wait + 3)
    if needle in out["data"]:
        return True, "ok"
    return False, out["err"] or "no %r within %.0fs (got %r)" % (needle, wait, out["data"][:80])


def parse_ts(ts):
    """Seconds since the epoch of an RFC 3339 UTC timestamp with up to 9 fractional digits."""
    m = re.match(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?Z$", ts)
    if not m:
        return None
    import calendar
    y, mo, d, h, mi, s, frac = m.groups()
    t = calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(s), 0, 0, 0))
    return t + (float("0." + frac) if frac else 0.0)


def restart20(args):
    tag = "%x" % random.getrandbits(32)
    failures = []
    notes = []
    figs = {}
    ids = set()
    c = client(args.sock, timeout=120)

    def fail(msg):
        failures.append(msg)
        log("restart20: FAIL %s" % msg)

    # kind -> list of (name, id)
    specs = []
    for i in range(R20_TTY):
        specs.append(("tty", i, dict(command=["sh", "-c", "while :; do echo tty-$HOSTNAME; sleep 0.2; done"],
                                     tty=True)))
    for i in range(R20_LOG):
        specs.append(("log", i, dict(command=["sh", "-c", "while :; do echo log %d; sleep 0.1; done" % i])))
    for i in range(R20_SLEEP):
        specs.append(("sleep", i, dict(command=["sleep", "600"])))
    for i in range(R20_ALWAYS):
        specs.append(("always", i, dict(command=["sh", "-c", "sleep 2; exit 3"],
                                        restart_policy={"Name": "always"})))
    cts = []  # dicts: kind, name, id, pid
    log("restart20: starting 20 containers (%d tty, %d logging, %d sleep, %d restart=always)"
        % (R20_TTY, R20_LOG, R20_SLEEP, R20_ALWAYS))
    t0 = time.monotonic()
    for kind, i, kw in specs:
        name = "stress-r20-%s-%s-%d" % (tag, kind, i)
        try:
            ct = c.containers.run(IMAGE, name=name, detach=True, labels=LABEL, **kw)
        except Exception as e:  # noqa: BLE001
            fail("run %s: %s" % (name, e))
            continue
        ids.add(ct.id)
        cts.append({"kind": kind, "name": name, "id": ct.id, "tty": kind == "tty"})
    record_ids(args.tmp, ids)
    figs["start20"] = time.monotonic() - t0
    if len(cts) != 20:
        fail("only %d of 20 containers started" % len(cts))
    time.sleep(1.0)  # some output in every log
    for ct in cts:
        try:
            st = c.api.inspect_container(ct["id"])["State"]
            ct["pid"] = st["Pid"]
            if ct["kind"] != "always" and (not st["Running"] or st["Pid"] <= 0):
                fail("%s not running before the kill: %s" % (ct["name"], st))
        except Exception as e:  # noqa: BLE001
            fail("inspect %s before the kill: %s" % (ct["name"], e))
            ct["pid"] = 0
    try:
        rc_before = {ct["id"]: c.api.inspect_container(ct["id"])["RestartCount"]
                     for ct in cts if ct["kind"] == "always"}
    except Exception as e:  # noqa: BLE001
        rc_before = {}
        fail("inspect restart counts: %s" % e)
    c.close()

    # --- berthd down ---
    d = Daemon(args)
    log("restart20: kill -9 berthd (pid %d)" % d.pid)
    down_wall0 = time.time()
    down0 = time.monotonic()
    d.kill()
    live = [ct for ct in cts if ct["kind"] != "always"]
    loggers = [ct for ct in cts if ct["kind"] in ("tty", "log")]
    # 1. processes alive
    dead = [ct["name"] for ct in live if not proc_alive(ct["pid"])]
    if dead:
        fail("container processes gone right after the kill: %s" % dead)
    # 2. logs grow
    s0 = {ct["id"]: log_size(args.tmp, ct["id"]) for ct in loggers}
    time.sleep(1.0)
    s1 = {ct["id"]: log_size(args.tmp, ct["id"]) for ct in loggers}
    grew = 0
    for ct in loggers:
        a, b = s0[ct["id"]], s1[ct["id"]]
        if a < 0 or b <= a:
            fail("log of %s did not grow while berthd was down (%d -> %d bytes, %s)"
                 % (ct["name"], a, b, log_path(args.tmp, ct["id"])))
        else:
            grew += b - a
    figs["log_growth"] = grew
    # 3. attach at the monitor, all live containers at once
    res = {}

    def att(ct):
        res[ct["id"]] = monitor_attach(args.tmp, ct["id"], ct["tty"], ct["kind"] != "sleep")

    ths = [threading.Thread(target=att, args=(ct,), daemon=True) for ct in live]
    for th in ths:
        th.start()
    for th in ths:
        th.join(10)
    firsts = []
    for ct in live:
        ok, detail, first = res.get(ct["id"], (False, "no result", None))
        if not ok:
            fail("monitor attach to %s while berthd was down: %s" % (ct["name"], detail))
        elif first is not None:
            firsts.append(first)
    figs["attach_ok"] = sum(1 for ct in live if res.get(ct["id"], (False,))[0])
    figs["attach_first_max"] = max(firsts) if firsts else float("nan")
    # still alive at the end of the window
    while time.monotonic() - down0 < 4.0:
        time.sleep(0.1)
    dead = [ct["name"] for ct in live if not proc_alive(ct["pid"])]
    if dead:
        fail("container processes gone while berthd was down: %s" % dead)
    figs["always_exited_while_down"] = sum(1 for ct in cts if ct["kind"] == "always"
                                          and not proc_alive(ct["pid"]))

    # --- berthd back ---
    r0 = time.monotonic()
    d.start()
    up = d.wait_ready()
    figs["readopt"] = time.monotonic() - r0
    figs["down"] = time.monotonic() - down0
    up_wall = time.time()
    if not up:
        fail("berthd did not answer /_ping after the restart (see daemon.log)")
        print("restart20: FAIL berthd did not come back", flush=True)
        return False
    log("restart20: berthd answered /_ping %.2fs after its restart" % figs["readopt"])
    c = client(args.sock, timeout=120)

    # ps: all 20 running (restart=always ones running again; polled a few seconds)
    want = {ct["id"] for ct in cts}
    seen_states = {}
    running = set()
    ps_ok = False
    t = time.monotonic()
    while time.monotonic() - t < 8.0:
        try:
            running = {x["Id"] for x in c.api.containers()}
            allc = {x["Id"]: x["State"] for x in c.api.containers(all=True)}
        except Exception as e:  # noqa: BLE001
            fail("ps after the restart: %s" % e)
            break
        for cid, stt in allc.items():
            seen_states.setdefault(cid, set()).add(stt)
        if want <= running:
            ps_ok = True
            break
        missing_live = [ct["name"] for ct in live if ct["id"] not in running]
        if missing_live:
            break  # the long-running ones must be running at once
        time.sleep(0.1)
    figs["ps_all_running"] = time.monotonic() - r0 if ps_ok else float("nan")
    if not ps_ok:
        missing = [(ct["name"], sorted(seen_states.get(ct["id"], {"absent"}))) for ct in cts
                   if ct["id"] not in running]
        fail("ps after the restart: not all 20 running: %s" % missing)
    for ct in live:
        try:
            st = c.api.inspect_container(ct["id"])["State"]
            if not st["Running"] or st["Pid"] != ct["pid"]:
                fail("%s after the restart: Running=%s Pid=%s (was %s)"
                     % (ct["name"], st["Running"], st["Pid"], ct["pid"]))
        except Exception as e:  # noqa: BLE001
            fail("inspect %s after the restart: %s" % (ct["name"], e))

    # logs: each works; the logging ones hold lines written while berthd was down
    for ct in cts:
        try:
            raw = c.api.logs(ct["id"], stdout=True, stderr=True, timestamps=True)
        except Exception as e:  # noqa: BLE001
            fail("logs %s: %s" % (ct["name"], e))
            continue
        if ct["kind"] not in ("tty", "log"):
            continue
        during = 0
        for line in raw.decode(errors="replace").splitlines():
            ts = parse_ts(line.split(" ", 1)[0])
            if ts is not None and down_wall0 + 0.2 < ts < up_wall - 0.2:
                during += 1
        if during == 0:
            fail("logs %s: no line written while berthd was down (%d bytes)" % (ct["name"], len(raw)))

    # exec on a few
    for ct in [x for x in cts if x["kind"] == "tty"][:1] + [x for x in cts if x["kind"] == "log"][:2] + \
            [x for x in cts if x["kind"] == "sleep"][:1]:
        try:
            r = c.containers.get(ct["id"]).exec_run(["sh", "-c", "echo exec-ok-$HOSTNAME"])
            if r.exit_code != 0 or b"exec-ok" not in r.output:
                fail("exec in %s: exit %s output %r" % (ct["name"], r.exit_code, r.output[:100]))
        except Exception as e:  # noqa: BLE001
            fail("exec in %s: %s" % (ct["name"], e))

    # docker-SDK attach on one tty and one non-tty container
    for ct, needle in ((next(x for x in cts if x["kind"] == "tty"), b"tty-"),
                       (next(x for x in cts if x["kind"] == "log"), b"log ")):
        ok, detail = sdk_attach(args.sock, ct["id"], needle)
        if not ok:
            fail("SDK attach to %s after the restart: %s" % (ct["name"], detail))

    # restart policies resumed: RestartCount of the restart=always ones grows
    always = [ct for ct in cts if ct["kind"] == "always"]
    figs["die_codes"] = "?"
    try:
        rc_after = {ct["id"]: c.api.inspect_container(ct["id"])["RestartCount"] for ct in always}
    except Exception as e:  # noqa: BLE001
        rc_after = {}
        fail("inspect restart counts after the restart: %s" % e)
    rc_late = dict(rc_after)
    t = time.monotonic()
    while rc_after and time.monotonic() - t < 25.0:
        try:
            rc_late = {ct["id"]: c.api.inspect_container(ct["id"])["RestartCount"] for ct in always}
        except Exception as e:  # noqa: BLE001
            fail("inspect restart counts: %s" % e)
            break
        if all(rc_late[k] > rc_after[k] for k in rc_after):
            break
        time.sleep(0.25)
    figs["restart_counts"] = " ".join("%s>%s>%s" % (rc_before.get(ct["id"], "?"), rc_after.get(ct["id"], "?"),
                                                   rc_late.get(ct["id"], "?")) for ct in always)
    for ct in always:
        if ct["id"] in rc_after and not rc_late.get(ct["id"], -1) > rc_after[ct["id"]]:
            fail("%s: RestartCount did not grow within 25s after the restart (%s -> %s)"
                 % (ct["name"], rc_after[ct["id"]], rc_late.get(ct["id"])))

    # The exits that happened while berthd was down were recorded with their real code
    # (from the monitors' exit.json, not 255): a `die` event with exitCode 3 for each.
    try:
        evs = c.api.events(since=int(down_wall0) - 1, until=int(time.time()) + 1, decode=True,
                           filters={"type": "container", "event": "die"})
        dies = {}
        for ev in evs:
            eid = ev.get("id") or ev.get("Actor", {}).get("ID")
            dies.setdefault(eid, []).append(ev.get("Actor", {}).get("Attributes", {}).get("exitCode"))
        figs["die_codes"] = " ".join(",".join(str(x) for x in dies.get(ct["id"], [])) for ct in always)
        for ct in always:
            codes = dies.get(ct["id"], [])
            if "3" not in codes or "255" in codes:
                fail("%s: die events since the kill have exit codes %s (want 3, never 255)"
                     % (ct["name"], codes))
    except Exception as e:  # noqa: BLE001
        fail("events since the kill: %s" % e)

    # stop (timeout 1) and remove all
    t = time.monotonic()
    errs = {}

    def stop_rm(ct):
        cc = client(args.sock, timeout=60)
        try:
            step = "stop"
            try:
                cc.api.stop(ct["id"], timeout=1)
                step = "inspect after stop"
                st = cc.api.inspect_container(ct["id"])["State"]
                if st["Running"]:
                    raise RuntimeError("still running after stop: %s" % st["Status"])
                if ct["kind"] != "always" and proc_alive(ct["pid"]):
                    raise RuntimeError("process %d alive after stop" % ct["pid"])
                step = "remove"
                cc.api.remove_container(ct["id"])
            except Exception as e:  # noqa: BLE001
                errs[ct["name"]] = "%s: %s" % (step, e)
                try:
                    cc.api.remove_container(ct["id"], force=True)
                except Exception:  # noqa: BLE001
                    pass
        finally:
            cc.close()

    ths = [threading.Thread(target=stop_rm, args=(ct,), daemon=True) for ct in cts]
    for th in ths:
        th.start()
    for th in ths:
        th.join(120)
    figs["stop_rm"] = time.monotonic() - t
    for name, e in sorted(errs.items()):
        fail("%s: %s" % (name, e))

    ids |= ids_from_disk(args.tmp)
    record_ids(args.tmp, ids)
    leaks, waited = settle_leaks(args.tmp, ids, c)
    c.close()
    print_leaks("restart20", leaks)
    ok = not failures and not leaks
    print(
        "restart20: %s containers=%d start20=%.1fs down=%.1fs log-growth-while-down=%dB "
        "monitor-attach-ok=%d/%d (first output max %.2fs) always-exited-while-down=%d "
        "re-adopt(restart->/_ping)=%.2fs ps-all-20-running=%.2fs restart-counts(before>after>later)=[%s] "
        "die-exit-codes-since-kill=[%s] "
        "stop+rm(parallel)=%.1fs failures=%d leaks=%d (settled after %.1fs)"
        % ("PASS" if ok else "FAIL", len(cts), figs["start20"], figs["down"], figs["log_growth"],
           figs["attach_ok"], len(live), figs["attach_first_max"], figs["always_exited_while_down"],
           figs["readopt"], figs["ps_all_running"], figs["restart_counts"], figs["die_codes"], figs["stop_rm"],
           len(failures), len(leaks), waited),
        flush=True,
    )
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", choices=("load", "crash", "restart20"))
    ap.add_argument("--sock", required=True)
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--bin-dir")
    ap.add_argument("--pid-file")
    ap.add_argument("--max-seconds", type=int, default=900)
    args = ap.parse_args()
    ok = {"load": load, "crash": crash, "restart20": restart20}[args.scenario](args)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
