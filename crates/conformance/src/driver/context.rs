//! What a test case works with: [`Ctx`] to build bundles, create containers and
//! record results; [`Container`] to drive one container (deleted on drop); and
//! [`NsHolder`], a process holding namespaces for cases that join them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use super::bundle::Bundle;
use super::cgroups::Hierarchies;
use super::runtime::{Output, Runtime};
use super::spec;
use crate::facts::{inode_of, Facts};
use crate::tap::{self, TapLine};

/// Suite-wide state shared by every case.
#[derive(Debug)]
pub(crate) struct Env {
    pub runtime: Runtime,
    /// The template rootfs (fixture + checker).
    pub template: PathBuf,
    /// Where case directories go.
    pub cases_dir: PathBuf,
    pub cgroups: Hierarchies,
    /// Facts every container gets (host namespaces, LSMs).
    pub host_facts: Facts,
    /// Distinguishes this suite run's containers and cgroups from others'.
    pub tag: String,
    /// The suite's work directory (bundles live below it).
    pub work: PathBuf,
}

/// The context handed to one test case.
#[derive(Debug)]
pub(crate) struct Ctx<'e> {
    pub env: &'e Env,
    name: &'static str,
    dir: PathBuf,
    seq: u32,
    pub(crate) lines: Vec<TapLine>,
    pub(crate) skipped: Option<String>,
}

impl<'e> Ctx<'e> {
    pub(crate) fn new(env: &'e Env, name: &'static str) -> Result<Self> {
        let dir = env.cases_dir.join(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        Ok(Self {
            env,
            name,
            dir,
            seq: 0,
            lines: Vec::new(),
            skipped: None,
        })
    }

    /// The case's scratch directory on the host.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// A fresh baseline spec whose `cgroupsPath` names a new container: the
    /// container created from it gets the id `berth-test-<tag>-<case>-<n>`.
    pub(crate) fn spec(&mut self) -> Value {
        self.seq += 1;
        let id = format!(
            "berth-test-{}-{}-{}",
            self.env.tag,
            self.name.replace('_', "-"),
            self.seq
        );
        spec::base(&format!("/{id}"))
    }

    /// Records a passing check.
    pub(crate) fn pass(&mut self, desc: impl Into<String>) {
        self.lines.push(TapLine::pass(desc));
    }

    /// Records a failing check.
    pub(crate) fn fail(&mut self, desc: impl Into<String>, detail: impl Into<String>) {
        self.lines.push(TapLine::fail(desc, detail));
    }

    /// Records a check that passes when `ok`.
    pub(crate) fn check(&mut self, ok: bool, desc: impl Into<String>, detail: impl Into<String>) {
        self.lines.push(TapLine::check(ok, desc, detail));
    }

    /// Records a skipped check.
    pub(crate) fn skip(&mut self, desc: impl Into<String>, reason: impl Into<String>) {
        self.lines.push(TapLine::skip(desc, reason));
    }

    /// Marks the whole case as not applicable here.
    pub(crate) fn skip_case(&mut self, reason: impl Into<String>) {
        self.skipped = Some(reason.into());
    }

    /// Records that a runtime command succeeded (or not); returns whether it did.
    pub(crate) fn expect_ok(&mut self, desc: &str, out: &Output) -> bool {
        self.check(out.success(), desc, out.describe());
        out.success()
    }

    /// Records that a runtime command failed, as it must.
    pub(crate) fn expect_err(&mut self, desc: &str, out: &Output) {
        self.check(!out.success(), desc, format!("`{}` succeeded", out.command));
    }

    /// Builds the bundle for `spec`, letting `prepare` add files to it first.
    pub(crate) fn bundle(
        &mut self,
        spec: &Value,
        prepare: impl FnOnce(&Bundle) -> Result<()>,
    ) -> Result<(String, Bundle)> {
        let id = container_id(spec).unwrap_or_else(|| {
            self.seq += 1;
            format!(
                "berth-test-{}-{}-{}",
                self.env.tag,
                self.name.replace('_', "-"),
                self.seq
            )
        });
        let bundle = Bundle::new(&self.env.template, self.dir.join(&id))?;
        prepare(&bundle)?;
        let mut facts = self.env.host_facts.clone();
        for ns in spec
            .pointer("/linux/namespaces")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let (Some(typ), Some(path)) = (
                ns.get("type").and_then(Value::as_str),
                ns.get("path").and_then(Value::as_str),
            ) {
                if let Some(inode) = inode_of(path) {
                    facts
                        .joined_namespaces
                        .insert(proc_ns_name(typ).to_string(), inode);
                }
            }
        }
        bundle.write_spec(spec, &facts)?;
        Ok((id, bundle))
    }

