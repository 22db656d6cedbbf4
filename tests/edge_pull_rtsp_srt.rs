//! The edge's RTSP and SRT pulls against real processes: a tessera origin (`fake://`, or
//! `publish://` fed by ffmpeg over RTMP) behind its own token, and a tessera edge pulling it
//! with `input rtsp://...` or `input "srt://...?streamid=..."`, played by ffprobe and ffmpeg
//! from the edge with the edge's token. The origin's log counts its upstream sessions
//! (`rtsp play started` / `srt play started`: one per pull, whatever the viewers).

mod common;
use common::*;

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

/// libsrt's own listener as the origin: `srt-live-transmit` relays an ffmpeg MPEG-TS feed
/// from UDP to an encrypted SRT listener, and the edge calls it.
#[test]
fn an_edge_pulls_from_libsrt_s_listener_with_a_passphrase() {
    let (udp, srt, e) = (free_port(), free_port(), Listeners::free());
    let mut relay = tool("srt-live-transmit");
    relay.args(["-q", &format!("udp://:{udp}")]).arg(format!(
        "srt://127.0.0.1:{srt}?mode=listener&passphrase=0987654321abc"
    ));
    let _relay = Background::spawn(&mut relay);
    let _feed = Background::spawn(&mut publish_to(
        &format!("udp://127.0.0.1:{udp}?pkt_size=1316"),
        "mpegts",
        60,
    ));
    let input = format!("\"srt://127.0.0.1:{srt}?streamid=s&passphrase=0987654321abc\"");
    let edge = edge(&e, &input, "");
    edge.wait_ok(MEDIA);
    assert_probe_shows_publisher(&[], &edge.url("/s/index.m3u8?token=edge1"));
}

/// The origin is killed, the edge notices (`source_timeout 2`), the origin comes back:
/// the pull reconnects by itself and the edge plays again.
fn reconnects_after_an_origin_restart(input: impl Fn(&Origin) -> String, started: &str) {
    let (o, e) = (Origin::free(), Listeners::free());
    let mut first = o.start("fake://fake");
    let edge = edge(&e, &input(&o), "source_timeout 2;");
    edge.wait_ok(MEDIA);
    kill_origin_until_the_edge_notices(&mut first, &edge);
    let second = o.start("fake://fake");
    wait_for(
        "the edge reconnecting",
        || count(&second, started) == 1,
        &[&edge, &second],
    );
    edge.wait_ok(MEDIA);
    assert_probe_shows_fake_source(&[], &edge.url("/s/index.m3u8?token=edge1"));
}

#[test]
fn an_rtsp_pull_reconnects_after_an_origin_restart() {
    reconnects_after_an_origin_restart(Origin::rtsp_input, "rtsp play started");
}

#[test]
fn an_srt_pull_reconnects_after_an_origin_restart() {
    reconnects_after_an_origin_restart(|o| o.srt_input(""), "srt play started");
}

/// The origin refuses the edge's token: a failed source, its reason logged, the token not.
fn refusal_is_logged(input: impl Fn(&Origin) -> String, reason: &str) {
    let (o, e) = (Origin::free(), Listeners::free());
    let _origin = o.start("fake://fake");
    let input = input(&o).replace("origin1", "wrong");
    let edge = edge(&e, &input, "source_timeout 2;");
    wait_for(
        "the refusal in the edge's log",
        || edge.log_text().contains(reason),
        &[&edge],
    );
    assert!(!edge.log_text().contains("wrong"), "{}", edge.log_text());
    assert_ne!(get(edge.http, MEDIA).status, 200);
}

#[test]
fn refused_rtsp_and_srt_pulls_are_failed_sources_with_the_reason_logged() {
    refusal_is_logged(Origin::rtsp_input, "origin answered 403 to DESCRIBE");
    refusal_is_logged(|o| o.srt_input(""), "the listener refused (1403)");
}

/// A third-party RTSP origin that asks for Digest credentials: GStreamer's gst-rtsp-server
/// (tests/data/rtsp_digest_origin.py, Debian's gir1.2-gst-rtsp-server-1.0 and x264enc),
/// video only. The URL's credentials answer its 401; wrong ones are a failed source.
#[test]
fn an_edge_pulls_from_a_digest_protected_gstreamer_origin() {
    let port = free_port();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/rtsp_digest_origin.py"
    );
    let mut server = std::process::Command::new("/usr/bin/python3");
    server
        .arg(script)
        .arg(port.to_string())
        .args(["cam", "s3cret"]);
    let _origin = Background::spawn(&mut server);
    let e = Listeners::free();
    let pulled = edge(&e, &format!("rtsp://cam:s3cret@127.0.0.1:{port}/cam"), "");
    pulled.wait_ok("/s/index.m3u8?token=edge1");
    let out = run_bounded(
        tool("ffprobe").arg(pulled.url("/s/index.m3u8?token=edge1")),
        std::time::Duration::from_secs(60),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.contains("Video: h264") && err.contains("320x240"),
        "{err}"
    );
    assert!(
        !pulled.log_text().contains("s3cret"),
        "{}",
        pulled.log_text()
    );

    let wrong = Listeners::free();
    let edge = edge(&wrong, &format!("rtsp://cam:nope@127.0.0.1:{port}/cam"), "");
    wait_for(
        "the refused credentials in the edge's log",
        || {
            edge.log_text()
                .contains("origin refused the credentials (DESCRIBE: 401)")
        },
        &[&edge],
    );
}
