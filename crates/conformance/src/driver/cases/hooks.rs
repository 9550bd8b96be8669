//! Hook cases (config.md "POSIX-platform Hooks", runtime.md "Lifecycle").
//!
//! Every hook is a shell one-liner appending `<name> <state JSON from stdin>`
//! to one log file in the container's rootfs: the host path for hooks that run
//! in the runtime's namespace (and `createContainer`, whose path resolves
//! there), the container path for `startContainer`.

use std::path::Path;

use anyhow::Result;
use serde_json::{json, Value};

use crate::driver::context::Ctx;
use crate::driver::spec::{set, shell};

const LOG: &str = "/berth-hooks.log";

/// A hook appending its name and stdin to `log`; `sh` is the shell to run.
fn recorder(sh: &str, name: &str, log: &str) -> Value {
    json!({
        "path": sh,
        "args": ["sh", "-c", format!("printf '%s %s\\n' \"$BERTH_HOOK\" \"$(cat | tr -d '\\n')\" >> {log}")],
        "env": [format!("BERTH_HOOK={name}"), "PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
        "timeout": 20,
    })
}

/// A spec with one recording hook of each kind.
fn spec_with_hooks(c: &mut Ctx<'_>) -> (Value, String) {
    let mut spec = c.spec();
    let id = spec
        .pointer("/linux/cgroupsPath")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim_start_matches('/')
        .to_string();
    let host_log = c
        .dir()
        .join(&id)
        .join("rootfs")
        .join(LOG.trim_start_matches('/'));
    let host_log = host_log.to_string_lossy().into_owned();
    let mut hooks = serde_json::Map::new();
    for name in [
        "prestart",
        "createRuntime",
        "createContainer",
        "poststart",
        "poststop",
    ] {
        hooks.insert(name.into(), json!([recorder("/bin/sh", name, &host_log)]));
    }
    hooks.insert(
        "startContainer".into(),
        json!([recorder("/bin/sh", "startContainer", LOG)]),
    );
    set(&mut spec, "/hooks", Value::Object(hooks));
    shell(&mut spec, &format!("echo process >> {LOG}"));
    (spec, host_log)
}

/// The (name, state) entries of the hook log.
fn read_log(path: &Path) -> Vec<(String, Value)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let (name, rest) = l.split_once(' ').unwrap_or((l, ""));
            (
                name.to_string(),
                serde_json::from_str(rest).unwrap_or(Value::Null),
            )
        })
        .collect()
}

fn names(log: &[(String, Value)]) -> Vec<String> {
    log.iter().map(|(n, _)| n.clone()).collect()
}

fn has(list: &[String], name: &str) -> bool {
    list.iter().any(|n| n == name)
}

fn before(list: &[String], a: &str, b: &str) -> bool {
    match (
        list.iter().position(|n| *n == a),
        list.iter().position(|n| *n == b),
    ) {
        (Some(x), Some(y)) => x < y,
        _ => false,
    }
}

/// Hooks run at the right step and in the right order.
pub(crate) fn hooks(c: &mut Ctx<'_>) -> Result<()> {
    let (spec, log) = spec_with_hooks(c);
    let log = Path::new(&log).to_path_buf();
    let ct = c.create(&spec)?;
    let after_create = read_log(&log);
    let n = names(&after_create);
    for hook in ["prestart", "createRuntime", "createContainer"] {
        c.check(
            has(&n, hook),
            format!("{hook} ran during create"),
            format!("log {n:?}"),
        );
    }
    c.check(
        before(&n, "createRuntime", "createContainer"),
        "createRuntime ran before createContainer",
        format!("log {n:?}"),
    );
    c.check(
        before(&n, "prestart", "createContainer"),
        "prestart ran before createContainer",
        format!("log {n:?}"),
    );
    c.check(
        !has(&n, "startContainer") && !has(&n, "poststart"),
        "no start hooks ran during create",
        format!("log {n:?}"),
    );
    let out = ct.start()?;
    c.expect_ok("start", &out);
    let after_start = read_log(&log);
    let n = names(&after_start);
    c.check(
        has(&n, "poststart"),
        "poststart ran before start returned",
        format!("log {n:?}"),
    );
    ct.wait_status("stopped")?;
    let n_all = read_log(&log);
    let n = names(&n_all);
    c.check(
        before(&n, "startContainer", "process"),
        "startContainer ran before the user process",
        format!("log {n:?}"),
    );
    c.check(
        before(&n, "createContainer", "startContainer"),
        "startContainer ran after createContainer",
        format!("log {n:?}"),
    );
    c.check(
        !has(&n, "poststop"),
        "poststop has not run before delete",
        format!("log {n:?}"),
    );
    let out = ct.delete(false)?;
    c.expect_ok("delete", &out);
    let n_all = read_log(&log);
    let n = names(&n_all);
    c.check(
        n.last().map(String::as_str) == Some("poststop"),
        "poststop ran last, during delete",
        format!("log {n:?}"),
    );
    for hook in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        let count = n.iter().filter(|x| *x == hook).count();
        c.check(
            count == 1,
            format!("{hook} ran exactly once"),
            format!("ran {count} times"),
        );
    }
    Ok(())
}

