//! Templates against real processes: a tessera origin with `fake://` streams under `tv/`,
//! and a tessera edge whose one `template` block pulls any name under `tv/` from it over
//! HTTP MPEG-TS, after authorizing the viewer with the template's `on_play`. The origin's
//! sessions API counts the edge's upstream connections.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const ORIGIN_KEY: &str = "origin-api-key-0123456789";
const EDGE_KEY: &str = "edge-api-key-0123456789";

/// An origin serving `tv/ch1`, `tv/ch2` (fake) to token `origin1` only, with its API.
fn origin(ports: &Listeners) -> Server {
    let config = format!(
        "{}api_key {ORIGIN_KEY};\n\
         auth_backend o {{ allow token origin1; }}\n\
         stream tv/ch1 {{ input fake://fake; on_play auth://o; }}\n\
         stream tv/ch2 {{ input fake://fake; on_play auth://o; }}\n",
        ports.config()
    );
    Server::start(&config, ports.http)
}

/// An edge with one template for `tv/` (token `edge1`; `extra` in the template) and a
/// static `tv/local`.
fn edge(ports: &Listeners, origin: &Listeners, extra: &str) -> Server {
    let config = format!(
        "{}api_key {EDGE_KEY};\n\
         auth_backend e {{ allow token edge1; }}\n\
         template tv {{\n  prefix tv;\n  \
         input tshttp://127.0.0.1:{}/%s/mpegts?token=origin1;\n  \
         on_play auth://e;\n  {extra}\n}}\n\
         stream tv/local {{ input fake://fake; on_play auth://e; }}\n",
        ports.config(),
        origin.http
    );
    Server::start(&config, ports.http)
}

/// The edge's `/metrics` sample line that starts with `prefix`, if any.
fn metric(edge: &Server, prefix: &str) -> Option<String> {
    let r = api_call(edge.http, EDGE_KEY, "GET", "/metrics");
    assert_eq!(r.status, 200);
    r.text()
        .lines()
        .find(|l| l.starts_with(prefix))
        .map(str::to_owned)
}

/// The origin's open sessions of `stream` (its sessions API).
fn origin_sessions(origin: &Server, stream: &str) -> usize {
    let r = api_call(origin.http, ORIGIN_KEY, "GET", "/streamer/api/v3/sessions");
    assert_eq!(r.status, 200, "{}", r.text());
    r.text().matches(&format!("\"name\":\"{stream}\"")).count()
}

#[test]
fn a_template_makes_an_authorized_name_a_pulled_stream_and_refuses_the_rest() {
    let (o, e) = (Listeners::free(), Listeners::free());
    let origin = origin(&o);
    let edge = edge(&e, &o, "clients_timeout 2;");

    // Outside every prefix: 404. Under it with a refused token: 403, and nothing made or
    // pulled.
    assert_eq!(
        get(edge.http, "/radio/x/index.m3u8?token=edge1").status,
        404
    );
    assert_eq!(get(edge.http, "/tv/index.m3u8?token=edge1").status, 404);
    assert_eq!(get(edge.http, "/tv/ch1/index.m3u8?token=bad").status, 403);
    assert_eq!(get(edge.http, "/tv/ch1/index.m3u8").status, 403);
    assert!(!edge.log_text().contains("template streams: made"));
    assert_eq!(origin_sessions(&origin, "tv/ch1"), 0);

    // An authorized viewer: the stream is made, pulled, and plays.
    assert_probe_shows_fake_source(&[], &edge.url("/tv/ch1/index.m3u8?token=edge1"));
    assert_probe_shows_fake_source(&[], &edge.url("/tv/ch1/mpegts?token=edge1"));
    assert_eq!(origin_sessions(&origin, "tv/ch1"), 1, "one pull");
    assert!(edge.log_text().contains("made [tv/ch1]"));

    // A static stream under the prefix is the static stream: nothing asked of the origin.
    assert_probe_shows_fake_source(&[], &edge.url("/tv/local/index.m3u8?token=edge1"));
    assert_eq!(origin_sessions(&origin, "tv/local"), 0);
    assert!(!edge.log_text().contains("made [tv/local]"));

    // No viewer for `clients_timeout`: the pull stops and the stream is forgotten; a
    // viewer then makes it again.
    wait_for(
        "tv/ch1 forgotten",
        || edge.log_text().contains("forgotten [tv/ch1]"),
        &[&edge],
    );
    wait_for(
        "the origin session closed",
        || origin_sessions(&origin, "tv/ch1") == 0,
        &[&edge, &origin],
    );
    // A player reloading its playlist: a shard that has not applied the forgetting yet
    // (shards read the main thread's catalogs every 50 ms) answers one reload from the
    // stream's last segments; a later one makes it again.
    wait_for(
        "the stream made again with one origin session",
        || {
            get(edge.http, "/tv/ch1/index.m3u8?token=edge1").status == 200
                && origin_sessions(&origin, "tv/ch1") > 0
        },
        &[&edge, &origin],
    );
    assert_eq!(origin_sessions(&origin, "tv/ch1"), 1);
    // Made again under its old id (its views on every shard come back to life): it plays.
    assert_probe_shows_fake_source(&[], &edge.url("/tv/ch1/index.m3u8?token=edge1"));
    assert_probe_shows_fake_source(&[], &edge.url("/tv/ch1/mpegts?token=edge1"));
    assert!(
        !edge.log_text().contains("origin1"),
        "the origin's token is never logged"
    );
}

