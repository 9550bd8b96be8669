//! eBPF device filters for the cgroup v2 device controller.
//!
//! cgroup v2 has no `devices.allow`/`devices.deny` files. Instead, a program of type
//! `BPF_PROG_TYPE_CGROUP_DEVICE` attached to a cgroup directory decides every device
//! access (`open`, `mknod`) of the processes in it: it returns 1 to allow, 0 to deny.
//!
//! This module does two things:
//!
//! 1. [`DeviceProgram::new`] compiles a list of [`DeviceRule`]s into such a program. The
//!    semantics are those of runc's device list: **default deny**, and the **last rule
//!    that matches** an access decides it. An allow rule matches when it grants every
//!    access bit requested (an `open(O_RDWR)` needs a rule with both `r` and `w`); a deny
//!    rule matches when it denies any requested bit.
//! 2. [`attach_device_program`] loads the program with `bpf(BPF_PROG_LOAD)` and attaches it
//!    to a cgroup with `bpf(BPF_PROG_ATTACH, BPF_F_ALLOW_MULTI)`, replacing (atomically when
//!    the kernel supports `BPF_F_REPLACE`) the program attached there before.
//!
//! The program reads `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`
//! where `access_type` is `(access << 16) | type`, access bits being mknod = 1, read = 2,
//! write = 4 and type block = 1, char = 2.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::{Error, Result};

/// Which device nodes a [`DeviceRule`] applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// Block and character devices.
    All,
    /// Block devices.
    Block,
    /// Character devices.
    Char,
}

/// The accesses a [`DeviceRule`] allows or denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceAccess {
    /// Reading (`open` for reading).
    pub read: bool,
    /// Writing (`open` for writing).
    pub write: bool,
    /// Creating the node with `mknod`.
    pub mknod: bool,
}

impl DeviceAccess {
    /// Read, write and mknod.
    pub const ALL: Self = Self {
        read: true,
        write: true,
        mknod: true,
    };

    /// The kernel's `BPF_DEVCG_ACC_*` bits.
    fn bits(self) -> i32 {
        i32::from(self.mknod) | (i32::from(self.read) << 1) | (i32::from(self.write) << 2)
    }
}

/// One entry of a device list, as the OCI `linux.resources.devices` rules describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRule {
    /// Allow (true) or deny (false) the matching accesses.
    pub allow: bool,
    /// Device type.
    pub kind: DeviceKind,
    /// Major number; `None` matches every major.
    pub major: Option<u32>,
    /// Minor number; `None` matches every minor.
    pub minor: Option<u32>,
    /// Accesses concerned.
    pub access: DeviceAccess,
}

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BpfInsn {
    code: u8,
    /// `dst_reg:4, src_reg:4` bit-fields; see [`BpfInsn::new`].
    regs: u8,
    off: i16,
    imm: i32,
}

// Instruction encodings (linux/bpf_common.h, linux/bpf.h).
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU64_AND_K: u8 = 0x57; // BPF_ALU64 | BPF_AND | BPF_K
const ALU64_RSH_K: u8 = 0x77; // BPF_ALU64 | BPF_RSH | BPF_K
const ALU64_MOV_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const ALU64_MOV_X: u8 = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
const JMP_JEQ_K: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JMP_JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JMP_EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

// Registers used by the generated program.
const R0: u8 = 0; // return value
const R1: u8 = 1; // context pointer on entry
const R2: u8 = 2; // access_type word
const R3: u8 = 3; // device type
const R4: u8 = 4; // requested access bits
const R5: u8 = 5; // major
const R6: u8 = 6; // minor
const R7: u8 = 7; // scratch

const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACCESS_ALL: i32 = 7;

impl BpfInsn {
    fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        // The C bit-fields `__u8 dst_reg:4; __u8 src_reg:4;` are allocated from the least
        // significant bit on little-endian targets and from the most significant on
        // big-endian ones.
        let regs = if cfg!(target_endian = "little") {
            (dst & 0xf) | ((src & 0xf) << 4)
        } else {
            ((dst & 0xf) << 4) | (src & 0xf)
        };
        BpfInsn {
            code,
            regs,
            off,
            imm,
        }
    }
}

