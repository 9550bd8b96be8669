//! Cases for the runtime's operations (runtime.md "Operations" and the
//! runc-compatible CLI): create, start, state, kill, delete, pause/resume,
//! exec, ps, events, update, list.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::driver::context::{Container, Ctx};
use crate::driver::spec::{set, shell};

/// Polls until `path` exists (a marker a container process writes).
fn wait_for_file(path: &Path) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A created container whose process sleeps.
fn sleeper<'e>(c: &mut Ctx<'e>) -> Result<Container<'e>> {
    let mut spec = c.spec();
    shell(&mut spec, "sleep 600");
    c.create(&spec)
}

/// A running container whose process sleeps.
fn running<'e>(c: &mut Ctx<'e>) -> Result<Container<'e>> {
    let ct = sleeper(c)?;
    ct.start()?.ok()?;
    ct.wait_status("running")?;
    Ok(ct)
}

fn status_is(c: &mut Ctx<'_>, ct: &Container<'_>, want: &str, desc: &str) {
    match ct.status() {
        Ok(s) => c.check(s == want, desc, format!("status {s}")),
        Err(e) => c.fail(desc, format!("{e:#}")),
    }
}

/// create sets up the container without running the user's program; start runs it.
pub(crate) fn create(c: &mut Ctx<'_>) -> Result<()> {
    let mut spec = c.spec();
    shell(&mut spec, "echo ran > /tmp/berth-ran; sleep 600");
    let ct = c.create(&spec)?;
    status_is(c, &ct, "created", "status is created after create");
    let pid = ct.pid()?;
    c.check(
        pid > 0 && Path::new(&format!("/proc/{pid}")).exists(),
        "the container process exists after create",
        format!("pid {pid}"),
    );
    let marker = ct.bundle.rootfs_path("/tmp/berth-ran");
    std::thread::sleep(Duration::from_millis(200));
    c.check(
        !marker.exists(),
        "the user program has not run before start",
        "marker file exists",
    );
    let out = ct.start()?;
    c.expect_ok("start", &out);
    c.check(
        wait_for_file(&marker),
        "the user program runs after start",
        "marker file never appeared",
    );
    Ok(())
}

/// create with an id already in use fails and leaves the first container alone.
pub(crate) fn create_existing_id(c: &mut Ctx<'_>) -> Result<()> {
    let ct = sleeper(c)?;
    let bundle = ct.bundle.dir.to_string_lossy().into_owned();
    let out = c
        .env
        .runtime
        .run(&["create", "--bundle", &bundle, &ct.id])?;
    c.expect_err("create with an existing id fails", &out);
    status_is(c, &ct, "created", "the existing container is still created");
    Ok(())
}

/// create fails for a bundle without config.json or with an invalid one.
pub(crate) fn create_invalid_bundle(c: &mut Ctx<'_>) -> Result<()> {
    let spec = c.spec();
    let (id, bundle) = c.bundle(&spec, |_| Ok(()))?;
    let config = bundle.dir.join("config.json");
    let dir = bundle.dir.to_string_lossy().into_owned();
    for (what, content) in [
        ("without config.json", None),
        ("with invalid JSON", Some("{ not json")),
        (
            "without process.args",
            Some(
                r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"cwd":"/","user":{"uid":0,"gid":0}}}"#,
            ),
        ),
    ] {
        match content {
            None => std::fs::remove_file(&config)?,
            Some(text) => std::fs::write(&config, text)?,
        }
        let out = c.env.runtime.run(&["create", "--bundle", &dir, &id])?;
        c.expect_err(&format!("create fails for a bundle {what}"), &out);
        let state = c.env.runtime.run(&["state", &id])?;
        c.check(
            !state.success(),
            format!("no container exists after create {what}"),
            state.stdout.trim().to_string(),
        );
        let _ = c.env.runtime.run(&["delete", "--force", &id]);
    }
    Ok(())
}

