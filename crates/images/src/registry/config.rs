//! Registry client settings: TLS trust per registry, insecure registries, timeouts.
//!
//! # Insecure registries (what docker does, and what Berth does)
//!
//! dockerd treats a registry as *insecure* when it is listed in `insecure-registries`
//! (by `host[:port]` or by a CIDR containing one of its IP addresses) and, by default,
//! when its addresses fall in `127.0.0.0/8` (docker resolves the name, so `localhost`
//! counts). For an insecure registry docker first tries HTTPS **without certificate
//! verification**, then falls back to plain HTTP. Every other registry gets HTTPS with
//! verified certificates only.
//!
//! Berth applies the same rule, except that it does not resolve names: `localhost` and
//! literal addresses in `127.0.0.0/8` are insecure by default (switch that off with
//! [`RegistryConfig::insecure_loopback`]); `::1` is not, as in docker's default list.
//! Names listed in [`RegistryConfig::insecure_registries`] or marked
//! [`HostConfig::insecure`] match exactly; CIDRs match literal addresses.
//!
//! # Custom certificates
//!
//! Per host, CA certificates (PEM bundles) are trusted in addition to the system roots,
//! and a client certificate can be presented. With [`RegistryConfig::certs_dir`] set (for
//! example to `/etc/docker/certs.d`), `<certs_dir>/<host[:port]>/` is read as docker
//! reads it: every `*.crt` is a CA bundle, every `<name>.cert` + `<name>.key` pair is a
//! client certificate and its key; an unpaired `.cert` or `.key` is an error. A client
//! reads a host's certificates once, on its first connection to that host.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::RegistryError;

/// A client certificate and its private key (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// Settings of one registry host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostConfig {
    /// Allow HTTPS without certificate verification, then plain HTTP (docker's
    /// "insecure registry").
    pub insecure: bool,
    /// PEM files of CA certificates to trust for this host, besides the system roots.
    pub ca_files: Vec<PathBuf>,
    /// A client certificate to present to this host.
    pub client_certificate: Option<ClientCertificate>,
}

/// Settings of the registry client.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// The `User-Agent` sent with every request.
    pub user_agent: String,
    /// Limit on establishing a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Limit on a whole small request (ping, token, manifest, upload control requests).
    pub request_timeout: Duration,
    /// Limit on a pause while reading a response body (blobs have no total limit).
    pub read_timeout: Duration,
    /// Most redirects followed by one request.
    pub max_redirects: usize,
    /// Retries of an idempotent request after a transient failure, and reconnections of
    /// a blob download that broke off without progress.
    pub retries: u32,
    /// First pause between retries; doubled on every retry, at most 10 s.
    pub retry_backoff: Duration,
    /// Registries allowed to use plain HTTP: `host[:port]` names or CIDRs.
    pub insecure_registries: Vec<String>,
    /// Whether `localhost` and `127.0.0.0/8` are insecure by default (docker's default).
    pub insecure_loopback: bool,
    /// Docker-style certificates directory (`<dir>/<host[:port]>/{*.crt,*.cert,*.key}`).
    pub certs_dir: Option<PathBuf>,
    /// Per-host settings, keyed by `host[:port]` as connected to.
    pub hosts: BTreeMap<String, HostConfig>,
}

impl Default for RegistryConfig {
    fn default() -> RegistryConfig {
        RegistryConfig {
            user_agent: concat!("berth/", env!("CARGO_PKG_VERSION")).to_owned(),
            connect_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(120),
            read_timeout: Duration::from_secs(120),
            max_redirects: 10,
            retries: 4,
            retry_backoff: Duration::from_millis(250),
            insecure_registries: Vec::new(),
            insecure_loopback: true,
            certs_dir: None,
            hosts: BTreeMap::new(),
        }
    }
}

/// The TLS settings of one host, resolved from the config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct TlsProfile {
    /// Certificate verification off (insecure registry).
    pub accept_invalid: bool,
    /// Extra CA bundles.
    pub ca_files: Vec<PathBuf>,
    /// Client certificate.
    pub client: Option<(PathBuf, PathBuf)>,
}

impl RegistryConfig {
    /// Whether plain HTTP (and unverified HTTPS) is allowed for `host` (`host[:port]`).
    pub fn is_insecure(&self, host: &str) -> bool {
        if self.hosts.get(host).is_some_and(|h| h.insecure) {
            return true;
        }
        let (name, _port) = split_host_port(host);
        let ip = name.parse::<IpAddr>().ok();
        if self.insecure_loopback {
            if name.eq_ignore_ascii_case("localhost") {
                return true;
            }
            if let Some(IpAddr::V4(v4)) = ip {
                if v4.octets()[0] == 127 {
                    return true;
                }
            }
        }
        self.insecure_registries.iter().any(|entry| {
            if entry.eq_ignore_ascii_case(host) {
                return true;
            }
            match (ip, parse_cidr(entry)) {
                (Some(ip), Some((net, bits))) => cidr_contains(net, bits, ip),
                _ => false,
            }
        })
    }

    /// The TLS settings for `host`, reading its certs.d directory if configured.
    pub(crate) fn tls_profile(&self, host: &str) -> Result<TlsProfile, RegistryError> {
        let mut profile = TlsProfile {
            accept_invalid: self.is_insecure(host),
            ..TlsProfile::default()
        };
        if let Some(h) = self.hosts.get(host) {
            profile.ca_files.extend(h.ca_files.iter().cloned());
            if let Some(c) = &h.client_certificate {
                profile.client = Some((c.cert.clone(), c.key.clone()));
            }
        }
        if let Some(dir) = &self.certs_dir {
            // A host name is safe as one path component once it holds no '/' and is not
            // "." or ".."; validate_host guarantees that.
            if validate_host(host).is_ok() {
                read_certs_dir(&dir.join(host), &mut profile)?;
            }
        }
        Ok(profile)
    }
}