/// A compiled `BPF_PROG_TYPE_CGROUP_DEVICE` program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceProgram {
    insns: Vec<BpfInsn>,
}

impl DeviceProgram {
    /// Compile `rules`: default deny, the last matching rule decides.
    ///
    /// Rules are tested from the last to the first and the first hit returns. A rule with
    /// no access bits, or with a major or minor number above `i32::MAX` (no such device
    /// exists: majors have 12 bits and minors 20), can never match and is left out. Code
    /// after a rule that matches everything would be unreachable, which the verifier
    /// refuses, so compilation stops there.
    pub fn new(rules: &[DeviceRule]) -> DeviceProgram {
        let mut insns = vec![
            BpfInsn::new(LDX_MEM_W, R2, R1, 0, 0),
            BpfInsn::new(ALU64_MOV_X, R3, R2, 0, 0),
            BpfInsn::new(ALU64_AND_K, R3, 0, 0, 0xffff),
            BpfInsn::new(ALU64_MOV_X, R4, R2, 0, 0),
            BpfInsn::new(ALU64_RSH_K, R4, 0, 0, 16),
            BpfInsn::new(LDX_MEM_W, R5, R1, 4, 0),
            BpfInsn::new(LDX_MEM_W, R6, R1, 8, 0),
        ];
        for rule in rules.iter().rev() {
            let Some((block, unconditional)) = rule_block(rule) else {
                continue;
            };
            insns.extend(block);
            if unconditional {
                return DeviceProgram { insns };
            }
        }
        insns.push(BpfInsn::new(ALU64_MOV_K, R0, 0, 0, 0));
        insns.push(BpfInsn::new(JMP_EXIT, 0, 0, 0, 0));
        DeviceProgram { insns }
    }

    /// Number of instructions.
    pub fn len(&self) -> usize {
        self.insns.len()
    }

    /// Whether the program has no instructions (never true for a compiled program).
    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }
}

/// The instructions testing one rule, and whether the rule matches every access. Jumps
/// that reject the rule land just after the block. `None` when the rule matches nothing.
fn rule_block(rule: &DeviceRule) -> Option<(Vec<BpfInsn>, bool)> {
    let bits = rule.access.bits();
    if bits == 0 {
        return None;
    }
    let mut block = Vec::with_capacity(8);
    let mut exits = Vec::with_capacity(4);
    let kind = match rule.kind {
        DeviceKind::All => None,
        DeviceKind::Block => Some(DEV_BLOCK),
        DeviceKind::Char => Some(DEV_CHAR),
    };
    if let Some(kind) = kind {
        exits.push(block.len());
        block.push(BpfInsn::new(JMP_JNE_K, R3, 0, 0, kind));
    }
    for (reg, number) in [(R5, rule.major), (R6, rule.minor)] {
        if let Some(number) = number {
            let imm = i32::try_from(number).ok()?;
            exits.push(block.len());
            block.push(BpfInsn::new(JMP_JNE_K, reg, 0, 0, imm));
        }
    }
    if bits != ACCESS_ALL {
        block.push(BpfInsn::new(ALU64_MOV_X, R7, R4, 0, 0));
        if rule.allow {
            // Matches when no requested bit lies outside the rule's bits.
            block.push(BpfInsn::new(ALU64_AND_K, R7, 0, 0, !bits & ACCESS_ALL));
            exits.push(block.len());
            block.push(BpfInsn::new(JMP_JNE_K, R7, 0, 0, 0));
        } else {
            // Matches when some requested bit is one of the rule's bits.
            block.push(BpfInsn::new(ALU64_AND_K, R7, 0, 0, bits));
            exits.push(block.len());
            block.push(BpfInsn::new(JMP_JEQ_K, R7, 0, 0, 0));
        }
    }
    block.push(BpfInsn::new(ALU64_MOV_K, R0, 0, 0, i32::from(rule.allow)));
    block.push(BpfInsn::new(JMP_EXIT, 0, 0, 0, 0));
    let len = block.len();
    for at in &exits {
        // Offsets are relative to the next instruction; blocks are a handful of
        // instructions long, far from i16::MAX.
        let off = i16::try_from(len - at - 1).ok()?;
        if let Some(insn) = block.get_mut(*at) {
            insn.off = off;
        }
    }
    Some((block, exits.is_empty()))
}

