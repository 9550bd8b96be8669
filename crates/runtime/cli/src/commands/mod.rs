//! One file per subcommand: its arguments (clap) and a `run` that calls the library.

mod create;
mod delete;
mod events;
mod exec;
mod features;
mod kill;
mod list;
mod pause;
mod ps;
mod run;
mod spec;
mod start;
mod state;
mod update;

use anyhow::Result;
use berth_runtime::Runtime;
use clap::Subcommand;

/// The subcommands, as runc names them.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a container from a bundle; its process waits for `start`.
    Create(create::Args),
    /// Run the user process of a created container.
    Start(start::Args),
    /// Create, start and (unless --detach) wait for a container, then delete it.
    Run(run::Args),
    /// Print the OCI state of a container as JSON.
    State(state::Args),
    /// Send a signal (default SIGTERM) to a container's init, or with --all to all its processes.
    Kill(kill::Args),
    /// Delete a stopped container and release its resources (--force kills it first).
    Delete(delete::Args),
    /// Run a new process inside a running container.
    Exec(exec::Args),
    /// List the processes of a container.
    Ps(ps::Args),
    /// Freeze all processes of a container.
    Pause(pause::PauseArgs),
    /// Thaw a paused container.
    Resume(pause::ResumeArgs),
    /// Print resource statistics and OOM events of a container, periodically or once (--stats).
    Events(events::Args),
    /// Change the resource limits of a running container.
    Update(update::Args),
    /// List the containers under --root.
    #[command(alias = "ls")]
    List(list::Args),
    /// Write Berth's secure default config.json for a new bundle.
    Spec(spec::Args),
    /// Print the runtime's features as runtime-spec features JSON.
    Features(features::Args),
}

/// Run a subcommand; returns the exit code.
pub fn run(rt: &Runtime, cmd: Command, rootless: bool) -> Result<i32> {
    match cmd {
        Command::Create(a) => create::run(rt, a),
        Command::Start(a) => start::run(rt, a),
        Command::Run(a) => run::run(rt, a),
        Command::State(a) => state::run(rt, a),
        Command::Kill(a) => kill::run(rt, a),
        Command::Delete(a) => delete::run(rt, a),
        Command::Exec(a) => exec::run(rt, a),
        Command::Ps(a) => ps::run(rt, a),
        Command::Pause(a) => pause::pause(rt, a),
        Command::Resume(a) => pause::resume(rt, a),
        Command::Events(a) => events::run(rt, a),
        Command::Update(a) => update::run(rt, a),
        Command::List(a) => list::run(rt, a),
        Command::Spec(a) => spec::run(a, rootless),
        Command::Features(a) => features::run(a),
    }
}
