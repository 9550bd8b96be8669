use anyhow::{Context, Result};
use berth_runtime::Runtime;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Send the signal to every process of the container, not only its init.
    #[arg(short = 'a', long)]
    pub all: bool,

    /// The container ID.
    pub id: String,

    /// Signal name (TERM, SIGKILL…) or number.
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

pub fn run(rt: &Runtime, a: Args) -> Result<i32> {
    let sig = berth_runtime::parse_signal(&a.signal)?;
    rt.kill(&a.id, sig, a.all)
        .with_context(|| format!("signalling container {:?}", a.id))?;
    Ok(0)
}
