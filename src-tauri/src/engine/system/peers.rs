//! Who is at the other end, asked of the kernel: before a client sends a key to a loopback
//! port, it checks that the listening socket is one of its own user's. While the engine is
//! down, any local user may bind its port and collect the keys of scripts that call it.
//! Linux lists every socket with its owner in `/proc/net/tcp` and `/proc/net/tcp6`;
//! elsewhere nothing is known and the caller goes on as before.

use std::net::SocketAddr;
#[cfg(any(target_os = "linux", test))]
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The uid that owns the socket listening on `addr` (or on the wildcard address of its
/// family and port), if the kernel lists one.
pub fn listener_uid(addr: SocketAddr) -> Option<u32> {
    #[cfg(target_os = "linux")]
    {
        let table = match addr {
            SocketAddr::V4(_) => "/proc/net/tcp",
            SocketAddr::V6(_) => "/proc/net/tcp6",
        };
        let text = std::fs::read_to_string(table).ok()?;
        listening_owner(&text, addr)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = addr;
        None
    }
}

/// The uid of the process at the other end of a loopback TCP connection: the owner of the
/// socket whose local address is `peer` and whose remote address is `ours`. `None` where the
/// kernel does not say (other systems, or the peer is gone).
pub fn connection_uid(peer: SocketAddr, ours: SocketAddr) -> Option<u32> {
    #[cfg(target_os = "linux")]
    {
        super::sock_diag::socket(peer, ours).map(|(uid, _)| uid)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (peer, ours);
        None
    }
}

/// The owner of `addr`'s listening socket in a `/proc/net/tcp{,6}` table.
#[cfg(any(target_os = "linux", test))]
fn listening_owner(table: &str, addr: SocketAddr) -> Option<u32> {
    const LISTEN: &str = "0A";
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (local, state, uid) = (fields.get(1)?, fields.get(3)?, fields.get(7)?);
        let (ip, port) = local.split_once(':')?;
        let port = u16::from_str_radix(port, 16).ok()?;
        let ip = parse_ip(ip)?;
        let covers = ip == addr.ip() || ip.is_unspecified();
        (*state == LISTEN && port == addr.port() && covers)
            .then(|| uid.parse().ok())
            .flatten()
    })
}

/// The kernel prints each 32-bit word of the address as it sits in memory, in hex.
#[cfg(any(target_os = "linux", test))]
fn parse_ip(hex: &str) -> Option<IpAddr> {
    let word = |i: usize| -> Option<[u8; 4]> {
        Some(
            u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16)
                .ok()?
                .to_ne_bytes(),
        )
    };
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(0)?))),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(bytes)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_socket_is_found_with_its_owner_and_others_are_not() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 0100007F:2224 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0 100 0 0 10 0\n\
           1: 0100007F:2225 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     7        0 2 1 0 100 0 0 10 0\n\
           2: 00000000:2226 00000000:0000 0A 00000000:00000000 00:00000000 00000000    65534        0 3 1 0 100 0 0 10 0\n";
        let at = |port| SocketAddr::from(([127, 0, 0, 1], port));
        if cfg!(target_endian = "little") {
            assert_eq!(listening_owner(table, at(0x2224)), Some(1000));
            // An established connection on a port is not a listener.
            assert_eq!(listening_owner(table, at(0x2225)), None);
            // 0.0.0.0 takes loopback connections too.
            assert_eq!(listening_owner(table, at(0x2226)), Some(65534));
        }
        assert_eq!(listening_owner(table, at(1)), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn both_ends_of_our_own_connection_are_ours() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(server).unwrap();
        let me = crate::engine::system::private::euid();
        let from = client.local_addr().unwrap();
        assert_eq!(connection_uid(from, server), Some(me));
        let (_accepted, _) = listener.accept().unwrap();
        assert_eq!(connection_uid(server, from), Some(me));
        let elsewhere = SocketAddr::from(([127, 0, 0, 1], 1));
        assert_eq!(connection_uid(from, elsewhere), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn our_own_listener_is_ours() {
        let v4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let me = crate::engine::system::private::euid();
        assert_eq!(listener_uid(v4.local_addr().unwrap()), Some(me));
        if let Ok(v6) = std::net::TcpListener::bind("[::1]:0") {
            assert_eq!(listener_uid(v6.local_addr().unwrap()), Some(me));
        }
        drop(v4);
    }
}
