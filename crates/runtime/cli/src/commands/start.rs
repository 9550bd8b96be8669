use anyhow::{Context, Result};
use berth_runtime::Runtime;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The container ID.
    pub id: String,
}

pub fn run(rt: &Runtime, a: Args) -> Result<i32> {
    rt.start(&a.id)
        .with_context(|| format!("starting container {:?}", a.id))?;
    Ok(0)
}