/// start runs a created container; it fails on a running or stopped one.
pub(crate) fn start(c: &mut Ctx<'_>) -> Result<()> {
    let ct = sleeper(c)?;
    let out = ct.start()?;
    c.expect_ok("start a created container", &out);
    ct.wait_status("running")?;
    c.pass("status is running after start");
    let out = ct.start()?;
    c.expect_err("start on a running container fails", &out);
    ct.kill("KILL")?.ok()?;
    ct.wait_status("stopped")?;
    let out = ct.start()?;
    c.expect_err("start on a stopped container fails", &out);
    Ok(())
}

/// start on an unknown id fails.
pub(crate) fn start_not_exist(c: &mut Ctx<'_>) -> Result<()> {
    let id = format!("berth-test-{}-missing", c.env.tag);
    let out = c.env.runtime.run(&["start", &id])?;
    c.expect_err("start of an unknown container fails", &out);
    Ok(())
}

/// The state document: fields and the created → running → stopped statuses.
pub(crate) fn state(c: &mut Ctx<'_>) -> Result<()> {
    let mut spec = c.spec();
    shell(&mut spec, "read x < /dev/null; sleep 1");
    set(
        &mut spec,
        "/annotations",
        json!({ "org.berth.conformance": "state-test" }),
    );
    let ct = c.create(&spec)?;
    let st = ct.state()?;
    let ok_version = st
        .get("ociVersion")
        .and_then(Value::as_str)
        .is_some_and(|v| !v.is_empty());
    c.check(ok_version, "state has ociVersion", st.to_string());
    c.check(
        st.get("id").and_then(Value::as_str) == Some(ct.id.as_str()),
        "state.id is the container id",
        st.to_string(),
    );
    c.check(
        st.get("status").and_then(Value::as_str) == Some("created"),
        "state.status is created",
        st.to_string(),
    );
    c.check(
        st.get("pid").and_then(Value::as_u64).is_some_and(|p| p > 0),
        "state.pid is set while created",
        st.to_string(),
    );
    let bundle = std::fs::canonicalize(&ct.bundle.dir)?;
    let got = st
        .get("bundle")
        .and_then(Value::as_str)
        .map(|b| std::fs::canonicalize(b).unwrap_or_else(|_| b.into()));
    c.check(
        got.as_deref() == Some(bundle.as_path()),
        "state.bundle is the bundle's absolute path",
        st.to_string(),
    );
    c.check(
        st.pointer("/annotations/org.berth.conformance")
            .and_then(Value::as_str)
            == Some("state-test"),
        "state.annotations are the spec's",
        st.to_string(),
    );
    ct.start()?.ok()?;
    let running = ct.status()?;
    c.check(
        running == "running" || running == "stopped",
        "status is running after start",
        running,
    );
    ct.wait_status("stopped")?;
    c.pass("status becomes stopped when the process exits");
    Ok(())
}

/// state of an unknown id fails.
pub(crate) fn state_not_exist(c: &mut Ctx<'_>) -> Result<()> {
    let id = format!("berth-test-{}-missing", c.env.tag);
    let out = c.env.runtime.run(&["state", &id])?;
    c.expect_err("state of an unknown container fails", &out);
    Ok(())
}

/// --pid-file holds the container process's pid.
pub(crate) fn pidfile(c: &mut Ctx<'_>) -> Result<()> {
    let ct = sleeper(c)?;
    let text = std::fs::read_to_string(ct.pid_file()).context("read pid file")?;
    let pid = ct.pid()?;
    c.check(
        text.trim() == pid.to_string(),
        "--pid-file holds state.pid",
        format!("file {text:?}, state {pid}"),
    );
    Ok(())
}

/// kill stops created and running containers.
pub(crate) fn kill(c: &mut Ctx<'_>) -> Result<()> {
    let ct = sleeper(c)?;
    let out = ct.kill("KILL")?;
    c.expect_ok("kill KILL a created container", &out);
    ct.wait_status("stopped")?;
    c.pass("the created container stopped");
    let ct = running(c)?;
    let out = ct.kill("SIGKILL")?;
    c.expect_ok("kill SIGKILL a running container", &out);
    ct.wait_status("stopped")?;
    c.pass("the running container stopped");
    Ok(())
}

