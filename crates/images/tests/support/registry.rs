//! A real registry: Debian's `docker-registry` (distribution 2.8) on 127.0.0.1 with an
//! ephemeral port and file storage in a temporary directory. Started per test, killed
//! by PID when dropped (also when the test fails).

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use super::peers::spawn_logged;

pub const BINARY: &str = "/usr/bin/docker-registry";

/// How the registry authenticates.
pub enum Auth {
    None,
    /// `auth: htpasswd:` with these users (bcrypt entries written at start).
    Htpasswd(Vec<(String, String)>),
    /// `auth: token:` trusting `cert` as the token signer.
    Token {
        realm: String,
        cert: PathBuf,
    },
}

pub struct Options {
    pub auth: Auth,
    /// (certificate PEM, key PEM) to serve HTTPS.
    pub tls: Option<(String, String)>,
    /// CA (PEM) that client certificates must chain to (mutual TLS); needs `tls`.
    pub client_ca: Option<String>,
}

pub struct Registry {
    pub addr: SocketAddr,
    child: Child,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn config(dir: &Path, port: u16, opts: &Options) -> String {
    let mut c = format!(
        "version: 0.1\n\
         log:\n  level: info\n  accesslog:\n    disabled: false\n\
         storage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n  \
         maintenance:\n    uploadpurging:\n      enabled: false\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: berth-test-secret\n",
        root = dir.join("data").display(),
    );
    if opts.tls.is_some() {
        c.push_str(&format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            dir.join("server.crt").display(),
            dir.join("server.key").display()
        ));
        if opts.client_ca.is_some() {
            c.push_str(&format!(
                "    clientcas:\n      - {}\n",
                dir.join("client-ca.crt").display()
            ));
        }
    }
    match &opts.auth {
        Auth::None => {}
        Auth::Htpasswd(_) => c.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: berth-test-realm\n    path: {}\n",
            dir.join("htpasswd").display()
        )),
        Auth::Token { realm, cert } => c.push_str(&format!(
            "auth:\n  token:\n    realm: {realm}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
            super::token::SERVICE,
            super::token::ISSUER,
            cert.display()
        )),
    }
    c
}

fn wait_ready(child: &mut Child, addr: SocketAddr) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

impl Registry {
    /// True (after a loud skip line) when `docker-registry` is not installed.
    pub fn missing() -> bool {
        if Path::new(BINARY).exists() {
            return false;
        }
        eprintln!("SKIPPING: {BINARY} is not installed");
        true
    }

    /// Anonymous, plain HTTP.
    pub fn anonymous() -> Registry {
        Registry::start(Options {
            auth: Auth::None,
            tls: None,
            client_ca: None,
        })
    }

    /// Plain HTTP behind the bearer flow of `tokens`.
    pub fn with_tokens(tokens: &super::token::TokenServer) -> Registry {
        Registry::start(Options {
            auth: Auth::Token {
                realm: tokens.realm.clone(),
                cert: tokens.cert_path.clone(),
            },
            tls: None,
            client_ca: None,
        })
    }

    pub fn start(opts: Options) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("berth-test-registry-")
            .tempdir()
            .unwrap();
        if let Auth::Htpasswd(users) = &opts.auth {
            let mut f = std::fs::File::create(dir.path().join("htpasswd")).unwrap();
            for (user, password) in users {
                let hash = bcrypt::hash_with_result(password, 4)
                    .unwrap()
                    .format_for_version(bcrypt::Version::TwoA);
                writeln!(f, "{user}:{hash}").unwrap();
            }
        }
        if let Some(ca) = &opts.client_ca {
            std::fs::write(dir.path().join("client-ca.crt"), ca).unwrap();
        }
        if let Some((cert, key)) = &opts.tls {
            std::fs::write(dir.path().join("server.crt"), cert).unwrap();
            std::fs::write(dir.path().join("server.key"), key).unwrap();
        }
        // The port is free when probed; another process could take it before the
        // registry binds, so retry a few times.
        for _ in 0..5 {
            let port = free_port();
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, config(dir.path(), port, &opts)).unwrap();
            let log_path = dir.path().join("registry.log");
            let mut child = spawn_logged(
                Command::new(BINARY).arg("serve").arg(&config_path),
                &log_path,
            )
            .unwrap();
            if wait_ready(&mut child, addr) {
                return Registry { addr, child, dir };
            }
            let _ = child.kill();
            let _ = child.wait();
            eprintln!(
                "registry did not start:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        panic!("docker-registry failed to start five times");
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The registry's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // Kill by PID (the Child handle), then reap it.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!(
                "--- docker-registry log tail ({}) ---\n{}",
                self.dir.path().display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
}
