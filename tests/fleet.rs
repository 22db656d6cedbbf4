//! A fleet of edge nodes on one Redis (issue #17), end to end: a real `redis-server` on a
//! free port, two or three real `tessera` nodes with a `cluster` block, the real example
//! portal, and real ffmpeg players over RTMP, RTSP and HLS.

mod common;

use common::portal::Portal;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const API_KEY: &str = "fleet-api-key-0123456789";
const HLS: &str = "/live/tracks-v1a1/mono.m3u8";

/// `redis-server` on `port`, nothing persisted; killed when dropped.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (tools/test.sh installs it)");
        let redis = Redis { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !redis.command("PING").starts_with("+PONG") {
            assert!(Instant::now() < deadline, "redis-server never answered");
            std::thread::sleep(Duration::from_millis(50));
        }
        redis
    }

    /// One inline command; its answer as sent ("" when unreachable).
    fn command(&self, line: &str) -> String {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return String::new();
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = s.write_all(format!("{line}\r\n").as_bytes());
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// Waits (bounded) until the user's fleet-wide set counts `n` sessions.
    fn wait_members(&self, user: &str, n: usize) {
        let want = format!(":{n}\r\n");
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.command(&format!("ZCARD tessera:user:{user}")) != want {
            assert!(
                Instant::now() < deadline,
                "{user} never had {n} sessions in redis"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A tessera node of the fleet: stream `live` authorized by the portal.
struct Node {
    server: Server,
    ports: Listeners,
}

impl Node {
    fn start(name: &str, redis: u16, portal: &Portal) -> Node {
        let ports = Listeners::free();
        let config = format!(
            "{}api_key {API_KEY};\ncluster_key fleet-secret-0123456789;\n\
             cluster {{ redis redis://127.0.0.1:{redis}; node {name}; }}\n\
             auth_backend portal {{ backend http://127.0.0.1:{}/auth; backend_timeout 2; }}\n\
             stream live {{ input fake://fake; on_play auth://portal; }}\n",
            ports.config(),
            portal.port
        );
        let server = Server::start(&config, ports.http);
        let node = Node { server, ports };
        node.wait_hls("warmup-token", 200);
        node
    }

    fn hls(&self, token: &str) -> Response {
        get(self.ports.http, &format!("{HLS}?token={token}"))
    }

    /// Waits (bounded) until the playlist answers `status`.
    fn wait_hls(&self, token: &str, status: u16) -> Response {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = self.hls(token);
            if r.status == status {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "{HLS}?token=… never answered {status} (last {}); log:\n{}",
                r.status,
                self.server.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn api(&self, method: &str, path: &str) -> Response {
        api_call(self.ports.http, API_KEY, method, path)
    }

    /// Waits (bounded) until `GET sessions?QUERY` lists `n` sessions.
    fn wait_sessions(&self, query: &str, n: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = self
                .api("GET", &format!("/streamer/api/v3/sessions?{query}"))
                .text();
            if text.matches("\"id\":").count() == n {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "never saw {n} sessions for {query}: {text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits (bounded) until `/metrics` shows Redis up (1) or down (0).
    fn wait_redis_up(&self, up: u8) {
        let line = format!("tessera_cluster_redis_up {up}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.api("GET", "/metrics").text().contains(&line) {
            assert!(Instant::now() < deadline, "/metrics never showed {line}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn rtmp(&self, token: &str) -> Child {
        player(
            &format!(
                "rtmp://127.0.0.1:{}/static/live?token={token}",
                self.ports.rtmp
            ),
            &[],
        )
    }

    fn rtsp(&self, token: &str) -> Child {
        player(
            &format!("rtsp://127.0.0.1:{}/live?token={token}", self.ports.rtsp),
            &["-rtsp_transport", "tcp"],
        )
    }
}

fn still_running(child: &mut Child) -> bool {
    child.try_wait().expect("wait").is_none()
}

/// The id of the first session in a sessions listing.
fn first_id(list: &str) -> String {
    list.split("\"id\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a session id")
        .to_owned()
}

#[test]
fn a_limit_of_one_holds_across_nodes_and_the_sessions_view_spans_the_fleet() {
    let redis = Redis::start(free_port());
    let portal = Portal::start(&["--token", "solo:bob:1", "--token", "warmup-token"]);
    let a = Node::start("node-a", redis.port, &portal);
    let b = Node::start("node-b", redis.port, &portal);
    let mut rtmp = a.rtmp("solo");
    a.wait_sessions("user_id=bob", 1);
    redis.wait_members("bob", 1);
    // The same user opens HLS on the other node: A's RTMP viewer is cut, B plays.
    let opened = Instant::now();
    assert_eq!(b.hls("solo").status, 200);
    let cut = wait_exit(&mut rtmp, Duration::from_secs(10));
    assert!(cut.is_some(), "node A's RTMP viewer kept playing");
    eprintln!(
        "HLS on node B to RTMP cut on node A: {:?}",
        opened.elapsed()
    );
    assert_eq!(b.hls("solo").status, 200);
    a.wait_sessions("user_id=bob", 0);
    // Node A lists node B's session, naming its node; DELETE through A ends it on B.
    let fleet = a.wait_sessions("user_id=bob&scope=cluster", 1);
    assert!(fleet.contains("\"node\":\"node-b\""), "{fleet}");
    assert!(fleet.contains("\"proto\":\"hls\""), "{fleet}");
    let id = first_id(&fleet);
    let one = a.api("GET", &format!("/streamer/api/v3/sessions/{id}"));
    assert_eq!(one.status, 200);
    assert!(one.text().contains("\"node\":\"node-b\""), "{}", one.text());
    let deleted = a.api("DELETE", &format!("/streamer/api/v3/sessions/{id}"));
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    let refused = b.wait_hls("solo", 403);
    assert_eq!(refused.header("x-deny-reason"), Some("session_revoked"));
    let unknown = "00000000-0000-4000-8000-000000000000";
    let missing = a.api("DELETE", &format!("/streamer/api/v3/sessions/{unknown}"));
    assert_eq!(missing.status, 404);
}

#[test]
fn a_revoke_on_one_node_cuts_every_protocol_on_another_and_binds_later_nodes() {
    let redis = Redis::start(free_port());
    let portal = Portal::start(&["--token", "doomed", "--token", "warmup-token"]);
    let a = Node::start("node-a", redis.port, &portal);
    let b = Node::start("node-b", redis.port, &portal);
    let mut rtmp = b.rtmp("doomed");
    let mut rtsp = b.rtsp("doomed");
    assert_eq!(b.hls("doomed").status, 200);
    b.wait_sessions("proto=rtmp", 1);
    b.wait_sessions("proto=rtsp", 1);
    let revoked = a.api("POST", "/streamer/api/v3/revoke?token=doomed");
    assert_eq!(revoked.status, 200, "{}", revoked.text());
    let sent = Instant::now();
    let rtmp_cut = wait_exit(&mut rtmp, Duration::from_secs(10));
    let rtsp_cut = wait_exit(&mut rtsp, Duration::from_secs(10));
    assert!(rtmp_cut.is_some(), "RTMP on node B kept playing");
    assert!(rtsp_cut.is_some(), "RTSP on node B kept playing");
    eprintln!("revoke on A to cut on B: {:?}", sent.elapsed());
    let hls = b.wait_hls("doomed", 403);
    assert_eq!(hls.header("x-deny-reason"), Some("session_revoked"));
    // A node that starts after the revoke refuses the token too (the portal still allows
    // it: the refusal is the fleet's).
    let c = Node::start("node-c", redis.port, &portal);
    c.wait_redis_up(1);
    let hls = c.wait_hls("doomed", 403);
    assert_eq!(hls.header("x-deny-reason"), Some("session_revoked"));
    // The token never reached Redis or a log in the clear.
    let stored = redis.command("ZRANGE tessera:revocations 0 -1");
    assert!(
        stored.contains("t:") && !stored.contains("doomed"),
        "{stored}"
    );
    for node in [&a, &b, &c] {
        assert!(
            !node.server.log_text().contains("doomed"),
            "a token reached a log"
        );
    }
}

#[test]
fn without_redis_nodes_serve_with_local_limits_and_converge_when_it_returns() {
    let port = free_port();
    let mut redis = Redis::start(port);
    let portal = Portal::start(&["--token", "solo:bob:1", "--token", "warmup-token"]);
    let a = Node::start("node-a", port, &portal);
    let b = Node::start("node-b", port, &portal);
    a.wait_redis_up(1);
    redis.kill();
    a.wait_redis_up(0);
    b.wait_redis_up(0);
    // Both nodes keep serving new viewers; each counts the user's sessions alone.
    let mut rtmp = a.rtmp("solo");
    a.wait_sessions("user_id=bob", 1);
    assert_eq!(b.hls("solo").status, 200);
    b.wait_sessions("user_id=bob", 1);
    assert!(
        still_running(&mut rtmp),
        "node-local limits cut across nodes"
    );
    // Redis back: the nodes admit their live sessions again and one of the two goes.
    let redis = Redis::start(port);
    a.wait_redis_up(1);
    b.wait_redis_up(1);
    let deadline = Instant::now() + Duration::from_secs(30);
    let hls_cut = loop {
        if !still_running(&mut rtmp) {
            break false;
        }
        if b.hls("solo").status == 403 {
            break true;
        }
        assert!(Instant::now() < deadline, "the counts never converged");
        std::thread::sleep(Duration::from_millis(100));
    };
    // And the limit holds across nodes again: a new session on A cuts the survivor.
    let mut rtsp = a.rtsp("solo");
    if hls_cut {
        assert!(wait_exit(&mut rtmp, Duration::from_secs(10)).is_some());
    } else {
        b.wait_hls("solo", 403);
    }
    assert!(still_running(&mut rtsp), "the newest session was cut");
    let _ = rtsp.kill();
    drop(redis);
}
