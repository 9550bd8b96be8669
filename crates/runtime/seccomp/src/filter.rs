//! A compiled filter: the BPF program, its load flags, and whether it wants a listener.

use std::os::fd::OwnedFd;

use berth_sys::SockFilter;

use crate::error::{Error, Result};

/// Size in bytes of one `struct sock_filter`.
pub(crate) const INSTRUCTION_SIZE: usize = 8;

/// The kernel's limit on a classic BPF program (`BPF_MAXINSNS`); `seccomp(2)` refuses
/// longer ones, so a longer cached program cannot be valid.
pub(crate) const MAX_INSTRUCTIONS: usize = 4096;

/// `seccomp(2)` `SECCOMP_FILTER_FLAG_*` values (`<linux/seccomp.h>`).
pub(crate) mod flags {
    /// Synchronise all threads of the process onto the new filter.
    pub(crate) const TSYNC: u32 = 1 << 0;
    /// Log every action but `SECCOMP_RET_ALLOW`.
    pub(crate) const LOG: u32 = 1 << 1;
    /// Disable the speculative store bypass mitigation.
    pub(crate) const SPEC_ALLOW: u32 = 1 << 2;
    /// Return a user-notification listener fd.
    pub(crate) const NEW_LISTENER: u32 = 1 << 3;
    /// With `TSYNC`, fail with `ESRCH` instead of a thread ID (needed with `NEW_LISTENER`).
    pub(crate) const TSYNC_ESRCH: u32 = 1 << 4;
    /// Waiting for a notification reply is killable only by fatal signals.
    pub(crate) const WAIT_KILLABLE_RECV: u32 = 1 << 5;
    /// Every flag this crate may set.
    pub(crate) const ALL: u32 =
        TSYNC | LOG | SPEC_ALLOW | NEW_LISTENER | TSYNC_ESRCH | WAIT_KILLABLE_RECV;
}

/// Magic of the serialized form: "Berth Seccomp Filter", format 1.
const MAGIC: [u8; 4] = *b"BSF1";

/// A seccomp filter ready to be installed: a classic BPF program plus the
/// `seccomp(2)` flags to install it with.
///
/// Built by [`compile`](crate::compile) or [`compile_cached`](crate::compile_cached);
/// installing it ([`CompiledFilter::load`]) involves no libseccomp code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledFilter {
    program: Vec<SockFilter>,
    flags: u32,
}

impl CompiledFilter {
    /// Build a filter from libseccomp's exported bytes and the profile's flags.
    ///
    /// `NEW_LISTENER` is added when a listener is wanted, and `TSYNC_ESRCH` with it
    /// when `TSYNC` is set (the kernel refuses `TSYNC | NEW_LISTENER` alone, because both
    /// would use the return value). `WAIT_KILLABLE_RECV` only means something with a
    /// listener, and the kernel refuses it without one, so it is dropped then.
    pub(crate) fn new(bytes: Vec<u8>, mut load_flags: u32, wants_listener: bool) -> Result<Self> {
        if wants_listener {
            load_flags |= flags::NEW_LISTENER;
            if load_flags & flags::TSYNC != 0 {
                load_flags |= flags::TSYNC_ESRCH;
            }
        } else {
            load_flags &= !flags::WAIT_KILLABLE_RECV;
        }
        let program = decode_program(&bytes)?;
        Ok(CompiledFilter {
            program,
            flags: load_flags,
        })
    }

    /// The BPF instructions.
    pub fn program(&self) -> &[SockFilter] {
        &self.program
    }

    /// The `SECCOMP_FILTER_FLAG_*` bits [`load`](Self::load) passes to `seccomp(2)`.
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// Whether the profile has `SCMP_ACT_NOTIFY` rules, so that [`load`](Self::load)
    /// returns a listener fd the runtime must hand to the `listenerPath` agent.
    pub fn wants_listener(&self) -> bool {
        self.flags & flags::NEW_LISTENER != 0
    }

    /// Install the filter on the calling thread (all threads with `TSYNC`).
    ///
    /// The caller must have set `no_new_privs` or hold `CAP_SYS_ADMIN`. Returns the
    /// user-notification listener when [`wants_listener`](Self::wants_listener).
    pub fn load(&self) -> Result<Option<OwnedFd>> {
        berth_sys::seccomp_set_mode_filter(&self.program, self.flags).map_err(Error::Load)
    }

