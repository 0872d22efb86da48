//! Free TCP ports on 127.0.0.1 for the servers the tests start.

use std::net::TcpListener;

/// A port on 127.0.0.1 nothing listens on (just now).
pub fn free_port() -> u16 {
    free_ports::<1>()[0]
}

/// `N` distinct free ports: the listeners are held until all are picked
/// (one after the other, the kernel may hand out the same port twice).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let held: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| held[i].local_addr().unwrap().port())
}