/// kill delivers the named signal to the container process.
pub(crate) fn kill_signal(c: &mut Ctx<'_>) -> Result<()> {
    let mut spec = c.spec();
    shell(&mut spec, "trap 'echo got-usr1 > /tmp/berth-signal; exit 0' USR1; echo > /tmp/berth-ready; while true; do sleep 0.1; done");
    let ct = c.create(&spec)?;
    ct.start()?.ok()?;
    if !wait_for_file(&ct.bundle.rootfs_path("/tmp/berth-ready")) {
        bail!("the container never became ready");
    }
    let out = ct.kill("USR1")?;
    c.expect_ok("kill USR1", &out);
    ct.wait_status("stopped")?;
    let got =
        std::fs::read_to_string(ct.bundle.rootfs_path("/tmp/berth-signal")).unwrap_or_default();
    c.check(
        got.trim() == "got-usr1",
        "the process received SIGUSR1",
        format!("marker {got:?}"),
    );
    Ok(())
}

/// kill on a stopped container fails and changes nothing.
pub(crate) fn kill_no_effect(c: &mut Ctx<'_>) -> Result<()> {
    let mut spec = c.spec();
    shell(&mut spec, "true");
    let ct = c.create(&spec)?;
    ct.start()?.ok()?;
    ct.wait_status("stopped")?;
    let out = ct.kill("KILL")?;
    c.expect_err("kill of a stopped container fails", &out);
    status_is(c, &ct, "stopped", "the container is still stopped");
    Ok(())
}

/// delete refuses a running container; deletes a stopped one and its cgroups.
pub(crate) fn delete(c: &mut Ctx<'_>) -> Result<()> {
    let ct = running(c)?;
    let out = ct.delete(false)?;
    c.expect_err("delete of a running container without --force fails", &out);
    status_is(c, &ct, "running", "the container is still running");
    ct.kill("KILL")?.ok()?;
    ct.wait_status("stopped")?;
    let out = ct.delete(false)?;
    c.expect_ok("delete of a stopped container", &out);
    let state = c.env.runtime.run(&["state", &ct.id])?;
    c.check(
        !state.success(),
        "state fails after delete",
        state.stdout.trim().to_string(),
    );
    let cgroups_path = format!("/{}", ct.id);
    c.check(
        !c.env.cgroups.exists_anywhere(&cgroups_path),
        "delete removed the cgroups",
        cgroups_path,
    );
    Ok(())
}

/// delete --force stops and deletes a running container.
pub(crate) fn delete_force(c: &mut Ctx<'_>) -> Result<()> {
    let ct = running(c)?;
    let pid = ct.pid()?;
    let out = ct.delete(true)?;
    c.expect_ok("delete --force of a running container", &out);
    let state = c.env.runtime.run(&["state", &ct.id])?;
    c.check(
        !state.success(),
        "state fails after delete --force",
        state.stdout.trim().to_string(),
    );
    let proc_path = format!("/proc/{pid}");
    let start = Instant::now();
    while Path::new(&proc_path).exists() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    c.check(
        !Path::new(&proc_path).exists(),
        "the container process is gone",
        proc_path,
    );
    Ok(())
}

/// delete removes only what create made: the bundle stays, and a joined
/// namespace (owned by another process) survives.
pub(crate) fn delete_only_create_resources(c: &mut Ctx<'_>) -> Result<()> {
    let mut holder = c.ns_holder()?;
    let net_path = holder.path("network");
    let net_before = crate::facts::inode_of(&net_path);
    let mut spec = c.spec();
    shell(&mut spec, "true");
    set(
        &mut spec,
        "/linux/namespaces",
        json!([
            { "type": "pid" }, { "type": "mount" }, { "type": "ipc" }, { "type": "uts" },
            { "type": "network", "path": net_path },
        ]),
    );
    let ct = c.create(&spec)?;
    ct.start()?.ok()?;
    ct.wait_status("stopped")?;
    let out = ct.delete(false)?;
    c.expect_ok("delete", &out);
    c.check(
        ct.bundle.dir.join("config.json").exists(),
        "the bundle's config.json is still there",
        "removed",
    );
    c.check(
        ct.bundle.rootfs_path("/bin").exists(),
        "the bundle's rootfs is still there",
        "removed",
    );
    c.check(
        holder.alive(),
        "the process owning the joined network namespace is alive",
        "it died",
    );
    c.check(
        crate::facts::inode_of(&net_path) == net_before,
        "the joined network namespace is unchanged",
        "inode changed",
    );
    Ok(())
}

