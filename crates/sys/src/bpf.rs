//! eBPF program loading for the cgroup v2 device controller (being implemented).