    /// Serialize for the on-disk cache: an 8-byte header (magic `BSF1`, flags as a
    /// little-endian `u32`) then the instructions as the kernel reads them (host byte
    /// order; the cache key includes the architecture).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(INSTRUCTION_SIZE * (self.program.len() + 1));
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&self.flags.to_le_bytes());
        for insn in &self.program {
            out.extend_from_slice(&insn.code.to_ne_bytes());
            out.push(insn.jt);
            out.push(insn.jf);
            out.extend_from_slice(&insn.k.to_ne_bytes());
        }
        out
    }

    /// Parse what [`to_bytes`](Self::to_bytes) wrote, validating it as the kernel
    /// would: known flags only, 1 to 4096 instructions, only the opcodes seccomp
    /// accepts, every jump inside the program, and a return as last instruction.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let (header, body) =
            bytes
                .split_at_checked(INSTRUCTION_SIZE)
                .ok_or(Error::MalformedProgram {
                    reason: "shorter than its header",
                })?;
        let (magic, flag_bytes) = header.split_at(MAGIC.len());
        if magic != MAGIC {
            return Err(Error::MalformedProgram {
                reason: "bad magic",
            });
        }
        let mut raw_flags = [0u8; 4];
        raw_flags.copy_from_slice(flag_bytes);
        let flags = u32::from_le_bytes(raw_flags);
        if flags & !flags::ALL != 0 {
            return Err(Error::MalformedProgram {
                reason: "unknown load flags",
            });
        }
        let program = decode_program(body)?;
        Ok(CompiledFilter { program, flags })
    }
}

/// Decode and validate raw `struct sock_filter` bytes in host byte order.
fn decode_program(bytes: &[u8]) -> Result<Vec<SockFilter>> {
    if !bytes.chunks_exact(INSTRUCTION_SIZE).remainder().is_empty() {
        return Err(Error::MalformedProgram {
            reason: "size is not a multiple of 8",
        });
    }
    let count = bytes.len() / INSTRUCTION_SIZE;
    if count == 0 {
        return Err(Error::MalformedProgram {
            reason: "empty program",
        });
    }
    if count > MAX_INSTRUCTIONS {
        return Err(Error::MalformedProgram {
            reason: "more than 4096 instructions",
        });
    }
    let program: Vec<SockFilter> = bytes
        .chunks_exact(INSTRUCTION_SIZE)
        .map(|c| SockFilter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    crate::simulate::validate(&program)?;
    Ok(program)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn ret_allow() -> SockFilter {
        SockFilter {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: 0x7fff_0000,
        }
    }

    #[test]
    fn flags_for_listener() {
        let bytes = CompiledFilter {
            program: vec![ret_allow()],
            flags: 0,
        }
        .to_bytes();
        let f = CompiledFilter::new(bytes[8..].to_vec(), flags::TSYNC, true).unwrap();
        assert_eq!(
            f.flags(),
            flags::TSYNC | flags::NEW_LISTENER | flags::TSYNC_ESRCH
        );
        assert!(f.wants_listener());
        let f = CompiledFilter::new(bytes[8..].to_vec(), flags::WAIT_KILLABLE_RECV, false).unwrap();
        assert_eq!(f.flags(), 0);
        assert!(!f.wants_listener());
    }

    #[test]
    fn bytes_round_trip_and_rejects() {
        let f = CompiledFilter {
            program: vec![ret_allow()],
            flags: flags::LOG,
        };
        let bytes = f.to_bytes();
        assert_eq!(bytes.len(), 16);
        assert_eq!(CompiledFilter::from_bytes(&bytes).unwrap(), f);

        assert!(CompiledFilter::from_bytes(&bytes[..15]).is_err());
        assert!(CompiledFilter::from_bytes(&bytes[..8]).is_err());
        assert!(CompiledFilter::from_bytes(&[]).is_err());
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert!(CompiledFilter::from_bytes(&bad).is_err());
        let mut bad = bytes.clone();
        bad[7] = 0x80;
        assert!(CompiledFilter::from_bytes(&bad).is_err());
        // A jump past the end.
        let jump = CompiledFilter {
            program: vec![
                SockFilter {
                    code: 0x05,
                    jt: 0,
                    jf: 0,
                    k: 5,
                },
                ret_allow(),
            ],
            flags: 0,
        };
        assert!(CompiledFilter::from_bytes(&jump.to_bytes()).is_err());
        // Not ending in a return.
        let open = CompiledFilter {
            program: vec![SockFilter {
                code: 0x20,
                jt: 0,
                jf: 0,
                k: 0,
            }],
            flags: 0,
        };
        assert!(CompiledFilter::from_bytes(&open.to_bytes()).is_err());
        // Too long.
        let long = CompiledFilter {
            program: vec![ret_allow(); MAX_INSTRUCTIONS + 1],
            flags: 0,
        };
        assert!(CompiledFilter::from_bytes(&long.to_bytes()).is_err());
    }
}
