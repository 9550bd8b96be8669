//! A classic-BPF interpreter restricted to what seccomp accepts.
//!
//! It serves two purposes: validating a program read back from the cache (so a bad file
//! is recompiled instead of failing in `seccomp(2)`), and answering "what would this
//! filter do with that syscall?" without installing it, which tests (and `inspect`-style
//! tooling) use to check profiles, including for foreign architectures such as x86 on
//! an x86_64 host.

use berth_sys::SockFilter;
use libseccomp::ScmpSyscall;
use oci_spec::runtime::Arch;

use crate::compile::scmp_arch;
use crate::error::{Error, Result};
use crate::filter::CompiledFilter;

/// Size of `struct seccomp_data`: nr, arch, instruction_pointer, args[6].
const DATA_SIZE: u32 = 64;
/// Scratch memory words of classic BPF.
const MEMWORDS: u32 = 16;

// Instruction classes and fields (<linux/bpf_common.h>, <linux/filter.h>).
const BPF_LD: u16 = 0x00;
const BPF_LDX: u16 = 0x01;
const BPF_ST: u16 = 0x02;
const BPF_STX: u16 = 0x03;
const BPF_ALU: u16 = 0x04;
const BPF_JMP: u16 = 0x05;
const BPF_RET: u16 = 0x06;
const BPF_MISC: u16 = 0x07;

/// What a seccomp filter decides for one syscall (`SECCOMP_RET_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// `SECCOMP_RET_KILL_PROCESS`.
    KillProcess,
    /// `SECCOMP_RET_KILL_THREAD`.
    KillThread,
    /// `SECCOMP_RET_TRAP` with its data.
    Trap(u16),
    /// `SECCOMP_RET_ERRNO`: the syscall fails with this errno.
    Errno(u16),
    /// `SECCOMP_RET_USER_NOTIF`.
    Notify,
    /// `SECCOMP_RET_TRACE` with its data.
    Trace(u16),
    /// `SECCOMP_RET_LOG`.
    Log,
    /// `SECCOMP_RET_ALLOW`.
    Allow,
    /// A return value the kernel treats as kill-process (unknown action).
    Other(u32),
}

impl Verdict {
    fn from_ret(ret: u32) -> Self {
        let data = u16::try_from(ret & 0xffff).unwrap_or(u16::MAX);
        match ret & 0xffff_0000 {
            0x8000_0000 => Verdict::KillProcess,
            0x0000_0000 => Verdict::KillThread,
            0x0003_0000 => Verdict::Trap(data),
            0x0005_0000 => Verdict::Errno(data),
            0x7fc0_0000 => Verdict::Notify,
            0x7ff0_0000 => Verdict::Trace(data),
            0x7ffc_0000 => Verdict::Log,
            0x7fff_0000 => Verdict::Allow,
            _ => Verdict::Other(ret),
        }
    }
}

/// The `AUDIT_ARCH_*` value the kernel puts in `seccomp_data.arch`.
fn audit_arch(arch: Arch) -> Option<u32> {
    match arch {
        // x32 tasks report AUDIT_ARCH_X86_64; libseccomp tells them apart by bit 30 of nr.
        Arch::ScmpArchX32 => Some(Arch::ScmpArchX86_64 as u32),
        Arch::ScmpArchNative => None,
        // libseccomp's tokens are the audit values for every other architecture.
        other => Some(other as u32),
    }
}

/// The OCI name of the architecture this crate was compiled for.
fn native_arch() -> Option<Arch> {
    match std::env::consts::ARCH {
        "x86_64" => Some(Arch::ScmpArchX86_64),
        "x86" => Some(Arch::ScmpArchX86),
        "aarch64" => Some(Arch::ScmpArchAarch64),
        "arm" => Some(Arch::ScmpArchArm),
        "riscv64" => Some(Arch::ScmpArchRiscv64),
        "s390x" => Some(Arch::ScmpArchS390x),
        "powerpc64" if cfg!(target_endian = "little") => Some(Arch::ScmpArchPpc64le),
        "powerpc64" => Some(Arch::ScmpArchPpc64),
        "loongarch64" => Some(Arch::ScmpArchLoongarch64),
        _ => None,
    }
}

