//! `create`: a container record and its writable layer; nothing runs yet.

use crate::engine::{Engine, Handle};
use crate::error::{EngineError, Result};
use crate::model::{ContainerConfig, ContainerRecord, HostConfig, State};

/// What `create` needs.
#[derive(Debug, Clone, Default)]
pub struct CreateContainer {
    /// The name asked for (generated when `None`).
    pub name: Option<String>,
    /// The configuration as the client sent it.
    pub config: ContainerConfig,
    /// The host configuration as the client sent it.
    pub host_config: HostConfig,
}

/// What `create` made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// The new container's ID.
    pub id: String,
    /// Warnings for the client.
    pub warnings: Vec<String>,
}

/// Docker's merge of the image's config under the request's.
fn merge(
    req: &ContainerConfig,
    image: Option<&berth_images::manifest::ContainerConfig>,
) -> ContainerConfig {
    let mut c = req.clone();
    let Some(img) = image else { return c };
    if c.user.is_empty() {
        c.user = img.user.clone().unwrap_or_default();
    }
    if c.working_dir.is_empty() {
        c.working_dir = img.working_dir.clone().unwrap_or_default();
    }
    // Environment: the image's, overridden key by key by the request's.
    let mut env: Vec<String> = img.env.clone();
    for kv in c.env.as_deref().unwrap_or_default() {
        let key = kv.split('=').next().unwrap_or("");
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    c.env = Some(env);
    // Entrypoint given: the image's Cmd no longer applies.
    if c.entrypoint.is_none() {
        c.entrypoint = img.entrypoint.clone();
        if c.cmd.is_none() || c.cmd.as_ref().is_some_and(Vec::is_empty) {
            c.cmd = img.cmd.clone();
        }
    }
    if !img.exposed_ports.is_empty() {
        let mut ports = c.exposed_ports.clone().unwrap_or_default();
        for p in img.exposed_ports.keys() {
            ports
                .entry(p.clone())
                .or_insert_with(|| serde_json::json!({}));
        }
        c.exposed_ports = Some(ports);
    }
    if !img.volumes.is_empty() {
        let mut v = c.volumes.clone().unwrap_or_default();
        for p in img.volumes.keys() {
            v.entry(p.clone()).or_insert_with(|| serde_json::json!({}));
        }
        c.volumes = Some(v);
    }
    let mut labels = img.labels.clone();
    labels.extend(c.labels.clone().unwrap_or_default());
    c.labels = Some(labels);
    if c.stop_signal.is_none() {
        c.stop_signal = img.stop_signal.clone();
    }
    if c.healthcheck.is_none() {
        c.healthcheck = img
            .healthcheck
            .as_ref()
            .and_then(|h| serde_json::to_value(h).ok());
    }
    c
}

impl Engine {
    /// Creates a container (`docker create`).
    pub async fn create_container(&self, req: CreateContainer) -> Result<Created> {
        if req.config.image.is_empty() {
            return Err(EngineError::InvalidArgument(
                "config.Image is required".into(),
            ));
        }
        let allow = req
            .config
            .labels
            .as_ref()
            .and_then(|l| l.get(crate::spec::ALLOW_SENSITIVE_LABEL))
            .is_some_and(|v| v == "true" || v == "1");
        crate::spec::validate(&req.host_config, allow)?;
        let image = match self.inner.images.inspect(&req.config.image).await {
            Ok(i) => i,
            Err(e) if berth_errdefs::HasKind::kind(&e) == berth_errdefs::ErrorKind::NotFound => {
                return Err(EngineError::NoSuchImage(req.config.image.clone()))
            }
            Err(e) => return Err(e.into()),
        };
        let config = merge(&req.config, image.config.config.as_ref());
        let mut argv: Vec<String> = config.entrypoint.clone().unwrap_or_default();
        argv.retain(|s| !s.is_empty() || argv_len_gt1(&config));
        argv.extend(config.cmd.clone().unwrap_or_default());
        if argv.is_empty() || argv.first().is_some_and(String::is_empty) {
            return Err(EngineError::InvalidArgument("no command specified".into()));
        }
        let id = crate::names::new_id()?;
        // Reserve the name first: a clash fails before anything is made.
        let name = {
            let mut idx = self.index();
            let name = match &req.name {
                Some(n) if !n.is_empty() => {
                    let n = crate::names::validate(n)?;
                    if let Some(other) = idx.names.get(&n) {
                        return Err(EngineError::NameInUse {
                            name: n,
                            id: other.clone(),
                        });
                    }
                    n
                }
                _ => {
                    let mut attempt = 0;
                    loop {
                        let n = crate::names::generate(&id, attempt);
                        if !idx.names.contains_key(&n) {
                            break n;
                        }
                        attempt += 1;
                    }
                }
            };
            idx.names.insert(name.clone(), id.clone());
            name
        };
        let result = self
            .create_reserved(&id, &name, config, req.host_config, &image, argv, allow)
            .await;
        if result.is_err() {
            self.index().names.remove(&name);
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn create_reserved(
        &self,
        id: &str,
        name: &str,
        config: ContainerConfig,
        host_config: HostConfig,
        image: &berth_images::service::Image,
        argv: Vec<String>,
        allow_sensitive: bool,
    ) -> Result<Created> {
        let storage = self.resolve_storage(&config, &host_config, allow_sensitive)?;
        let dir = self.inner.store.dir(id);
        std::fs::create_dir_all(&dir).map_err(|e| EngineError::io("create", &dir, e))?;
        // The writable layer; until the record is written, a crash leaves a directory
        // without a record, which start-up removes with its layer.
        if let Err(e) = self
            .inner
            .images
            .prepare_rootfs(&image.id.to_string(), id)
            .await
        {
            let _ = self.inner.store.remove(id);
            return Err(e.into());
        }
        let mut argv = argv.into_iter();
        let record = ContainerRecord {
            id: id.to_owned(),
            name: name.to_owned(),
            created: berth_runtime::timestamp(),
            image_id: image.id.to_string(),
            path: argv.next().unwrap_or_default(),
            args: argv.collect(),
            config,
            host_config,
            state: State::default(),
            restart_count: 0,
            log_path: dir.join(format!("{id}-json.log")),
            volumes: storage.volumes,
            mounts: storage.mounts,
        };
        if let Err(e) = self.inner.store.save(&record) {
            let _ = self.inner.images.remove_rootfs(id).await;
            let _ = self.inner.store.remove(id);
            return Err(e);
        }
        let h = Handle::new(record.clone());
        self.index().by_id.insert(id.to_owned(), h);
        self.container_event(&record, "create", &[]);
        Ok(Created {
            id: id.to_owned(),
            warnings: Vec::new(),
        })
    }
}

/// `--entrypoint ""` clears the entrypoint; a lone empty string is dropped.
fn argv_len_gt1(c: &ContainerConfig) -> bool {
    c.entrypoint.as_ref().is_some_and(|e| e.len() > 1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn image_config_merge() {
        let img: berth_images::manifest::ContainerConfig = serde_json::from_str(
            r#"{"Env":["PATH=/bin","A=1"],"Entrypoint":["/ep"],"Cmd":["def"],"WorkingDir":"/w","Labels":{"x":"1"}}"#,
        )
        .unwrap();
        let req = ContainerConfig {
            env: Some(vec!["A=2".into()]),
            cmd: Some(vec!["mine".into()]),
            ..ContainerConfig::default()
        };
        let c = merge(&req, Some(&img));
        assert_eq!(c.env.unwrap(), vec!["PATH=/bin", "A=2"]);
        assert_eq!(c.entrypoint.unwrap(), vec!["/ep"]);
        assert_eq!(c.cmd.unwrap(), vec!["mine"]);
        assert_eq!(c.working_dir, "/w");
        let req = ContainerConfig {
            entrypoint: Some(vec!["sh".into()]),
            ..ContainerConfig::default()
        };
        let c = merge(&req, Some(&img));
        assert_eq!(c.cmd, None, "an entrypoint given drops the image's cmd");
    }
}
