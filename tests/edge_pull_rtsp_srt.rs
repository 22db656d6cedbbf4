//! The edge's RTSP and SRT pulls against real processes: a tessera origin (`fake://`, or
//! `publish://` fed by ffmpeg over RTMP) behind its own token, and a tessera edge pulling it
//! with `input rtsp://...` or `input "srt://...?streamid=..."`, played by ffprobe and ffmpeg
//! from the edge with the edge's token. The origin's log counts its upstream sessions
//! (`rtsp play started` / `srt play started`: one per pull, whatever the viewers).

mod common;
use common::*;
use std::time::{Duration, Instant};

const MEDIA: &str = "/s/tracks-v1a1/mono.m3u8?token=edge1";

/// The origin's listeners, SRT included.
struct Origin {
    ports: Listeners,
    srt: u16,
}

impl Origin {
    fn free() -> Origin {
        Origin {
            ports: Listeners::free(),
            srt: free_port(),
        }
    }

    /// Stream `s` from `input` (`fake://fake` or `publish://`), for token `origin1` only.
    fn start(&self, input: &str) -> Server {
        let config = format!(
            "{}srt 127.0.0.1:{};\nauth_backend o {{ allow token origin1; }}\n\
             stream s {{ input {input}; on_play auth://o; on_publish auth://o; }}\n",
            self.ports.config(),
            self.srt
        );
        let config = if input.starts_with("fake") {
            config.replace(" on_publish auth://o;", "")
        } else {
            config
        };
        Server::start(&config, self.ports.http)
    }

    fn rtsp_input(&self) -> String {
        format!("rtsp://127.0.0.1:{}/s?token=origin1", self.ports.rtsp)
    }

    /// Quoted: `#` would start a comment.
    fn srt_input(&self, extra_query: &str) -> String {
        format!(
            "\"srt://127.0.0.1:{}?streamid=#!::r=s,m=request,token=origin1{extra_query}\"",
            self.srt
        )
    }
}

/// An edge serving stream `s` from `input` to token `edge1` only, with `extra` options.
fn edge(ports: &Listeners, input: &str, extra: &str) -> Server {
    let config = format!(
        "{}auth_backend e {{ allow token edge1; }}\n\
         stream s {{ input {input}; {extra} on_play auth://e; }}\n",
        ports.config()
    );
    Server::start(&config, ports.http)
}

fn count(server: &Server, needle: &str) -> usize {
    server.log_text().matches(needle).count()
}

