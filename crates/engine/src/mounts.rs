//! A container's storage from its request: `Binds` (`-v`), `Mounts` (`--mount`) and the
//! image's `VOLUME`s, resolved at create into host binds, tmpfs mounts and volume
//! mounts (named volumes made on first use, anonymous ones for uncovered `VOLUME`s).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;

use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::model::{ContainerConfig, HostConfig, MountSpec};
use crate::volume::VolumeMount;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ApiMount {
    #[serde(rename = "Type")]
    kind: String,
    source: String,
    target: String,
    read_only: bool,
    bind_options: Option<BindOptions>,
    volume_options: Option<VolumeOptions>,
    tmpfs_options: Option<TmpfsOptions>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct BindOptions {
    propagation: String,
    create_mountpoint: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct VolumeOptions {
    no_copy: bool,
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct TmpfsOptions {
    size_bytes: i64,
    mode: u32,
}

/// What create resolved.
#[derive(Debug, Default)]
pub(crate) struct Storage {
    pub volumes: Vec<VolumeMount>,
    pub mounts: Vec<MountSpec>,
}

fn invalid_mount(kind: &str, msg: impl std::fmt::Display) -> EngineError {
    EngineError::InvalidArgument(format!("invalid mount config for type \"{kind}\": {msg}"))
}

impl Engine {
    /// Resolves the container's storage, creating named and anonymous volumes.
    pub(crate) fn resolve_storage(
        &self,
        cfg: &ContainerConfig,
        hc: &HostConfig,
        allow_sensitive: bool,
    ) -> Result<Storage> {
        let mut st = Storage::default();
        let mut targets: BTreeSet<String> = BTreeSet::new();
        for b in hc.binds.as_deref().unwrap_or_default() {
            let bind = crate::spec::parse_bind(b)?;
            targets.insert(bind.target.clone());
            if !bind.source.starts_with('/') {
                let no_copy = b
                    .rsplit(':')
                    .next()
                    .is_some_and(|o| o.split(',').any(|x| x == "nocopy"));
                self.volume_create(
                    Some(bind.source.clone()),
                    BTreeMap::new(),
                    BTreeMap::new(),
                    false,
                )?;
                st.volumes.push(VolumeMount {
                    name: bind.source,
                    destination: bind.target,
                    read_only: bind.read_only,
                    no_copy,
                });
            }
        }
        let api_mounts: Vec<ApiMount> = match hc.other.get("Mounts") {
            Some(v) if !v.is_null() => serde_json::from_value(v.clone())
                .map_err(|e| EngineError::InvalidArgument(format!("invalid Mounts: {e}")))?,
            _ => Vec::new(),
        };
        for m in api_mounts {
            if !m.target.starts_with('/') {
                return Err(invalid_mount(
                    &m.kind,
                    format!(
                        "invalid mount path: '{}' mount path must be absolute",
                        m.target
                    ),
                ));
            }
            if !targets.insert(m.target.clone()) {
                return Err(EngineError::InvalidArgument(format!(
                    "Duplicate mount point: {}",
                    m.target
                )));
            }
            match m.kind.as_str() {
                "bind" => {
                    if !m.source.starts_with('/') {
                        return Err(invalid_mount(
                            "bind",
                            format!(
                                "invalid mount path: '{}' mount path must be absolute",
                                m.source
                            ),
                        ));
                    }
                    let opts = m.bind_options.unwrap_or_default();
                    if !Path::new(&m.source).exists() {
                        if opts.create_mountpoint {
                            std::fs::create_dir_all(&m.source)
                                .map_err(|e| EngineError::io("create bind source", &m.source, e))?;
                        } else {
                            return Err(invalid_mount(
                                "bind",
                                format!("bind source path does not exist: {}", m.source),
                            ));
                        }
                    }
                    crate::spec::check_sensitive(&m.source, allow_sensitive)?;
                    let mut options = Vec::new();
                    if !opts.propagation.is_empty() {
                        options.push(opts.propagation);
                    }
                    st.mounts.push(MountSpec {
                        kind: "bind".into(),
                        source: m.source,
                        target: m.target,
                        read_only: m.read_only,
                        options,
                    });
                }
                "volume" => {
                    let vo = m.volume_options.unwrap_or_default();
                    let anonymous = m.source.is_empty();
                    let v = self.volume_create(
                        Some(m.source).filter(|s| !s.is_empty()),
                        vo.labels,
                        BTreeMap::new(),
                        anonymous,
                    )?;
                    st.volumes.push(VolumeMount {
                        name: v.name,
                        destination: m.target,
                        read_only: m.read_only,
                        no_copy: vo.no_copy,
                    });
                }
                "tmpfs" => {
                    if !m.source.is_empty() {
                        return Err(invalid_mount("tmpfs", "Source must not be specified"));
                    }
                    let t = m.tmpfs_options.unwrap_or_default();
                    let mut options = Vec::new();
                    if t.size_bytes > 0 {
                        options.push(format!("size={}", t.size_bytes));
                    }
                    if t.mode > 0 {
                        options.push(format!("mode={:o}", t.mode));
                    }
                    st.mounts.push(MountSpec {
                        kind: "tmpfs".into(),
                        source: String::new(),
                        target: m.target,
                        read_only: m.read_only,
                        options,
                    });
                }
                other => {
                    return Err(EngineError::Unsupported(
                        format!("mount type \"{other}\""),
                        "use bind, volume or tmpfs",
                    ));
                }
            }
        }
        for t in hc.tmpfs.clone().unwrap_or_default().keys() {
            targets.insert(t.clone());
        }
        // The image's VOLUMEs not covered by anything: anonymous volumes.
        for dest in cfg.volumes.clone().unwrap_or_default().keys() {
            if targets.contains(dest) {
                continue;
            }
            let v = self.volume_create(None, BTreeMap::new(), BTreeMap::new(), true)?;
            st.volumes.push(VolumeMount {
                name: v.name,
                destination: dest.clone(),
                read_only: false,
                no_copy: false,
            });
        }
        Ok(st)
    }
}
