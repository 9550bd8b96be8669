//! The routes: HTTP in, [`Action`]s to the engine, Docker's JSON out.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use berth_engine::{
    Action, AttachOptions, CreateContainer, Engine, LogsOptions, Outcome, WaitCondition,
};
use berth_errdefs::ErrorKind;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::ApiError;
use crate::version::{split_path, ApiVersion, CURRENT, MINIMUM};
use crate::wire;

/// Largest JSON request body.
const MAX_JSON_BODY: usize = 4 * 1024 * 1024;
/// Largest `docker load` upload.
const MAX_LOAD_BODY: u64 = 64 * 1024 * 1024 * 1024;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// The engine.
    pub engine: Engine,
    /// Reported in `version` and `info`.
    pub daemon_version: &'static str,
    /// Where the state lives (for `info`).
    pub root: std::path::PathBuf,
}

type Q = Query<HashMap<String, String>>;
type ApiResult = Result<Response, ApiError>;

fn unexpected(o: &Outcome) -> ApiError {
    ApiError::new(
        ErrorKind::Internal,
        format!("unexpected engine outcome {o:?}"),
    )
}

fn flag(q: &HashMap<String, String>, k: &str) -> bool {
    q.get(k)
        .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "True" | "yes"))
}

fn int(q: &HashMap<String, String>, k: &str) -> Result<Option<i64>, ApiError> {
    match q.get(k).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid value for {k}: {v:?}"))),
    }
}

/// Builds the router for `state`.
pub fn router(state: ApiState) -> Router {
    let state = Arc::new(state);
    Router::new()
        .route("/_ping", get(ping).head(ping))
        .route("/version", get(version))
        .route("/info", get(info))
        .route("/events", get(events))
        .route("/containers/create", post(container_create))
        .route("/containers/json", get(container_list))
        .route("/containers/{id}/json", get(container_inspect))
        .route("/containers/{id}/start", post(container_start))
        .route("/containers/{id}/stop", post(container_stop))
        .route("/containers/{id}/restart", post(container_restart))
        .route("/containers/{id}/kill", post(container_kill))
        .route("/containers/{id}/pause", post(container_pause))
        .route("/containers/{id}/unpause", post(container_unpause))
        .route("/containers/{id}/wait", post(container_wait))
        .route("/containers/{id}/rename", post(container_rename))
        .route("/containers/{id}/resize", post(container_resize))
        .route("/containers/{id}/attach", post(container_attach))
        .route("/containers/{id}/logs", get(container_logs))
        .route("/containers/{id}", delete(container_delete))
        .route("/containers/{id}/exec", post(exec_create))
        .route("/exec/{id}/start", post(exec_start))
        .route("/exec/{id}/json", get(exec_inspect))
        .route("/exec/{id}/resize", post(exec_resize))
        .route("/containers/{id}/top", get(container_top))
        .route("/containers/{id}/export", get(container_export))
        .route("/containers/{id}/changes", get(container_changes))
        .route("/commit", post(commit))
        .route("/auth", post(auth))
        .route("/images/get", get(images_save))
        .route(
            "/containers/{id}/archive",
            get(archive_get).head(archive_head).put(archive_put),
        )
        .route("/containers/{id}/stats", get(container_stats))
        .route("/containers/prune", post(container_prune))
        .route("/volumes", get(volume_list))
        .route("/volumes/create", post(volume_create))
        .route("/volumes/prune", post(volume_prune))
        .route("/volumes/{name}", get(volume_inspect).delete(volume_delete))
        .route("/images/prune", post(image_prune))
        .route("/system/df", get(system_df))
        .route("/images/json", get(image_list))
        .route("/images/load", post(image_load))
        .route("/images/search", get(image_search))
        .route(
            "/images/{*rest}",
            get(image_get).post(image_post).delete(image_delete),
        )
        .route("/networks", get(network_list))
        .route("/networks/{id}", get(network_inspect))
        .fallback(not_found)
        .with_state(state)
}

/// Wraps the router: strips and checks the `/vX.Y` prefix, adds Docker's headers.
pub async fn version_gate(mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let (v, rest) = split_path(&path);
    let version = match v {
        None => ApiVersion::current(),
        Some(v) => match ApiVersion::parse(v) {
            Some(p) if p < ApiVersion::minimum() => {
                return ApiError::bad_request(format!(
                    "client version {v} is too old. Minimum supported API version is {MINIMUM}, please upgrade your client to a newer version"
                ))
                .into_response()
            }
            Some(p) if p > ApiVersion::current() => {
                return ApiError::bad_request(format!(
                    "client version {v} is too new. Maximum supported API version is {CURRENT}"
                ))
                .into_response()
            }
            Some(p) => p,
            None => return not_found().await,
        },
    };
    if v.is_some() {
        let pq = match req.uri().query() {
            Some(q) => format!("{rest}?{q}"),
            None => rest.to_owned(),
        };
        if let Ok(uri) = pq.parse() {
            *req.uri_mut() = uri;
        }
    }
    req.extensions_mut().insert(version);
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(CURRENT));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert(
        header::SERVER,
        HeaderValue::from_static(concat!("Berth/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    resp
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"message": "page not found"})),
    )
        .into_response()
}

async fn ping(method: Method) -> Response {
    let mut r = if method == Method::HEAD {
        StatusCode::OK.into_response()
    } else {
        (StatusCode::OK, "OK").into_response()
    };
    let h = r.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert("Builder-Version", HeaderValue::from_static("1"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn kernel_version() -> String {
    rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned()
}

async fn version(State(s): State<Arc<ApiState>>) -> Response {
    let kernel = kernel_version();
    Json(json!({
        "Platform": { "Name": "Berth" },
        "Components": [{
            "Name": "Engine",
            "Version": s.daemon_version,
            "Details": {
                "ApiVersion": CURRENT, "MinAPIVersion": MINIMUM, "Os": "linux", "Arch": "amd64",
                "KernelVersion": kernel, "GitCommit": "", "GoVersion": "", "BuildTime": "", "Experimental": "false",
            },
        }],
        "Version": s.daemon_version,
        "ApiVersion": CURRENT,
        "MinAPIVersion": MINIMUM,
        "GitCommit": "",
        "GoVersion": "",
        "Os": "linux",
        "Arch": "amd64",
        "KernelVersion": kernel,
        "BuildTime": "",
    }))
    .into_response()
}

fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_owned())
            })
        })
        .unwrap_or_else(|| "Linux".into())
}

async fn info(State(s): State<Arc<ApiState>>) -> ApiResult {
    let containers = s.engine.list_containers();
    let running = containers
        .iter()
        .filter(|c| c.state.status == berth_engine::Status::Running)
        .count();
    let paused = containers
        .iter()
        .filter(|c| c.state.status == berth_engine::Status::Paused)
        .count();
    let images = s.engine.list_images().await?.len();
    let cgroup_v2 = std::fs::metadata("/sys/fs/cgroup/cgroup.controllers").is_ok();
    let ncpu = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let hostname = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    Ok(Json(json!({
        "ID": "berth",
        "Containers": containers.len(),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": containers.len() - running - paused,
        "Images": images,
        "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"], ["Using metacopy", "false"], ["Native Overlay Diff", "true"]],
        "Plugins": { "Volume": ["local"], "Network": ["host", "none"], "Authorization": null, "Log": ["json-file", "none"] },
        "MemoryLimit": true, "SwapLimit": true, "CpuCfsPeriod": true, "CpuCfsQuota": true, "CPUShares": true, "CPUSet": true,
        "PidsLimit": true, "IPv4Forwarding": false, "Debug": false, "NFd": 0, "OomKillDisable": false, "NGoroutines": 0,
        "SystemTime": berth_engine::now_rfc3339(), "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs", "CgroupVersion": if cgroup_v2 { "2" } else { "1" },
        "NEventsListener": 0, "KernelVersion": kernel_version(), "OperatingSystem": os_name(), "OSVersion": "",
        "OSType": "linux", "Architecture": std::env::consts::ARCH,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": { "AllowNondistributableArtifactsCIDRs": null, "AllowNondistributableArtifactsHostnames": null, "InsecureRegistryCIDRs": ["127.0.0.0/8"], "IndexConfigs": {}, "Mirrors": null },
        "NCPU": ncpu, "MemTotal": mem_total(), "GenericResources": null,
        "DockerRootDir": s.root, "HttpProxy": "", "HttpsProxy": "", "NoProxy": "",
        "Name": hostname, "Labels": [], "ExperimentalBuild": false, "ServerVersion": s.daemon_version,
        "Runtimes": { "berth": { "path": "berth-runtime" } }, "DefaultRuntime": "berth",
        "Swarm": { "NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": false, "Error": "", "RemoteManagers": null },
        "LiveRestoreEnabled": true, "Isolation": "", "InitBinary": "",
        "ContainerdCommit": { "ID": "" }, "RuncCommit": { "ID": "" }, "InitCommit": { "ID": "" },
        "SecurityOptions": ["name=seccomp,profile=builtin", "name=no-new-privileges"],
        "CDISpecDirs": [], "Warnings": [],
    }))
    .into_response())
}

