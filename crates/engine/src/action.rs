//! The engine's whole control surface, in one place.

use std::path::PathBuf;

use berth_images::service::{HistoryEntry, Image, ImageSummary, RemoveOutcome};
use tokio::sync::mpsc;

use crate::container::{
    AttachOptions, AttachStream, CreateContainer, Created, LogEntry, LogsOptions, WaitCondition,
};
use crate::engine::Engine;
use crate::error::Result;
use crate::model::ContainerRecord;

/// Every operation the engine offers. Containers are named by ID, name or ID prefix.
#[derive(Debug)]
pub enum Action {
    /// `docker create`.
    ContainerCreate(Box<CreateContainer>),
    /// `docker start`.
    ContainerStart {
        /// The container.
        id: String,
    },
    /// `docker stop`.
    ContainerStop {
        /// The container.
        id: String,
        /// Seconds before SIGKILL.
        timeout: Option<i64>,
        /// Signal instead of the container's stop signal.
        signal: Option<String>,
    },
    /// `docker restart`.
    ContainerRestart {
        /// The container.
        id: String,
        /// Seconds before SIGKILL.
        timeout: Option<i64>,
        /// Signal instead of the container's stop signal.
        signal: Option<String>,
    },
    /// `docker kill`.
    ContainerKill {
        /// The container.
        id: String,
        /// Signal (default SIGKILL).
        signal: Option<String>,
    },
    /// `docker pause`.
    ContainerPause {
        /// The container.
        id: String,
    },
    /// `docker unpause`.
    ContainerUnpause {
        /// The container.
        id: String,
    },
    /// `docker rm`.
    ContainerRemove {
        /// The container.
        id: String,
        /// Kill it first if it runs.
        force: bool,
        /// Remove its anonymous volumes.
        volumes: bool,
    },
    /// `docker rename`.
    ContainerRename {
        /// The container.
        id: String,
        /// The new name.
        name: String,
    },
    /// `docker inspect`.
    ContainerInspect {
        /// The container.
        id: String,
    },
    /// `docker ps -a` (the API filters).
    ContainerList,
    /// `docker wait`.
    ContainerWait {
        /// The container.
        id: String,
        /// What to wait for.
        condition: WaitCondition,
    },
    /// `docker logs`.
    ContainerLogs {
        /// The container.
        id: String,
        /// What to read.
        options: LogsOptions,
    },
    /// `docker attach`.
    ContainerAttach {
        /// The container.
        id: String,
        /// Which streams.
        options: AttachOptions,
    },
    /// Terminal size.
    ContainerResize {
        /// The container.
        id: String,
        /// Rows.
        height: u16,
        /// Columns.
        width: u16,
    },
    /// `docker exec` (create the session).
    ExecCreate {
        /// The container.
        id: String,
        /// What to run.
        config: Box<crate::exec::ExecConfig>,
    },
    /// `docker exec` (start it; attached unless `detach`).
    ExecStart {
        /// The session.
        id: String,
        /// Run in the background.
        detach: bool,
    },
    /// Exec session state.
    ExecInspect {
        /// The session.
        id: String,
    },
    /// Exec terminal size.
    ExecResize {
        /// The session.
        id: String,
        /// Rows.
        height: u16,
        /// Columns.
        width: u16,
    },
    /// `docker top` (the host PIDs; the API runs `ps`).
    ContainerTop {
        /// The container.
        id: String,
    },
    /// `docker stats`.
    ContainerStats {
        /// The container.
        id: String,
    },
    /// `docker cp` (stat a path).
    ArchiveStat {
        /// The container.
        id: String,
        /// The path inside.
        path: String,
    },
    /// `docker cp` out of the container.
    ArchiveGet {
        /// The container.
        id: String,
        /// The path inside.
        path: String,
    },
    /// `docker cp` into the container: a tar spooled to a file.
    ArchivePut {
        /// The container.
        id: String,
        /// The directory inside.
        path: String,
        /// The archive.
        archive: std::fs::File,
    },
    /// `docker commit`.
    ContainerCommit {
        /// The container.
        id: String,
        /// Name, author, comment, config.
        request: Box<crate::container::CommitRequest>,
    },
    /// `docker export`.
    ContainerExport {
        /// The container.
        id: String,
    },
    /// `docker diff`.
    ContainerChanges {
        /// The container.
        id: String,
    },
    /// `docker pull`.
    ImagePull {
        /// The reference.
        reference: String,
    },
    /// `docker push`.
    ImagePush {
        /// The reference.
        reference: String,
    },
    /// `docker save` (into a temporary file).
    ImageSave {
        /// References or IDs.
        names: Vec<String>,
    },
    /// `docker import` of a root filesystem tar spooled to a file.
    ImageImport {
        /// The tar.
        archive: std::fs::File,
        /// `repo[:tag]`.
        reference: Option<String>,
        /// History comment.
        message: Option<String>,
    },
    /// `docker login`.
    Login {
        /// Registry.
        server: String,
        /// User.
        username: String,
        /// Password.
        password: String,
    },
    /// `docker container prune`.
    ContainerPrune {
        /// `label` filters (`k`, `k=v`, `!k=v`).
        labels: Vec<String>,
    },
    /// `docker volume create`.
    VolumeCreate {
        /// Name (random when `None`).
        name: Option<String>,
        /// Labels.
        labels: std::collections::BTreeMap<String, String>,
        /// Local driver options.
        options: std::collections::BTreeMap<String, String>,
    },
    /// `docker volume ls`.
    VolumeList,
    /// `docker volume inspect`.
    VolumeInspect {
        /// The volume.
        name: String,
    },
    /// `docker volume rm`.
    VolumeRemove {
        /// The volume.
        name: String,
        /// A missing volume is no error.
        force: bool,
    },
    /// `docker volume prune`.
    VolumePrune {
        /// Named volumes too.
        all: bool,
        /// `label` filters.
        labels: Vec<String>,
    },
    /// `docker images`.
    ImageList,
    /// `docker image inspect`.
    ImageInspect {
        /// Reference or ID.
        name: String,
    },
    /// `docker history`.
    ImageHistory {
        /// Reference or ID.
        name: String,
    },
    /// `docker tag`.
    ImageTag {
        /// Reference or ID.
        source: String,
        /// New `repo[:tag]`.
        target: String,
    },
    /// `docker rmi`.
    ImageRemove {
        /// Reference or ID.
        name: String,
        /// Remove even if used.
        force: bool,
    },
    /// `docker image prune`.
    ImagePrune {
        /// Every unused image, not only dangling ones.
        all: bool,
    },
    /// `docker system df`.
    SystemDf,
    /// `docker load` of an archive spooled to a file.
    ImageLoad {
        /// The archive.
        path: PathBuf,
    },
}