/// An HTTP MPEG-TS viewer as a raw socket: sends the request, reads the head (which names
/// the shard) and the first `want` bytes of media.
struct TsViewer {
    socket: TcpStream,
    shard: String,
}

fn ts_viewer(port: u16, path: &str, want: usize) -> TsViewer {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(socket, "GET {path} HTTP/1.1\r\nHost: edge\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let head_end = loop {
        let n = socket.read(&mut buf).expect("read");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        if let Some(at) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&got[..head_end]).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    while got.len() - head_end < want {
        let n = socket.read(&mut buf).expect("media");
        assert!(n > 0, "media ended");
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got[head_end], 0x47, "MPEG-TS sync byte");
    let shard = head
        .lines()
        .find_map(|l| l.strip_prefix("x-shard: "))
        .unwrap_or("?")
        .to_owned();
    TsViewer { socket, shard }
}

#[test]
fn hundreds_of_viewers_on_both_shards_make_one_origin_connection_per_stream() {
    let (o, e) = (Listeners::free(), Listeners::free());
    let origin = origin(&o);
    let _edge = edge(&e, &o, "clients_timeout 2;");
    const VIEWERS: usize = 300;
    let mut viewers = Vec::with_capacity(VIEWERS);
    for i in 0..VIEWERS {
        let stream = if i % 3 == 0 { "tv/ch2" } else { "tv/ch1" };
        let path = format!("/{stream}/mpegts?token=edge1");
        viewers.push(ts_viewer(e.http, &path, 188 * 7));
    }
    let on = |shard: &str| viewers.iter().filter(|v| v.shard == shard).count();
    assert!(
        on("0") > 0 && on("1") > 0,
        "viewers on both shards: {} and {}",
        on("0"),
        on("1")
    );
    assert_eq!(origin_sessions(&origin, "tv/ch1"), 1, "one pull of tv/ch1");
    assert_eq!(origin_sessions(&origin, "tv/ch2"), 1, "one pull of tv/ch2");
    // Every viewer still receives media.
    let mut buf = [0u8; 4096];
    for v in &mut viewers {
        assert!(v.socket.read(&mut buf).expect("media") > 0);
    }
}

