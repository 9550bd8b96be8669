use anyhow::{Context, Result};
use berth_runtime::Runtime;

#[derive(Debug, clap::Args)]
pub struct PauseArgs {
    /// The container ID.
    pub id: String,
}

#[derive(Debug, clap::Args)]
pub struct ResumeArgs {
    /// The container ID.
    pub id: String,
}

pub fn pause(rt: &Runtime, a: PauseArgs) -> Result<i32> {
    rt.pause(&a.id)
        .with_context(|| format!("pausing container {:?}", a.id))?;
    Ok(0)
}

pub fn resume(rt: &Runtime, a: ResumeArgs) -> Result<i32> {
    rt.resume(&a.id)
        .with_context(|| format!("resuming container {:?}", a.id))?;
    Ok(0)
}