/// Events: the kept history from `since`, then live ones until `until`.
async fn events(State(s): State<Arc<ApiState>>, Query(q): Q) -> ApiResult {
    let since = q
        .get("since")
        .and_then(|v| berth_engine::parse_timestamp(v));
    let until = q
        .get("until")
        .and_then(|v| berth_engine::parse_timestamp(v));
    let filters = parse_filters(q.get("filters"))?;
    let keep = move |e: &berth_engine::Event| -> bool {
        let want = |k: &str, v: &str| filters.get(k).is_none_or(|set| set.iter().any(|x| x == v));
        let name = e
            .attributes
            .iter()
            .find(|(k, _)| k == "name")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        want("type", &e.kind)
            && want("event", &e.action)
            && filters.get("container").is_none_or(|set| {
                e.kind == "container"
                    && set
                        .iter()
                        .any(|x| x == &e.id || x == name || e.id.starts_with(x.as_str()))
            })
    };
    let rx = s.engine.subscribe();
    let past: Vec<berth_engine::Event> = if since.is_some() {
        berth_engine::past_events()
            .into_iter()
            .filter(|e| {
                since.is_none_or(|t| e.time_nano >= t) && until.is_none_or(|t| e.time_nano < t)
            })
            .collect()
    } else {
        Vec::new()
    };
    let now = i128::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    )
    .unwrap_or(0);
    let keep2 = keep.clone();
    let history = futures_util::stream::iter(past.into_iter().filter(move |e| keep(e)));
    let live_done = until.is_some_and(|u| u <= now);
    let live = tokio_stream::wrappers::BroadcastStream::new(rx)
        .filter_map(|e| async move { e.ok() })
        .take_while(move |e| {
            let ok = until.is_none_or(|u| e.time_nano < u);
            async move { ok }
        })
        .filter(move |e| {
            let ok = keep2(e);
            async move { ok }
        });
    let live: std::pin::Pin<Box<dyn futures_util::Stream<Item = berth_engine::Event> + Send>> =
        if live_done {
            Box::pin(futures_util::stream::empty())
        } else if let Some(u) = until {
            let wait = u.saturating_sub(now);
            let deadline = tokio::time::sleep(std::time::Duration::from_nanos(
                u64::try_from(wait).unwrap_or(0),
            ));
            Box::pin(live.take_until(deadline))
        } else {
            Box::pin(live)
        };
    let body = history.chain(live).map(|e| {
        let secs = i64::try_from(e.time_nano / 1_000_000_000).unwrap_or(0);
        let attrs: BTreeMap<String, String> = e.attributes.into_iter().collect();
        let mut v = json!({
            "Type": e.kind, "Action": e.action,
            "Actor": { "ID": e.id, "Attributes": attrs },
            "scope": "local", "time": secs, "timeNano": e.time_nano,
        });
        if v["Type"] == "container" {
            v["status"] = v["Action"].clone();
            v["id"] = v["Actor"]["ID"].clone();
            v["from"] = v["Actor"]["Attributes"]["image"].clone();
        }
        let mut line = serde_json::to_vec(&v).unwrap_or_default();
        line.push(b'\n');
        Ok::<_, std::io::Error>(bytes::Bytes::from(line))
    });
    let mut r = Body::from_stream(body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

fn parse_filters(raw: Option<&String>) -> Result<HashMap<String, Vec<String>>, ApiError> {
    crate::decode::filters(raw.map(String::as_str)).map_err(ApiError::bad_request)
}

async fn read_json<T: serde::de::DeserializeOwned + Default>(body: Body) -> Result<T, ApiError> {
    let bytes = axum::body::to_bytes(body, MAX_JSON_BODY)
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
}

async fn container_create(State(s): State<Arc<ApiState>>, Query(q): Q, body: Body) -> ApiResult {
    let b: crate::decode::CreateBody = read_json(body).await?;
    let req = CreateContainer {
        name: q.get("name").cloned(),
        config: b.config,
        host_config: b.host_config,
    };
    match s
        .engine
        .handle(Action::ContainerCreate(Box::new(req)))
        .await?
    {
        Outcome::Created(c) => Ok((
            StatusCode::CREATED,
            Json(json!({"Id": c.id, "Warnings": c.warnings})),
        )
            .into_response()),
        o => Err(unexpected(&o)),
    }
}

async fn container_list(State(s): State<Arc<ApiState>>, Query(q): Q) -> ApiResult {
    let all = flag(&q, "all");
    let limit = int(&q, "limit")?.filter(|l| *l > 0);
    let filters = parse_filters(q.get("filters"))?;
    let records = match s.engine.handle(Action::ContainerList).await? {
        Outcome::Containers(c) => c,
        o => return Err(unexpected(&o)),
    };
    let mut images: HashMap<String, String> = HashMap::new();
    let mut out = Vec::new();
    for r in records {
        let has_status_filter = filters.contains_key("status");
        if !all && limit.is_none() && !has_status_filter && !r.state.status.is_running() {
            continue;
        }
        if !container_matches(&r, &filters) {
            continue;
        }
        let image = match images.get(&r.image_id) {
            Some(i) => i.clone(),
            None => {
                let name = if r.config.image.is_empty() {
                    r.image_id.clone()
                } else {
                    r.config.image.clone()
                };
                images.insert(r.image_id.clone(), name.clone());
                name
            }
        };
        out.push(wire::container_summary(&r, &image));
        if limit.is_some_and(|l| out.len() >= usize::try_from(l).unwrap_or(usize::MAX)) {
            break;
        }
    }
    Ok(Json(Value::Array(out)).into_response())
}

fn container_matches(r: &berth_engine::ContainerRecord, f: &HashMap<String, Vec<String>>) -> bool {
    for (k, vals) in f {
        if vals.is_empty() {
            continue;
        }
        let ok = match k.as_str() {
            "id" => vals.iter().any(|v| r.id.starts_with(v.as_str())),
            "name" => vals
                .iter()
                .any(|v| r.short_name().contains(v.trim_start_matches('/'))),
            "status" => vals.iter().any(|v| v == r.state.status.as_str()),
            "exited" => {
                r.state.status == berth_engine::Status::Exited
                    && vals
                        .iter()
                        .any(|v| v.parse::<i32>().ok() == Some(r.state.exit_code))
            }
            "label" => vals.iter().all(|v| {
                let labels = wire::labels_of(r);
                match v.split_once('=') {
                    Some((k, val)) => labels.get(k).is_some_and(|x| x == val),
                    None => labels.contains_key(v),
                }
            }),
            "ancestor" => vals
                .iter()
                .any(|v| &r.config.image == v || r.image_id.contains(v.as_str())),
            "volume" | "network" | "publish" | "expose" | "health" | "isolation" | "is-task"
            | "before" | "since" => true,
            _ => true,
        };
        if !ok {
            return false;
        }
    }
    true
}

async fn container_inspect(State(s): State<Arc<ApiState>>, Path(id): Path<String>) -> ApiResult {
    match s.engine.handle(Action::ContainerInspect { id }).await? {
        Outcome::Container(r) => {
            let dir = s.root.join("containers").join(&r.id);
            Ok(Json(wire::container_inspect(&r, &dir)).into_response())
        }
        o => Err(unexpected(&o)),
    }
}

async fn done(s: &ApiState, a: Action) -> ApiResult {
    match s.engine.handle(a).await? {
        Outcome::Done => Ok(StatusCode::NO_CONTENT.into_response()),
        o => Err(unexpected(&o)),
    }
}

async fn container_start(State(s): State<Arc<ApiState>>, Path(id): Path<String>) -> ApiResult {
    done(&s, Action::ContainerStart { id }).await
}

fn stop_args(q: &HashMap<String, String>) -> Result<(Option<i64>, Option<String>), ApiError> {
    Ok((
        int(q, "t")?.or(int(q, "timeout")?),
        q.get("signal").cloned().filter(|s| !s.is_empty()),
    ))
}

async fn container_stop(
    State(s): State<Arc<ApiState>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> ApiResult {
    let (timeout, signal) = stop_args(&q)?;
    done(
        &s,
        Action::ContainerStop {
            id,
            timeout,
            signal,
        },
    )
    .await
}

async fn container_restart(
    State(s): State<Arc<ApiState>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> ApiResult {
    let (timeout, signal) = stop_args(&q)?;
    done(
        &s,
        Action::ContainerRestart {
            id,
            timeout,
            signal,
        },
    )
    .await
}

async fn container_kill(
    State(s): State<Arc<ApiState>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> ApiResult {
    done(
        &s,
        Action::ContainerKill {
            id,
            signal: q.get("signal").cloned(),
        },
    )
    .await
}

async fn container_pause(State(s): State<Arc<ApiState>>, Path(id): Path<String>) -> ApiResult {
    done(&s, Action::ContainerPause { id }).await
}

async fn container_unpause(State(s): State<Arc<ApiState>>, Path(id): Path<String>) -> ApiResult {
    done(&s, Action::ContainerUnpause { id }).await
}

async fn container_rename(
    State(s): State<Arc<ApiState>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> ApiResult {
    let name = q.get("name").cloned().unwrap_or_default();
    done(&s, Action::ContainerRename { id, name }).await
}

/// The `h`/`w` query values of a resize.
fn size(q: &HashMap<String, String>) -> Result<(u16, u16), ApiError> {
    let dim = |k: &str| {
        u16::try_from(int(q, k)?.unwrap_or(0))
            .map_err(|_| ApiError::bad_request(format!("invalid {k}: must be 0-65535")))
    };
    Ok((dim("h")?, dim("w")?))
}

/// Runs an action answered by `Done` with 200 (resize answers 200, not 204).
async fn ok_200(s: &ApiState, a: Action) -> ApiResult {
    match s.engine.handle(a).await? {
        Outcome::Done => Ok(StatusCode::OK.into_response()),
        o => Err(unexpected(&o)),
    }
}

async fn container_resize(
    State(s): State<Arc<ApiState>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> ApiResult {
    let (height, width) = size(&q)?;
    ok_200(&s, Action::ContainerResize { id, height, width }).await
}

async fn container_wait(
    State(s): State<Arc<ApiState>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> ApiResult {
    let condition = match q.get("condition").map(String::as_str) {
        None | Some("") | Some("not-running") => WaitCondition::NotRunning,
        Some("next-exit") => WaitCondition::NextExit,
        Some("removed") => WaitCondition::Removed,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid condition: \"{other}\""
            )))
        }
    };
    let fut = match s
        .engine
        .handle(Action::ContainerWait { id, condition })
        .await?
    {
        Outcome::Wait(f) => f,
        o => return Err(unexpected(&o)),
    };
    // Headers go out now (the wait is registered); the body when the container exits.
    let body = futures_util::stream::once(async move {
        let code = fut.await;
        let mut v = serde_json::to_vec(&json!({"StatusCode": code})).unwrap_or_default();
        v.push(b'\n');
        Ok::<_, std::io::Error>(bytes::Bytes::from(v))
    });
    let mut r = Body::from_stream(body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

async fn container_delete(
    State(s): State<Arc<ApiState>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> ApiResult {
    if flag(&q, "link") {
        return Err(ApiError::bad_request(
            "Conflict, cannot remove the default link name of the container",
        ));
    }
    done(
        &s,
        Action::ContainerRemove {
            id,
            force: flag(&q, "force"),
            volumes: flag(&q, "v"),
        },
    )
    .await
}

fn frame(stream: u8, data: &[u8]) -> Vec<u8> {
    let len = u32::try_from(data.len()).unwrap_or(u32::MAX).to_be_bytes();
    let mut v = Vec::with_capacity(8 + data.len());
    v.extend_from_slice(&[stream, 0, 0, 0, len[0], len[1], len[2], len[3]]);
    v.extend_from_slice(data);
    v
}

async fn container_logs(
    State(s): State<Arc<ApiState>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> ApiResult {
    let (stdout, stderr) = (flag(&q, "stdout"), flag(&q, "stderr"));
    if !stdout && !stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let tail = match q.get("tail").map(String::as_str) {
        None | Some("") | Some("all") => None,
        Some(n) => Some(
            n.parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("invalid tail: {n}")))?,
        ),
    };
    let ts = |k: &str| -> Result<Option<i128>, ApiError> {
        match q.get(k).filter(|v| !v.is_empty() && v.as_str() != "0") {
            None => Ok(None),
            Some(v) => berth_engine::parse_timestamp(v)
                .map(Some)
                .ok_or_else(|| ApiError::bad_request(format!("invalid {k}: {v}"))),
        }
    };
    let opts = LogsOptions {
        stdout,
        stderr,
        since: ts("since")?,
        until: ts("until")?,
        tail,
        follow: flag(&q, "follow"),
    };
    let timestamps = flag(&q, "timestamps");
    let tty = s
        .engine
        .inspect_container(&id)
        .map(|r| r.config.tty)
        .unwrap_or(false);
    let rx = match s
        .engine
        .handle(Action::ContainerLogs { id, options: opts })
        .await?
    {
        Outcome::Logs(rx) => rx,
        o => return Err(unexpected(&o)),
    };
    let body = tokio_stream::wrappers::ReceiverStream::new(rx).map(move |e| {
        let mut data = Vec::new();
        if timestamps {
            data.extend_from_slice(e.time.as_bytes());
            data.push(b' ');
        }
        data.extend_from_slice(&e.data);
        let out = if tty { data } else { frame(e.stream, &data) };
        Ok::<_, std::io::Error>(bytes::Bytes::from(out))
    });
    let mut r = Body::from_stream(body).into_response();
    let ct = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    Ok(r)
}

async fn container_attach(
    State(s): State<Arc<ApiState>>,
    Path(id): Path<String>,
    Query(q): Q,
    mut req: Request,
) -> ApiResult {
    let opts = AttachOptions {
        stdin: flag(&q, "stdin"),
        stdout: flag(&q, "stdout"),
        stderr: flag(&q, "stderr"),
    };
    let logs = flag(&q, "logs");
    let stream = flag(&q, "stream");
    let wants_upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("tcp"));
    if !wants_upgrade {
        return Err(ApiError::bad_request(
            "attach needs a connection upgrade (Upgrade: tcp)",
        ));
    }
    let rec = s.engine.inspect_container(&id)?;
    let tty = rec.config.tty;
    // Past output first (`logs=1`), then the live stream (`stream=1`).
    let past = if logs {
        let o = LogsOptions {
            stdout: opts.stdout,
            stderr: opts.stderr,
            ..LogsOptions::default()
        };
        match s
            .engine
            .handle(Action::ContainerLogs {
                id: id.clone(),
                options: o,
            })
            .await
        {
            Ok(Outcome::Logs(rx)) => Some(rx),
            _ => None,
        }
    } else {
        None
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let engine = s.engine.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let client = hyper_util::rt::TokioIo::new(upgraded);
        let (cr, mut cw) = tokio::io::split(client);
        if let Some(mut rx) = past {
            while let Some(e) = rx.recv().await {
                let data = if tty {
                    e.data
                } else {
                    frame(e.stream, &e.data)
                };
                if cw.write_all(&data).await.is_err() {
                    return;
                }
            }
        }
        if !stream {
            let _ = cw.shutdown().await;
            return;
        }
        // Connected now, or (not started yet) when it starts: the client must have
        // its 101 before it sends the start.
        let live = match engine
            .handle(Action::ContainerAttach { id, options: opts })
            .await
        {
            Ok(Outcome::Attach(a)) => a,
            Ok(_) | Err(_) => {
                let _ = cw.shutdown().await;
                return;
            }
        };
        let client = cr.unsplit(cw);
        pump(client, live.stream).await;
    });
    let ct = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    let mut r = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    Ok(r)
}

async fn image_list(State(s): State<Arc<ApiState>>, Query(q): Q) -> ApiResult {
    let filters = parse_filters(q.get("filters"))?;
    let list = match s.engine.handle(Action::ImageList).await? {
        Outcome::Images(l) => l,
        o => return Err(unexpected(&o)),
    };
    let all = flag(&q, "all");
    let out: Vec<Value> = list
        .iter()
        .filter(|i| {
            let dangling = i.repo_tags.is_empty();
            let ok_dangling = match filters.get("dangling").and_then(|v| v.first()) {
                Some(v) if v == "true" => dangling,
                Some(v) if v == "false" => !dangling,
                _ => true,
            };
            let ok_ref = filters.get("reference").is_none_or(|refs| {
                refs.iter().any(|r| {
                    i.repo_tags.iter().any(|t| {
                        let f = wire::familiar(t);
                        f == *r || f.split(':').next() == Some(r.as_str())
                    })
                })
            });
            let _ = all;
            ok_dangling && ok_ref
        })
        .map(wire::image_summary)
        .collect();
    Ok(Json(Value::Array(out)).into_response())
}

async fn image_search() -> ApiResult {
    Err(ApiError::new(ErrorKind::NotImplemented, "image search is not supported by berthd: search your registry's web interface or catalog instead"))
}

async fn image_get(State(s): State<Arc<ApiState>>, Path(rest): Path<String>) -> ApiResult {
    if let Some(name) = rest.strip_suffix("/json") {
        return match s
            .engine
            .handle(Action::ImageInspect {
                name: name.to_owned(),
            })
            .await?
        {
            Outcome::Image(i) => Ok(Json(wire::image_inspect(&i)).into_response()),
            o => Err(unexpected(&o)),
        };
    }
    if let Some(name) = rest.strip_suffix("/get") {
        return save_response(&s, vec![name.to_owned()]).await;
    }
    if let Some(name) = rest.strip_suffix("/history") {
        return match s
            .engine
            .handle(Action::ImageHistory {
                name: name.to_owned(),
            })
            .await?
        {
            Outcome::History(h) => {
                let id = s
                    .engine
                    .inspect_image(name)
                    .await
                    .map(|i| i.id.to_string())
                    .unwrap_or_default();
                let out: Vec<Value> = h
                    .iter()
                    .enumerate()
                    .map(|(n, e)| {
                        json!({
                            "Id": if n == 0 { id.clone() } else { "<missing>".to_owned() },
                            "Created": e.created.as_deref().map(wire::unix_seconds).unwrap_or(0),
                            "CreatedBy": e.created_by.clone().unwrap_or_default(),
                            "Tags": null,
                            "Size": e.size,
                            "Comment": e.comment.clone().unwrap_or_default(),
                        })
                    })
                    .collect();
                Ok(Json(Value::Array(out)).into_response())
            }
            o => Err(unexpected(&o)),
        };
    }
    Err(ApiError::new(ErrorKind::NotFound, "page not found"))
}

async fn image_post(
    State(s): State<Arc<ApiState>>,
    Path(rest): Path<String>,
    Query(q): Q,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    if rest == "create" {
        return image_create(&s, &q, &headers, body).await;
    }
    if let Some(name) = rest.strip_suffix("/push") {
        registry_auth(&s, &headers);
        let reference = match q.get("tag").filter(|t| !t.is_empty()) {
            Some(t) => format!("{name}:{t}"),
            None => name.to_owned(),
        };
        return match s.engine.handle(Action::ImagePush { reference }).await? {
            Outcome::Transfer(rx) => Ok(progress_stream(rx)),
            o => Err(unexpected(&o)),
        };
    }
    if let Some(name) = rest.strip_suffix("/tag") {
        let repo = q.get("repo").cloned().unwrap_or_default();
        let tag = q
            .get("tag")
            .cloned()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "latest".into());
        if repo.is_empty() {
            return Err(ApiError::bad_request(
                "repository name must have at least one component",
            ));
        }
        let target = format!("{repo}:{tag}");
        return match s
            .engine
            .handle(Action::ImageTag {
                source: name.to_owned(),
                target,
            })
            .await?
        {
            Outcome::Done => Ok(StatusCode::CREATED.into_response()),
            o => Err(unexpected(&o)),
        };
    }
    Err(ApiError::new(ErrorKind::NotFound, "page not found"))
}

async fn image_delete(
    State(s): State<Arc<ApiState>>,
    Path(name): Path<String>,
    Query(q): Q,
) -> ApiResult {
    match s
        .engine
        .handle(Action::ImageRemove {
            name,
            force: flag(&q, "force"),
        })
        .await?
    {
        Outcome::ImagesRemoved(out) => {
            let v: Vec<Value> = out
                .iter()
                .map(|o| match o {
                    berth_images::service::RemoveOutcome::Untagged(n) => {
                        json!({"Untagged": wire::familiar(n)})
                    }
                    berth_images::service::RemoveOutcome::Deleted(d) => {
                        json!({"Deleted": d.to_string()})
                    }
                })
                .collect();
            Ok(Json(Value::Array(v)).into_response())
        }
        o => Err(unexpected(&o)),
    }
}

async fn image_load(
    State(s): State<Arc<ApiState>>,
    Query(q): Q,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let quiet = flag(&q, "quiet");
    let _ = headers;
    // Archives are read by offset: spool the upload to a file in the store first.
    let spool_dir = s.root.join("tmp");
    tokio::fs::create_dir_all(&spool_dir).await.map_err(|e| {
        ApiError::new(
            ErrorKind::Internal,
            format!("create {}: {e}", spool_dir.display()),
        )
    })?;
    let tmp = tempfile::NamedTempFile::new_in(&spool_dir)
        .map_err(|e| ApiError::new(ErrorKind::Internal, format!("spool file: {e}")))?;
    let (file, path) = tmp.into_parts();
    let mut f = tokio::fs::File::from_std(file);
    let mut stream = body.into_data_stream();
    let mut total: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("reading the archive: {e}")))?;
        total += chunk.len() as u64;
        if total > MAX_LOAD_BODY {
            return Err(ApiError::bad_request("archive too large"));
        }
        f.write_all(&chunk).await.map_err(|e| {
            ApiError::new(ErrorKind::Internal, format!("spooling the archive: {e}"))
        })?;
    }
    f.flush()
        .await
        .map_err(|e| ApiError::new(ErrorKind::Internal, format!("spooling the archive: {e}")))?;
    drop(f);
    let loaded = match s
        .engine
        .handle(Action::ImageLoad {
            path: path.to_path_buf(),
        })
        .await
    {
        Ok(Outcome::Loaded(l)) => l,
        Ok(o) => return Err(unexpected(&o)),
        Err(e) => {
            // docker load reports failures inside the stream.
            let msg = e.to_string();
            let line = json!({"errorDetail": {"message": msg}, "error": msg});
            return Ok((
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                format!("{line}\n"),
            )
                .into_response());
        }
    };
    drop(path);
    let mut out = String::new();
    for (names, id) in loaded {
        if names.is_empty() {
            out.push_str(&format!(
                "{}\n",
                json!({"stream": format!("Loaded image ID: {id}\n")})
            ));
        }
        for n in names {
            out.push_str(&format!(
                "{}\n",
                json!({"stream": format!("Loaded image: {}\n", wire::familiar(&n))})
            ));
        }
    }
    let _ = quiet;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        out,
    )
        .into_response())
}

