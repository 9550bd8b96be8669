//! Running the runtime binary under test through its runc-compatible CLI.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

/// What one runtime invocation did.
#[derive(Debug, Clone)]
pub(crate) struct Output {
    /// The runtime and subcommand (`runc create`), for messages.
    pub command: String,
    /// Exit code; `None` when it was killed (timeout) or died by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub(crate) fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// A one-line summary for failure messages.
    pub(crate) fn describe(&self) -> String {
        let err = self.stderr.trim();
        let err = err.lines().last().unwrap_or("");
        format!("`{}` exited {:?}: {}", self.command, self.code, err)
    }

    /// Fails with the summary unless the command succeeded.
    pub(crate) fn ok(self) -> Result<Self> {
        if self.success() {
            Ok(self)
        } else {
            Err(anyhow!(self.describe()))
        }
    }
}

/// The runtime binary, its global arguments and the limits for each call.
#[derive(Debug, Clone)]
pub(crate) struct Runtime {
    binary: PathBuf,
    global_args: Vec<String>,
    timeout: Duration,
    /// Where stdout/stderr capture files go.
    scratch: PathBuf,
}

/// Upper bound on captured output (a hostile container can write a lot).
const MAX_CAPTURE: u64 = 1 << 20;

impl Runtime {
    pub(crate) fn new(
        binary: PathBuf,
        global_args: Vec<String>,
        timeout: Duration,
        scratch: PathBuf,
    ) -> Self {
        Self {
            binary,
            global_args,
            timeout,
            scratch,
        }
    }

    /// Runs `runtime <global args> <args>`, capturing output into files (a
    /// container started by `create` inherits them and may outlive the call).
    pub(crate) fn run(&self, args: &[&str]) -> Result<Output> {
        self.run_with_output(args, None)
    }

    /// Like [`Runtime::run`], but the child's stdout and stderr go to the given
    /// files, which the container process inherits.
    pub(crate) fn run_with_output(
        &self,
        args: &[&str],
        stdio: Option<(&Path, &Path)>,
    ) -> Result<Output> {
        let unique = next_unique();
        let (out_path, err_path) = match stdio {
            Some((o, e)) => (o.to_path_buf(), e.to_path_buf()),
            None => (
                self.scratch.join(format!("out-{unique}")),
                self.scratch.join(format!("err-{unique}")),
            ),
        };
        let out =
            File::create(&out_path).with_context(|| format!("create {}", out_path.display()))?;
        let err =
            File::create(&err_path).with_context(|| format!("create {}", err_path.display()))?;
        let mut cmd = Command::new(&self.binary);
        cmd.args(&self.global_args)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let name = self
            .binary
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let command = format!("{name} {}", args.first().copied().unwrap_or(""));
        let mut child = cmd.spawn().with_context(|| format!("spawn {command}"))?;
        let start = Instant::now();
        let code = loop {
            if let Some(status) = child.try_wait().context("wait for runtime")? {
                break status.code();
            }
            if start.elapsed() > self.timeout {
                // We started this child, so ending it by its own handle is ours to do.
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let read = |p: &Path| -> String {
            use std::io::Read;
            let mut text = String::new();
            if let Ok(f) = File::open(p) {
                let _ = f.take(MAX_CAPTURE).read_to_string(&mut text);
            }
            text
        };
        let output = Output {
            command,
            code,
            stdout: read(&out_path),
            stderr: read(&err_path),
        };
        if stdio.is_none() {
            let _ = std::fs::remove_file(&out_path);
            let _ = std::fs::remove_file(&err_path);
        }
        Ok(output)
    }

    /// `state <id>` parsed as JSON.
    pub(crate) fn state(&self, id: &str) -> Result<Value> {
        let out = self.run(&["state", id])?.ok()?;
        serde_json::from_str(&out.stdout)
            .with_context(|| format!("state output is not JSON: {:?}", out.stdout))
    }

    /// The `status` field of `state <id>`.
    pub(crate) fn status(&self, id: &str) -> Result<String> {
        let state = self.state(id)?;
        state
            .get("status")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| anyhow!("state has no status: {state}"))
    }

    /// Polls `state` until the status is `want`.
    pub(crate) fn wait_status(&self, id: &str, want: &str) -> Result<()> {
        let start = Instant::now();
        let mut last = String::new();
        while start.elapsed() < self.timeout {
            match self.status(id) {
                Ok(status) if status == want => return Ok(()),
                Ok(status) => last = status,
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("container {id} did not reach status {want} (last: {last})")
    }
}

fn next_unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed)
}
