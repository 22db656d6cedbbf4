//! `tessera --check`: valid configs exit 0; broken ones print every error with
//! file:line:column and exit 1. And the embedded default is the spec's §1 example.

mod common;
use common::*;
use std::process::Command;

fn check(text: &str) -> (i32, String, String) {
    let path = write_config(text);
    let out = Command::new(BIN)
        .arg("--check")
        .arg(&path)
        .output()
        .expect("run tessera");
    let file = path.display().to_string();
    let err = String::from_utf8_lossy(&out.stderr).replace(&file, "FILE");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        err,
    )
}

#[test]
fn the_shipped_config_is_the_spec_example_and_checks() {
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/tessera.conf"))
            .unwrap();
    assert_eq!(shipped, tessera::config::DEFAULT_CONFIG);
    for line in [
        "http 8080;",
        "rtmp 1935;",
        "rtsp 1554;",
        "auth_backend play-auth {",
        "allow token test1;",
        "stream auth-check {",
        "input fake://fake;",
        "on_play auth://play-auth;",
    ] {
        assert!(shipped.contains(line), "{line}");
    }
    let (code, out, err) = check(&shipped);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ok"), "{out}");
}

#[test]
fn every_error_is_reported_with_line_and_column() {
    let (code, _, err) = check(
        "http 8080;\n\
         htp 8081;\n\
         auth_backend play-auth {\n    allow token test1;\n    allow tokn test2;\n}\n\
         stream a {\n    input fake://fake;\n    on_play auth://play-ath;\n}\n",
    );
    assert_eq!(code, 1);
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines.iter().any(
            |l| l.starts_with("FILE:2:1: error: unknown directive `htp`")
                && l.contains("did you mean `http`")
        ),
        "{err}"
    );
    assert!(lines.iter().any(|l| l.starts_with("FILE:5:")), "{err}");
    assert!(
        lines.iter().any(|l| l.starts_with("FILE:9:")
            && l.contains("play-ath")
            && l.contains("did you mean `play-auth`")),
        "{err}"
    );
}

#[test]
fn unsupported_features_are_named() {
    let (code, _, err) = check("http 8080;\nstream a {\n    input rtsps://origin/cam;\n}\n");
    assert_eq!(code, 1);
    assert!(
        err.contains("FILE:3:11: error: input scheme `rtsps://` is not supported yet"),
        "{err}"
    );
    // Published streams are served.
    let (code, _, err) = check("rtmp 1935;\nstream a {\n    input publish://;\n}\n");
    assert_eq!(code, 0, "{err}");
}

#[test]
fn missing_file_and_bad_arguments() {
    let out = Command::new(BIN)
        .args(["--check", "/nonexistent/tessera.conf"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/tessera.conf"));
    let out = Command::new(BIN)
        .args(["--shards", "zero"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_busy_port_is_a_clear_startup_error() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let path = write_config(&demo_config(port));
    let out = run_bounded(
        Command::new(BIN).arg(&path),
        std::time::Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen for http on 127.0.0.1:{port}")),
        "{err}"
    );
}

#[test]
fn a_config_without_a_listener_or_a_stream_is_refused() {
    let (code, out, err) = check("");
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("FILE: error: no listener"), "{err}");
    assert!(err.contains("FILE: error: no stream"), "{err}");
    let (code, _, err) = check("# only comments\nhttp 8080;\n");
    assert_eq!(code, 1);
    assert!(err.contains("FILE: error: no stream"), "{err}");
    assert!(!err.contains("no listener"), "{err}");
    let (code, _, err) = check("stream a {\n    input fake://fake;\n}\n");
    assert_eq!(code, 1);
    assert!(err.contains("FILE: error: no listener"), "{err}");
    assert!(!err.contains("no stream"), "{err}");
    // Serving it says the same, before any shard starts.
    let path = write_config("");
    let out = Command::new(BIN).arg(&path).output().expect("run tessera");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error: no listener"), "{err}");
    assert!(!err.contains("shards stopped"), "{err}");
}
