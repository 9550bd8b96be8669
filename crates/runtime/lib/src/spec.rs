//! Loading a bundle's `config.json` and deriving what the runtime must do from it.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};
use crate::state::read_bounded;

/// Load and check `config.json` from `path`.
pub(crate) fn load(path: &Path) -> Result<Spec> {
    let data = read_bounded(path).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let spec: Spec = serde_json::from_slice(&data).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    validate(&spec)?;
    Ok(spec)
}

/// Refuse what the runtime cannot honour, before anything is created.
pub(crate) fn validate(spec: &Spec) -> Result<()> {
    let version = spec.version();
    if !version.starts_with("1.") {
        return Err(Error::InvalidConfig(format!(
            "ociVersion {version:?} is not supported (need 1.x)"
        )));
    }
    if spec.root().is_none() {
        return Err(Error::InvalidConfig("root is missing".into()));
    }
    // `process` may be absent at create; `start` then fails (runtime-spec: "start MUST
    // generate an error if process was not set").
    if let Some(process) = spec.process() {
        if process.args().as_ref().is_none_or(|a| a.is_empty()) {
            return Err(Error::InvalidConfig(
                "process.args must not be empty".into(),
            ));
        }
        if !process.cwd().is_absolute() {
            return Err(Error::InvalidConfig(format!(
                "process.cwd {:?} must be an absolute path",
                process.cwd()
            )));
        }
    }
    let plan = NamespacePlan::from_spec(spec)?;
    if spec.hostname().as_ref().is_some_and(|h| !h.is_empty()) && !plan.has(LinuxNamespaceType::Uts)
    {
        return Err(Error::InvalidConfig(
            "hostname is set but the container has no UTS namespace of its own".into(),
        ));
    }
    if spec.domainname().as_ref().is_some_and(|h| !h.is_empty())
        && !plan.has(LinuxNamespaceType::Uts)
    {
        return Err(Error::InvalidConfig(
            "domainname is set but the container has no UTS namespace of its own".into(),
        ));
    }
    if let Some(linux) = spec.linux() {
        let has_user = plan.has(LinuxNamespaceType::User);
        let maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
            || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
        if plan.creates(LinuxNamespaceType::User) && !maps {
            return Err(Error::InvalidConfig(
                "a new user namespace needs uidMappings and gidMappings".into(),
            ));
        }
        if maps && !has_user {
            return Err(Error::InvalidConfig(
                "uidMappings/gidMappings given without a user namespace".into(),
            ));
        }
        if let Some(sysctl) = linux.sysctl() {
            for key in sysctl.keys() {
                validate_sysctl(key, &plan)?;
            }
        }
        if let Some(mounts) = spec.mounts() {
            for m in mounts {
                if !m.destination().is_absolute() {
                    return Err(Error::InvalidConfig(format!(
                        "mount destination {:?} must be absolute",
                        m.destination()
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Only namespaced sysctls may be set, and only when the container has its own namespace
/// for them: otherwise the write would change the host.
pub(crate) fn validate_sysctl(key: &str, plan: &NamespacePlan) -> Result<()> {
    if key.is_empty()
        || key.contains("..")
        || key.contains('\0')
        || key.starts_with('/')
        || key.starts_with('.')
    {
        return Err(Error::InvalidConfig(format!("invalid sysctl name {key:?}")));
    }
    let k = key.replace('/', ".");
    let ipc = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let needs = if ipc.contains(&k.as_str()) || k.starts_with("fs.mqueue.") {
        LinuxNamespaceType::Ipc
    } else if k.starts_with("net.") {
        LinuxNamespaceType::Network
    } else if k == "kernel.hostname" || k == "kernel.domainname" {
        LinuxNamespaceType::Uts
    } else {
        return Err(Error::InvalidConfig(format!(
            "sysctl {key:?} is not namespaced: it would change the host"
        )));
    };
    if !plan.has(needs) {
        return Err(Error::InvalidConfig(format!(
            "sysctl {key:?} needs the container's own {needs:?} namespace"
        )));
    }
    Ok(())
}

/// Which namespaces to create and which to join.
#[derive(Debug, Clone, Default)]
pub(crate) struct NamespacePlan {
    /// Namespaces created fresh.
    pub create: Vec<LinuxNamespaceType>,
    /// Namespaces joined by path.
    pub join: Vec<(LinuxNamespaceType, PathBuf)>,
}

impl NamespacePlan {
    pub(crate) fn from_spec(spec: &Spec) -> Result<Self> {
        let mut plan = NamespacePlan::default();
        let Some(nss) = spec.linux().as_ref().and_then(|l| l.namespaces().clone()) else {
            return Ok(plan);
        };
        for ns in nss {
            let typ = ns.typ();
            if plan.has(typ) {
                return Err(Error::InvalidConfig(format!(
                    "namespace {typ:?} listed twice"
                )));
            }
            match ns.path() {
                Some(p) if !p.as_os_str().is_empty() => {
                    if !p.is_absolute() {
                        return Err(Error::InvalidConfig(format!(
                            "namespace path {p:?} must be absolute"
                        )));
                    }
                    plan.join.push((typ, p.clone()));
                }
                _ => plan.create.push(typ),
            }
        }
        Ok(plan)
    }

    pub(crate) fn has(&self, typ: LinuxNamespaceType) -> bool {
        self.creates(typ) || self.join.iter().any(|(t, _)| *t == typ)
    }

    pub(crate) fn creates(&self, typ: LinuxNamespaceType) -> bool {
        self.create.contains(&typ)
    }
}

/// The clone flag of a namespace type.
pub(crate) fn ns_flag(typ: LinuxNamespaceType) -> berth_sys::NamespaceFlags {
    use berth_sys::NamespaceFlags as F;
    match typ {
        LinuxNamespaceType::Mount => F::MOUNT,
        LinuxNamespaceType::Cgroup => F::CGROUP,
        LinuxNamespaceType::Uts => F::UTS,
        LinuxNamespaceType::Ipc => F::IPC,
        LinuxNamespaceType::User => F::USER,
        LinuxNamespaceType::Pid => F::PID,
        LinuxNamespaceType::Network => F::NET,
        LinuxNamespaceType::Time => F::TIME,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn plan(create: &[LinuxNamespaceType]) -> NamespacePlan {
        NamespacePlan {
            create: create.to_vec(),
            join: vec![],
        }
    }

    #[test]
    fn sysctls_need_their_namespace() {
        let p = plan(&[LinuxNamespaceType::Network, LinuxNamespaceType::Ipc]);
        assert!(validate_sysctl("net.ipv4.ping_group_range", &p).is_ok());
        assert!(validate_sysctl("kernel.shmmax", &p).is_ok());
        assert!(validate_sysctl("fs.mqueue.msg_max", &p).is_ok());
        assert!(validate_sysctl("kernel.panic", &p).is_err());
        assert!(validate_sysctl("vm.overcommit_memory", &p).is_err());
        assert!(validate_sysctl("net/../../etc", &p).is_err());
        assert!(validate_sysctl("net.ipv4.ip_forward", &plan(&[])).is_err());
    }

    #[test]
    fn default_spec_is_valid() {
        let spec = Spec::default();
        validate(&spec).unwrap();
    }
}