/// pause and resume (freezer).
pub(crate) fn pause_resume(c: &mut Ctx<'_>) -> Result<()> {
    let ct = running(c)?;
    let out = ct.cmd("pause", &[])?;
    if c.expect_ok("pause a running container", &out) {
        status_is(c, &ct, "paused", "status is paused");
    }
    let out = ct.cmd("resume", &[])?;
    if c.expect_ok("resume a paused container", &out) {
        status_is(c, &ct, "running", "status is running after resume");
    }
    Ok(())
}

/// exec runs a process in the container's namespaces.
pub(crate) fn exec(c: &mut Ctx<'_>) -> Result<()> {
    let ct = running(c)?;
    let pid = ct.pid()?;
    let out = c.env.runtime.run(&[
        "exec",
        &ct.id,
        "/bin/sh",
        "-c",
        "echo exec-ok; readlink /proc/self/ns/mnt; readlink /proc/self/ns/pid",
    ])?;
    if c.expect_ok("exec a command", &out) {
        let lines: Vec<&str> = out.stdout.lines().collect();
        c.check(
            lines.first() == Some(&"exec-ok"),
            "exec output reaches the caller",
            out.stdout.clone(),
        );
        for (i, ns) in [(1usize, "mnt"), (2, "pid")] {
            let want = std::fs::read_link(format!("/proc/{pid}/ns/{ns}"))
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            c.check(
                lines.get(i) == Some(&want.as_str()),
                format!("exec runs in the container's {ns} namespace"),
                format!("got {:?}, want {want}", lines.get(i)),
            );
        }
    }
    let out = c
        .env
        .runtime
        .run(&["exec", &ct.id, "/bin/sh", "-c", "exit 3"])?;
    c.check(
        out.code == Some(3),
        "exec returns the process's exit code",
        out.describe(),
    );
    Ok(())
}

/// exec --process with a process.json (user, env, cwd).
pub(crate) fn exec_process_file(c: &mut Ctx<'_>) -> Result<()> {
    let ct = running(c)?;
    let process = json!({
        "terminal": false,
        "user": { "uid": 1000, "gid": 1000 },
        "args": ["/bin/sh", "-c", "echo \"$BERTH_EXEC\"; id -u; pwd"],
        "env": ["PATH=/bin:/usr/bin", "BERTH_EXEC=from-process-json"],
        "cwd": "/tmp",
    });
    let file = c.dir().join("process.json");
    std::fs::write(&file, serde_json::to_string(&process)?)?;
    let file = file.to_string_lossy().into_owned();
    let out = c.env.runtime.run(&["exec", "--process", &file, &ct.id])?;
    if c.expect_ok("exec --process", &out) {
        let lines: Vec<&str> = out.stdout.lines().collect();
        c.check(
            lines == ["from-process-json", "1000", "/tmp"],
            "process.json env, user and cwd apply",
            format!("{lines:?}"),
        );
    }
    Ok(())
}

/// ps lists the container's processes.
pub(crate) fn ps(c: &mut Ctx<'_>) -> Result<()> {
    let ct = running(c)?;
    let pid = ct.pid()?;
    let out = c.env.runtime.run(&["ps", "--format", "json", &ct.id])?;
    if c.expect_ok("ps --format json", &out) {
        let pids: Vec<u64> = serde_json::from_str(out.stdout.trim()).unwrap_or_default();
        c.check(
            pids.contains(&u64::from(pid)),
            "ps lists the container process",
            out.stdout.trim().to_string(),
        );
    }
    Ok(())
}