    /// Runs `create` for `spec` and returns its output with the container
    /// guard (which deletes whatever was created, also after a failed create).
    pub(crate) fn try_create_with(
        &mut self,
        spec: &Value,
        prepare: impl FnOnce(&Bundle) -> Result<()>,
    ) -> Result<(Output, Container<'e>)> {
        let (id, bundle) = self.bundle(spec, prepare)?;
        let container = Container::new(self.env, id, bundle, cgroups_path(spec));
        let out = container.create()?;
        Ok((out, container))
    }

    /// Creates a container for `spec`; fails when `create` does.
    pub(crate) fn create(&mut self, spec: &Value) -> Result<Container<'e>> {
        self.create_with(spec, |_| Ok(()))
    }

    /// Creates a container for `spec` after `prepare` added files to the bundle.
    pub(crate) fn create_with(
        &mut self,
        spec: &Value,
        prepare: impl FnOnce(&Bundle) -> Result<()>,
    ) -> Result<Container<'e>> {
        let (out, container) = self.try_create_with(spec, prepare)?;
        if !out.success() {
            bail!("{}", out.describe());
        }
        Ok(container)
    }

    /// Runs the checker with `spec` through create, start and delete, and
    /// records its TAP lines.
    pub(crate) fn check_spec(&mut self, spec: &Value) -> Result<()> {
        self.check_spec_with(spec, |_| Ok(()))
    }

    /// [`Ctx::check_spec`] with a `prepare` step for the bundle.
    pub(crate) fn check_spec_with(
        &mut self,
        spec: &Value,
        prepare: impl FnOnce(&Bundle) -> Result<()>,
    ) -> Result<()> {
        let container = self.create_with(spec, prepare)?;
        let lines = container.run_to_completion()?;
        self.lines.extend(lines);
        let out = container.delete(false)?;
        self.expect_ok("delete the stopped container", &out);
        Ok(())
    }

    /// `create` must refuse `spec`, and leave no container behind.
    pub(crate) fn expect_create_fails(&mut self, spec: &Value, desc: &str) -> Result<()> {
        let (out, container) = self.try_create_with(spec, |_| Ok(()))?;
        self.expect_err(desc, &out);
        let state = self.env.runtime.run(&["state", &container.id])?;
        if out.success() {
            return Ok(());
        }
        self.check(
            !state.success(),
            "no container is left after the failed create",
            format!("state: {}", state.stdout.trim()),
        );
        Ok(())
    }

    /// Starts a process that holds new net, ipc, uts and pid namespaces for
    /// cases that join namespaces by path.
    pub(crate) fn ns_holder(&self) -> Result<NsHolder> {
        NsHolder::spawn()
    }
}

/// The id the container for `spec` gets: the last component of its
/// `cgroupsPath` when that names a `berth-test-` cgroup.
fn container_id(spec: &Value) -> Option<String> {
    let path = cgroups_path(spec)?;
    let last = path.rsplit('/').next()?;
    last.starts_with("berth-test-").then(|| last.to_string())
}

fn cgroups_path(spec: &Value) -> Option<String> {
    spec.pointer("/linux/cgroupsPath")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The `/proc/<pid>/ns` name of a spec namespace type.
pub(crate) fn proc_ns_name(typ: &str) -> &str {
    match typ {
        "network" => "net",
        "mount" => "mnt",
        other => other,
    }
}

/// One container of a case. Dropping it force-deletes the container and
/// removes its cgroups, whatever state the case left it in.
#[derive(Debug)]
pub(crate) struct Container<'e> {
    env: &'e Env,
    pub id: String,
    pub bundle: Bundle,
    cgroups_path: Option<String>,
}

impl<'e> Container<'e> {
    fn new(env: &'e Env, id: String, bundle: Bundle, cgroups_path: Option<String>) -> Self {
        Self {
            env,
            id,
            bundle,
            cgroups_path,
        }
    }

    pub(crate) fn pid_file(&self) -> PathBuf {
        self.bundle.dir.join("container.pid")
    }

    fn stdout_path(&self) -> PathBuf {
        self.bundle.dir.join("stdout")
    }

    fn stderr_path(&self) -> PathBuf {
        self.bundle.dir.join("stderr")
    }

