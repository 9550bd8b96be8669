use std::path::PathBuf;

use anyhow::{Context, Result};
use berth_runtime::{CreateOptions, Runtime};

/// Options shared by `create` and `run`.
#[derive(Debug, clap::Args)]
pub struct BundleArgs {
    /// Bundle directory (holds config.json and, usually, rootfs).
    #[arg(short = 'b', long, default_value = ".", value_name = "DIR")]
    pub bundle: PathBuf,

    /// Write the host PID of the container's init to this file.
    #[arg(long = "pid-file", value_name = "FILE")]
    pub pid_file: Option<PathBuf>,

    /// Unix socket that receives the pty master (SCM_RIGHTS) when process.terminal is true.
    #[arg(long = "console-socket", value_name = "PATH")]
    pub console_socket: Option<PathBuf>,

    /// Pass N more file descriptors (3 .. 3+N-1) to the container process.
    #[arg(long = "preserve-fds", default_value_t = 0, value_name = "N")]
    pub preserve_fds: u32,

    /// Do not use pivot_root (needed when the rootfs is on ramfs); uses MS_MOVE and chroot.
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,

    /// Do not create a new session keyring for the container.
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,

    /// Pass the systemd socket-activation descriptors (accepted for compatibility).
    #[arg(long = "preserve-fds-systemd", hide = true)]
    pub systemd_fds: bool,
}

impl BundleArgs {
    pub fn options(&self) -> CreateOptions {
        CreateOptions {
            bundle: self.bundle.clone(),
            pid_file: self.pid_file.clone(),
            console_socket: self.console_socket.clone(),
            preserve_fds: self.preserve_fds,
            no_pivot: self.no_pivot,
            no_new_keyring: self.no_new_keyring,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub bundle: BundleArgs,

    /// The container ID (unique under --root).
    pub id: String,
}

pub fn run(rt: &Runtime, a: Args) -> Result<i32> {
    rt.create(&a.id, &a.bundle.options())
        .with_context(|| format!("creating container {:?}", a.id))?;
    Ok(0)
}
