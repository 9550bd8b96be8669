//! OCI seccomp profile → libseccomp filter → classic BPF program.
//!
//! This is the only place that talks to libseccomp. The result, a
//! [`CompiledFilter`], no longer needs it: loading is a single `seccomp(2)` call.

use std::io::{Read, Seek, SeekFrom};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator, LinuxSyscall,
};

use crate::error::{Error, Result};
use crate::filter::{flags, CompiledFilter, MAX_INSTRUCTIONS};

/// `EPERM`, the errno the runtime spec prescribes when `errnoRet` is absent.
const EPERM: u16 = 1;

/// Number of syscall arguments `seccomp_data` carries.
const SYSCALL_ARGS: usize = 6;

/// Compile `profile` with libseccomp; the semantics are documented on [`crate::compile`].
pub(crate) fn compile(profile: &LinuxSeccomp) -> Result<CompiledFilter> {
    let default_action = action(
        profile.default_action(),
        profile.default_errno_ret(),
        "defaultAction",
    )?;
    if default_action == ScmpAction::Notify {
        return Err(Error::NotifyAsDefault);
    }
    let mut ctx =
        ScmpFilterContext::new(default_action).map_err(|source| Error::CreateContext {
            action: profile.default_action().to_string(),
            source,
        })?;
    // The runtime sets no_new_privs itself (or not, per process.noNewPrivileges); the
    // attribute only matters to libseccomp's own load, which we never call.
    ctx.set_ctl_nnp(false)
        .map_err(|source| Error::SetAttribute {
            attribute: "SCMP_FLTATR_CTL_NNP",
            source,
        })?;

    for arch in profile.architectures().iter().flatten() {
        ctx.add_arch(scmp_arch(*arch))
            .map_err(|source| Error::AddArchitecture {
                arch: arch.to_string(),
                source,
            })?;
    }

    let mut wants_listener = false;
    for rule in profile.syscalls().iter().flatten() {
        let context = rule
            .names()
            .first()
            .map(String::as_str)
            .unwrap_or("<no names>");
        let rule_action = action(rule.action(), rule.errno_ret(), context)?;
        let alternatives = conditions(rule, context)?;
        if rule_action == default_action {
            continue;
        }
        for name in rule.names() {
            // Unknown names are skipped, as runc does: profiles list syscalls of newer
            // kernels and other architectures.
            let Ok(syscall) = ScmpSyscall::from_name(name) else {
                continue;
            };
            for comparisons in &alternatives {
                ctx.add_rule_conditional(rule_action, syscall, comparisons)
                    .map_err(|source| Error::AddRule {
                        syscall: name.clone(),
                        source,
                    })?;
            }
            wants_listener |= rule_action == ScmpAction::Notify;
        }
    }

    let program = export(&ctx)?;
    let mut load_flags = 0;
    for flag in profile.flags().iter().flatten() {
        load_flags |= match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => flags::TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => flags::LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => flags::SPEC_ALLOW,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => flags::WAIT_KILLABLE_RECV,
        };
    }
    CompiledFilter::new(program, load_flags, wants_listener)
}

/// The libseccomp action for an OCI action and its optional `errnoRet`.
fn action(action: LinuxSeccompAction, errno_ret: Option<u32>, context: &str) -> Result<ScmpAction> {
    let value = match errno_ret {
        None => EPERM,
        Some(value) => u16::try_from(value).map_err(|_| Error::ErrnoOutOfRange {
            context: context.to_owned(),
            value,
        })?,
    };
    let takes_errno = matches!(
        action,
        LinuxSeccompAction::ScmpActErrno | LinuxSeccompAction::ScmpActTrace
    );
    if errno_ret.is_some() && !takes_errno {
        return Err(Error::ErrnoNotSupported {
            context: context.to_owned(),
            action: action.to_string(),
        });
    }
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(i32::from(value)),
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(value),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
    })
}