/// What an operation returns.
pub enum Outcome {
    /// Nothing to return.
    Done,
    /// A container was created.
    Created(Created),
    /// One container.
    Container(Box<ContainerRecord>),
    /// Containers, newest first.
    Containers(Vec<ContainerRecord>),
    /// An exit code, when it comes (the wait is registered already).
    Wait(std::pin::Pin<Box<dyn std::future::Future<Output = i32> + Send>>),
    /// Log entries as they come.
    Logs(mpsc::Receiver<LogEntry>),
    /// An attach stream.
    Attach(AttachStream),
    /// A new object's ID.
    Id(String),
    /// Host PIDs.
    Pids(Vec<i32>),
    /// A file (an archive) to send.
    File(std::fs::File),
    /// Filesystem changes.
    Changes(Vec<crate::container::Change>),
    /// A transfer's progress stream.
    Transfer(tokio::sync::mpsc::UnboundedReceiver<crate::registry::TransferMessage>),
    /// A path's stat, and its tar when asked for.
    Archive(Box<crate::container::PathStat>, Option<std::fs::File>),
    /// Resource usage (`None`: not running).
    Stats(Box<ContainerRecord>, Option<Box<berth_runtime::Stats>>),
    /// IDs or names removed, and bytes freed.
    Pruned(Vec<String>, u64),
    /// A volume.
    Volume(Box<crate::volume::Volume>),
    /// Volumes.
    Volumes(Vec<crate::volume::Volume>),
    /// What image prune removed, and bytes freed.
    ImagesPruned(Vec<RemoveOutcome>, u64),
    /// Disk usage.
    DiskUsage(Box<berth_images::service::DiskUsage>),
    /// An exec session was started: its stream when attached.
    ExecStarted(Option<AttachStream>),
    /// An exec session.
    Exec(Box<crate::exec::ExecSession>),
    /// Images.
    Images(Vec<ImageSummary>),
    /// One image.
    Image(Box<Image>),
    /// An image's history.
    History(Vec<HistoryEntry>),
    /// What `rmi` did.
    ImagesRemoved(Vec<RemoveOutcome>),
    /// What `load` loaded: names and image ID per image.
    Loaded(Vec<(Vec<String>, String)>),
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Wait(_) => f.write_str("Wait(..)"),
            other => write!(f, "{}", outcome_name(other)),
        }
    }
}