// bpf(2) commands, program and attach types, flags (linux/bpf.h).
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;
const BPF_F_REPLACE: u32 = 4;

/// The `BPF_PROG_LOAD` member of `union bpf_attr`, up to `expected_attach_type`.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The `BPF_PROG_ATTACH`/`BPF_PROG_DETACH` member, up to `replace_bpf_fd`.
#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// The `BPF_PROG_QUERY` member, up to `prog_cnt` (and its padding).
#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    pad: u32,
}

/// The `BPF_*_GET_FD_BY_ID` member.
#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

/// Marker for the `bpf_attr` members above: `repr(C)` plain data, no pointers other than
/// the `u64` addresses the caller fills in.
trait BpfAttr {}
impl BpfAttr for ProgLoadAttr {}
impl BpfAttr for AttachAttr {}
impl BpfAttr for QueryAttr {}
impl BpfAttr for GetFdAttr {}

fn sys_bpf<A: BpfAttr>(cmd: libc::c_long, attr: &mut A, call: &'static str) -> Result<i64> {
    // SAFETY: `attr` is a live, writable repr(C) prefix of `union bpf_attr` of exactly the
    // size passed; the kernel zero-extends shorter attributes. Every address stored in it
    // (instructions, license, log buffer, id array) was taken from a buffer the caller
    // keeps borrowed until this call returns, with the length stored beside it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut A,
            std::mem::size_of::<A>() as libc::c_uint,
        )
    };
    if ret < 0 {
        return Err(Error::last(call));
    }
    Ok(ret)
}

fn fd_result(ret: i64, call: &'static str) -> Result<OwnedFd> {
    let fd = i32::try_from(ret).map_err(|_| Error {
        call,
        source: std::io::Error::from_raw_os_error(libc::EBADF),
    })?;
    // SAFETY: the bpf commands that return a descriptor return a fresh one (with
    // close-on-exec set) that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn raw_u32(fd: BorrowedFd<'_>) -> u32 {
    // A borrowed descriptor is never negative.
    u32::try_from(fd.as_raw_fd()).unwrap_or(u32::MAX)
}

/// Load `program`; on a verifier rejection, load it again with a log and put the log's
/// tail in the error.
fn load(program: &DeviceProgram) -> Result<OwnedFd> {
    const LICENSE: &std::ffi::CStr = c"Apache-2.0";
    const NAME: &[u8] = b"berth_devices";
    let insn_cnt = u32::try_from(program.insns.len()).map_err(|_| Error {
        call: "bpf(BPF_PROG_LOAD)",
        source: std::io::Error::from_raw_os_error(libc::E2BIG),
    })?;
    let mut prog_name = [0u8; 16];
    for (dst, src) in prog_name.iter_mut().zip(NAME) {
        *dst = *src;
    }
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt,
        insns: program.insns.as_ptr() as u64,
        license: LICENSE.as_ptr() as u64,
        prog_name,
        expected_attach_type: BPF_CGROUP_DEVICE,
        ..ProgLoadAttr::default()
    };
    let first = match sys_bpf(BPF_PROG_LOAD, &mut attr, "bpf(BPF_PROG_LOAD)") {
        Ok(ret) => return fd_result(ret, "bpf(BPF_PROG_LOAD)"),
        Err(err) => err,
    };
    if first.errno() != Some(libc::EINVAL) && first.errno() != Some(libc::EACCES) {
        return Err(first);
    }
    let mut log = vec![0u8; 64 * 1024];
    attr.log_level = 1;
    attr.log_size = u32::try_from(log.len()).unwrap_or(0);
    attr.log_buf = log.as_mut_ptr() as u64;
    match sys_bpf(BPF_PROG_LOAD, &mut attr, "bpf(BPF_PROG_LOAD)") {
        Ok(ret) => fd_result(ret, "bpf(BPF_PROG_LOAD)"),
        Err(err) => {
            let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(log.get(..end).unwrap_or_default());
            let tail: String = text
                .chars()
                .rev()
                .take(2000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let kind = err.source.kind();
            Err(Error {
                call: "bpf(BPF_PROG_LOAD)",
                source: std::io::Error::new(
                    kind,
                    format!("{}; verifier log: {}", err.source, tail.trim()),
                ),
            })
        }
    }
}

