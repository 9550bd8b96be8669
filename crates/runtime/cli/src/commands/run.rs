use anyhow::{Context, Result};
use berth_runtime::Runtime;

use super::create::BundleArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub bundle: BundleArgs,

    /// Return once the container runs instead of waiting for it (it is not deleted).
    #[arg(short = 'd', long)]
    pub detach: bool,

    /// Keep the container's state after it exits (accepted; `run` always deletes it).
    #[arg(long, hide = true)]
    pub keep: bool,

    /// The container ID.
    pub id: String,
}

pub fn run(rt: &Runtime, a: Args) -> Result<i32> {
    rt.run(&a.id, &a.bundle.options(), a.detach)
        .with_context(|| format!("running container {:?}", a.id))
}