fn outcome_name(o: &Outcome) -> &'static str {
    match o {
        Outcome::Done => "Done",
        Outcome::Created(_) => "Created",
        Outcome::Container(_) => "Container",
        Outcome::Containers(_) => "Containers",
        Outcome::Wait(_) => "Wait",
        Outcome::Logs(_) => "Logs",
        Outcome::Attach(_) => "Attach",
        Outcome::Images(_) => "Images",
        Outcome::Id(_) => "Id",
        Outcome::Pids(_) => "Pids",
        Outcome::File(_) => "File",
        Outcome::Changes(_) => "Changes",
        Outcome::Transfer(_) => "Transfer",
        Outcome::Archive(..) => "Archive",
        Outcome::Stats(..) => "Stats",
        Outcome::Pruned(..) => "Pruned",
        Outcome::Volume(_) => "Volume",
        Outcome::Volumes(_) => "Volumes",
        Outcome::ImagesPruned(..) => "ImagesPruned",
        Outcome::DiskUsage(_) => "DiskUsage",
        Outcome::ExecStarted(_) => "ExecStarted",
        Outcome::Exec(_) => "Exec",
        Outcome::Image(_) => "Image",
        Outcome::History(_) => "History",
        Outcome::ImagesRemoved(_) => "ImagesRemoved",
        Outcome::Loaded(_) => "Loaded",
    }
}