fn builtin_network(name: &str) -> Value {
    json!({
        "Name": name, "Id": wire::network_id(name), "Created": wire::ZERO_TIME, "Scope": "local",
        "Driver": if name == "none" { "null" } else { name }, "EnableIPv4": false, "EnableIPv6": false,
        "IPAM": { "Driver": "default", "Options": null, "Config": [] },
        "Internal": false, "Attachable": false, "Ingress": false, "ConfigFrom": { "Network": "" }, "ConfigOnly": false,
        "Containers": {}, "Options": {}, "Labels": {},
    })
}

async fn network_list() -> Response {
    Json(json!([builtin_network("host"), builtin_network("none")])).into_response()
}

async fn network_inspect(Path(id): Path<String>) -> ApiResult {
    for n in ["host", "none"] {
        if id == n || wire::network_id(n).starts_with(&id) {
            return Ok(Json(builtin_network(n)).into_response());
        }
    }
    Err(ApiError::new(
        ErrorKind::NotFound,
        format!("network {id} not found"),
    ))
}

async fn exec_create(
    State(s): State<Arc<ApiState>>,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult {
    let config: berth_engine::ExecConfig = read_json(body).await?;
    match s
        .engine
        .handle(Action::ExecCreate {
            id,
            config: Box::new(config),
        })
        .await?
    {
        Outcome::Id(id) => Ok((StatusCode::CREATED, Json(json!({"Id": id}))).into_response()),
        o => Err(unexpected(&o)),
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ExecStartBody {
    detach: bool,
    tty: bool,
}

async fn exec_start(
    State(s): State<Arc<ApiState>>,
    Path(id): Path<String>,
    mut req: Request,
) -> ApiResult {
    let body = std::mem::take(req.body_mut());
    let b: ExecStartBody = read_json(body).await?;
    let session = s.engine.exec_inspect(&id)?;
    if b.detach {
        return match s
            .engine
            .handle(Action::ExecStart { id, detach: true })
            .await?
        {
            Outcome::ExecStarted(_) => Ok(StatusCode::OK.into_response()),
            o => Err(unexpected(&o)),
        };
    }
    let tty = session.config.tty || b.tty;
    let wants_upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("tcp"));
    let ct = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    if !wants_upgrade {
        // Not hijacked: the output is the response body.
        let live = match s
            .engine
            .handle(Action::ExecStart { id, detach: false })
            .await?
        {
            Outcome::ExecStarted(Some(a)) => a,
            o => return Err(unexpected(&o)),
        };
        let mut r = Body::from_stream(read_stream(live.stream)).into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        return Ok(r);
    }
    // As dockerd: hijack first, then start; a failure to start is written into the
    // stream and the session's exit code (126/127) tells the client the rest.
    let on_upgrade = hyper::upgrade::on(&mut req);
    let engine = s.engine.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut client = hyper_util::rt::TokioIo::new(upgraded);
        match engine.handle(Action::ExecStart { id, detach: false }).await {
            Ok(Outcome::ExecStarted(Some(live))) => pump(client, live.stream).await,
            Ok(_) => {}
            Err(e) => {
                let msg = format!("OCI runtime exec failed: {e}\r\n");
                let data = if tty {
                    msg.into_bytes()
                } else {
                    frame(1, msg.as_bytes())
                };
                let _ = client.write_all(&data).await;
                let _ = client.shutdown().await;
            }
        }
    });
    let mut r = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    Ok(r)
}