/// The comparison sets of one rule: one set (ANDed) normally, one set per comparison
/// (ORed) when an argument index repeats, as runc does.
fn conditions(rule: &LinuxSyscall, context: &str) -> Result<Vec<Vec<ScmpArgCompare>>> {
    let args = rule.args().as_deref().unwrap_or(&[]);
    let mut seen = [0usize; SYSCALL_ARGS];
    let mut comparisons = Vec::with_capacity(args.len());
    for arg in args {
        let bad_index = || Error::ArgumentIndex {
            syscall: context.to_owned(),
            index: arg.index(),
        };
        let slot = seen.get_mut(arg.index()).ok_or_else(bad_index)?;
        *slot += 1;
        let index = u32::try_from(arg.index()).map_err(|_| bad_index())?;
        comparisons.push(comparison(arg, index));
    }
    if seen.iter().any(|&count| count > 1) {
        Ok(comparisons.into_iter().map(|c| vec![c]).collect())
    } else {
        Ok(vec![comparisons])
    }
}

fn comparison(arg: &LinuxSeccompArg, index: u32) -> ScmpArgCompare {
    let value = arg.value();
    match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => {
            ScmpArgCompare::new(index, ScmpCompareOp::NotEqual, value)
        }
        LinuxSeccompOperator::ScmpCmpLt => ScmpArgCompare::new(index, ScmpCompareOp::Less, value),
        LinuxSeccompOperator::ScmpCmpLe => {
            ScmpArgCompare::new(index, ScmpCompareOp::LessOrEqual, value)
        }
        LinuxSeccompOperator::ScmpCmpEq => ScmpArgCompare::new(index, ScmpCompareOp::Equal, value),
        LinuxSeccompOperator::ScmpCmpGe => {
            ScmpArgCompare::new(index, ScmpCompareOp::GreaterEqual, value)
        }
        LinuxSeccompOperator::ScmpCmpGt => {
            ScmpArgCompare::new(index, ScmpCompareOp::Greater, value)
        }
        // OCI: `value` is the mask, `valueTwo` the value the masked argument must equal.
        LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpArgCompare::new(
            index,
            ScmpCompareOp::MaskedEqual(value),
            arg.value_two().unwrap_or(0),
        ),
    }
}