/// Waits (bounded, generously) until `cond` holds.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool, logs: &[&Server]) {
    let deadline = Instant::now() + Duration::from_secs(40);
    while !cond() {
        if Instant::now() > deadline {
            let logs: Vec<String> = logs.iter().map(|s| s.log_text()).collect();
            panic!("{what} never happened; logs:\n{}", logs.join("\n-----\n"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The edge serves the pulled fake source over HLS and RTMP, to several viewers, with one
/// upstream session at the origin (`started` in its log).
fn serves_many_viewers_from_one_upstream(
    origin: &Server,
    edge: &Server,
    e: &Listeners,
    started: &str,
) {
    edge.wait_ok(MEDIA);
    assert_probe_shows_fake_source(&[], &edge.url("/s/index.m3u8?token=edge1"));
    let rtmp = format!("rtmp://127.0.0.1:{}/live/s?token=edge1", e.rtmp);
    assert_probe_shows_fake_source(&[], &rtmp);
    assert_decodes_cleanly(&[], &edge.url("/s/mpegts?token=edge1"), 4, &[]);
    for _ in 0..4 {
        assert_eq!(get(edge.http, MEDIA).status, 200);
    }
    assert_eq!(
        count(origin, started),
        1,
        "one upstream session; origin log:\n{}",
        origin.log_text()
    );
    assert_eq!(get(edge.http, "/s/index.m3u8?token=origin1").status, 403);
    assert!(
        !edge.log_text().contains("origin1"),
        "the origin's token is never logged:\n{}",
        edge.log_text()
    );
}

#[test]
fn an_edge_pulls_over_rtsp_once_for_every_viewer() {
    let (o, e) = (Origin::free(), Listeners::free());
    let origin = o.start("fake://fake");
    let edge = edge(&e, &o.rtsp_input(), "");
    serves_many_viewers_from_one_upstream(&origin, &edge, &e, "rtsp play started");
}

#[test]
fn an_edge_pulls_a_published_stream_over_rtsp() {
    let (o, e) = (Origin::free(), Listeners::free());
    let origin = o.start("publish://");
    let _publisher = Background::spawn(&mut publish_cmd(o.ports.rtmp, "/live/s?token=origin1", 60));
    origin.wait_ok("/s/index.m3u8?token=origin1");
    let edge = edge(&e, &o.rtsp_input(), "");
    edge.wait_ok(MEDIA);
    assert_probe_shows_publisher(&[], &edge.url("/s/index.m3u8?token=edge1"));
    let rtmp = format!("rtmp://127.0.0.1:{}/live/s?token=edge1", e.rtmp);
    assert_probe_shows_publisher(&[], &rtmp);
    assert_eq!(count(&origin, "rtsp play started"), 1);
}

#[test]
fn an_rtsp_pull_reconnects_after_an_origin_restart() {
    let (o, e) = (Origin::free(), Listeners::free());
    let mut first = o.start("fake://fake");
    let edge = edge(&e, &o.rtsp_input(), "source_timeout 2;");
    edge.wait_ok(MEDIA);
    let _ = first.child().kill();
    let _ = first.child().wait();
    wait_until(
        "the edge noticing the origin is gone",
        || edge.log_text().contains("every source failed"),
        &[&edge],
    );
    let second = o.start("fake://fake");
    wait_until(
        "the edge reconnecting",
        || count(&second, "rtsp play started") == 1,
        &[&edge, &second],
    );
    edge.wait_ok(MEDIA);
    assert_probe_shows_fake_source(&[], &edge.url("/s/index.m3u8?token=edge1"));
}

#[test]
fn a_refused_rtsp_pull_is_a_failed_source_with_the_reason_logged() {
    let (o, e) = (Origin::free(), Listeners::free());
    let _origin = o.start("fake://fake");
    let input = format!("rtsp://127.0.0.1:{}/s?token=wrong", o.ports.rtsp);
    let edge = edge(&e, &input, "source_timeout 2;");
    wait_until(
        "the refusal in the edge's log",
        || edge.log_text().contains("origin answered 403 to DESCRIBE"),
        &[&edge],
    );
    assert!(
        !edge.log_text().contains("token=wrong"),
        "{}",
        edge.log_text()
    );
    assert_ne!(get(edge.http, MEDIA).status, 200);
}

#[test]
fn an_edge_pulls_over_srt_once_for_every_viewer() {
    let (o, e) = (Origin::free(), Listeners::free());
    let origin = o.start("fake://fake");
    let edge = edge(&e, &o.srt_input(""), "");
    serves_many_viewers_from_one_upstream(&origin, &edge, &e, "srt play started");
}

#[test]
fn an_edge_pulls_a_published_stream_over_encrypted_srt() {
    let (o, e) = (Origin::free(), Listeners::free());
    let origin = o.start("publish://; srt_passphrase 0987654321abc");
    let _publisher = Background::spawn(&mut publish_cmd(o.ports.rtmp, "/live/s?token=origin1", 60));
    origin.wait_ok("/s/index.m3u8?token=origin1");
    let edge = edge(&e, &o.srt_input("&passphrase=0987654321abc"), "");
    edge.wait_ok(MEDIA);
    assert_probe_shows_publisher(&[], &edge.url("/s/index.m3u8?token=edge1"));
    assert_eq!(count(&origin, "srt play started"), 1);
    assert!(
        !edge.log_text().contains("0987654321abc"),
        "{}",
        edge.log_text()
    );
}

#[test]
fn an_srt_pull_reconnects_after_an_origin_restart() {
    let (o, e) = (Origin::free(), Listeners::free());
    let mut first = o.start("fake://fake");
    let edge = edge(&e, &o.srt_input(""), "source_timeout 2;");
    edge.wait_ok(MEDIA);
    let _ = first.child().kill();
    let _ = first.child().wait();
    wait_until(
        "the edge noticing the origin is gone",
        || edge.log_text().contains("every source failed"),
        &[&edge],
    );
    let second = o.start("fake://fake");
    wait_until(
        "the edge reconnecting",
        || count(&second, "srt play started") == 1,
        &[&edge, &second],
    );
    edge.wait_ok(MEDIA);
    assert_probe_shows_fake_source(&[], &edge.url("/s/index.m3u8?token=edge1"));
}

#[test]
fn a_refused_srt_pull_is_a_failed_source_with_the_reason_logged() {
    let (o, e) = (Origin::free(), Listeners::free());
    let _origin = o.start("fake://fake");
    let input = format!(
        "\"srt://127.0.0.1:{}?streamid=#!::r=s,m=request,token=wrong\"",
        o.srt
    );
    let edge = edge(&e, &input, "source_timeout 2;");
    wait_until(
        "the refusal in the edge's log",
        || edge.log_text().contains("the listener refused (1403)"),
        &[&edge],
    );
    assert!(
        !edge.log_text().contains("token=wrong"),
        "{}",
        edge.log_text()
    );
}

/// `static false;`: nothing is pulled before the first viewer; its HLS request waits for the
/// pull and plays; one upstream session.
fn starts_with_the_first_viewer(input: &str, origin: &Server, started: &str) {
    let e = Listeners::free();
    let edge = edge(&e, input, "static false;");
    assert_eq!(get(edge.http, "/s/index.m3u8?token=nope").status, 403);
    assert_eq!(count(origin, started), 0, "nothing pulled before a viewer");
    assert_probe_shows_fake_source(&[], &edge.url("/s/index.m3u8?token=edge1"));
    assert_eq!(get(edge.http, MEDIA).status, 200);
    assert_eq!(
        count(origin, started),
        1,
        "origin log:\n{}",
        origin.log_text()
    );
}

#[test]
fn on_demand_rtsp_and_srt_pulls_start_with_the_first_viewer() {
    let o = Origin::free();
    let origin = o.start("fake://fake");
    starts_with_the_first_viewer(&o.rtsp_input(), &origin, "rtsp play started");
    starts_with_the_first_viewer(&o.srt_input(""), &origin, "srt play started");
}
