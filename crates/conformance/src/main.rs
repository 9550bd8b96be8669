//! `berth-conformance`: runs the conformance suite against a runc-compatible
//! runtime binary. See the crate documentation for how to build and run it.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use berth_conformance::{case_names, run_suite, tap, CaseReport, Outcome, SuiteOptions};
use clap::Parser;

/// Run the Berth OCI runtime conformance suite against a runtime binary.
#[derive(Debug, Parser)]
#[command(name = "berth-conformance", version)]
struct Args {
    /// The runtime binary to test (runc-compatible CLI).
    #[arg(long, required_unless_present = "list")]
    runtime: Option<PathBuf>,
    /// A global argument for the runtime, placed before each subcommand (repeatable).
    #[arg(long = "runtime-arg", allow_hyphen_values = true)]
    runtime_args: Vec<String>,
    /// The statically linked berth-checker (default: $BERTH_CHECKER or next to this binary).
    #[arg(long)]
    checker: Option<PathBuf>,
    /// The rootfs to use (default: $BERTH_FIXTURES/busybox/rootfs).
    #[arg(long)]
    rootfs: Option<PathBuf>,
    /// Run only cases whose name contains this text (repeatable).
    #[arg(long)]
    filter: Vec<String>,
    /// Print TAP (a subtest per case) instead of the human summary.
    #[arg(long)]
    tap: bool,
    /// Print the case names and exit.
    #[arg(long)]
    list: bool,
    /// Directory for the temporary work directory.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Seconds allowed for each runtime command and status wait.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Do not pass a private --root state directory to the runtime.
    #[arg(long)]
    no_private_root: bool,
    /// Hide the cgroup2 mount of a hybrid layout from the runtime (for crun).
    #[arg(long)]
    mask_hybrid_cgroup2: bool,
    /// Keep the work directory (bundles, container output, hook logs) for debugging.
    #[arg(long)]
    keep: bool,
    /// Also print passing checks.
    #[arg(long, short)]
    verbose: bool,
}

fn print_case(number: usize, case: &CaseReport, as_tap: bool, verbose: bool) {
    if as_tap {
        println!("# Subtest: {}", case.name);
        for (i, line) in case.lines.iter().enumerate() {
            println!("    {}", line.to_tap(i + 1));
        }
        println!("    1..{}", case.lines.len());
        let line = match case.outcome {
            Outcome::Pass => tap::TapLine::pass(case.name.clone()),
            Outcome::Fail => tap::TapLine::fail(case.name.clone(), ""),
            Outcome::Skip => tap::TapLine::skip(
                case.name.clone(),
                case.skip_reason
                    .clone()
                    .unwrap_or_else(|| "all checks skipped".into()),
            ),
        };
        println!("{}", line.to_tap(number));
        return;
    }
    let tag = match case.outcome {
        Outcome::Pass => "PASS",
        Outcome::Fail => "FAIL",
        Outcome::Skip => "SKIP",
    };
    let reason = case
        .skip_reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    println!(
        "{tag} {} ({} checks, {:.1}s){reason}",
        case.name,
        case.lines.len(),
        case.duration.as_secs_f64()
    );
    for line in &case.lines {
        if verbose || line.status == tap::Status::Fail {
            println!("    {line}");
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.list {
        for name in case_names() {
            println!("{name}");
        }
        return Ok(());
    }
    let runtime = args.runtime.context("--runtime is required")?;
    let mut options = SuiteOptions::new(runtime);
    options.runtime_args = args.runtime_args;
    options.checker = args.checker;
    options.rootfs = args.rootfs;
    options.filters = args.filter;
    options.work_dir = args.work_dir;
    options.timeout = Duration::from_secs(args.timeout);
    options.private_state_root = !args.no_private_root;
    options.mask_hybrid_cgroup2 = args.mask_hybrid_cgroup2;
    options.keep_work_dir = args.keep;
    let mut number = 0;
    let report = run_suite(&options, &mut |case| {
        number += 1;
        print_case(number, case, args.tap, args.verbose);
    })
    .with_context(|| format!("run the suite against {}", options.runtime.display()))?;
    if args.tap {
        println!("1..{}", report.cases.len());
    }
    let (cp, cf, cs) = report.check_counts();
    let (passed, failed, skipped) = report.counts();
    println!("# checks: {cp} passed, {cf} failed, {cs} skipped");
    println!("conformance: {passed} passed, {failed} failed, {skipped} skipped");
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}