/// A monitor's output as a body stream.
fn read_stream(
    stream: tokio::net::UnixStream,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    futures_util::stream::unfold(stream, |mut s| async move {
        let mut buf = vec![0u8; 32 * 1024];
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), s))
            }
        }
    })
}

/// Copies a hijacked client connection to and from a monitor stream until the output
/// ends; the client's half-close closes the process's stdin.
async fn pump<C: tokio::io::AsyncRead + tokio::io::AsyncWrite>(
    client: C,
    monitor: tokio::net::UnixStream,
) {
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut mr, mut mw) = monitor.into_split();
    let to_client = async {
        let _ = tokio::io::copy(&mut mr, &mut cw).await;
        let _ = cw.shutdown().await;
    };
    let from_client = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if mw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = mw.shutdown().await;
        // The output goes on until the process is done.
        std::future::pending::<()>().await;
    };
    tokio::select! {
        () = to_client => {}
        () = from_client => {}
    }
}

async fn exec_inspect(State(s): State<Arc<ApiState>>, Path(id): Path<String>) -> ApiResult {
    match s.engine.handle(Action::ExecInspect { id }).await? {
        Outcome::Exec(e) => {
            let c = &e.config;
            let (entry, args) = c
                .cmd
                .split_first()
                .map_or((String::new(), Vec::new()), |(a, b)| {
                    (a.clone(), b.to_vec())
                });
            Ok(Json(json!({
                "ID": e.id,
                "Running": e.running,
                "ExitCode": e.exit_code,
                "ProcessConfig": { "tty": c.tty, "entrypoint": entry, "arguments": args, "privileged": c.privileged, "user": c.user },
                "OpenStdin": c.attach_stdin,
                "OpenStderr": c.attach_stderr,
                "OpenStdout": c.attach_stdout,
                "CanRemove": false,
                "ContainerID": e.container,
                "DetachKeys": c.detach_keys,
                "Pid": e.pid,
            }))
            .into_response())
        }
        o => Err(unexpected(&o)),
    }
}