/// events --stats prints one stats document.
pub(crate) fn events_stats(c: &mut Ctx<'_>) -> Result<()> {
    let ct = running(c)?;
    let out = c.env.runtime.run(&["events", "--stats", &ct.id])?;
    if c.expect_ok("events --stats", &out) {
        let doc: Value = serde_json::from_str(out.stdout.trim()).unwrap_or(Value::Null);
        c.check(
            doc.get("type").and_then(Value::as_str) == Some("stats"),
            "the event has type stats",
            out.stdout.trim().to_string(),
        );
        c.check(
            doc.get("id").and_then(Value::as_str) == Some(ct.id.as_str()),
            "the event names the container",
            out.stdout.trim().to_string(),
        );
        c.check(
            doc.pointer("/data/pids/current")
                .and_then(Value::as_u64)
                .is_some_and(|n| n >= 1),
            "the stats count the container's pids",
            out.stdout.trim().to_string(),
        );
    }
    Ok(())
}

/// update --pids-limit changes the pids cgroup.
pub(crate) fn update_pids(c: &mut Ctx<'_>) -> Result<()> {
    let mut spec = c.spec();
    shell(&mut spec, "sleep 600");
    set(
        &mut spec,
        "/linux/resources",
        json!({ "pids": { "limit": 100 } }),
    );
    let ct = c.create(&spec)?;
    ct.start()?.ok()?;
    let out = c
        .env
        .runtime
        .run(&["update", "--pids-limit", "77", &ct.id])?;
    if c.expect_ok("update --pids-limit 77", &out) {
        let cgroups_path = format!("/{}", ct.id);
        match c.env.cgroups.read("pids", &cgroups_path, "pids.max") {
            Ok(v) => c.check(v == "77", "pids.max is 77 after update", v),
            Err(e) => c.fail("pids.max is 77 after update", format!("{e:#}")),
        }
    }
    Ok(())
}

/// list shows the container.
pub(crate) fn list(c: &mut Ctx<'_>) -> Result<()> {
    let ct = running(c)?;
    let out = c.env.runtime.run(&["list", "--format", "json"])?;
    if c.expect_ok("list --format json", &out) {
        let doc: Value = serde_json::from_str(out.stdout.trim()).unwrap_or(Value::Null);
        let found = doc
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e.get("id").and_then(Value::as_str) == Some(ct.id.as_str()));
        c.check(
            found.is_some(),
            "list includes the container",
            out.stdout.trim().to_string(),
        );
        let status = found
            .and_then(|e| e.get("status"))
            .and_then(Value::as_str)
            .unwrap_or("");
        c.check(
            status == "running",
            "list shows it running",
            status.to_string(),
        );
    }
    let out = c.env.runtime.run(&["list", "-q"])?;
    if c.expect_ok("list -q", &out) {
        c.check(
            out.stdout.lines().any(|l| l.trim() == ct.id),
            "list -q prints the id",
            out.stdout.clone(),
        );
    }
    Ok(())
}

/// Miscellaneous properties: an absolute root.path, annotations, an unknown
/// extension field the runtime must ignore.
pub(crate) fn misc_props(c: &mut Ctx<'_>) -> Result<()> {
    let mut spec = c.spec();
    let id = spec
        .pointer("/linux/cgroupsPath")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim_start_matches('/')
        .to_string();
    let rootfs = c.dir().join(&id).join("rootfs");
    set(&mut spec, "/root/path", json!(rootfs));
    set(
        &mut spec,
        "/annotations",
        json!({ "org.berth.conformance.misc": "yes" }),
    );
    set(
        &mut spec,
        "/org.berth.unknown-extension",
        json!({ "ignored": true }),
    );
    c.check_spec(&spec)
}

/// Changing config.json after create does not affect the container.
pub(crate) fn config_updates_without_affect(c: &mut Ctx<'_>) -> Result<()> {
    let mut spec = c.spec();
    shell(&mut spec, "echo original > /tmp/berth-config");
    let ct = c.create(&spec)?;
    let mut changed = spec.clone();
    shell(&mut changed, "echo changed > /tmp/berth-config");
    std::fs::write(
        ct.bundle.dir.join("config.json"),
        serde_json::to_string(&changed)?,
    )?;
    ct.start()?.ok()?;
    ct.wait_status("stopped")?;
    let got =
        std::fs::read_to_string(ct.bundle.rootfs_path("/tmp/berth-config")).unwrap_or_default();
    c.check(
        got.trim() == "original",
        "the process from the config at create time ran",
        format!("output {got:?}"),
    );
    Ok(())
}