    fn create(&self) -> Result<Output> {
        let bundle = self.bundle.dir.to_string_lossy().into_owned();
        let pid_file = self.pid_file().to_string_lossy().into_owned();
        self.env.runtime.run_with_output(
            &[
                "create",
                "--bundle",
                &bundle,
                "--pid-file",
                &pid_file,
                &self.id,
            ],
            Some((&self.stdout_path(), &self.stderr_path())),
        )
    }

    /// Runs `<subcommand> [args...] <id>`.
    pub(crate) fn cmd(&self, subcommand: &str, args: &[&str]) -> Result<Output> {
        let mut all = vec![subcommand];
        all.extend_from_slice(args);
        all.push(&self.id);
        self.env.runtime.run(&all)
    }

    pub(crate) fn start(&self) -> Result<Output> {
        self.cmd("start", &[])
    }

    pub(crate) fn kill(&self, signal: &str) -> Result<Output> {
        self.env.runtime.run(&["kill", &self.id, signal])
    }

    pub(crate) fn delete(&self, force: bool) -> Result<Output> {
        self.cmd("delete", if force { &["--force"] } else { &[] })
    }

    pub(crate) fn state(&self) -> Result<Value> {
        self.env.runtime.state(&self.id)
    }

    pub(crate) fn status(&self) -> Result<String> {
        self.env.runtime.status(&self.id)
    }

    pub(crate) fn wait_status(&self, want: &str) -> Result<()> {
        self.env.runtime.wait_status(&self.id, want)
    }

    /// The container process's pid from `state`.
    pub(crate) fn pid(&self) -> Result<u32> {
        let state = self.state()?;
        state
            .get("pid")
            .and_then(Value::as_u64)
            .and_then(|p| u32::try_from(p).ok())
            .ok_or_else(|| anyhow!("state has no pid: {state}"))
    }

    /// What the container process wrote to stdout so far.
    pub(crate) fn stdout(&self) -> String {
        std::fs::read_to_string(self.stdout_path()).unwrap_or_default()
    }

    /// What the container process (and the runtime's create) wrote to stderr.
    pub(crate) fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr_path()).unwrap_or_default()
    }

    /// Starts the (created) container, waits until it stopped and returns the
    /// checker's TAP lines.
    pub(crate) fn run_to_completion(&self) -> Result<Vec<TapLine>> {
        self.start()?.ok()?;
        self.wait_status("stopped")?;
        let parsed = tap::parse(&self.stdout());
        if parsed.plan.is_none() || parsed.lines.is_empty() {
            let err = self.stderr();
            let err = err.trim();
            bail!(
                "the checker printed no TAP plan; stderr: {}",
                err.get(err.len().saturating_sub(600)..).unwrap_or(err)
            );
        }
        Ok(parsed.lines)
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = self.env.runtime.run(&["delete", "--force", &self.id]);
        if let Some(path) = &self.cgroups_path {
            self.env.cgroups.remove(path);
        }
    }
}

/// A process in new net, ipc, uts and pid namespaces (`unshare ... sleep`),
/// killed and reaped on drop.
#[derive(Debug)]
pub(crate) struct NsHolder {
    child: Child,
    /// Pid of the `unshare` process (in the new net/ipc/uts namespaces; its
    /// `pid_for_children` is the new pid namespace).
    pub pid: u32,
}

impl NsHolder {
    fn spawn() -> Result<Self> {
        let child = Command::new("unshare")
            .args([
                "--net",
                "--ipc",
                "--uts",
                "--pid",
                "--fork",
                "--kill-child",
                "sleep",
                "600",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawn unshare (util-linux)")?;
        let pid = child.id();
        let holder = Self { child, pid };
        // Wait until the forked child exists, so pid_for_children is set.
        let children = format!("/proc/{pid}/task/{pid}/children");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if std::fs::read_to_string(&children).is_ok_and(|c| !c.trim().is_empty()) {
                return Ok(holder);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        bail!("unshare did not fork its child")
    }

    /// The path of namespace `typ` (spec name) of the holder.
    pub(crate) fn path(&self, typ: &str) -> String {
        match typ {
            "pid" => format!("/proc/{}/ns/pid_for_children", self.pid),
            other => format!("/proc/{}/ns/{}", self.pid, proc_ns_name(other)),
        }
    }

    /// Whether the holder is still running.
    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for NsHolder {
    fn drop(&mut self) {
        // Our own child: kill it by its handle; --kill-child takes the sleep with it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