/// IDs of the device programs attached directly to the cgroup `cgroup` (an open
/// directory of a cgroup v2 hierarchy).
pub fn device_program_ids(cgroup: BorrowedFd<'_>) -> Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    loop {
        let mut attr = QueryAttr {
            target_fd: raw_u32(cgroup),
            attach_type: BPF_CGROUP_DEVICE,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: u32::try_from(ids.len()).unwrap_or(0),
            ..QueryAttr::default()
        };
        match sys_bpf(BPF_PROG_QUERY, &mut attr, "bpf(BPF_PROG_QUERY)") {
            Ok(_) => {
                ids.truncate(usize::try_from(attr.prog_cnt).unwrap_or(0));
                return Ok(ids);
            }
            Err(err) if err.errno() == Some(libc::ENOSPC) && ids.len() < 1 << 16 => {
                let want = usize::try_from(attr.prog_cnt)
                    .unwrap_or(0)
                    .max(ids.len() * 2);
                ids = vec![0u32; want];
            }
            Err(err) => return Err(err),
        }
    }
}

fn prog_fd_by_id(id: u32) -> Result<OwnedFd> {
    let mut attr = GetFdAttr {
        id,
        ..GetFdAttr::default()
    };
    let ret = sys_bpf(
        BPF_PROG_GET_FD_BY_ID,
        &mut attr,
        "bpf(BPF_PROG_GET_FD_BY_ID)",
    )?;
    fd_result(ret, "bpf(BPF_PROG_GET_FD_BY_ID)")
}

