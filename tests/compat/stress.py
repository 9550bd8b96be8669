"""Stress scenarios for berthd, driven through the Docker SDK (run by tests/compat/run-stress.sh).

    stress.py load  --sock S --tmp T [--clients 100]
    stress.py crash --sock S --tmp T --bin-dir B --pid-file F [--rounds 50]

load   N concurrent clients (threads, one DockerClient each) create, start, stop (timeout 1)
       and remove a busybox `sleep 30` container; reports failures, wall time, operations
       per second and the 95th-percentile latency per operation; then checks nothing leaked.
crash  a background thread runs create/start/stop/rm rounds while the main thread kill -9s
       berthd (by PID) at random 50-400 ms intervals and restarts it on the same root,
       exec-root and socket; afterwards every container `ps -a` lists must be whole
       (inspect, start, stop, remove) and nothing may leak.

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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", choices=("load", "crash"))
    ap.add_argument("--sock", required=True)
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--bin-dir")
    ap.add_argument("--pid-file")
    ap.add_argument("--max-seconds", type=int, default=900)
    args = ap.parse_args()
    ok = load(args) if args.scenario == "load" else crash(args)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
