//! The owner and inode of one TCP socket, asked of the kernel by its four addresses over
//! `NETLINK_SOCK_DIAG` (sock_diag(7), what `ss` uses): one request and one answer, where
//! reading `/proc/net/tcp` makes the kernel print every socket of the machine (milliseconds
//! with a few thousand). Written by hand: two fixed-layout structs, where the netlink crates
//! would bring a message framework for them.

use std::net::SocketAddr;

use rustix::net::{netlink, AddressFamily, RecvFlags, SendFlags, SocketType};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const HEADER: usize = 16;
/// `struct inet_diag_req_v2`.
const REQUEST: usize = 56;
/// `struct inet_diag_msg` up to and including `idiag_inode`.
const ANSWER: usize = 72;

/// The uid and inode of the socket whose local address is `local` and remote `remote`.
pub fn socket(local: SocketAddr, remote: SocketAddr) -> Option<(u32, u64)> {
    let fd = rustix::net::socket(
        AddressFamily::NETLINK,
        SocketType::DGRAM,
        Some(netlink::SOCK_DIAG),
    )
    .ok()?;
    rustix::net::send(&fd, &request(local, remote)?, SendFlags::empty()).ok()?;
    let mut answer = [0u8; 512];
    let (_, len) = rustix::net::recv(&fd, &mut answer[..], RecvFlags::empty()).ok()?;
    parse(answer.get(..len)?)
}

fn request(local: SocketAddr, remote: SocketAddr) -> Option<Vec<u8>> {
    let family = match (local, remote) {
        (SocketAddr::V4(_), SocketAddr::V4(_)) => libc_family(false),
        (SocketAddr::V6(_), SocketAddr::V6(_)) => libc_family(true),
        _ => return None,
    };
    let mut m = Vec::with_capacity(HEADER + REQUEST);
    m.extend_from_slice(&((HEADER + REQUEST) as u32).to_ne_bytes());
    m.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    m.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    m.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
    m.extend_from_slice(&[family, 6 /* IPPROTO_TCP */, 0, 0]);
    m.extend_from_slice(&u32::MAX.to_ne_bytes()); // every state
    m.extend_from_slice(&local.port().to_be_bytes());
    m.extend_from_slice(&remote.port().to_be_bytes());
    for addr in [local, remote] {
        let mut bytes = [0u8; 16];
        match addr {
            SocketAddr::V4(a) => bytes[..4].copy_from_slice(&a.ip().octets()),
            SocketAddr::V6(a) => bytes.copy_from_slice(&a.ip().octets()),
        }
        m.extend_from_slice(&bytes);
    }
    m.extend_from_slice(&0u32.to_ne_bytes()); // interface
    m.extend_from_slice(&[0xff; 8]); // INET_DIAG_NOCOOKIE
    Some(m)
}

fn libc_family(v6: bool) -> u8 {
    if v6 {
        10 // AF_INET6
    } else {
        2 // AF_INET
    }
}

fn parse(answer: &[u8]) -> Option<(u32, u64)> {
    let kind = u16::from_ne_bytes(answer.get(4..6)?.try_into().ok()?);
    if kind == NLMSG_ERROR || answer.len() < HEADER + ANSWER {
        return None;
    }
    let word = |at: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(answer.get(at..at + 4)?.try_into().ok()?))
    };
    // family, state, timer, retrans (4), the socket id (48), expires, rqueue, wqueue (12).
    let uid = word(HEADER + 64)?;
    let inode = word(HEADER + 68)?;
    (inode != 0).then_some((uid, u64::from(inode)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_kernel_names_the_owner_and_inode_of_our_own_connection() {
        use std::os::unix::fs::MetadataExt;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(server).unwrap();
        let from = client.local_addr().unwrap();
        let (uid, inode) = super::socket(from, server).expect("the kernel answers");
        assert_eq!(uid, crate::engine::system::private::euid());
        let fd = std::os::fd::AsRawFd::as_raw_fd(&client);
        let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
        assert_eq!(link.to_str().unwrap(), format!("socket:[{inode}]"));
        let _ = std::fs::metadata("/proc/self").unwrap().uid();
        let nowhere = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
        assert_eq!(super::socket(from, nowhere), None);
    }
}
