//! A loopback port for configurations that must name a port before the
//! server that listens on it starts (two sites' s2s routes name each
//! other's ports).
//!
//! Binding port 0 and closing again is not enough: the kernel hands out
//! the same ephemeral range as source ports of outgoing connections, so on
//! a busy machine (a parallel test run) another process's connection can
//! take the port before our server binds it. Ports below the ephemeral
//! range are never chosen by the kernel, so a port picked there at random
//! and found free stays free unless another process picks the same number.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::{Ipv4Addr, TcpListener};

/// The lowest port we pick: above the registered ports most services use.
const LOWEST: u16 = 20_000;
/// The kernel's ephemeral range starts here unless `/proc` says otherwise.
const EPHEMERAL_DEFAULT: u16 = 32_768;
/// How many random candidates are tried before falling back to port 0.
const TRIES: usize = 64;

/// A port on 127.0.0.1 that is free now and outside the kernel's
/// ephemeral range (when there is room below it), so no outgoing
/// connection takes it before the caller binds it.
pub fn spare_port() -> std::io::Result<u16> {
    let top = ephemeral_start().unwrap_or(EPHEMERAL_DEFAULT);
    if top > LOWEST + 1_000 {
        let span = u64::from(top - LOWEST);
        for _ in 0..TRIES {
            let mut h = RandomState::new().build_hasher();
            h.write_u32(std::process::id());
            let offset = u16::try_from(h.finish() % span).unwrap_or(0);
            let port = LOWEST + offset;
            if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
                return Ok(port);
            }
        }
    }
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

/// The first port of the kernel's ephemeral range (Linux).
fn ephemeral_start() -> Option<u16> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    range.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spare_port_can_be_bound_and_is_below_the_ephemeral_range() {
        let port = spare_port().unwrap();
        let top = ephemeral_start().unwrap_or(EPHEMERAL_DEFAULT);
        if top > LOWEST + 1_000 {
            assert!((LOWEST..top).contains(&port), "{port}");
        }
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
    }

    #[test]
    fn spare_ports_differ() {
        let ports: std::collections::HashSet<u16> = (0..20).map(|_| spare_port().unwrap()).collect();
        assert!(ports.len() > 1);
    }
}
