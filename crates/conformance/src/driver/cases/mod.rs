//! The test cases. Each is one small function `fn(&mut Ctx) -> Result<()>`
//! listed in [`CASES`]; names follow runtime-tools' `validation/` directory.
//!
//! A case either hands a spec to the in-container checker
//! ([`Ctx::check_spec`](super::context::Ctx::check_spec)), which verifies every
//! setting in it, or drives the runtime's CLI and records checks itself
//! (`ctx.check(...)`). Returning an error records a failure; cleanup happens
//! through the [`Container`](super::context::Container) guards.

mod cgroups;
mod config;
mod hooks;
mod lifecycle;

use anyhow::Result;

use super::context::Ctx;

/// One test case.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Case {
    pub name: &'static str,
    pub run: fn(&mut Ctx<'_>) -> Result<()>,
}

macro_rules! cases {
    ($($module:ident :: $name:ident),* $(,)?) => {
        &[$(Case { name: stringify!($name), run: $module::$name }),*]
    };
}

/// Every case, in the order they run.
pub(crate) const CASES: &[Case] = cases![
    config::default,
    config::process,
    config::process_user,
    config::process_umask,
    config::process_capabilities,
    config::process_capabilities_fail,
    config::process_rlimits,
    config::process_rlimits_fail,
    config::process_oom_score_adj,
    config::hostname,
    config::mounts,
    config::root_readonly_true,
    config::root_readonly_false,
    config::linux_devices,
    config::linux_masked_paths,
    config::linux_readonly_paths,
    config::linux_sysctl,
    config::linux_seccomp,
    config::linux_ns_itype,
    config::linux_ns_nopath,
    config::linux_ns_path,
    config::linux_uid_mappings,
    config::linux_rootfs_propagation_private,
    config::linux_rootfs_propagation_shared,
    config::linux_rootfs_propagation_slave,
    config::linux_rootfs_propagation_unbindable,
    config::linux_apparmor,
    config::linux_selinux_label,
    config::linux_mount_label,
    cgroups::linux_cgroups_memory,
    cgroups::linux_cgroups_memory_swap,
    cgroups::linux_cgroups_cpus,
    cgroups::linux_cgroups_pids,
    cgroups::linux_cgroups_blkio,
    cgroups::linux_cgroups_blkio_throttle,
    cgroups::linux_cgroups_hugetlb,
    cgroups::linux_cgroups_network,
    cgroups::linux_cgroups_devices,
    lifecycle::create,
    lifecycle::create_existing_id,
    lifecycle::create_invalid_bundle,
    lifecycle::start,
    lifecycle::start_not_exist,
    lifecycle::state,
    lifecycle::state_not_exist,
    lifecycle::pidfile,
    lifecycle::kill,
    lifecycle::kill_signal,
    lifecycle::kill_no_effect,
    lifecycle::delete,
    lifecycle::delete_force,
    lifecycle::delete_only_create_resources,
    lifecycle::pause_resume,
    lifecycle::exec,
    lifecycle::exec_process_file,
    lifecycle::ps,
    lifecycle::events_stats,
    lifecycle::update_pids,
    lifecycle::list,
    lifecycle::misc_props,
    lifecycle::config_updates_without_affect,
    hooks::hooks,
    hooks::hooks_stdin,
    hooks::poststart,
    hooks::poststop,
    hooks::hooks_fail,
    hooks::prestart_fail,
    hooks::poststart_fail,
];