/// Every hook gets the container state on stdin.
pub(crate) fn hooks_stdin(c: &mut Ctx<'_>) -> Result<()> {
    let (mut spec, log) = spec_with_hooks(c);
    set(
        &mut spec,
        "/annotations",
        json!({ "org.berth.conformance.hooks": "stdin" }),
    );
    let ct = c.create(&spec)?;
    ct.start()?.ok()?;
    ct.wait_status("stopped")?;
    ct.delete(false)?.ok()?;
    let bundle = std::fs::canonicalize(&ct.bundle.dir)?;
    for (name, state) in read_log(Path::new(&log)) {
        if name == "process" {
            continue;
        }
        c.check(
            state.get("id").and_then(Value::as_str) == Some(ct.id.as_str()),
            format!("{name} state.id is the container id"),
            state.to_string(),
        );
        let got = state
            .get("bundle")
            .and_then(Value::as_str)
            .map(|b| std::fs::canonicalize(b).unwrap_or_else(|_| b.into()));
        c.check(
            got.as_deref() == Some(bundle.as_path()),
            format!("{name} state.bundle is the bundle"),
            state.to_string(),
        );
        c.check(
            state.get("ociVersion").and_then(Value::as_str).is_some(),
            format!("{name} state has ociVersion"),
            state.to_string(),
        );
        if matches!(
            name.as_str(),
            "prestart" | "createRuntime" | "createContainer" | "startContainer" | "poststart"
        ) {
            c.check(
                state
                    .get("pid")
                    .and_then(Value::as_u64)
                    .is_some_and(|p| p > 0),
                format!("{name} state.pid is set"),
                state.to_string(),
            );
        }
        c.check(
            state
                .pointer("/annotations/org.berth.conformance.hooks")
                .and_then(Value::as_str)
                == Some("stdin"),
            format!("{name} state.annotations are the spec's"),
            state.to_string(),
        );
        if name == "poststop" {
            c.check(
                state.get("status").and_then(Value::as_str) == Some("stopped"),
                "poststop state.status is stopped",
                state.to_string(),
            );
        }
    }
    Ok(())
}

/// poststart runs after the user process started, before `start` returns.
pub(crate) fn poststart(c: &mut Ctx<'_>) -> Result<()> {
    let mut spec = c.spec();
    let id = spec
        .pointer("/linux/cgroupsPath")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim_start_matches('/')
        .to_string();
    let log = c
        .dir()
        .join(&id)
        .join("rootfs")
        .join(LOG.trim_start_matches('/'));
    let log_s = log.to_string_lossy().into_owned();
    // The hook records whether the container process (pid from stdin) exists.
    set(
        &mut spec,
        "/hooks",
        json!({ "poststart": [{
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("pid=$(cat | sed -n 's/.*\"pid\": *\\([0-9]*\\).*/\\1/p'); test -d /proc/$pid && echo poststart-alive >> {log_s} || echo poststart-dead >> {log_s}")],
        }]}),
    );
    shell(&mut spec, "sleep 5");
    let ct = c.create(&spec)?;
    let n = names(&read_log(&log));
    c.check(
        n.is_empty(),
        "poststart has not run during create",
        format!("log {n:?}"),
    );
    let out = ct.start()?;
    c.expect_ok("start", &out);
    let n = names(&read_log(&log));
    c.check(
        n == ["poststart-alive"],
        "poststart ran once, with the container process running",
        format!("log {n:?}"),
    );
    Ok(())
}

