use anyhow::{Context, Result};
use berth_runtime::Runtime;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Kill the container first if it still runs (SIGKILL to all its processes).
    #[arg(short = 'f', long)]
    pub force: bool,

    /// The container ID.
    pub id: String,
}

pub fn run(rt: &Runtime, a: Args) -> Result<i32> {
    rt.delete(&a.id, a.force)
        .with_context(|| format!("deleting container {:?}", a.id))?;
    Ok(0)
}
