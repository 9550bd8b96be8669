//! Real peers: a private dockerd (Debian's 20.10), podman with a private storage root,
//! skopeo and umoci, and running commands. Everything lives in a temporary directory
//! and is stopped (by PID), unmounted and removed when dropped, also when a test fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const DOCKERD: &str = "/usr/sbin/dockerd";

/// Whether `tool` is on the PATH.
pub fn have(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join(tool).is_file()))
        .unwrap_or(false)
}

/// Prints a loud skip line and returns true when `tool` is missing.
pub fn skip_without(tool: &str) -> bool {
    if have(tool) || Path::new(tool).is_file() {
        return false;
    }
    eprintln!("SKIPPING: {tool} is not installed");
    true
}

/// Runs a command, returning its output; panics with both streams if it fails.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs a command (see [`run`]), returning its standard output, trimmed.
pub fn run_stdout(cmd: &mut Command) -> String {
    stdout(&run(cmd))
}

/// `skopeo copy --quiet` without a signature policy, with `options` (e.g. TLS
/// settings), from image `from` to image `to` (transport-qualified names).
pub fn skopeo_copy(options: &[&str], from: &str, to: &str) {
    run(Command::new("skopeo")
        .args(["--insecure-policy", "copy", "--quiet"])
        .args(options)
        .args([from, to]));
}

/// `skopeo inspect` with `options` of image `image`: its standard output as it is.
pub fn skopeo_inspect(options: &[&str], image: &str) -> String {
    let out = run(Command::new("skopeo")
        .arg("inspect")
        .args(options)
        .arg(image));
    String::from_utf8(out.stdout).unwrap()
}

/// Starts `cmd` with standard input from /dev/null and both outputs into the file `log`.
pub fn spawn_logged(cmd: &mut Command, log: &Path) -> std::io::Result<Child> {
    let log = std::fs::File::create(log)?;
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
}

/// Unmounts (lazily) everything mounted below `dir`, deepest first.
pub fn unmount_below(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = format!("{}/", dir.display());
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| p.replace("\\040", " "))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = rustix::mount::unmount(p.as_str(), rustix::mount::UnmountFlags::DETACH);
    }
}

fn pid_alive(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
}

fn kill(pid: i32, sig: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

/// Sends SIGTERM, waits up to `grace`, then SIGKILL.
fn stop_pid(pid: i32, grace: Duration) {
    if !pid_alive(pid) {
        return;
    }
    kill(pid, rustix::process::Signal::TERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && pid_alive(pid) {
        std::thread::sleep(Duration::from_millis(100));
    }
    if pid_alive(pid) {
        kill(pid, rustix::process::Signal::KILL);
    }
}

/// A private dockerd: its own data root, exec root, socket and pid file in a
/// temporary directory, no networking, containers in the cgroup `berth-test-…`.
pub struct Dockerd {
    child: Child,
    dir: tempfile::TempDir,
    pub sock: PathBuf,
    cgroup: String,
}

impl Dockerd {
    pub fn available() -> bool {
        !skip_without(DOCKERD) && !skip_without("docker")
    }

    pub fn start() -> Dockerd {
        // Short path: the socket path must fit in sun_path (108 bytes).
        let dir = tempfile::Builder::new()
            .prefix("berth-test-dockerd-")
            .tempdir_in("/tmp")
            .unwrap();
        let d = dir.path();
        std::fs::write(d.join("daemon.json"), "{}").unwrap();
        let sock = d.join("docker.sock");
        let cgroup = format!(
            "berth-test-dockerd-{}",
            d.file_name()
                .unwrap()
                .to_string_lossy()
                .rsplit('-')
                .next()
                .unwrap()
        );
        let mut cmd = Command::new(DOCKERD);
        cmd.arg("--host").arg(format!("unix://{}", sock.display()));
        for (option, name) in [
            ("--config-file", "daemon.json"),
            ("--data-root", "data"),
            ("--exec-root", "exec"),
            ("--pidfile", "docker.pid"),
        ] {
            cmd.arg(option).arg(d.join(name));
        }
        cmd.args([
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-forward=false",
            "--ip-masq=false",
            "--exec-opt",
            "native.cgroupdriver=cgroupfs",
        ])
        .arg("--cgroup-parent")
        .arg(&cgroup);
        let child = spawn_logged(&mut cmd, &d.join("dockerd.log")).expect("start dockerd");
        let mut daemon = Dockerd {
            child,
            dir,
            sock,
            cgroup,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = daemon
                .docker()
                .args(["version", "--format", "{{.Server.Version}}"])
                .stdin(Stdio::null())
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                break;
            }
            if let Ok(Some(status)) = daemon.child.try_wait() {
                panic!("dockerd exited ({status}):\n{}", daemon.log());
            }
            assert!(
                Instant::now() < deadline,
                "dockerd did not come up:\n{}",
                daemon.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        daemon
    }

    pub fn log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// A `docker` command talking to this daemon.
    pub fn docker(&self) -> Command {
        let mut c = Command::new("docker");
        c.arg("-H").arg(format!("unix://{}", self.sock.display()));
        c.env("DOCKER_CONFIG", self.dir.path().join("cli"));
        c
    }

    /// Runs `docker args…`, panicking (with the daemon's log) if it fails.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self
            .docker()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker {args:?} failed:\nstdout: {}\nstderr: {}\ndockerd log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        stdout(&out)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // Containers first (docker run --rm leaves none unless a test failed).
        if let Ok(out) = self
            .docker()
            .args(["ps", "-aq"])
            .stdin(Stdio::null())
            .output()
        {
            let ids = String::from_utf8_lossy(&out.stdout).to_string();
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let _ = self
                    .docker()
                    .args(["rm", "-f"])
                    .args(&ids)
                    .stdin(Stdio::null())
                    .output();
            }
        }
        let containerd_pid =
            std::fs::read_to_string(self.dir.path().join("exec/containerd/containerd.pid"))
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok());
        let pid = i32::try_from(self.child.id()).unwrap_or(0);
        stop_pid(pid, Duration::from_secs(20));
        let _ = self.child.wait();
        // dockerd stops the containerd it started; if it was killed, stop it here.
        if let Some(c) = containerd_pid {
            stop_pid(c, Duration::from_secs(10));
        }
        unmount_below(self.dir.path());
        for ctl in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = std::fs::remove_dir(ctl.path().join(&self.cgroup));
        }
        let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(&self.cgroup));
    }
}

/// podman with a private storage root (vfs driver: no mounts left behind).
pub struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    pub fn available() -> bool {
        !skip_without("podman")
    }

    pub fn new() -> Podman {
        Podman {
            dir: tempfile::Builder::new()
                .prefix("berth-test-podman-")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn podman(&self) -> Command {
        let d = self.dir.path();
        let mut c = Command::new("podman");
        for (option, name) in [
            ("--root", "root"),
            ("--runroot", "runroot"),
            ("--tmpdir", "tmp"),
        ] {
            c.arg(option).arg(d.join(name));
        }
        c.args([
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
        ])
        .env("TMPDIR", d);
        c
    }

    pub fn run(&self, args: &[&str]) -> String {
        stdout(&run(self.podman().args(args)))
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // Releases podman's locks and state before the directory goes.
        let _ = self
            .podman()
            .args(["rmi", "--all", "--force"])
            .stdin(Stdio::null())
            .output();
        unmount_below(self.dir.path());
    }
}