impl Engine {
    /// Carries out `action`.
    pub async fn handle(&self, action: Action) -> Result<Outcome> {
        Ok(match action {
            Action::ContainerCreate(req) => Outcome::Created(self.create_container(*req).await?),
            Action::ContainerStart { id } => {
                self.start_container(&id).await?;
                Outcome::Done
            }
            Action::ContainerStop {
                id,
                timeout,
                signal,
            } => {
                self.stop_container(&id, timeout, signal).await?;
                Outcome::Done
            }
            Action::ContainerRestart {
                id,
                timeout,
                signal,
            } => {
                self.restart_container(&id, timeout, signal).await?;
                Outcome::Done
            }
            Action::ContainerKill { id, signal } => {
                self.kill_container(&id, signal).await?;
                Outcome::Done
            }
            Action::ContainerPause { id } => {
                self.pause_container(&id).await?;
                Outcome::Done
            }
            Action::ContainerUnpause { id } => {
                self.unpause_container(&id).await?;
                Outcome::Done
            }
            Action::ContainerRemove { id, force, volumes } => {
                self.remove_container(&id, force, volumes).await?;
                Outcome::Done
            }
            Action::ContainerRename { id, name } => {
                self.rename_container(&id, &name).await?;
                Outcome::Done
            }
            Action::ContainerInspect { id } => {
                Outcome::Container(Box::new(self.inspect_container(&id)?))
            }
            Action::ContainerList => Outcome::Containers(self.list_containers()),
            Action::ContainerWait { id, condition } => {
                Outcome::Wait(self.wait_container(&id, condition)?)
            }
            Action::ContainerLogs { id, options } => {
                Outcome::Logs(self.container_logs(&id, options).await?)
            }
            Action::ContainerAttach { id, options } => {
                Outcome::Attach(self.attach_container(&id, options).await?)
            }
            Action::ContainerResize { id, height, width } => {
                self.resize_container(&id, height, width).await?;
                Outcome::Done
            }
            Action::ExecCreate { id, config } => Outcome::Id(self.exec_create(&id, *config)?),
            Action::ExecStart { id, detach } => {
                Outcome::ExecStarted(self.exec_start(&id, detach).await?)
            }
            Action::ExecInspect { id } => Outcome::Exec(Box::new(self.exec_inspect(&id)?)),
            Action::ExecResize { id, height, width } => {
                self.exec_resize(&id, height, width).await?;
                Outcome::Done
            }
            Action::ArchiveStat { id, path } => {
                Outcome::Archive(Box::new(self.archive_stat(&id, &path).await?), None)
            }
            Action::ArchiveGet { id, path } => {
                let (stat, file) = self.archive_get(&id, &path).await?;
                Outcome::Archive(Box::new(stat), Some(file))
            }
            Action::ArchivePut { id, path, archive } => {
                self.archive_put(&id, &path, std::io::BufReader::new(archive))
                    .await?;
                Outcome::Done
            }
            Action::ContainerCommit { id, request } => {
                Outcome::Id(self.commit_container(&id, *request).await?)
            }
            Action::ContainerExport { id } => Outcome::File(self.export_container(&id).await?),
            Action::ContainerChanges { id } => Outcome::Changes(self.container_changes(&id).await?),
            Action::ImagePull { reference } => Outcome::Transfer(self.pull(&reference)?),
            Action::ImagePush { reference } => Outcome::Transfer(self.push(&reference)?),
            Action::ImageSave { names } => Outcome::File(self.save_images(names).await?),
            Action::ImageImport {
                archive,
                reference,
                message,
            } => Outcome::Id(self.import_image(archive, reference, message).await?),
            Action::Login {
                server,
                username,
                password,
            } => {
                self.login(&server, username, password).await?;
                Outcome::Done
            }
            Action::ContainerTop { id } => Outcome::Pids(self.container_pids(&id).await?),
            Action::ContainerStats { id } => {
                let (rec, stats) = self.container_stats(&id).await?;
                Outcome::Stats(Box::new(rec), stats.map(Box::new))
            }
            Action::ContainerPrune { labels } => {
                Outcome::Pruned(self.prune_containers(&labels).await, 0)
            }
            Action::VolumeCreate {
                name,
                labels,
                options,
            } => Outcome::Volume(Box::new(self.volume_create(name, labels, options, false)?)),
            Action::VolumeList => Outcome::Volumes(self.volume_list()),
            Action::VolumeInspect { name } => {
                Outcome::Volume(Box::new(self.volume_inspect(&name)?))
            }
            Action::VolumeRemove { name, force } => {
                self.volume_remove(&name, force)?;
                Outcome::Done
            }
            Action::VolumePrune { all, labels } => {
                let (names, bytes) = self.volume_prune(all, &labels);
                Outcome::Pruned(names, bytes)
            }
            Action::ImageList => Outcome::Images(self.list_images().await?),
            Action::ImageInspect { name } => {
                Outcome::Image(Box::new(self.inspect_image(&name).await?))
            }
            Action::ImageHistory { name } => Outcome::History(self.image_history(&name).await?),
            Action::ImageTag { source, target } => {
                self.tag_image(&source, &target).await?;
                Outcome::Done
            }
            Action::ImageRemove { name, force } => {
                Outcome::ImagesRemoved(self.remove_image(&name, force).await?)
            }
            Action::ImagePrune { all } => {
                let r = self.inner.images.prune(all).await?;
                Outcome::ImagesPruned(r.removed, r.space_reclaimed)
            }
            Action::SystemDf => Outcome::DiskUsage(Box::new(self.inner.images.disk_usage().await?)),
            Action::ImageLoad { path } => Outcome::Loaded(self.load_images(path).await?),
        })
    }
}