async fn exec_resize(
    State(s): State<Arc<ApiState>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> ApiResult {
    let (height, width) = size(&q)?;
    ok_200(&s, Action::ExecResize { id, height, width }).await
}

async fn container_top(
    State(s): State<Arc<ApiState>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> ApiResult {
    let pids = match s.engine.handle(Action::ContainerTop { id }).await? {
        Outcome::Pids(p) => p,
        o => return Err(unexpected(&o)),
    };
    let args = q
        .get("ps_args")
        .filter(|a| !a.is_empty())
        .cloned()
        .unwrap_or_else(|| "-ef".into());
    // As dockerd: the host's ps, its rows filtered to the container's PIDs.
    let out = tokio::process::Command::new("ps")
        .args(args.split_whitespace())
        .output()
        .await
        .map_err(|e| ApiError::new(ErrorKind::Internal, format!("running ps: {e}")))?;
    if !out.status.success() {
        return Err(ApiError::new(
            ErrorKind::Internal,
            format!("ps: {}", String::from_utf8_lossy(&out.stderr).trim()),
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let titles: Vec<&str> = header.split_whitespace().collect();
    let Some(pid_col) = titles.iter().position(|t| *t == "PID") else {
        return Err(ApiError::bad_request(format!(
            "Couldn't find PID field in ps output (ps_args {args:?})"
        )));
    };
    let mut procs = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(pid) = fields.get(pid_col).and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if !pids.contains(&pid) {
            continue;
        }
        // The last column (the command) keeps its spaces.
        let n = titles.len();
        let mut row: Vec<String> = fields
            .iter()
            .take(n.saturating_sub(1))
            .map(|f| (*f).to_owned())
            .collect();
        row.push(
            fields
                .get(n.saturating_sub(1)..)
                .map(|r| r.join(" "))
                .unwrap_or_default(),
        );
        procs.push(row);
    }
    Ok(Json(json!({"Titles": titles, "Processes": procs})).into_response())
}

fn stats_json(
    rec: &berth_engine::ContainerRecord,
    st: Option<&berth_engine::Stats>,
    pre: Option<&(String, berth_engine::Stats)>,
) -> Value {
    let now = berth_engine::now_rfc3339();
    let ncpu = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let system = system_cpu_usage();
    let cpu = |st: Option<&berth_engine::Stats>, sys: u64| match st {
        Some(st) => json!({
            "cpu_usage": {
                "total_usage": st.cpu.usage.total,
                "percpu_usage": st.cpu.usage.percpu,
                "usage_in_kernelmode": st.cpu.usage.kernel,
                "usage_in_usermode": st.cpu.usage.user,
            },
            "system_cpu_usage": sys,
            "online_cpus": ncpu,
            "throttling_data": {
                "periods": st.cpu.throttling.periods,
                "throttled_periods": st.cpu.throttling.throttled_periods,
                "throttled_time": st.cpu.throttling.throttled_time,
            },
        }),
        None => {
            json!({"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0}, "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}})
        }
    };
    let (memory, pids, blkio) = match st {
        Some(st) => {
            let limit = if st.memory.usage.limit == 0 || st.memory.usage.limit >= (1 << 62) {
                mem_total_bytes()
            } else {
                st.memory.usage.limit
            };
            let entries = |v: &[berth_engine::BlkioEntry]| -> Vec<Value> {
                v.iter().map(|e| json!({"major": e.major, "minor": e.minor, "op": e.op, "value": e.value})).collect()
            };
            (
                json!({"usage": st.memory.usage.usage, "max_usage": st.memory.usage.max, "limit": limit, "failcnt": st.memory.usage.failcnt, "stats": st.memory.raw}),
                json!({"current": st.pids.current, "limit": st.pids.limit}),
                json!({
                    "io_service_bytes_recursive": entries(&st.blkio.io_service_bytes_recursive),
                    "io_serviced_recursive": entries(&st.blkio.io_serviced_recursive),
                    "io_queue_recursive": null, "io_service_time_recursive": null, "io_wait_time_recursive": null,
                    "io_merged_recursive": null, "io_time_recursive": null, "sectors_recursive": null,
                }),
            )
        }
        None => (
            json!({}),
            json!({}),
            json!({"io_service_bytes_recursive": null, "io_serviced_recursive": null}),
        ),
    };
    let (preread, precpu) = match pre {
        Some((t, p)) => (t.clone(), cpu(Some(p), system.saturating_sub(1))),
        None => (wire::ZERO_TIME.to_owned(), cpu(None, 0)),
    };
    json!({
        "read": if st.is_some() { now } else { wire::ZERO_TIME.to_owned() },
        "preread": preread,
        "pids_stats": pids,
        "blkio_stats": blkio,
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu(st, system),
        "precpu_stats": precpu,
        "memory_stats": memory,
        "name": rec.name,
        "id": rec.id,
    })
}

fn system_cpu_usage() -> u64 {
    // Jiffies of all CPUs from /proc/stat, in nanoseconds (as dockerd reports them).
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let total: u64 = line
        .split_whitespace()
        .skip(1)
        .take(7)
        .filter_map(|v| v.parse::<u64>().ok())
        .sum();
    total.saturating_mul(10_000_000)
}

fn mem_total_bytes() -> u64 {
    mem_total()
}

async fn container_stats(
    State(s): State<Arc<ApiState>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> ApiResult {
    let stream = q.get("stream").is_none_or(|v| v != "0" && v != "false");
    let one_shot = flag(&q, "one-shot");
    let (rec, first) = match s
        .engine
        .handle(Action::ContainerStats { id: id.clone() })
        .await?
    {
        Outcome::Stats(r, st) => (r, st),
        o => return Err(unexpected(&o)),
    };
    if !stream {
        // Two samples a little apart, so CPU percentages can be computed (unless one-shot).
        let mut pre = None;
        let mut cur = first;
        if !one_shot {
            if let Some(p) = cur.take() {
                pre = Some((berth_engine::now_rfc3339(), *p));
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                if let Ok(Outcome::Stats(_, st)) =
                    s.engine.handle(Action::ContainerStats { id }).await
                {
                    cur = st;
                }
            }
        }
        return Ok(Json(stats_json(&rec, cur.as_deref(), pre.as_ref())).into_response());
    }
    let engine = s.engine.clone();
    let body = futures_util::stream::unfold(
        (first, None::<(String, berth_engine::Stats)>, true),
        move |(cur, pre, first_round)| {
            let engine = engine.clone();
            let id = id.clone();
            let rec = rec.clone();
            async move {
                if !first_round {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
                let cur = if first_round {
                    cur
                } else {
                    match engine.handle(Action::ContainerStats { id }).await {
                        Ok(Outcome::Stats(_, st)) => st,
                        _ => return None,
                    }
                };
                let v = stats_json(&rec, cur.as_deref(), pre.as_ref());
                let mut line = serde_json::to_vec(&v).unwrap_or_default();
                line.push(b'\n');
                let next_pre = cur
                    .as_deref()
                    .cloned()
                    .map(|c| (berth_engine::now_rfc3339(), c));
                Some((
                    Ok::<_, std::io::Error>(bytes::Bytes::from(line)),
                    (None, next_pre, false),
                ))
            }
        },
    );
    let mut r = Body::from_stream(body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

fn label_filters(f: &HashMap<String, Vec<String>>) -> Vec<String> {
    let mut v = f.get("label").cloned().unwrap_or_default();
    v.extend(
        f.get("label!")
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|l| format!("!{l}")),
    );
    v
}

async fn container_prune(State(s): State<Arc<ApiState>>, Query(q): Q) -> ApiResult {
    let f = parse_filters(q.get("filters"))?;
    match s
        .engine
        .handle(Action::ContainerPrune {
            labels: label_filters(&f),
        })
        .await?
    {
        Outcome::Pruned(ids, bytes) => {
            Ok(Json(json!({"ContainersDeleted": ids, "SpaceReclaimed": bytes})).into_response())
        }
        o => Err(unexpected(&o)),
    }
}

fn volume_json(v: &berth_engine::Volume) -> Value {
    json!({
        "Name": v.name,
        "Driver": v.driver,
        "Mountpoint": v.mountpoint,
        "CreatedAt": v.created_at,
        "Labels": v.labels,
        "Scope": "local",
        "Options": if v.options.is_empty() { Value::Null } else { json!(v.options) },
    })
}

async fn volume_list(State(s): State<Arc<ApiState>>, Query(q): Q) -> ApiResult {
    let f = parse_filters(q.get("filters"))?;
    let vols = match s.engine.handle(Action::VolumeList).await? {
        Outcome::Volumes(v) => v,
        o => return Err(unexpected(&o)),
    };
    let out: Vec<Value> = vols
        .iter()
        .filter(|v| {
            f.get("name")
                .is_none_or(|n| n.iter().any(|x| v.name.contains(x.as_str())))
        })
        .filter(|v| {
            f.get("driver")
                .is_none_or(|n| n.iter().any(|x| x == &v.driver))
        })
        .filter(|v| {
            f.get("label").is_none_or(|ls| {
                ls.iter().all(|l| match l.split_once('=') {
                    Some((k, val)) => v.labels.get(k).is_some_and(|x| x == val),
                    None => v.labels.contains_key(l),
                })
            })
        })
        .filter(|v| match f.get("dangling").and_then(|d| d.first()) {
            Some(d) => {
                let dangling = s.engine.volume_users(&v.name).is_empty();
                (d == "true" || d == "1") == dangling
            }
            None => true,
        })
        .map(volume_json)
        .collect();
    Ok(Json(json!({"Volumes": out, "Warnings": []})).into_response())
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct VolumeCreateBody {
    name: String,
    driver: String,
    driver_opts: Option<BTreeMap<String, String>>,
    labels: Option<BTreeMap<String, String>>,
}

async fn volume_create(State(s): State<Arc<ApiState>>, body: Body) -> ApiResult {
    let b: VolumeCreateBody = read_json(body).await?;
    if !b.driver.is_empty() && b.driver != "local" {
        return Err(ApiError::new(
            ErrorKind::NotFound,
            format!("plugin \"{}\" not found", b.driver),
        ));
    }
    let a = Action::VolumeCreate {
        name: Some(b.name).filter(|n| !n.is_empty()),
        labels: b.labels.unwrap_or_default(),
        options: b.driver_opts.unwrap_or_default(),
    };
    match s.engine.handle(a).await? {
        Outcome::Volume(v) => Ok((StatusCode::CREATED, Json(volume_json(&v))).into_response()),
        o => Err(unexpected(&o)),
    }
}

async fn volume_inspect(State(s): State<Arc<ApiState>>, Path(name): Path<String>) -> ApiResult {
    match s.engine.handle(Action::VolumeInspect { name }).await? {
        Outcome::Volume(v) => Ok(Json(volume_json(&v)).into_response()),
        o => Err(unexpected(&o)),
    }
}

async fn volume_delete(
    State(s): State<Arc<ApiState>>,
    Path(name): Path<String>,
    Query(q): Q,
) -> ApiResult {
    done(
        &s,
        Action::VolumeRemove {
            name,
            force: flag(&q, "force"),
        },
    )
    .await
}

async fn volume_prune(State(s): State<Arc<ApiState>>, Query(q): Q) -> ApiResult {
    let f = parse_filters(q.get("filters"))?;
    let all = f
        .get("all")
        .and_then(|v| v.first())
        .is_some_and(|v| v == "true" || v == "1");
    match s
        .engine
        .handle(Action::VolumePrune {
            all,
            labels: label_filters(&f),
        })
        .await?
    {
        Outcome::Pruned(names, bytes) => {
            Ok(Json(json!({"VolumesDeleted": names, "SpaceReclaimed": bytes})).into_response())
        }
        o => Err(unexpected(&o)),
    }
}

async fn image_prune(State(s): State<Arc<ApiState>>, Query(q): Q) -> ApiResult {
    let f = parse_filters(q.get("filters"))?;
    let all = f
        .get("dangling")
        .and_then(|v| v.first())
        .is_some_and(|v| v == "false" || v == "0");
    match s.engine.handle(Action::ImagePrune { all }).await? {
        Outcome::ImagesPruned(out, bytes) => {
            let v: Vec<Value> = out
                .iter()
                .map(|o| match o {
                    berth_images::service::RemoveOutcome::Untagged(n) => {
                        json!({"Untagged": wire::familiar(n)})
                    }
                    berth_images::service::RemoveOutcome::Deleted(d) => {
                        json!({"Deleted": d.to_string()})
                    }
                })
                .collect();
            Ok(Json(json!({"ImagesDeleted": v, "SpaceReclaimed": bytes})).into_response())
        }
        o => Err(unexpected(&o)),
    }
}

async fn system_df(State(s): State<Arc<ApiState>>) -> ApiResult {
    let du = match s.engine.handle(Action::SystemDf).await? {
        Outcome::DiskUsage(d) => d,
        o => return Err(unexpected(&o)),
    };
    let images: Vec<Value> = du
        .images
        .iter()
        .map(|i| json!({
            "Id": i.id.to_string(), "ParentId": "", "RepoTags": i.repo_tags.iter().map(|t| wire::familiar(t)).collect::<Vec<_>>(),
            "RepoDigests": [], "Created": 0, "Size": i.size, "SharedSize": i.shared_size, "VirtualSize": i.size,
            "Labels": {}, "Containers": i.containers,
        }))
        .collect();
    let sizes: HashMap<String, u64> = du
        .containers
        .iter()
        .map(|c| (c.container_id.clone(), c.size))
        .collect();
    let containers: Vec<Value> = s
        .engine
        .list_containers()
        .iter()
        .map(|r| {
            let mut v = wire::container_summary(r, &r.config.image);
            v["SizeRw"] = json!(sizes.get(&r.id).copied().unwrap_or(0));
            v["SizeRootFs"] = json!(0);
            v
        })
        .collect();
    let volumes: Vec<Value> = s
        .engine
        .volume_list()
        .iter()
        .map(|v| {
            let mut j = volume_json(v);
            j["UsageData"] = json!({"Size": -1, "RefCount": s.engine.volume_users(&v.name).len()});
            j
        })
        .collect();
    Ok(Json(json!({
        "LayersSize": du.layers_size,
        "Images": images,
        "Containers": containers,
        "Volumes": volumes,
        "BuildCache": [],
    }))
    .into_response())
}

fn stat_header(st: &berth_engine::PathStat) -> Result<HeaderValue, ApiError> {
    use base64::Engine as _;
    let json =
        serde_json::to_vec(st).map_err(|e| ApiError::new(ErrorKind::Internal, e.to_string()))?;
    HeaderValue::from_str(&base64::engine::general_purpose::STANDARD.encode(json))
        .map_err(|e| ApiError::new(ErrorKind::Internal, e.to_string()))
}

fn archive_path(q: &HashMap<String, String>) -> Result<String, ApiError> {
    q.get("path")
        .filter(|p| !p.is_empty())
        .cloned()
        .ok_or_else(|| ApiError::bad_request("path is required"))
}

async fn archive_head(
    State(s): State<Arc<ApiState>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> ApiResult {
    let path = archive_path(&q)?;
    match s.engine.handle(Action::ArchiveStat { id, path }).await? {
        Outcome::Archive(st, _) => {
            let mut r = StatusCode::OK.into_response();
            r.headers_mut()
                .insert("X-Docker-Container-Path-Stat", stat_header(&st)?);
            Ok(r)
        }
        o => Err(unexpected(&o)),
    }
}

async fn archive_get(
    State(s): State<Arc<ApiState>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> ApiResult {
    let path = archive_path(&q)?;
    match s.engine.handle(Action::ArchiveGet { id, path }).await? {
        Outcome::Archive(st, Some(file)) => {
            let f = tokio::fs::File::from_std(file);
            let body = Body::from_stream(tokio_util_reader(f));
            let mut r = body.into_response();
            r.headers_mut()
                .insert("X-Docker-Container-Path-Stat", stat_header(&st)?);
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-tar"),
            );
            Ok(r)
        }
        o => Err(unexpected(&o)),
    }
}

fn tokio_util_reader(
    f: tokio::fs::File,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    futures_util::stream::unfold(f, |mut f| async move {
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    })
}

/// Spools a request body to an unnamed file in the store's scratch directory.
async fn spool(root: &std::path::Path, body: Body, limit: u64) -> Result<std::fs::File, ApiError> {
    let dir = root.join("tmp");
    let file = tempfile::tempfile_in(&dir).map_err(|e| {
        ApiError::new(
            ErrorKind::Internal,
            format!("spool file in {}: {e}", dir.display()),
        )
    })?;
    let mut f = tokio::fs::File::from_std(file);
    let mut stream = body.into_data_stream();
    let mut total: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
        total += chunk.len() as u64;
        if total > limit {
            return Err(ApiError::bad_request("request body too large"));
        }
        f.write_all(&chunk)
            .await
            .map_err(|e| ApiError::new(ErrorKind::Internal, format!("spooling: {e}")))?;
    }
    f.flush()
        .await
        .map_err(|e| ApiError::new(ErrorKind::Internal, format!("spooling: {e}")))?;
    let mut f = f.into_std().await;
    std::io::Seek::rewind(&mut f)
        .map_err(|e| ApiError::new(ErrorKind::Internal, format!("spooling: {e}")))?;
    Ok(f)
}

async fn archive_put(
    State(s): State<Arc<ApiState>>,
    Path(id): Path<String>,
    Query(q): Q,
    body: Body,
) -> ApiResult {
    let path = archive_path(&q)?;
    let archive = spool(&s.root, body, MAX_LOAD_BODY).await?;
    match s
        .engine
        .handle(Action::ArchivePut { id, path, archive })
        .await?
    {
        Outcome::Done => Ok(StatusCode::OK.into_response()),
        o => Err(unexpected(&o)),
    }
}

/// Remembers the credentials of an `X-Registry-Auth` header (base64url JSON).
fn registry_auth(s: &ApiState, headers: &HeaderMap) {
    let Some(raw) = headers.get("X-Registry-Auth").and_then(|v| v.to_str().ok()) else {
        return;
    };
    let Some(a) = crate::decode::registry_auth(raw) else {
        return;
    };
    if a.serveraddress.is_empty() || (a.username.is_empty() && a.identitytoken.is_empty()) {
        return;
    }
    s.engine.set_credentials(
        &a.serveraddress,
        a.username,
        a.password,
        Some(a.identitytoken),
    );
}

/// Go's `units.HumanSize` (decimal units, 4 significant digits).
fn human_size(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    let s = format!("{v:.4}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    };
    let digits = s.replace('.', "").len();
    let s = if digits > 4 {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    } else {
        s
    };
    format!("{s}{}", units[i])
}

fn progress_bar(current: u64, total: Option<u64>) -> String {
    match total.filter(|t| *t > 0) {
        Some(t) => {
            let width = 50u64;
            let filled = (current.min(t) * width / t) as usize;
            let bar = if filled >= 50 {
                "=".repeat(50)
            } else {
                format!("{}>{}", "=".repeat(filled), " ".repeat(49 - filled))
            };
            format!("[{bar}]  {}/{}", human_size(current), human_size(t))
        }
        None => human_size(current),
    }
}

fn progress_stream(
    rx: tokio::sync::mpsc::UnboundedReceiver<berth_engine::TransferMessage>,
) -> Response {
    let body = tokio_stream::wrappers::UnboundedReceiverStream::new(rx).map(|m| {
        let v = match m {
            berth_engine::TransferMessage::Status {
                status,
                id,
                progress,
            } => {
                let mut v = json!({"status": status});
                if let Some(id) = id {
                    v["id"] = json!(id);
                }
                match progress {
                    Some((c, t)) => {
                        v["progressDetail"] = match t {
                            Some(t) => json!({"current": c, "total": t}),
                            None => json!({"current": c}),
                        };
                        v["progress"] = json!(progress_bar(c, t));
                    }
                    None if v.get("id").is_some() => v["progressDetail"] = json!({}),
                    None => {}
                }
                v
            }
            berth_engine::TransferMessage::Pushed { tag, digest, size } => {
                json!({"progressDetail": {}, "aux": {"Tag": tag, "Digest": digest, "Size": size}})
            }
            berth_engine::TransferMessage::Error(e) => {
                json!({"errorDetail": {"message": e}, "error": e})
            }
        };
        let mut line = serde_json::to_vec(&v).unwrap_or_default();
        line.push(b'\n');
        Ok::<_, std::io::Error>(bytes::Bytes::from(line))
    });
    let mut r = Body::from_stream(body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

async fn image_create(
    s: &ApiState,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult {
    if let Some(src) = q.get("fromSrc").filter(|v| !v.is_empty()) {
        if src != "-" {
            return Err(ApiError::new(ErrorKind::NotImplemented, "importing from a URL is not supported by berthd: download the file and import it from stdin"));
        }
        let archive = spool(&s.root, body, MAX_LOAD_BODY).await?;
        let reference = q.get("repo").filter(|r| !r.is_empty()).map(|r| {
            match q.get("tag").filter(|t| !t.is_empty()) {
                Some(t) => format!("{r}:{t}"),
                None => r.clone(),
            }
        });
        let message = q.get("message").cloned();
        return match s
            .engine
            .handle(Action::ImageImport {
                archive,
                reference,
                message,
            })
            .await
        {
            Ok(Outcome::Id(id)) => Ok((
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                format!("{}\n", json!({"status": id})),
            )
                .into_response()),
            Ok(o) => Err(unexpected(&o)),
            Err(e) => Ok((
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                format!(
                    "{}\n",
                    json!({"errorDetail": {"message": e.to_string()}, "error": e.to_string()})
                ),
            )
                .into_response()),
        };
    }
    let Some(image) = q.get("fromImage").filter(|v| !v.is_empty()) else {
        return Err(ApiError::bad_request("fromImage or fromSrc is required"));
    };
    registry_auth(s, headers);
    let reference = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) if t.starts_with("sha256:") => format!("{image}@{t}"),
        Some(t) => format!("{image}:{t}"),
        None => image.clone(),
    };
    match s.engine.handle(Action::ImagePull { reference }).await? {
        Outcome::Transfer(rx) => Ok(progress_stream(rx)),
        o => Err(unexpected(&o)),
    }
}

async fn save_response(s: &ApiState, names: Vec<String>) -> ApiResult {
    match s.engine.handle(Action::ImageSave { names }).await? {
        Outcome::File(f) => {
            let mut r =
                Body::from_stream(tokio_util_reader(tokio::fs::File::from_std(f))).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-tar"),
            );
            Ok(r)
        }
        o => Err(unexpected(&o)),
    }
}

async fn images_save(State(s): State<Arc<ApiState>>, uri: axum::http::Uri) -> ApiResult {
    // `names` repeats: read the raw query.
    let names: Vec<String> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == "names")
        .map(|(_, v)| crate::decode::percent_decode(v))
        .collect();
    if names.is_empty() {
        return Err(ApiError::bad_request("names is required"));
    }
    save_response(&s, names).await
}

async fn container_export(State(s): State<Arc<ApiState>>, Path(id): Path<String>) -> ApiResult {
    match s.engine.handle(Action::ContainerExport { id }).await? {
        Outcome::File(f) => {
            let mut r =
                Body::from_stream(tokio_util_reader(tokio::fs::File::from_std(f))).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            Ok(r)
        }
        o => Err(unexpected(&o)),
    }
}

async fn container_changes(State(s): State<Arc<ApiState>>, Path(id): Path<String>) -> ApiResult {
    match s.engine.handle(Action::ContainerChanges { id }).await? {
        Outcome::Changes(c) => Ok(Json(
            c.iter()
                .map(|c| json!({"Path": c.path, "Kind": c.kind}))
                .collect::<Vec<_>>(),
        )
        .into_response()),
        o => Err(unexpected(&o)),
    }
}

async fn commit(State(s): State<Arc<ApiState>>, Query(q): Q, body: Body) -> ApiResult {
    let container = q.get("container").cloned().unwrap_or_default();
    if container.is_empty() {
        return Err(ApiError::bad_request("container is required"));
    }
    let bytes = axum::body::to_bytes(body, MAX_JSON_BODY)
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let config: Option<berth_engine::ContainerConfig> =
        if bytes.iter().all(u8::is_ascii_whitespace) || bytes.as_ref() == b"null" {
            None
        } else {
            Some(
                serde_json::from_slice(&bytes)
                    .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?,
            )
        };
    let reference = q.get("repo").filter(|r| !r.is_empty()).map(|r| {
        match q.get("tag").filter(|t| !t.is_empty()) {
            Some(t) => format!("{r}:{t}"),
            None => r.clone(),
        }
    });
    let request = berth_engine::CommitRequest {
        reference,
        author: q.get("author").cloned(),
        comment: q.get("comment").cloned(),
        config: config.filter(|c| c != &berth_engine::ContainerConfig::default()),
        pause: q.get("pause").is_none_or(|p| p != "0" && p != "false"),
    };
    match s
        .engine
        .handle(Action::ContainerCommit {
            id: container,
            request: Box::new(request),
        })
        .await?
    {
        Outcome::Id(id) => Ok((StatusCode::CREATED, Json(json!({"Id": id}))).into_response()),
        o => Err(unexpected(&o)),
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct AuthBody {
    username: String,
    password: String,
    serveraddress: String,
}

async fn auth(State(s): State<Arc<ApiState>>, body: Body) -> ApiResult {
    let a: AuthBody = read_json(body).await?;
    let server = if a.serveraddress.is_empty() {
        "https://index.docker.io/v1/".to_owned()
    } else {
        a.serveraddress
    };
    match s
        .engine
        .handle(Action::Login {
            server,
            username: a.username,
            password: a.password,
        })
        .await?
    {
        Outcome::Done => {
            Ok(Json(json!({"Status": "Login Succeeded", "IdentityToken": ""})).into_response())
        }
        o => Err(unexpected(&o)),
    }
}