impl CompiledFilter {
    /// What the filter decides for `syscall(args…)` made by a task of architecture `arch`
    /// (`SCMP_ARCH_NATIVE` for the host's), without installing it.
    ///
    /// Fails with [`Error::UnknownSyscall`] when libseccomp knows no such syscall on
    /// that architecture.
    pub fn evaluate(&self, arch: Arch, syscall: &str, args: [u64; 6]) -> Result<Verdict> {
        let unknown = || Error::UnknownSyscall {
            syscall: syscall.to_owned(),
            arch: arch.to_string(),
        };
        let arch = match arch {
            Arch::ScmpArchNative => native_arch().ok_or_else(unknown)?,
            other => other,
        };
        let nr = ScmpSyscall::from_name_by_arch(syscall, scmp_arch(arch))
            .map_err(|_| unknown())?
            .as_raw_syscall();
        // Negative numbers are libseccomp's pseudo-syscalls: names that exist elsewhere.
        let nr = u32::try_from(nr).map_err(|_| unknown())?;
        let audit = audit_arch(arch).ok_or_else(unknown)?;
        let mut data = [0u8; DATA_SIZE as usize];
        data[0..4].copy_from_slice(&nr.to_ne_bytes());
        data[4..8].copy_from_slice(&audit.to_ne_bytes());
        for (i, arg) in args.iter().enumerate() {
            let at = 16 + 8 * i;
            data[at..at + 8].copy_from_slice(&arg.to_ne_bytes());
        }
        run(self.program(), &data).map(Verdict::from_ret)
    }
}

fn malformed(reason: &'static str) -> Error {
    Error::MalformedProgram { reason }
}

/// Check what the kernel's `seccomp_check_filter` and `bpf_check_classic` check:
/// only seccomp's opcodes, aligned in-bounds loads, valid scratch slots, jumps inside
/// the program and a return at the end.
pub(crate) fn validate(program: &[SockFilter]) -> Result<()> {
    let len = program.len();
    for (pc, insn) in program.iter().enumerate() {
        let k = insn.k;
        match insn.code {
            // LD W ABS: a 32-bit aligned load from seccomp_data.
            0x20 => {
                if k % 4 != 0 || k >= DATA_SIZE {
                    return Err(malformed("load outside seccomp_data"));
                }
            }
            // LD/LDX W LEN, LD/LDX IMM.
            0x80 | 0x81 | 0x00 | 0x01 => {}
            // LD/LDX MEM, ST, STX.
            0x60 | 0x61 | 0x02 | 0x03 => {
                if k >= MEMWORDS {
                    return Err(malformed("scratch memory index out of range"));
                }
            }
            // RET K, RET A; MISC TAX, TXA.
            0x06 | 0x16 | 0x07 | 0x87 => {}
            code if code & 0x07 == BPF_ALU => {
                let op = code & 0xf0;
                if op > 0xa0 || code & !0xf8 != BPF_ALU {
                    return Err(malformed("unknown ALU instruction"));
                }
                if (op == 0x30 || op == 0x90) && code & 0x08 == 0 && k == 0 {
                    return Err(malformed("division by constant zero"));
                }
                if (op == 0x60 || op == 0x70) && code & 0x08 == 0 && k >= 32 {
                    return Err(malformed("shift by 32 or more"));
                }
            }
            code if code & 0x07 == BPF_JMP => {
                let op = code & 0xf0;
                let next = pc + 1;
                if code & !0xf8 != BPF_JMP || op > 0x40 {
                    return Err(malformed("unknown jump instruction"));
                }
                let in_range = |off: usize| next.checked_add(off).is_some_and(|t| t < len);
                let ok = if op == 0x00 {
                    code == 0x05 && usize::try_from(k).is_ok_and(in_range)
                } else {
                    in_range(usize::from(insn.jt)) && in_range(usize::from(insn.jf))
                };
                if !ok {
                    return Err(malformed("jump out of the program"));
                }
            }
            _ => return Err(malformed("opcode not allowed in seccomp filters")),
        }
    }
    match program.last() {
        Some(last) if last.code & 0x07 == BPF_RET => Ok(()),
        _ => Err(malformed("does not end with a return")),
    }
}

