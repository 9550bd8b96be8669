//! Image configs (OCI image config, Docker `container.image.v1`): the runtime defaults,
//! the layer diff IDs and the history of an image.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use super::{truncate, Manifest, ManifestError, MAX_CONFIG_SIZE, MAX_HISTORY, MAX_LAYERS};
use crate::digest::{Algorithm, Digest};

/// Treats JSON `null` as the type's default (Docker writes `"Env": null`).
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// An empty JSON object (`{}`), the value type of `ExposedPorts` and `Volumes`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmptyObject {}

/// The image config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// When the image was created (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Who made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// CPU architecture.
    #[serde(default)]
    pub architecture: String,
    /// Operating system.
    #[serde(default)]
    pub os: String,
    /// OS version (Windows).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// OS features (Windows).
    #[serde(
        rename = "os.features",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub os_features: Vec<String>,
    /// CPU variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Defaults for containers run from the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    /// The layers' diff IDs.
    pub rootfs: RootFs,
    /// How the image was built, one entry per step.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub history: Vec<History>,
}

/// Defaults for containers (Docker's field names).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    /// User (and group) to run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Ports to expose (`80/tcp`).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub exposed_ports: BTreeMap<String, EmptyObject>,
    /// Environment (`KEY=value`).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub env: Vec<String>,
    /// Entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Command (arguments to the entrypoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Anonymous volumes.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub volumes: BTreeMap<String, EmptyObject>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Labels.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    /// Signal that stops the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Seconds to wait after the stop signal (Docker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    /// Whether `Cmd` is already escaped (Windows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    /// Health check (Docker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    /// ONBUILD triggers (Docker).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub on_build: Vec<String>,
    /// Shell for shell-form commands (Docker).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub shell: Vec<String>,
}

/// A health check (Docker; durations in nanoseconds).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    /// The test: `["NONE"]`, `["CMD", …]` or `["CMD-SHELL", "…"]`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub test: Vec<String>,
    /// Time between checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    /// Time a check may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    /// Grace period after start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<i64>,
    /// Time between checks during the start period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<i64>,
    /// Failures before unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
}

/// The layers' uncompressed digests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub fs_type: String,
    /// The digest of each layer's uncompressed tar, base first.
    #[serde(default, deserialize_with = "null_default")]
    pub diff_ids: Vec<Digest>,
}

/// One build step.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// When (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Who.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// A comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Whether the step made no layer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

impl ImageConfig {
    /// Parses and validates a config blob. Never panics, whatever the bytes.
    pub fn parse(bytes: &[u8]) -> Result<ImageConfig, ManifestError> {
        if bytes.len() > MAX_CONFIG_SIZE {
            return Err(ManifestError::TooLarge {
                what: "image config",
                size: bytes.len() as u64,
                max: MAX_CONFIG_SIZE as u64,
            });
        }
        let config: ImageConfig =
            serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
                what: "image config",
                source,
            })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the rootfs type and the bounds.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.rootfs.fs_type != "layers" {
            return Err(ManifestError::RootFsType(truncate(&self.rootfs.fs_type)));
        }
        if self.rootfs.diff_ids.len() > MAX_LAYERS {
            return Err(ManifestError::TooMany {
                what: "diff_ids",
                count: self.rootfs.diff_ids.len(),
                max: MAX_LAYERS,
            });
        }
        if self.history.len() > MAX_HISTORY {
            return Err(ManifestError::TooMany {
                what: "history entries",
                count: self.history.len(),
                max: MAX_HISTORY,
            });
        }
        Ok(())
    }

    /// The history, each entry with the diff ID of the layer it made (`None` for
    /// empty-layer steps, and for steps beyond the layers when the history is
    /// inconsistent, as some old builders left it).
    pub fn history_with_layers(&self) -> Vec<(&History, Option<&Digest>)> {
        let mut layers = self.rootfs.diff_ids.iter();
        self.history
            .iter()
            .map(|h| {
                let layer = if h.empty_layer { None } else { layers.next() };
                (h, layer)
            })
            .collect()
    }
}

/// The image ID of a config blob: its sha256 digest (what `docker images` shows).
pub fn image_id(config_blob: &[u8]) -> Digest {
    Digest::of(Algorithm::Sha256, config_blob)
}

