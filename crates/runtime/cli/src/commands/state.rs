use anyhow::{Context, Result};
use berth_runtime::Runtime;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The container ID.
    pub id: String,
}

pub fn run(rt: &Runtime, a: Args) -> Result<i32> {
    let st = rt
        .state(&a.id)
        .with_context(|| format!("reading the state of {:?}", a.id))?;
    println!("{}", serde_json::to_string_pretty(&st)?);
    Ok(0)
}