/// Run a validated program on one `seccomp_data`.
fn run(program: &[SockFilter], data: &[u8; DATA_SIZE as usize]) -> Result<u32> {
    let mut a: u32 = 0;
    let mut x: u32 = 0;
    let mut mem = [0u32; MEMWORDS as usize];
    let mut pc = 0usize;
    // Classic BPF only jumps forward, so a program cannot run longer than it is long.
    for _ in 0..=program.len() {
        let insn = program.get(pc).ok_or(malformed("ran off the end"))?;
        let k = insn.k;
        let slot = |k: u32| usize::try_from(k).ok().filter(|&i| i < mem.len());
        pc += 1;
        match insn.code & 0x07 {
            BPF_LD | BPF_LDX => {
                let value = match insn.code & 0xe0 {
                    0x00 => k,
                    0x20 => {
                        let at = usize::try_from(k).map_err(|_| malformed("bad load"))?;
                        let word = data.get(at..at + 4).ok_or(malformed("bad load"))?;
                        u32::from_ne_bytes([word[0], word[1], word[2], word[3]])
                    }
                    0x60 => mem[slot(k).ok_or(malformed("bad scratch slot"))?],
                    0x80 => DATA_SIZE,
                    _ => return Err(malformed("unsupported load mode")),
                };
                if insn.code & 0x07 == BPF_LD {
                    a = value;
                } else {
                    x = value;
                }
            }
            BPF_ST => mem[slot(k).ok_or(malformed("bad scratch slot"))?] = a,
            BPF_STX => mem[slot(k).ok_or(malformed("bad scratch slot"))?] = x,
            BPF_ALU => {
                let operand = if insn.code & 0x08 != 0 { x } else { k };
                a = match insn.code & 0xf0 {
                    0x00 => a.wrapping_add(operand),
                    0x10 => a.wrapping_sub(operand),
                    0x20 => a.wrapping_mul(operand),
                    0x30 => a.checked_div(operand).unwrap_or(0),
                    0x40 => a | operand,
                    0x50 => a & operand,
                    0x60 => a.checked_shl(operand).unwrap_or(0),
                    0x70 => a.checked_shr(operand).unwrap_or(0),
                    0x80 => a.wrapping_neg(),
                    0x90 => a.checked_rem(operand).unwrap_or(0),
                    0xa0 => a ^ operand,
                    _ => return Err(malformed("unknown ALU instruction")),
                };
            }
            BPF_JMP => {
                let operand = if insn.code & 0x08 != 0 { x } else { k };
                let taken = match insn.code & 0xf0 {
                    0x00 => {
                        pc += usize::try_from(k).map_err(|_| malformed("bad jump"))?;
                        continue;
                    }
                    0x10 => a == operand,
                    0x20 => a > operand,
                    0x30 => a >= operand,
                    0x40 => a & operand != 0,
                    _ => return Err(malformed("unknown jump instruction")),
                };
                pc += usize::from(if taken { insn.jt } else { insn.jf });
            }
            BPF_RET => {
                return Ok(match insn.code & 0x18 {
                    0x10 => a,
                    0x08 => x,
                    _ => k,
                });
            }
            BPF_MISC => {
                if insn.code & 0xf8 == 0x80 {
                    a = x;
                } else {
                    x = a;
                }
            }
            _ => return Err(malformed("unknown instruction class")),
        }
    }
    Err(malformed("program did not return"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn verdict_decoding() {
        assert_eq!(Verdict::from_ret(0x7fff_0000), Verdict::Allow);
        assert_eq!(Verdict::from_ret(0x0005_0026), Verdict::Errno(38));
        assert_eq!(Verdict::from_ret(0x8000_0000), Verdict::KillProcess);
        assert_eq!(Verdict::from_ret(0), Verdict::KillThread);
        assert_eq!(Verdict::from_ret(0x7fc0_0000), Verdict::Notify);
        assert_eq!(Verdict::from_ret(0x1234_0000), Verdict::Other(0x1234_0000));
    }

    #[test]
    fn runs_a_hand_written_program() {
        // A = nr; if A == 39 return ERRNO(1) else ALLOW.
        let program = [
            SockFilter {
                code: 0x20,
                jt: 0,
                jf: 0,
                k: 0,
            },
            SockFilter {
                code: 0x15,
                jt: 0,
                jf: 1,
                k: 39,
            },
            SockFilter {
                code: 0x06,
                jt: 0,
                jf: 0,
                k: 0x0005_0001,
            },
            SockFilter {
                code: 0x06,
                jt: 0,
                jf: 0,
                k: 0x7fff_0000,
            },
        ];
        validate(&program).unwrap();
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&39u32.to_ne_bytes());
        assert_eq!(run(&program, &data).unwrap(), 0x0005_0001);
        data[0..4].copy_from_slice(&40u32.to_ne_bytes());
        assert_eq!(run(&program, &data).unwrap(), 0x7fff_0000);
    }

    #[test]
    fn validate_rejects_bad_loads() {
        let program = [
            SockFilter {
                code: 0x20,
                jt: 0,
                jf: 0,
                k: 64,
            },
            SockFilter {
                code: 0x06,
                jt: 0,
                jf: 0,
                k: 0,
            },
        ];
        assert!(validate(&program).is_err());
        let program = [
            SockFilter {
                code: 0x28,
                jt: 0,
                jf: 0,
                k: 0,
            },
            SockFilter {
                code: 0x06,
                jt: 0,
                jf: 0,
                k: 0,
            },
        ];
        assert!(validate(&program).is_err());
    }
}