/// Checks that a manifest and its config agree: one diff ID per layer.
pub fn check_image(manifest: &Manifest, config: &ImageConfig) -> Result<(), ManifestError> {
    if manifest.layers.len() != config.rootfs.diff_ids.len() {
        return Err(ManifestError::LayerCountMismatch {
            layers: manifest.layers.len(),
            diff_ids: config.rootfs.diff_ids.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use berth_errdefs::{ErrorKind, HasKind};

    use super::super::media_type::{Format, DOCKER_CONFIG, DOCKER_LAYER_GZIP};
    use super::super::Descriptor;
    use super::*;

    const D1: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const D2: &str = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

    /// Shaped like what dockerd 20.10 writes, nulls included.
    fn docker_config() -> String {
        format!(
            r##"{{"architecture":"amd64","config":{{"Hostname":"","Domainname":"","User":"",
            "AttachStdin":false,"ExposedPorts":{{"80/tcp":{{}}}},"Tty":false,"Env":["PATH=/usr/bin"],
            "Cmd":["sh"],"Image":"sha256:abc","Volumes":null,"WorkingDir":"","Entrypoint":null,
            "OnBuild":null,"Labels":null,"Healthcheck":{{"Test":["CMD","true"],"Interval":1000000000}}}},
            "container":"3f5a","container_config":{{"Cmd":["/bin/sh","-c","#(nop) CMD [\"sh\"]"]}},
            "created":"2023-05-19T20:19:22.751398522Z","docker_version":"20.10.23",
            "history":[{{"created":"2023-05-19T20:19:22Z","created_by":"ADD file:x in / "}},
                       {{"created":"2023-05-19T20:19:22Z","created_by":"CMD [\"sh\"]","empty_layer":true}},
                       {{"created":"2023-05-19T20:19:23Z","created_by":"RUN x"}}],
            "os":"linux","rootfs":{{"type":"layers","diff_ids":["{D1}","{D2}"]}}}}"##
        )
    }

    #[test]
    fn parses_docker_config_with_nulls() {
        let c = ImageConfig::parse(docker_config().as_bytes()).unwrap();
        let cc = c.config.as_ref().unwrap();
        assert_eq!(cc.env, vec!["PATH=/usr/bin"]);
        assert_eq!(cc.cmd.as_deref(), Some(&["sh".to_owned()][..]));
        assert!(cc.entrypoint.is_none());
        assert!(cc.labels.is_empty());
        assert!(cc.exposed_ports.contains_key("80/tcp"));
        assert_eq!(
            cc.healthcheck.as_ref().unwrap().interval,
            Some(1_000_000_000)
        );
        assert_eq!(c.rootfs.diff_ids.len(), 2);
        let h = c.history_with_layers();
        assert_eq!(h[0].1.unwrap().to_string(), D1);
        assert!(h[1].1.is_none());
        assert_eq!(h[2].1.unwrap().to_string(), D2);
        let again = ImageConfig::parse(&serde_json::to_vec(&c).unwrap()).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn parses_minimal_oci_config() {
        let c = ImageConfig::parse(
            br#"{"architecture":"arm64","os":"linux","variant":"v8","rootfs":{"type":"layers","diff_ids":[]}}"#,
        )
        .unwrap();
        assert!(c.config.is_none());
        assert!(c.history_with_layers().is_empty());
    }

    #[test]
    fn refuses_bad_configs() {
        for bad in [
            "",
            "{}",
            r#"{"rootfs":{"type":"zfs","diff_ids":[]}}"#,
            r#"{"rootfs":{"type":"layers","diff_ids":["sha256:short"]}}"#,
            r#"{"rootfs":{"type":"layers","diff_ids":[]},"config":{"Env":"x"}}"#,
            r#"{"rootfs":{"type":"layers","diff_ids":[]},"config":{"Env":[],"Env":[]}}"#,
        ] {
            let err = ImageConfig::parse(bad.as_bytes()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad}: {err}");
        }
        let big = vec![b' '; MAX_CONFIG_SIZE + 1];
        assert!(matches!(
            ImageConfig::parse(&big).unwrap_err(),
            ManifestError::TooLarge { .. }
        ));
    }

    #[test]
    fn ids_and_consistency() {
        let blob = docker_config();
        let id = image_id(blob.as_bytes());
        assert_eq!(id, Digest::sha256_of(blob.as_bytes()));
        let config = ImageConfig::parse(blob.as_bytes()).unwrap();
        let layer = Descriptor::new(DOCKER_LAYER_GZIP, Digest::parse(D2).unwrap(), 5);
        let cfg = Descriptor::new(DOCKER_CONFIG, id.clone(), blob.len() as u64);
        let m = Manifest::new(
            Format::Docker,
            cfg.clone(),
            vec![layer.clone(), layer.clone()],
        );
        assert_eq!(m.image_id(), &id);
        check_image(&m, &config).unwrap();
        let m = Manifest::new(Format::Docker, cfg, vec![layer]);
        assert!(matches!(
            check_image(&m, &config).unwrap_err(),
            ManifestError::LayerCountMismatch {
                layers: 1,
                diff_ids: 2
            }
        ));
    }
}