/// Reads docker's `certs.d/<host>/` layout into `profile`; a missing directory is empty.
fn read_certs_dir(dir: &Path, profile: &mut TlsProfile) -> Result<(), RegistryError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(RegistryError::ReadCertificate {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| RegistryError::ReadCertificate {
            path: dir.to_path_buf(),
            source,
        })?;
        names.push(entry.path());
    }
    names.sort();
    for path in &names {
        match path.extension().and_then(|e| e.to_str()) {
            Some("crt") => profile.ca_files.push(path.clone()),
            Some("cert") => {
                let key = path.with_extension("key");
                if !names.contains(&key) {
                    return Err(RegistryError::UnpairedClientCertificate {
                        path: path.clone(),
                        missing: ".key",
                    });
                }
                profile.client = Some((path.clone(), key));
            }
            Some("key") if !names.contains(&path.with_extension("cert")) => {
                return Err(RegistryError::UnpairedClientCertificate {
                    path: path.clone(),
                    missing: ".cert",
                });
            }
            _ => {}
        }
    }
    Ok(())
}

/// Splits `host[:port]` (IPv6 in brackets) into host and port.
pub(crate) fn split_host_port(host: &str) -> (&str, Option<&str>) {
    if let Some(rest) = host.strip_prefix('[') {
        if let Some((addr, after)) = rest.split_once(']') {
            return (addr, after.strip_prefix(':'));
        }
        return (host, None);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, Some(p)),
        _ => (host, None),
    }
}

/// Checks that `host` is `name[:port]`, `ipv4[:port]` or `[ipv6][:port]`, nothing else.
pub(crate) fn validate_host(host: &str) -> Result<(), RegistryError> {
    let invalid = || RegistryError::InvalidHost {
        host: super::error::sanitize(host, 256),
    };
    if host.is_empty() || host.len() > 255 {
        return Err(invalid());
    }
    let (name, port) = split_host_port(host);
    if let Some(port) = port {
        if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(invalid());
        }
    }
    if host.starts_with('[') {
        return match name.parse::<std::net::Ipv6Addr>() {
            Ok(_) => Ok(()),
            Err(_) => Err(invalid()),
        };
    }
    let labels_ok = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !labels_ok {
        return Err(invalid());
    }
    Ok(())
}

fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, bits) = s.split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    let bits: u8 = bits.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((addr, bits))
}

fn cidr_contains(net: IpAddr, bits: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn docker_insecure_rules() {
        let mut c = RegistryConfig::default();
        for h in ["127.0.0.1:5000", "127.1.2.3", "localhost", "LOCALHOST:443"] {
            assert!(c.is_insecure(h), "{h}");
        }
        for h in [
            "[::1]:5000",
            "registry-1.docker.io",
            "10.0.0.1:5000",
            "localhost.evil.com",
        ] {
            assert!(!c.is_insecure(h), "{h}");
        }
        c.insecure_loopback = false;
        assert!(!c.is_insecure("127.0.0.1:5000"));
        c.insecure_registries = vec![
            "10.0.0.0/8".into(),
            "reg.lan:5000".into(),
            "plain.lan".into(),
        ];
        assert!(c.is_insecure("10.1.2.3:5000"));
        assert!(!c.is_insecure("11.1.2.3"));
        assert!(c.is_insecure("reg.lan:5000"));
        assert!(!c.is_insecure("reg.lan:5001"));
        assert!(c.is_insecure("plain.lan"));
        c.hosts.insert(
            "marked:1".into(),
            HostConfig {
                insecure: true,
                ..HostConfig::default()
            },
        );
        assert!(c.is_insecure("marked:1"));
        assert!(!c.is_insecure("marked:2"));
    }

    #[test]
    fn host_validation() {
        for ok in [
            "a",
            "reg.example.com",
            "reg:5000",
            "127.0.0.1:1",
            "[::1]:5000",
            "[fe80::1]",
        ] {
            assert!(validate_host(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a/b",
            "..",
            ".",
            "a..b",
            "-a",
            "a:0",
            "a:99999",
            "a:",
            "a:x",
            "[::1",
            "[zz]",
            "user@host",
            "h?x",
            "h#x",
            "h\0",
            "h%2f",
        ] {
            assert!(validate_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn certs_dir_layout() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("reg:5000");
        std::fs::create_dir(&host).unwrap();
        std::fs::write(host.join("ca.crt"), "x").unwrap();
        std::fs::write(host.join("client.cert"), "x").unwrap();
        std::fs::write(host.join("client.key"), "x").unwrap();
        let c = RegistryConfig {
            certs_dir: Some(dir.path().to_path_buf()),
            insecure_loopback: false,
            ..RegistryConfig::default()
        };
        let p = c.tls_profile("reg:5000").unwrap();
        assert_eq!(p.ca_files, vec![host.join("ca.crt")]);
        assert_eq!(
            p.client,
            Some((host.join("client.cert"), host.join("client.key")))
        );
        assert!(!p.accept_invalid);
        assert_eq!(c.tls_profile("other").unwrap(), TlsProfile::default());
        std::fs::remove_file(host.join("client.key")).unwrap();
        assert!(matches!(
            c.tls_profile("reg:5000"),
            Err(RegistryError::UnpairedClientCertificate { .. })
        ));
    }
}