/// The libseccomp token for an OCI architecture name.
pub(crate) fn scmp_arch(arch: Arch) -> ScmpArch {
    match arch {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

/// Export the filter as raw `struct sock_filter` bytes.
///
/// libseccomp 2.5 can only export to a file descriptor (`seccomp_export_bpf_mem` is 2.6),
/// so the program goes through a memfd, which unlike a pipe cannot fill up and block.
fn export(ctx: &ScmpFilterContext) -> Result<Vec<u8>> {
    let fd = rustix::fs::memfd_create("berth-seccomp-bpf", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| Error::ExportBuffer(e.into()))?;
    ctx.export_bpf(&fd).map_err(Error::Export)?;
    let mut file = std::fs::File::from(fd);
    file.seek(SeekFrom::Start(0)).map_err(Error::ExportBuffer)?;
    let limit = u64::try_from(MAX_INSTRUCTIONS * crate::filter::INSTRUCTION_SIZE)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let mut bytes = Vec::new();
    file.take(limit)
        .read_to_end(&mut bytes)
        .map_err(Error::ExportBuffer)?;
    Ok(bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::{Error, Verdict};
    use berth_errdefs::{ErrorKind, HasKind};

    const NATIVE: Arch = Arch::ScmpArchNative;

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    fn compile_json(json: &str) -> Result<CompiledFilter> {
        compile(&profile(json))
    }

    fn verdict(f: &CompiledFilter, name: &str, args: [u64; 6]) -> Verdict {
        f.evaluate(NATIVE, name, args).unwrap()
    }

    #[test]
    fn actions_and_errno_defaults() {
        let f = compile_json(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                {"names": ["getpid", "gettid"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["mount"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                {"names": ["umount2"], "action": "SCMP_ACT_KILL"},
                {"names": ["reboot"], "action": "SCMP_ACT_KILL_PROCESS"},
                {"names": ["swapon"], "action": "SCMP_ACT_TRAP"},
                {"names": ["swapoff"], "action": "SCMP_ACT_TRACE", "errnoRet": 7},
                {"names": ["acct"], "action": "SCMP_ACT_LOG"},
                {"names": ["setns"], "action": "SCMP_ACT_ERRNO"}
            ]}"#,
        )
        .unwrap();
        assert_eq!(verdict(&f, "getpid", [0; 6]), Verdict::Allow);
        assert_eq!(verdict(&f, "gettid", [0; 6]), Verdict::Allow);
        // Default errno is EPERM, as the runtime spec says.
        assert_eq!(verdict(&f, "getppid", [0; 6]), Verdict::Errno(1));
        assert_eq!(verdict(&f, "mount", [0; 6]), Verdict::Errno(38));
        assert_eq!(verdict(&f, "umount2", [0; 6]), Verdict::KillThread);
        assert_eq!(verdict(&f, "reboot", [0; 6]), Verdict::KillProcess);
        assert_eq!(verdict(&f, "swapon", [0; 6]), Verdict::Trap(0));
        assert_eq!(verdict(&f, "swapoff", [0; 6]), Verdict::Trace(7));
        assert_eq!(verdict(&f, "acct", [0; 6]), Verdict::Log);
        // Same action as the default (ERRNO/EPERM): skipped, still EPERM.
        assert_eq!(verdict(&f, "setns", [0; 6]), Verdict::Errno(1));
        assert!(!f.wants_listener());
        assert_eq!(f.flags(), 0);
    }

    #[test]
    fn unknown_names_are_skipped() {
        let f = compile_json(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["no_such_syscall", "mount", "bad\u0000name"], "action": "SCMP_ACT_ERRNO"}
            ]}"#,
        )
        .unwrap();
        assert_eq!(verdict(&f, "mount", [0; 6]), Verdict::Errno(1));
    }

    #[test]
    fn argument_operators() {
        let f = compile_json(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["dup3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 10,
                 "args": [{"index": 2, "value": 5, "op": "SCMP_CMP_EQ"}]},
                {"names": ["dup3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 11,
                 "args": [{"index": 0, "value": 100, "op": "SCMP_CMP_GT"}]},
                {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 12,
                 "args": [{"index": 0, "value": 3, "op": "SCMP_CMP_LT"}]},
                {"names": ["tkill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                 "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_NE"}]},
                {"names": ["lseek"], "action": "SCMP_ACT_ERRNO", "errnoRet": 14,
                 "args": [{"index": 2, "value": 3, "op": "SCMP_CMP_GE"}]},
                {"names": ["fchmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 15,
                 "args": [{"index": 1, "value": 2048, "op": "SCMP_CMP_LE"}]},
                {"names": ["fchown"], "action": "SCMP_ACT_ERRNO", "errnoRet": 16,
                 "args": [{"index": 1, "value": 240, "valueTwo": 32, "op": "SCMP_CMP_MASKED_EQ"}]}
            ]}"#,
        )
        .unwrap();
        assert_eq!(verdict(&f, "dup3", [0, 0, 5, 0, 0, 0]), Verdict::Errno(10));
        assert_eq!(
            verdict(&f, "dup3", [101, 0, 0, 0, 0, 0]),
            Verdict::Errno(11)
        );
        assert_eq!(verdict(&f, "dup3", [0, 0, 4, 0, 0, 0]), Verdict::Allow);
        assert_eq!(verdict(&f, "kill", [2, 0, 0, 0, 0, 0]), Verdict::Errno(12));
        assert_eq!(verdict(&f, "kill", [3, 0, 0, 0, 0, 0]), Verdict::Allow);
        assert_eq!(verdict(&f, "tkill", [0, 8, 0, 0, 0, 0]), Verdict::Errno(13));
        assert_eq!(verdict(&f, "tkill", [0, 9, 0, 0, 0, 0]), Verdict::Allow);
        assert_eq!(verdict(&f, "lseek", [0, 0, 3, 0, 0, 0]), Verdict::Errno(14));
        assert_eq!(verdict(&f, "lseek", [0, 0, 2, 0, 0, 0]), Verdict::Allow);
        assert_eq!(
            verdict(&f, "fchmod", [0, 2048, 0, 0, 0, 0]),
            Verdict::Errno(15)
        );
        assert_eq!(verdict(&f, "fchmod", [0, 2049, 0, 0, 0, 0]), Verdict::Allow);
        assert_eq!(
            verdict(&f, "fchown", [0, 0x2f, 0, 0, 0, 0]),
            Verdict::Errno(16)
        );
        assert_eq!(verdict(&f, "fchown", [0, 0x1f, 0, 0, 0, 0]), Verdict::Allow);
        // 64-bit comparisons see the high half.
        assert_eq!(
            verdict(&f, "dup3", [0, 0, 0x1_0000_0005, 0, 0, 0]),
            Verdict::Allow
        );
    }

    #[test]
    fn args_are_anded_unless_an_index_repeats() {
        let f = compile_json(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["dup3"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                          {"index": 1, "value": 2, "op": "SCMP_CMP_EQ"}]},
                {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"},
                          {"index": 1, "value": 19, "op": "SCMP_CMP_EQ"}]}
            ]}"#,
        )
        .unwrap();
        assert_eq!(verdict(&f, "dup3", [1, 2, 0, 0, 0, 0]), Verdict::Errno(1));
        assert_eq!(verdict(&f, "dup3", [1, 3, 0, 0, 0, 0]), Verdict::Allow);
        assert_eq!(verdict(&f, "dup3", [0, 2, 0, 0, 0, 0]), Verdict::Allow);
        // Same index twice: ORed (runc's behaviour; libseccomp cannot AND them).
        assert_eq!(verdict(&f, "kill", [0, 9, 0, 0, 0, 0]), Verdict::Errno(1));
        assert_eq!(verdict(&f, "kill", [0, 19, 0, 0, 0, 0]), Verdict::Errno(1));
        assert_eq!(verdict(&f, "kill", [0, 15, 0, 0, 0, 0]), Verdict::Allow);
    }

    #[test]
    fn architectures_are_added() {
        let json = r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_ERRNO"}]}"#;
        if std::env::consts::ARCH != "x86_64" {
            return;
        }
        let f = compile_json(json).unwrap();
        for arch in [Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32] {
            assert_eq!(
                f.evaluate(arch, "mount", [0; 6]).unwrap(),
                Verdict::Errno(1)
            );
            assert_eq!(f.evaluate(arch, "getpid", [0; 6]).unwrap(), Verdict::Allow);
        }
        // Without them, a 32-bit task hits the bad-architecture action.
        let native_only = compile_json(r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#).unwrap();
        assert_eq!(
            native_only
                .evaluate(Arch::ScmpArchX86, "getpid", [0; 6])
                .unwrap(),
            Verdict::KillThread
        );
    }

    #[test]
    fn flags_and_listener() {
        let f = compile_json(
            r#"{"defaultAction": "SCMP_ACT_ALLOW",
                "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                          "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
                "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_NOTIFY"}]}"#,
        )
        .unwrap();
        assert!(f.wants_listener());
        assert_eq!(f.flags(), 0b11_1111);
        assert_eq!(verdict(&f, "mount", [0; 6]), Verdict::Notify);

        // A notify rule on an unknown syscall wants no listener.
        let f = compile_json(
            r#"{"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["no_such_syscall"], "action": "SCMP_ACT_NOTIFY"}]}"#,
        )
        .unwrap();
        assert!(!f.wants_listener());
    }

    #[test]
    fn unknown_flags_fail_at_parse_time() {
        let err = serde_json::from_str::<LinuxSeccomp>(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_BOGUS"]}"#,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("SECCOMP_FILTER_FLAG_BOGUS"),
            "{err}"
        );
    }

    #[test]
    fn invalid_profiles_are_refused() {
        let cases = [
            r#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#,
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}"#,
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}"#,
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["mount"], "action": "SCMP_ACT_KILL", "errnoRet": 1}]}"#,
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["mount"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#,
        ];
        for json in cases {
            let err = compile_json(json).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{json}: {err}");
        }
        assert!(matches!(
            compile_json(r#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#),
            Err(Error::NotifyAsDefault)
        ));
    }

    #[test]
    fn compiling_twice_gives_the_same_program() {
        let json = r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
            "syscalls": [{"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"}]}"#;
        let a = compile_json(json).unwrap();
        let b = compile_json(json).unwrap();
        assert_eq!(a, b);
        assert_eq!(CompiledFilter::from_bytes(&a.to_bytes()).unwrap(), a);
    }
}