/// poststop runs on delete; a failing poststop hook does not stop the others
/// nor make delete fail.
pub(crate) fn poststop(c: &mut Ctx<'_>) -> Result<()> {
    let mut spec = c.spec();
    let id = spec
        .pointer("/linux/cgroupsPath")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim_start_matches('/')
        .to_string();
    let log = c
        .dir()
        .join(&id)
        .join("rootfs")
        .join(LOG.trim_start_matches('/'));
    let log_s = log.to_string_lossy().into_owned();
    set(
        &mut spec,
        "/hooks",
        json!({ "poststop": [
            { "path": "/bin/sh", "args": ["sh", "-c", "exit 1"] },
            recorder("/bin/sh", "poststop", &log_s),
        ]}),
    );
    shell(&mut spec, "true");
    let ct = c.create(&spec)?;
    ct.start()?.ok()?;
    ct.wait_status("stopped")?;
    let n = names(&read_log(&log));
    c.check(
        n.is_empty(),
        "poststop has not run before delete",
        format!("log {n:?}"),
    );
    let out = ct.delete(false)?;
    c.expect_ok("delete succeeds although a poststop hook failed", &out);
    let n = names(&read_log(&log));
    c.check(
        n == ["poststop"],
        "the poststop hook after the failing one ran",
        format!("log {n:?}"),
    );
    Ok(())
}

/// A failing createRuntime hook makes create fail and leaves no running container.
pub(crate) fn hooks_fail(c: &mut Ctx<'_>) -> Result<()> {
    let mut spec = c.spec();
    set(
        &mut spec,
        "/hooks",
        json!({ "createRuntime": [ { "path": "/bin/sh", "args": ["sh", "-c", "exit 7"] } ] }),
    );
    let (out, ct) = c.try_create_with(&spec, |_| Ok(()))?;
    c.expect_err("create fails when a createRuntime hook fails", &out);
    let state = c.env.runtime.run(&["state", &ct.id])?;
    let status = serde_json::from_str::<Value>(&state.stdout)
        .ok()
        .and_then(|s| s.get("status").and_then(Value::as_str).map(str::to_string));
    c.check(
        !state.success() || status.as_deref() == Some("stopped"),
        "the container is gone or stopped",
        format!("status {status:?}"),
    );
    Ok(())
}

/// A failing prestart hook makes create fail and leaves no running container.
pub(crate) fn prestart_fail(c: &mut Ctx<'_>) -> Result<()> {
    let mut spec = c.spec();
    set(
        &mut spec,
        "/hooks",
        json!({ "prestart": [ { "path": "/bin/sh", "args": ["sh", "-c", "exit 3"] } ] }),
    );
    let (out, ct) = c.try_create_with(&spec, |_| Ok(()))?;
    c.expect_err("create fails when a prestart hook fails", &out);
    let state = c.env.runtime.run(&["state", &ct.id])?;
    let status = serde_json::from_str::<Value>(&state.stdout)
        .ok()
        .and_then(|s| s.get("status").and_then(Value::as_str).map(str::to_string));
    c.check(
        !state.success() || status.as_deref() == Some("stopped"),
        "the container is gone or stopped",
        format!("status {status:?}"),
    );
    Ok(())
}

/// A failing poststart hook is only a warning: the later poststart hooks run
/// and the container keeps running.
pub(crate) fn poststart_fail(c: &mut Ctx<'_>) -> Result<()> {
    let mut spec = c.spec();
    let id = spec
        .pointer("/linux/cgroupsPath")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim_start_matches('/')
        .to_string();
    let log = c
        .dir()
        .join(&id)
        .join("rootfs")
        .join(LOG.trim_start_matches('/'));
    let log_s = log.to_string_lossy().into_owned();
    set(
        &mut spec,
        "/hooks",
        json!({ "poststart": [
            { "path": "/bin/sh", "args": ["sh", "-c", "exit 1"] },
            recorder("/bin/sh", "poststart", &log_s),
        ]}),
    );
    shell(&mut spec, "sleep 600");
    let ct = c.create(&spec)?;
    let out = ct.start()?;
    c.expect_ok("start succeeds although a poststart hook failed", &out);
    let n = names(&read_log(&log));
    c.check(
        n == ["poststart"],
        "the poststart hook after the failing one ran",
        format!("log {n:?}"),
    );
    match ct.status() {
        Ok(s) => c.check(
            s == "running",
            "the container is running",
            format!("status {s}"),
        ),
        Err(e) => c.fail("the container is running", format!("{e:#}")),
    }
    Ok(())
}