#[test]
fn input_state_and_reconnects_show_in_metrics_and_the_stream_listing() {
    let (o, e) = (Listeners::free(), Listeners::free());
    let mut first = origin(&o);
    let edge = edge(&e, &o, "clients_timeout 60; source_timeout 2;");
    edge.wait_ok("/tv/ch1/index.m3u8?token=edge1");
    let source = format!("tshttp://127.0.0.1:{}/tv/ch1/mpegts?...", o.http);
    let running =
        format!("tessera_input_state{{stream=\"tv/ch1\",source=\"{source}\",state=\"running\"}}");
    assert_eq!(
        metric(&edge, &running).as_deref(),
        Some(&*format!("{running} 1"))
    );
    assert_eq!(
        metric(&edge, "tessera_input_reconnects_total{stream=\"tv/ch1\"}").as_deref(),
        Some("tessera_input_reconnects_total{stream=\"tv/ch1\"} 0")
    );
    assert_eq!(
        metric(&edge, "tessera_input_source_index{stream=\"tv/ch1\"}").as_deref(),
        Some("tessera_input_source_index{stream=\"tv/ch1\"} 0")
    );
    let listing = api_call(edge.http, EDGE_KEY, "GET", "/streamer/api/v3/streams").text();
    let v: serde_json::Value = serde_json::from_str(&listing).expect("json");
    let ch1 = v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "tv/ch1")
        .unwrap_or_else(|| panic!("tv/ch1 listed: {listing}"));
    assert_eq!(ch1["stats"]["alive"], true, "{listing}");
    assert_eq!(ch1["stats"]["status"], "running");
    assert_eq!(ch1["template"], true);
    assert_eq!(ch1["inputs"][0]["url"], source.as_str());
    assert_eq!(ch1["inputs"][0]["stats"]["active"], true);
    assert!(
        !listing.contains("origin1"),
        "no origin credentials: {listing}"
    );
    assert!(
        !listing.contains("template tv/"),
        "gates are not streams: {listing}"
    );

    // The origin goes away and comes back: the edge reconnects, and says so.
    let _ = first.child().kill();
    let _ = first.child().wait();
    let connecting = running.replace("running", "connecting");
    let failed = running.replace("running", "failed");
    wait_for(
        "the input leaving the running state",
        || metric(&edge, &running).is_some_and(|l| l.ends_with(" 0")),
        &[&edge],
    );
    assert!(
        metric(&edge, &connecting).is_some_and(|l| l.ends_with(" 1"))
            || metric(&edge, &failed).is_some_and(|l| l.ends_with(" 1"))
    );
    let second = origin(&o);
    wait_for(
        "the input running again",
        || metric(&edge, &running).is_some_and(|l| l.ends_with(" 1")),
        &[&edge, &second],
    );
    let reconnects = metric(&edge, "tessera_input_reconnects_total{stream=\"tv/ch1\"}").unwrap();
    let n: u64 = reconnects.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 1, "{reconnects}");
}

/// A connection protocol's viewer of a template stream: a refused token plays and pulls
/// nothing; the right one makes the stream (on demand) and plays it.
fn a_viewer_gets_a_template_stream_after_its_on_play(
    options: &[&str],
    url_of: impl Fn(&Listeners, &str) -> String,
) {
    let (o, e) = (Listeners::free(), Listeners::free());
    let origin = origin(&o);
    let edge = edge(&e, &o, "clients_timeout 5;");
    let url = |token: &str| url_of(&e, token);
    let refused = run_bounded(
        tool("ffprobe")
            .args(["-v", "error", "-show_streams"])
            .args(options)
            .arg(url("bad")),
        Duration::from_secs(20),
    );
    assert!(!refused.status.success(), "a refused token plays nothing");
    assert!(!edge.log_text().contains("made [tv/ch2]"));
    assert_eq!(origin_sessions(&origin, "tv/ch2"), 0, "and pulls nothing");
    assert_probe_shows_fake_source(options, &url("edge1"));
    assert!(edge.log_text().contains("made [tv/ch2]"));
    assert_eq!(origin_sessions(&origin, "tv/ch2"), 1);
}

#[test]
fn an_rtmp_viewer_gets_a_template_stream_after_its_on_play() {
    a_viewer_gets_a_template_stream_after_its_on_play(&[], |e, token| {
        format!("rtmp://127.0.0.1:{}/live/tv/ch2?token={token}", e.rtmp)
    });
}

/// RTSP's DESCRIBE answers with the stream's tracks, so it waits for the on-demand pull's
/// first segment instead of refusing a stream that has no media yet.
#[test]
fn an_rtsp_viewer_gets_a_template_stream_after_its_on_play() {
    a_viewer_gets_a_template_stream_after_its_on_play(&["-rtsp_transport", "tcp"], |e, token| {
        format!("rtsp://127.0.0.1:{}/tv/ch2?token={token}", e.rtsp)
    });
}
