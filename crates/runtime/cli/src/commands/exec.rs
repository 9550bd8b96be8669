use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use berth_runtime::{ExecOptions, Runtime};
use oci_spec::runtime::{Capability, Process};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Unix socket that receives the pty master when --tty is set.
    #[arg(long = "console-socket", value_name = "PATH")]
    pub console_socket: Option<PathBuf>,

    /// Working directory inside the container.
    #[arg(long)]
    pub cwd: Option<PathBuf>,

    /// Set an environment variable (KEY=VALUE); repeatable.
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,

    /// Allocate a pseudo-terminal.
    #[arg(short = 't', long)]
    pub tty: bool,

    /// Run as UID[:GID].
    #[arg(short = 'u', long, value_name = "UID[:GID]")]
    pub user: Option<String>,

    /// Additional group IDs; repeatable.
    #[arg(short = 'g', long = "additional-gids", value_name = "GID")]
    pub additional_gids: Vec<u32>,

    /// A JSON file with the complete OCI process to run (other flags are then ignored).
    #[arg(short = 'p', long, value_name = "FILE")]
    pub process: Option<PathBuf>,

    /// Return once the process runs instead of waiting for it.
    #[arg(short = 'd', long)]
    pub detach: bool,

    /// Write the process's host PID to this file.
    #[arg(long = "pid-file", value_name = "FILE")]
    pub pid_file: Option<PathBuf>,

    /// SELinux label of the process.
    #[arg(long = "process-label")]
    pub process_label: Option<String>,

    /// AppArmor profile of the process.
    #[arg(long)]
    pub apparmor: Option<String>,

    /// Set no_new_privs for the process.
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,

    /// Add a capability (e.g. CAP_NET_ADMIN); repeatable.
    #[arg(short = 'c', long = "cap", value_name = "CAP")]
    pub caps: Vec<String>,

    /// Pass N more file descriptors (3 .. 3+N-1).
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,

    /// Run in a sub-cgroup (accepted for compatibility; ignored).
    #[arg(long, hide = true)]
    pub cgroup: Vec<String>,

    /// Allow exec in a paused container (accepted; refused by the kernel's freezer anyway).
    #[arg(long = "ignore-paused", hide = true)]
    pub ignore_paused: bool,

    /// The container ID.
    pub id: String,

    /// The command and its arguments (unless --process is given).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

fn parse_cap(name: &str) -> Result<Capability> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    serde_json::from_value(serde_json::Value::String(full.clone()))
        .with_context(|| format!("unknown capability {name:?}"))
}

fn build_process(rt: &Runtime, a: &Args) -> Result<Process> {
    if let Some(path) = &a.process {
        let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        return serde_json::from_slice(&data)
            .with_context(|| format!("parsing {}", path.display()));
    }
    if a.command.is_empty() {
        bail!("exec needs a command (or --process)");
    }
    let mut p = rt.container_process(&a.id)?;
    p.set_args(Some(a.command.clone()));
    p.set_terminal(Some(a.tty));
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    let mut env = p.env().clone().unwrap_or_default();
    for kv in &a.env {
        let key = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k);
        env.retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != key);
        env.push(kv.clone());
    }
    p.set_env(Some(env));
    if let Some(u) = &a.user {
        let (uid, gid) = u
            .split_once(':')
            .map_or((u.as_str(), None), |(a, b)| (a, Some(b)));
        let user = p.user_mut();
        user.set_uid(
            uid.parse()
                .with_context(|| format!("bad uid in {u:?} (numeric UID[:GID] expected)"))?,
        );
        if let Some(g) = gid {
            user.set_gid(g.parse().with_context(|| format!("bad gid in {u:?}"))?);
        }
    }
    if !a.additional_gids.is_empty() {
        p.user_mut()
            .set_additional_gids(Some(a.additional_gids.clone()));
    }
    if let Some(l) = &a.process_label {
        p.set_selinux_label(Some(l.clone()));
    }
    if let Some(aa) = &a.apparmor {
        p.set_apparmor_profile(Some(aa.clone()));
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if !a.caps.is_empty() {
        let mut c = p.capabilities().clone().unwrap_or_default();
        for name in &a.caps {
            let cap = parse_cap(name)?;
            let add = |set: Option<std::collections::HashSet<Capability>>| {
                let mut s = set.unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            c.set_bounding(add(c.bounding().clone()));
            c.set_effective(add(c.effective().clone()));
            c.set_permitted(add(c.permitted().clone()));
            // Ambient needs the capability inheritable; add it there only if it is.
            if c.inheritable().as_ref().is_some_and(|i| i.contains(&cap)) {
                c.set_ambient(add(c.ambient().clone()));
            }
        }
        p.set_capabilities(Some(c));
    }
    Ok(p)
}

pub fn run(rt: &Runtime, a: Args) -> Result<i32> {
    let process = build_process(rt, &a)?;
    let opts = ExecOptions {
        process,
        detach: a.detach,
        pid_file: a.pid_file.clone(),
        console_socket: a.console_socket.clone(),
        preserve_fds: a.preserve_fds,
    };
    rt.exec(&a.id, &opts)
        .with_context(|| format!("exec in container {:?}", a.id))
}
