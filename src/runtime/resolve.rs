//! Host names of pull origins, looked up without stopping the shard. The system resolver
//! blocks: for milliseconds normally, for seconds when a DNS server does not answer (often
//! just when an origin is failing and its pull reconnects), and a blocked shard stalls
//! every viewer on it. The lookup runs on the executor's blocking thread, bounded by the
//! caller's deadline; IP literals need none. A TCP origin is connected at each of its
//! addresses in turn, as curl and ffmpeg do (a name with an IPv6 address first, say, while
//! the origin listens on IPv4 only).

use glommio::net::TcpStream;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Addresses tried at most for one name.
const MAX_ADDRESSES: usize = 8;

/// `host`'s first address with `port`, or why there is none within `limit`.
pub async fn resolve(host: &str, port: u16, limit: Duration) -> Result<SocketAddr, String> {
    Ok(resolve_all(host, port, limit).await?[0])
}

/// A TCP connection to `host`: each of its addresses in turn until one answers, all within
/// `limit`.
pub async fn connect(host: &str, port: u16, limit: Duration) -> Result<TcpStream, String> {
    let deadline = Instant::now() + limit;
    let addrs = resolve_all(host, port, limit).await?;
    connect_first(host, &addrs, deadline).await
}

/// A TCP connection to the first of `addrs` that answers before `deadline`.
async fn connect_first(
    host: &str,
    addrs: &[SocketAddr],
    deadline: Instant,
) -> Result<TcpStream, String> {
    let mut why = String::new();
    for &addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(addr, left).await {
            Ok(socket) => return Ok(socket),
            Err(e) => why = format!("cannot connect to {addr}: {e}"),
        }
    }
    Err(if why.is_empty() {
        format!("cannot connect to {host}: no time left")
    } else {
        why
    })
}

/// `host`'s addresses with `port` (at least one, at most `MAX_ADDRESSES`), or why there is
/// none within `limit`.
async fn resolve_all(host: &str, port: u16, limit: Duration) -> Result<Vec<SocketAddr>, String> {
    if let Some(ip) = ip_literal(host) {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let name = host.to_owned();
    let lookup = glommio::executor().spawn_blocking(move || {
        (name.as_str(), port)
            .to_socket_addrs()
            .map(|addrs| addrs.take(MAX_ADDRESSES).collect::<Vec<_>>())
            .map_err(|e| e.to_string())
    });
    let found = futures_lite::future::or(async { Some(lookup.await) }, async {
        glommio::timer::sleep(limit).await;
        None
    })
    .await;
    match found {
        None => Err(format!(
            "cannot resolve {host}: no answer within {} ms",
            limit.as_millis()
        )),
        Some(Err(e)) => Err(format!("cannot resolve {host}: {e}")),
        Some(Ok(addrs)) if addrs.is_empty() => Err(format!("{host} has no address")),
        Some(Ok(addrs)) => Ok(addrs),
    }
}

/// `host` as an IP address, bracketed (IPv6 in a URL) or not.
fn ip_literal(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        glommio::LocalExecutorBuilder::default()
            .make()
            .expect("executor")
            .run(f)
    }

    #[test]
    fn literals_need_no_lookup_and_names_are_looked_up_off_the_shard() {
        let found = run(async {
            let v4 = resolve("192.0.2.7", 1935, Duration::from_secs(5)).await;
            let v6 = resolve("[2001:db8::1]", 554, Duration::from_secs(5)).await;
            let name = resolve("localhost", 8080, Duration::from_secs(5)).await;
            (v4, v6, name)
        });
        assert_eq!(found.0, Ok("192.0.2.7:1935".parse().unwrap()));
        assert_eq!(found.1, Ok("[2001:db8::1]:554".parse().unwrap()));
        let name = found.2.expect("localhost resolves");
        assert!(name.ip().is_loopback() && name.port() == 8080, "{name}");
    }

    #[test]
    fn a_connection_tries_each_address_until_one_answers() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let listening = listener.local_addr().unwrap();
        let nobody: SocketAddr = ([127, 0, 0, 1], port_nobody_listens_on()).into();
        let deadline = Instant::now() + Duration::from_secs(5);
        let connected = run(async move {
            connect_first("origin", &[nobody, listening], deadline)
                .await
                .map(|s| s.peer_addr().unwrap())
        });
        assert_eq!(connected, Ok(listening));
        let port = listening.port();
        let by_name = run(async move { connect("localhost", port, Duration::from_secs(5)).await });
        assert!(by_name.is_ok(), "{:?}", by_name.err());
        let refused = run(connect(
            "127.0.0.1",
            port_nobody_listens_on(),
            Duration::from_secs(5),
        ));
        assert!(
            refused
                .expect_err("nothing listens")
                .contains("cannot connect to 127.0.0.1")
        );
    }

    fn port_nobody_listens_on() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }

    #[test]
    fn a_name_that_does_not_resolve_is_an_error_that_names_it() {
        let err = run(resolve(
            "no-such-origin.invalid",
            80,
            Duration::from_secs(5),
        ))
        .expect_err("`.invalid` never resolves");
        assert!(err.contains("no-such-origin.invalid"), "{err}");
    }
}
