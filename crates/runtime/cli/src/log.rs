//! Log output as runc writes it: errors to stderr, and to `--log` in text or JSON lines
//! (`{"level":"error","msg":"…","time":"…"}`), which containerd's shim and Podman read
//! back to show why a call failed.

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `time="…" level=error msg="…"`.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Clone)]
pub struct Logger {
    file: Option<PathBuf>,
    format: LogFormat,
    debug: bool,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

pub fn install(l: Logger) {
    let _ = LOGGER.set(l);
}

pub fn warn_sink(msg: &str) {
    if let Some(l) = LOGGER.get() {
        l.write("warning", msg, true);
    }
}

impl Logger {
    pub fn new(file: Option<PathBuf>, format: LogFormat, debug: bool) -> Self {
        Logger {
            file,
            format,
            debug,
        }
    }

    pub fn error(&self, msg: &str) {
        self.write("error", msg, true);
    }

    #[allow(dead_code)]
    pub fn debug(&self, msg: &str) {
        if self.debug {
            self.write("debug", msg, false);
        }
    }

    fn write(&self, level: &str, msg: &str, to_stderr: bool) {
        if to_stderr || self.file.is_none() {
            let _ = writeln!(std::io::stderr(), "berth-runtime: {level}: {msg}");
        }
        let Some(path) = &self.file else { return };
        let time = now();
        let line = match self.format {
            LogFormat::Json => {
                serde_json::json!({ "level": level, "msg": msg, "time": time }).to_string()
            }
            LogFormat::Text => format!("time={time:?} level={level} msg={msg:?}"),
        };
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

fn now() -> String {
    berth_runtime::timestamp()
}