fn attach(cgroup: BorrowedFd<'_>, prog: &OwnedFd, replace: Option<&OwnedFd>) -> Result<()> {
    let mut attr = AttachAttr {
        target_fd: raw_u32(cgroup),
        attach_bpf_fd: u32::try_from(prog.as_raw_fd()).unwrap_or(u32::MAX),
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    if let Some(old) = replace {
        attr.attach_flags |= BPF_F_REPLACE;
        attr.replace_bpf_fd = u32::try_from(old.as_raw_fd()).unwrap_or(u32::MAX);
    }
    sys_bpf(BPF_PROG_ATTACH, &mut attr, "bpf(BPF_PROG_ATTACH)").map(|_| ())
}

fn detach(cgroup: BorrowedFd<'_>, prog: &OwnedFd) -> Result<()> {
    let mut attr = AttachAttr {
        target_fd: raw_u32(cgroup),
        attach_bpf_fd: u32::try_from(prog.as_raw_fd()).unwrap_or(u32::MAX),
        attach_type: BPF_CGROUP_DEVICE,
        ..AttachAttr::default()
    };
    sys_bpf(BPF_PROG_DETACH, &mut attr, "bpf(BPF_PROG_DETACH)").map(|_| ())
}

/// Load `program` and make it the device filter of `cgroup` (an open cgroup v2
/// directory), replacing the device programs attached there before.
///
/// The new program is attached with `BPF_F_ALLOW_MULTI` (so programs of ancestors keep
/// applying too). With exactly one old program it is swapped in one step with
/// `BPF_F_REPLACE`; otherwise (or on kernels before 5.6) the new program is attached
/// first and the old ones are detached afterwards, so the cgroup is never unfiltered.
/// Needs `CAP_SYS_ADMIN` (or `CAP_BPF` + `CAP_NET_ADMIN`).
pub fn attach_device_program(cgroup: BorrowedFd<'_>, program: &DeviceProgram) -> Result<()> {
    let prog = load(program)?;
    let old = device_program_ids(cgroup)?;
    if let [only] = old.as_slice() {
        match prog_fd_by_id(*only) {
            Ok(old_fd) => match attach(cgroup, &prog, Some(&old_fd)) {
                Ok(()) => return Ok(()),
                Err(err) if err.errno() == Some(libc::EINVAL) => {}
                Err(err) => return Err(err),
            },
            Err(err) if err.errno() == Some(libc::ENOENT) => {}
            Err(err) => return Err(err),
        }
    }
    attach(cgroup, &prog, None)?;
    for id in old {
        let old_fd = match prog_fd_by_id(id) {
            Ok(fd) => fd,
            Err(err) if err.errno() == Some(libc::ENOENT) => continue,
            Err(err) => return Err(err),
        };
        match detach(cgroup, &old_fd) {
            Ok(()) => {}
            Err(err) if err.errno() == Some(libc::ENOENT) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]
mod tests {
    use super::*;

    /// Run `prog` on one access like the kernel would: a tiny interpreter for exactly the
    /// instructions the compiler emits.
    fn run(prog: &DeviceProgram, kind: i32, access: i32, major: u32, minor: u32) -> u64 {
        let ctx = [((access << 16) | kind) as u32, major, minor];
        let mut regs = [0u64; 11];
        let mut pc = 0usize;
        for _ in 0..10_000 {
            let insn = prog.insns[pc];
            let (dst, src) = if cfg!(target_endian = "little") {
                (usize::from(insn.regs & 0xf), usize::from(insn.regs >> 4))
            } else {
                (usize::from(insn.regs >> 4), usize::from(insn.regs & 0xf))
            };
            let imm = i64::from(insn.imm) as u64;
            pc += 1;
            match insn.code {
                LDX_MEM_W => {
                    assert_eq!(src, 1);
                    regs[dst] = u64::from(ctx[usize::try_from(insn.off).unwrap() / 4]);
                }
                ALU64_MOV_X => regs[dst] = regs[src],
                ALU64_MOV_K => regs[dst] = imm,
                ALU64_AND_K => regs[dst] &= imm,
                ALU64_RSH_K => regs[dst] >>= imm,
                JMP_JNE_K | JMP_JEQ_K => {
                    let eq = regs[dst] == imm;
                    if eq == (insn.code == JMP_JEQ_K) {
                        pc = (pc as i64 + i64::from(insn.off)) as usize;
                    }
                }
                JMP_EXIT => return regs[0],
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
        panic!("program did not terminate");
    }

    fn rule(
        allow: bool,
        kind: DeviceKind,
        major: Option<u32>,
        minor: Option<u32>,
        acc: &str,
    ) -> DeviceRule {
        DeviceRule {
            allow,
            kind,
            major,
            minor,
            access: DeviceAccess {
                read: acc.contains('r'),
                write: acc.contains('w'),
                mknod: acc.contains('m'),
            },
        }
    }

    const R: i32 = 2;
    const W: i32 = 4;
    const M: i32 = 1;

    #[test]
    fn empty_list_denies_everything() {
        let p = DeviceProgram::new(&[]);
        assert_eq!(run(&p, DEV_CHAR, R, 1, 3), 0);
        assert_eq!(p.len(), 9);
    }

    #[test]
    fn deny_all_then_allow_null() {
        let p = DeviceProgram::new(&[
            rule(false, DeviceKind::All, None, None, "rwm"),
            rule(true, DeviceKind::Char, Some(1), Some(3), "rwm"),
        ]);
        assert_eq!(run(&p, DEV_CHAR, R | W, 1, 3), 1);
        assert_eq!(run(&p, DEV_CHAR, M, 1, 3), 1);
        assert_eq!(run(&p, DEV_BLOCK, R, 1, 3), 0);
        assert_eq!(run(&p, DEV_CHAR, R, 1, 5), 0);
        assert_eq!(run(&p, DEV_CHAR, R, 4, 3), 0);
    }

    #[test]
    fn last_match_wins() {
        let p = DeviceProgram::new(&[
            rule(true, DeviceKind::Char, Some(1), None, "rw"),
            rule(false, DeviceKind::Char, Some(1), Some(1), "rwm"),
        ]);
        assert_eq!(run(&p, DEV_CHAR, R, 1, 3), 1);
        assert_eq!(run(&p, DEV_CHAR, R, 1, 1), 0);
        // mknod is not granted by the allow rule; default deny.
        assert_eq!(run(&p, DEV_CHAR, M, 1, 3), 0);
        let p = DeviceProgram::new(&[
            rule(false, DeviceKind::Char, Some(1), Some(1), "rwm"),
            rule(true, DeviceKind::Char, Some(1), None, "rw"),
        ]);
        assert_eq!(run(&p, DEV_CHAR, R, 1, 1), 1);
    }

    #[test]
    fn allow_needs_every_requested_bit() {
        let p = DeviceProgram::new(&[
            rule(true, DeviceKind::Char, Some(1), Some(3), "r"),
            rule(true, DeviceKind::Char, Some(1), Some(3), "w"),
        ]);
        assert_eq!(run(&p, DEV_CHAR, R, 1, 3), 1);
        assert_eq!(run(&p, DEV_CHAR, W, 1, 3), 1);
        assert_eq!(run(&p, DEV_CHAR, R | W, 1, 3), 0);
    }

    #[test]
    fn deny_matches_any_requested_bit() {
        let p = DeviceProgram::new(&[
            rule(true, DeviceKind::All, None, None, "rwm"),
            rule(false, DeviceKind::Char, Some(1), Some(3), "w"),
        ]);
        assert_eq!(run(&p, DEV_CHAR, R, 1, 3), 1);
        assert_eq!(run(&p, DEV_CHAR, R | W, 1, 3), 0);
        assert_eq!(run(&p, DEV_BLOCK, R | W, 8, 0), 1);
    }

    #[test]
    fn unconditional_rule_ends_the_program() {
        // Everything before the trailing allow-all is unreachable and must not be emitted.
        let p = DeviceProgram::new(&[
            rule(false, DeviceKind::Char, Some(1), Some(3), "rwm"),
            rule(true, DeviceKind::All, None, None, "rwm"),
        ]);
        assert_eq!(p.len(), 9);
        assert_eq!(run(&p, DEV_CHAR, R, 1, 3), 1);
    }

    #[test]
    fn impossible_rules_are_dropped() {
        let p = DeviceProgram::new(&[
            rule(true, DeviceKind::Char, Some(u32::MAX), None, "rwm"),
            rule(true, DeviceKind::Char, Some(1), None, ""),
        ]);
        assert_eq!(p.len(), 9);
        assert_eq!(run(&p, DEV_CHAR, R, 1, 3), 0);
    }

    #[test]
    fn wildcard_major_with_fixed_minor() {
        let p = DeviceProgram::new(&[rule(true, DeviceKind::Block, None, Some(0), "r")]);
        assert_eq!(run(&p, DEV_BLOCK, R, 8, 0), 1);
        assert_eq!(run(&p, DEV_BLOCK, R, 8, 1), 0);
        assert_eq!(run(&p, DEV_CHAR, R, 8, 0), 0);
    }

    #[test]
    fn kernel_verifier_accepts_programs() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipping kernel_verifier_accepts_programs: needs root");
            return;
        }
        let programs = [
            DeviceProgram::new(&[]),
            DeviceProgram::new(&[
                rule(false, DeviceKind::All, None, None, "rwm"),
                rule(true, DeviceKind::Char, Some(1), Some(3), "rwm"),
                rule(true, DeviceKind::Block, None, Some(0), "r"),
                rule(false, DeviceKind::Char, Some(5), None, "w"),
            ]),
            DeviceProgram::new(&[rule(true, DeviceKind::All, None, None, "rwm")]),
        ];
        for p in &programs {
            load(p).unwrap();
        }
    }
}
