//! The config language (spec §2): a Flussonic-style file of `directive args;` statements and
//! `name args { ... }` blocks, turned into a validated, typed `Config`.
//!
//! `lexer` makes tokens, `parser` builds the directive tree and gives it meaning, `model` is
//! the result, `error` carries every problem found with its file, line and column.
//! `HttpLimits` names the HTTP server's limits (their defaults: the language does not set
//! them yet). Nothing here touches sockets or runtime state; `load_file` is the only I/O,
//! and it also asks what serving needs (`require_service`: a listener and a stream).

mod backend_url;
pub mod cluster;
mod connection_caps;
mod error;
mod http_limits;
mod lexer;
mod model;
mod parser;
pub mod pull;
pub mod signed_key;
pub mod template;

pub use backend_url::{BackendUrl, BackendUrlError, MAX_BACKEND_URL_LEN};
pub use cluster::{ClusterConfig, RedisUrl};
pub use connection_caps::{ConnectionCaps, FD_RESERVE_BODY_FILES, Served};
pub use error::{ConfigError, ConfigErrors};
pub use http_limits::{HEADER_SLOTS, HttpLimits};
pub use model::*;

use error::Diagnostics;
use std::path::Path;

/// The embedded default config: the scenario of spec §1.
pub const DEFAULT_CONFIG: &str = include_str!("../../config/tessera.conf");

/// Parses and validates a whole config. `file_name` only labels the errors.
///
/// Never panics, whatever the input; time and memory are linear in its size.
///
/// # Errors
///
/// Every error found (syntax, values, duplicates, dangling references), sorted by position.
pub fn parse(source: &str, file_name: &str) -> Result<Config, ConfigErrors> {
    let mut diags = Diagnostics::default();
    let tree = parser::parse_tree(source, &mut diags);
    let config = parser::lower(tree, &mut diags);
    match diags.into_errors(file_name) {
        None => Ok(config),
        Some(errors) => Err(errors),
    }
}

/// Reads and parses a config file. Errors are labelled with `path` as displayed.
///
/// # Errors
///
/// As `parse`; a file that cannot be read, or is not UTF-8, is one more `ConfigError`.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let file_name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| {
        ConfigError::new(
            &file_name,
            None,
            format!("cannot read the config file: {e}"),
        )
    })?;
    let source = match std::str::from_utf8(&bytes) {
        Ok(source) => source,
        Err(e) => {
            let valid = &bytes[..e.valid_up_to()];
            // The prefix is valid UTF-8 by definition of `valid_up_to`.
            let prefix = std::str::from_utf8(valid).unwrap_or_default();
            let line = prefix.matches('\n').count() + 1;
            let col = prefix.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            let span = Span {
                line: u32::try_from(line).unwrap_or(u32::MAX),
                col: u32::try_from(col).unwrap_or(u32::MAX),
            };
            let message = format!(
                "the config file is not valid UTF-8 (byte offset {})",
                e.valid_up_to()
            );
            return Err(ConfigError::new(file_name, Some(span), message).into());
        }
    };
    let config = parse(source, &file_name)?;
    require_service(&config, &file_name)?;
    Ok(config)
}

/// What a config file must have to be served, beyond being well-formed: a listener and a
/// stream. (`parse` does not ask for them: a fragment of the language is valid alone, and
/// the tests build configs from fragments.) Errors about the file as a whole, so they carry
/// no position.
///
/// # Errors
///
/// One `ConfigError` per thing missing.
pub fn require_service(config: &Config, file_name: &str) -> Result<(), ConfigErrors> {
    let mut missing = Vec::new();
    if config.listeners.is_empty() {
        missing.push(ConfigError::new(
            file_name,
            None,
            "no listener: nothing would accept viewers (add `http PORT;`, `rtmp PORT;` or \
             `rtsp PORT;`)",
        ));
    }
    if config.streams.is_empty() && config.templates.is_empty() {
        missing.push(ConfigError::new(
            file_name,
            None,
            "no stream: nothing to serve (add `stream NAME { input URL; }` or a `template`)",
        ));
    }
    match ConfigErrors::from_vec(missing) {
        Some(errors) => Err(errors),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    /// The full error text of a config that must fail.
    fn errors(source: &str) -> String {
        match parse(source, "t.conf") {
            Ok(config) => panic!("expected errors, parsed {config:#?}"),
            Err(errors) => errors.to_string(),
        }
    }

    fn ok(source: &str) -> Config {
        parse(source, "t.conf").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn cluster_block() {
        let c = ok("cluster_key 0123456789abcdef0;\n\
                    cluster { redis redis://u:pw@127.0.0.1:6379/1; node edge-a; }");
        let cluster = c.cluster.unwrap();
        assert_eq!(cluster.redis.to_string(), "redis://***@127.0.0.1:6379/1");
        assert_eq!(cluster.node.as_deref(), Some("edge-a"));
        assert_eq!(c.cluster_key.as_deref(), Some("0123456789abcdef0"));
        let c = ok("cluster { redis redis://localhost:6379; }");
        assert_eq!(c.cluster.unwrap().node, None);
        assert!(ok("").cluster.is_none());
        let e = errors("cluster {\n  redis http://x:1;\n}");
        assert!(
            e.contains("t.conf:2:9") && e.contains("not a redis://"),
            "{e}"
        );
        let e = errors("cluster { node a; }");
        assert!(
            e.contains("t.conf:1:1") && e.contains("needs `redis`"),
            "{e}"
        );
        let e = errors("cluster { redis redis://a:1; node a; node b; }");
        assert!(e.contains("duplicate `node`"), "{e}");
        let e = errors("cluster { redis redis://a:1; nodes a; }");
        assert!(e.contains("did you mean `node`"), "{e}");
        let e = errors("cluster { redis redis://a:1; node \"a b\"; }");
        assert!(e.contains("node name"), "{e}");
        let e = errors("cluster_key short;");
        assert!(e.contains("t.conf:1:13"), "{e}");
        let e = errors("cluster { redis redis://a:1; }\ncluster { redis redis://a:1; }");
        assert!(
            e.contains("t.conf:2:1") && e.contains("duplicate `cluster`"),
            "{e}"
        );
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn default_config_is_the_spec_scenario() {
        let config = parse(DEFAULT_CONFIG, "tessera.conf").unwrap_or_else(|e| panic!("{e}"));
        let expected = Config {
            listeners: vec![
                Listener {
                    proto: ListenerProto::Http,
                    addr: addr("0.0.0.0:8080"),
                    span: Span { line: 1, col: 1 },
                },
                Listener {
                    proto: ListenerProto::Rtmp,
                    addr: addr("0.0.0.0:1935"),
                    span: Span { line: 2, col: 1 },
                },
                Listener {
                    proto: ListenerProto::Rtsp,
                    addr: addr("0.0.0.0:1554"),
                    span: Span { line: 3, col: 1 },
                },
            ],
            auth_token_param: "token".into(),
            player_assets: None,
            auth_backends: vec![AuthBackend {
                name: "play-auth".into(),
                rules: Rules {
                    allow_tokens: vec!["test1".into()],
                    ..Rules::default()
                },
                span: Span { line: 5, col: 1 },
            }],
            streams: vec![StreamConfig {
                name: "auth-check".into(),
                input: InputUrl::Fake,
                on_play: Some(OnPlay::Auth {
                    backend: "play-auth".into(),
                }),
                on_publish: None,
                segment_duration_ms: 2000,
                srt: StreamSrt::default(),
                pull: Default::default(),
                span: Span { line: 9, col: 1 },
            }],
            ..Config::default()
        };
        assert_eq!(config, expected);
        assert!(config.stream("auth-check").is_some());
        assert!(config.auth_backend("play-auth").is_some());
        assert!(config.stream("auth").is_none());
    }

    #[test]
    fn everything_parses_together() {
        let config = ok(r#"
            # Listeners in every form.
            http 127.0.0.1:8080;      # loopback only
            http [::1]:8080;
            http [::]:8081;
            rtmp 1935;
            rtsp 0.0.0.0:554;
            srt 8080;                 # UDP: no clash with TCP 8080
            auth_token "access_key";

            stream "live/cam1" {
                input "fake://fake";
                on_play auth://portal;   # defined below: forward references are fine
                segment_duration 1.5;
            }

            auth_backend portal {
                allow token a "b c" "say \"hi\"" "back\\slash";
                deny token bad;
                allow ip 10.0.0.0/8 ::1 2001:db8::/32;
                deny ip 0.0.0.0/0;
                allow ua "VLC media player" Lavf;
                deny ua curl;
                allow default;
            }

            stream open { input fake://fake; }
            player_assets "/opt/tessera player/node_modules";
            "#);
        let listeners: Vec<(ListenerProto, SocketAddr)> =
            config.listeners.iter().map(|l| (l.proto, l.addr)).collect();
        assert_eq!(
            listeners,
            [
                (ListenerProto::Http, addr("127.0.0.1:8080")),
                (ListenerProto::Http, addr("[::1]:8080")),
                (ListenerProto::Http, addr("[::]:8081")),
                (ListenerProto::Rtmp, addr("0.0.0.0:1935")),
                (ListenerProto::Rtsp, addr("0.0.0.0:554")),
                (ListenerProto::Srt, addr("0.0.0.0:8080")),
            ]
        );
        assert_eq!(config.auth_token_param, "access_key");
        assert_eq!(
            config.player_assets.as_deref(),
            Some("/opt/tessera player/node_modules")
        );
        let rules = &config.auth_backend("portal").unwrap().rules;
        assert_eq!(
            rules.allow_tokens,
            ["a", "b c", "say \"hi\"", "back\\slash"]
        );
        assert_eq!(rules.deny_tokens, ["bad"]);
        let ips: Vec<String> = rules.allow_ips.iter().map(ToString::to_string).collect();
        assert_eq!(ips, ["10.0.0.0/8", "::1/128", "2001:db8::/32"]);
        assert_eq!(rules.deny_ips.len(), 1);
        assert_eq!(rules.allow_uas, ["VLC media player", "Lavf"]);
        assert_eq!(rules.deny_uas, ["curl"]);
        assert!(rules.allow_default);
        let cam = config.stream("live/cam1").unwrap();
        assert_eq!(cam.segment_duration_ms, 1500);
        assert_eq!(cam.span, Span { line: 11, col: 13 });
        assert_eq!(
            cam.on_play,
            Some(OnPlay::Auth {
                backend: "portal".into()
            })
        );
        let open = config.stream("open").unwrap();
        assert_eq!(
            (open.on_play.clone(), open.segment_duration_ms),
            (None, 2000)
        );
    }

    #[test]
    fn minimal_and_one_line_configs() {
        let empty = ok("");
        assert!(empty.listeners.is_empty() && empty.streams.is_empty());
        assert_eq!(empty.auth_token_param, "token");
        ok("# nothing but a comment\n\n");
        let one_line = ok(
            "auth_backend b { allow token t; } stream s { input fake://fake; on_play auth://b; }",
        );
        assert_eq!(one_line.streams.len(), 1);
        ok("auth_backend empty { }"); // denies everything: legal
    }

    #[test]
    fn unknown_directives_get_hints() {
        assert_eq!(
            errors("htp 8080;"),
            "t.conf:1:1: error: unknown directive `htp`; did you mean `http`?"
        );
        assert_eq!(
            errors("strem x { input fake://fake; }"),
            "t.conf:1:1: error: unknown directive `strem`; did you mean `stream`?"
        );
        assert_eq!(
            errors("stream x {\n  inptu fake://fake;\n  input fake://fake;\n}"),
            "t.conf:2:3: error: unknown directive `inptu`; did you mean `input`?"
        );
        assert_eq!(
            errors("auth_backend b {\n    alow token t;\n}"),
            "t.conf:2:5: error: unknown directive `alow`; did you mean `allow`?"
        );
        assert_eq!(
            errors("dvr /storage;"),
            "t.conf:1:1: error: unknown directive `dvr`"
        );
        assert_eq!(
            errors("input fake://fake;"),
            "t.conf:1:1: error: `input` is not allowed at top level; it belongs inside `stream NAME { ... }`"
        );
        assert_eq!(
            errors("stream s { input fake://fake; http 80; }"),
            "t.conf:1:31: error: `http` is not allowed inside `stream`; it belongs at top level"
        );
        assert_eq!(
            errors("auth_backend b { allow tokn x; }"),
            "t.conf:1:24: error: unknown rule kind `tokn`; did you mean `token`?"
        );
    }

    #[test]
    fn published_streams_and_on_publish() {
        let cfg = parse(
            "auth_backend pub { allow token secret; }\n\
             stream live/cam { input publish://; on_publish auth://pub; }\n\
             stream open { input publish://; }",
            "t.conf",
        )
        .expect("config parses");
        let cam = cfg.stream("live/cam").unwrap();
        assert_eq!(cam.input, InputUrl::Publish);
        assert_eq!(
            cam.on_publish,
            Some(OnPlay::Auth {
                backend: "pub".into()
            })
        );
        assert_eq!(cfg.stream("open").unwrap().on_publish, None);
        assert_eq!(
            errors("stream s { input publish://; on_publish auth://nope; }"),
            "t.conf:1:41: error: auth_backend `nope` is not defined (this file defines no auth_backend)"
        );
    }

    #[test]
    fn pulled_streams_take_failover_inputs_and_on_demand_options() {
        let cfg = parse(
            "stream e {\n  input rtmp://a:user@origin1/live/e;\n  input tshttp://origin2:8080/e/mpegts;\n  \
             static false;\n  clients_timeout 5;\n  source_timeout 3;\n  first_segment_timeout 20;\n}",
            "t.conf",
        )
        .expect("parses");
        let e = cfg.stream("e").unwrap();
        let InputUrl::Pull(primary) = &e.input else {
            panic!("a pull: {:?}", e.input)
        };
        assert_eq!(primary.to_string(), "rtmp://***@origin1:1935/live/e");
        assert_eq!(e.pull.backups.len(), 1);
        assert_eq!(e.pull.backups[0].port, 8080);
        assert!(e.pull.on_demand);
        assert_eq!(
            (e.pull.clients_timeout_ms, e.pull.source_timeout_ms),
            (5000, 3000)
        );
        assert_eq!(e.pull.first_segment_timeout_ms, 20_000);
        assert_eq!(
            parse("stream s { input fake://fake; }", "t.conf")
                .unwrap()
                .streams[0]
                .pull
                .first_segment_timeout_ms,
            10_000,
            "the default"
        );
        assert_eq!(
            errors("stream s { input fake://fake; first_segment_timeout 61; }"),
            "t.conf:1:53: error: invalid first_segment_timeout `61`: expected whole seconds from 1 to 60"
        );
        assert_eq!(
            errors("stream s { input fake://fake; static false; }"),
            "t.conf:1:31: error: `static` needs a pulled input (rtmp://, tshttp://): only pulls run on demand"
        );
        assert_eq!(
            errors("stream s { input rtmp://o/a/s; source_timeout 0; }"),
            "t.conf:1:47: error: invalid source_timeout `0`: expected whole seconds from 1 to 3600"
        );
    }

    #[test]
    fn later_features_are_refused_by_name() {
        let source = "\
auth_backend b {
    allow country US;
    deny country CN;
}
stream s {
    input fake://fake;
    on_publish auth://b;
}
stream r { input rtsps://origin/live/s; }
stream h { input https://origin/s/stream.ts; }
";
        assert_eq!(
            errors(source),
            "\
t.conf:2:11: error: `allow country` is not supported yet
t.conf:3:10: error: `deny country` is not supported yet
t.conf:7:5: error: `on_publish` needs `input publish://;` (only published streams take publishers)
t.conf:9:18: error: input scheme `rtsps://` is not supported yet
t.conf:10:18: error: input scheme `https://` is not supported yet"
        );
    }

    #[test]
    fn portal_backends_and_api_key() {
        let cfg = parse(
            "api_key 0123456789abcdef01;\n\
             backend_timeout 2.5;\n\
             auth_backend portal {\n\
                 allow token local;\n\
                 backend http://127.0.0.1:8081/auth;\n\
                 backend http://[::1]:8082/auth?site=1;\n\
                 backend_timeout 1;\n\
                 max_sessions_policy refuse_new;\n\
             }\n\
             stream a { input fake://fake; on_play auth://portal; }\n\
             stream b { input fake://fake; on_play http://127.0.0.1:9000/check; }\n\
             stream c { input fake://fake; on_play http://127.0.0.1:9000/check; }\n",
            "t.conf",
        )
        .expect("valid");
        assert_eq!(cfg.api_key.as_deref(), Some("0123456789abcdef01"));
        assert_eq!(cfg.backend_timeout_ms, 2500);
        let portal = cfg.auth_backend("portal").unwrap();
        assert_eq!(
            portal.rules.backends,
            [
                "http://127.0.0.1:8081/auth",
                "http://[::1]:8082/auth?site=1"
            ]
        );
        assert_eq!(portal.rules.backend_timeout_ms, Some(1000));
        assert!(portal.rules.refuse_new_sessions);
        // `on_play http://URL` is an auth backend of its own, shared by streams naming it.
        let url = "http://127.0.0.1:9000/check";
        assert_eq!(cfg.auth_backend(url).unwrap().rules.backends, [url]);
        assert_eq!(cfg.auth_backends.len(), 2);
        assert_eq!(
            cfg.stream("c").unwrap().on_play,
            Some(OnPlay::Auth {
                backend: url.into()
            })
        );
    }

    #[test]
    fn bad_portal_directives_name_the_place() {
        let source = "\
api_key short;
backend_timeout 0;
auth_backend b {
    backend https://portal/auth;
    backend http://user:pw@portal/auth;
    max_sessions_policy newest;
}
stream s { input fake://fake; on_play http://portal auth; }
";
        assert_eq!(
            errors(source),
            "\
t.conf:1:9: error: api_key must be at least 16 printable characters without spaces
t.conf:2:17: error: invalid backend_timeout `0`: expected seconds from 0.1 to 60
t.conf:4:13: error: invalid backend URL `https://portal/auth`: https backends are not supported yet
t.conf:5:13: error: invalid backend URL `http://user:pw@portal/auth`: credentials in the URL (user:password@) are not allowed
t.conf:6:25: error: unknown max_sessions_policy `newest`: expected `close_oldest` or `refuse_new`
t.conf:8:53: error: unexpected argument `auth` (usage: `on_play auth://NAME | http://URL;`)"
        );
    }

    #[test]
    fn dangling_references() {
        assert_eq!(
            errors(
                "auth_backend play-auth { allow token t; }\nstream s {\n    input fake://fake;\n    on_play auth://missing;\n}"
            ),
            "t.conf:4:13: error: auth_backend `missing` is not defined; defined backends: `play-auth`"
        );
        assert_eq!(
            errors(
                "auth_backend play-auth { }\nstream s { input fake://fake; on_play auth://play-ath; }"
            ),
            "t.conf:2:39: error: auth_backend `play-ath` is not defined; did you mean `play-auth`?"
        );
        assert_eq!(
            errors("stream s { input fake://fake; on_play auth://x; }"),
            "t.conf:1:39: error: auth_backend `x` is not defined (this file defines no auth_backend)"
        );
        let many: String = (0..10)
            .map(|i| format!("auth_backend backend{i} {{ }}\n"))
            .collect();
        let error = errors(&format!(
            "{many}stream s {{ input fake://fake; on_play auth://other; }}"
        ));
        assert!(
            error.ends_with("`backend6`, `backend7` and 2 more"),
            "{error}"
        );
    }

    #[test]
    fn duplicates() {
        assert_eq!(
            errors("stream a { input fake://fake; }\nstream a { input fake://fake; }"),
            "t.conf:2:8: error: duplicate stream `a` (first defined at 1:8)"
        );
        assert_eq!(
            errors("auth_backend b { }\n\nauth_backend b { }"),
            "t.conf:3:14: error: duplicate auth_backend `b` (first defined at 1:14)"
        );
        assert_eq!(
            errors("http 8080;\nrtmp 0.0.0.0:8080;"),
            "t.conf:2:6: error: listen address `0.0.0.0:8080` is already used by `http` at 1:6"
        );
        assert_eq!(
            errors("http 8080;\nrtsp 127.0.0.1:8080;"),
            "t.conf:2:6: error: listen address `127.0.0.1:8080` overlaps `0.0.0.0:8080` of `http` at 1:6"
        );
        assert_eq!(
            errors("http [::1]:80;\nhttp [::]:80;"),
            "t.conf:2:6: error: listen address `[::]:80` overlaps `[::1]:80` of `http` at 1:6"
        );
        assert_eq!(
            errors("player_assets a;\nplayer_assets b;"),
            "t.conf:2:1: error: duplicate `player_assets` (first set at 1:1)"
        );
        assert_eq!(
            errors("auth_token a;\nauth_token b;"),
            "t.conf:2:1: error: duplicate `auth_token` (first set at 1:1)"
        );
        assert_eq!(
            errors("stream s {\n  input fake://fake;\n  input publish://;\n}"),
            "t.conf:3:3: error: a second `input` is a failover source, which only pulled inputs (rtmp://, tshttp://) take; the first is at 2:3"
        );
        assert_eq!(
            errors(
                "auth_backend b {}\nstream s { input fake://fake; on_play auth://b; on_play auth://b; }"
            ),
            "t.conf:2:49: error: duplicate `on_play` (first set at 2:31)"
        );
        // Different transports, same port: fine.
        ok("http 9000; srt 9000;");
        assert_eq!(ok("srt 9000;").srt_latency_ms, 120);
        assert_eq!(ok("srt 9000; srt_latency 400;").srt_latency_ms, 400);
        assert_eq!(
            errors("srt_latency 5;"),
            "t.conf:1:13: error: invalid srt_latency `5`: expected milliseconds from 20 to 10000"
        );
    }

    #[test]
    fn srt_passphrases_and_stream_ports() {
        let c = ok("srt 9000; srt_passphrase topsecret00;
                    stream a { input fake://fake; srt_passphrase own-secret-1; srt_play { port 9001; } }
                    stream b { input publish://; srt 127.0.0.1:9002; }");
        assert_eq!(c.srt_passphrase.as_deref(), Some("topsecret00"));
        let a = &c.streams[0].srt;
        assert_eq!(a.passphrase.as_deref(), Some("own-secret-1"));
        assert_eq!(a.play, Some("0.0.0.0:9001".parse().unwrap()));
        assert_eq!(
            c.streams[1].srt.play_publish,
            Some("127.0.0.1:9002".parse().unwrap())
        );
        assert_eq!(
            errors("srt_passphrase short;"),
            "t.conf:1:16: error: invalid srt_passphrase: expected 10 to 79 bytes (libsrt's limits), found 5"
        );
        assert_eq!(
            errors("srt 9000;\nstream a { input fake://fake; srt 9000; }"),
            "t.conf:2:35: error: listen address `0.0.0.0:9000` is already used by `srt` at 1:5"
        );
        assert_eq!(
            errors("stream a { input fake://fake; srt_play { port 9000; port 9001; } }"),
            "t.conf:1:53: error: duplicate `srt_play` (first set at 1:42)"
        );
        assert!(errors("stream a { input fake://fake; srt_play { pot 9000; } }").contains("pot"));
    }

    #[test]
    fn value_errors() {
        assert_eq!(
            errors("http 0;"),
            "t.conf:1:6: error: port 0 is not allowed: expected a number from 1 to 65535"
        );
        assert_eq!(
            errors("rtmp 70000;"),
            "t.conf:1:6: error: port 70000 is out of range: expected a number from 1 to 65535"
        );
        assert_eq!(
            errors("rtsp 1.2.3.4:x;"),
            "t.conf:1:6: error: invalid port `x`: expected a number from 1 to 65535"
        );
        assert_eq!(
            errors("auth_backend b { allow token \"\"; }"),
            "t.conf:1:30: error: empty token value"
        );
        assert_eq!(
            errors("auth_backend b { deny ip 10.0.0.0/33; }"),
            "t.conf:1:26: error: invalid IP or CIDR `10.0.0.0/33`: the prefix length is out of range for IPv4 (0-32)"
        );
        assert_eq!(
            errors("auth_backend b { allow token; }"),
            "t.conf:1:24: error: `allow token` needs at least one value"
        );
        assert_eq!(
            errors("auth_backend b { deny default; }"),
            "t.conf:1:23: error: `deny default` is not a rule: requests are denied by default unless `allow default;` is set"
        );
        assert_eq!(
            errors("stream s { }"),
            "t.conf:1:8: error: stream `s` has no `input` (add e.g. `input fake://fake;`)"
        );
        assert_eq!(
            errors("stream live/../etc { input fake://fake; }"),
            "t.conf:1:8: error: stream name `live/../etc` must not contain `..` segments"
        );
        assert_eq!(
            errors("stream s { input fake://fake; segment_duration 45; }"),
            "t.conf:1:48: error: segment_duration `45` is out of range: expected 0.5 to 30 seconds"
        );
        assert_eq!(
            errors("http;"),
            "t.conf:1:1: error: `http` needs an argument (usage: `http PORT|IP:PORT|[IPV6]:PORT;`)"
        );
        assert_eq!(
            errors("http 80 81;"),
            "t.conf:1:9: error: unexpected argument `81` (usage: `http PORT|IP:PORT|[IPV6]:PORT;`)"
        );
        assert_eq!(
            errors("stream s;"),
            "t.conf:1:1: error: `stream` needs a `{ ... }` block (usage: `stream NAME { ... }`)"
        );
        assert_eq!(
            errors("stream { input fake://fake; }"),
            "t.conf:1:1: error: `stream` needs an argument (usage: `stream NAME { ... }`)"
        );
        assert_eq!(
            errors("http 80 { }"),
            "t.conf:1:9: error: `http` does not take a `{ ... }` block"
        );
        assert_eq!(
            errors("auth_token \"a b\";"),
            "t.conf:1:12: error: invalid `auth_token` name `a b`: use letters, digits, `-`, `_`, `.` or `~`"
        );
    }

    #[test]
    fn syntax_errors_recover() {
        assert_eq!(
            errors("http 8080"),
            "t.conf:1:10: error: expected `;` after `8080`"
        );
        assert_eq!(
            errors("auth_backend b {\n    allow token test1\n}"),
            "t.conf:2:22: error: expected `;` after `test1`"
        );
        assert_eq!(
            errors("stream s {\n  input fake://fake;\n"),
            "t.conf:1:10: error: unclosed `{`: missing `}` before the end of the file"
        );
        assert_eq!(
            errors("}\nhttp 80;"),
            "t.conf:1:1: error: unexpected `}`: no block is open"
        );
        assert_eq!(
            errors("http 80;;"),
            "t.conf:1:9: error: unexpected `;`: no directive before it"
        );
        assert_eq!(
            errors("{ http 80; }"),
            "t.conf:1:1: error: unexpected `{`: a block must follow a directive name"
        );
        assert_eq!(
            errors("http \"8080;\nrtmp 1935;"),
            "t.conf:1:6: error: unterminated string: missing closing `\"` on this line\n\
             t.conf:1:6: error: invalid listen address `8080;`: expected PORT, IP:PORT or [IPV6]:PORT\n\
             t.conf:1:12: error: expected `;` after `8080;`"
        );
    }

    #[test]
    fn missing_semicolon_before_a_directive_on_the_next_line() {
        // The listener after the missing `;` is still understood (and checked).
        assert_eq!(
            errors("http 8080\nrtmp 8080;"),
            "t.conf:1:10: error: expected `;` after `8080`\n\
             t.conf:2:6: error: listen address `0.0.0.0:8080` is already used by `http` at 1:6"
        );
        // A rule list never swallows the next rule: `deny`, `token`, `b` are not allowed tokens.
        assert_eq!(
            errors("auth_backend x {\n  allow token a\n  deny token b;\n}"),
            "t.conf:2:16: error: expected `;` after `a`"
        );
        assert_eq!(
            errors("stream s {\n  input fake://fake\n  on_play auth://nope;\n}"),
            "t.conf:2:20: error: expected `;` after `fake://fake`\n\
             t.conf:3:11: error: auth_backend `nope` is not defined (this file defines no auth_backend)"
        );
        // Quoted, a directive name is a plain value.
        let config = ok("auth_backend x {\n  allow token a\n  \"deny\";\n}");
        assert_eq!(config.auth_backends[0].rules.allow_tokens, ["a", "deny"]);
    }

    #[test]
    fn every_error_in_a_file_is_reported() {
        let source = "\
http 8080;
htp 8081;
rtmp 99999;
auth_backend play-auth {
    allow token \"\";
    allow ip 10.0.0.0/99;
}
stream auth-check {
    on_play auth://play-ath;
}
stream auth-check {
    input fake://fake;
}
";
        assert_eq!(
            errors(source),
            "\
t.conf:2:1: error: unknown directive `htp`; did you mean `http`?
t.conf:3:6: error: port 99999 is out of range: expected a number from 1 to 65535
t.conf:5:17: error: empty token value
t.conf:6:14: error: invalid IP or CIDR `10.0.0.0/99`: the prefix length is out of range for IPv4 (0-32)
t.conf:8:8: error: stream `auth-check` has no `input` (add e.g. `input fake://fake;`)
t.conf:9:13: error: auth_backend `play-ath` is not defined; did you mean `play-auth`?
t.conf:11:8: error: duplicate stream `auth-check` (first defined at 8:8)"
        );
        assert_eq!(parse(source, "t.conf").unwrap_err().len(), 7);
    }

    #[test]
    fn columns_count_chars_not_bytes() {
        assert_eq!(
            errors("# é\nstream \"é/ü\" { input fäke://fake; }"),
            "t.conf:2:22: error: unknown input scheme `fäke://`; did you mean `fake://`?"
        );
    }

    #[test]
    fn load_file_reports_io_and_encoding_errors() {
        let dir = std::env::temp_dir().join(format!("tessera-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();

        let missing = dir.join("missing.conf");
        let err = load_file(&missing).unwrap_err();
        assert_eq!(err.len(), 1);
        assert_eq!(err.errors()[0].span, None);
        assert!(
            err.to_string().starts_with(&format!(
                "{}: error: cannot read the config file: ",
                missing.display()
            )),
            "{err}"
        );

        let latin1 = dir.join("latin1.conf");
        std::fs::write(&latin1, b"http 8080;\nstream caf\xe9 { }").unwrap();
        let err = load_file(&latin1).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}:2:11: error: the config file is not valid UTF-8 (byte offset 21)",
                latin1.display()
            )
        );

        let good = dir.join("tessera.conf");
        std::fs::write(&good, DEFAULT_CONFIG).unwrap();
        assert_eq!(load_file(&good).unwrap().streams.len(), 1);
        let bad = dir.join("bad.conf");
        std::fs::write(&bad, "htp 1;").unwrap();
        assert_eq!(
            load_file(&bad).unwrap_err().to_string(),
            format!(
                "{}:1:1: error: unknown directive `htp`; did you mean `http`?",
                bad.display()
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn errors_are_std_errors() {
        fn boxed(e: ConfigErrors) -> Box<dyn std::error::Error + Send + Sync> {
            Box::new(e)
        }
        let e = boxed(parse("x;", "t.conf").unwrap_err());
        assert_eq!(e.to_string(), "t.conf:1:1: error: unknown directive `x`");
    }

    /// xorshift64*: a tiny deterministic PRNG, so the robustness test is the same on every run.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// Bytes that matter to the grammar, to make mutations interesting.
    const SPICE: &[u8] = b";{}#\"\\ \n\t:/[].0123456789aZ\xc3\xa9\xff\x00";

    /// Runs in CI where cargo-fuzz does not: thousands of mutations of the default config and
    /// of pure garbage. `parse` must return (Ok or Err) for every one, never panic.
    #[test]
    fn parse_never_panics_on_mutated_or_garbage_input() {
        let mut rng = XorShift(0x7e55_e7a0_c0ff_ee01);
        let seeds: [&[u8]; 3] = [
            DEFAULT_CONFIG.as_bytes(),
            b"http [::1]:8080; auth_token k; auth_backend b { allow ip 10.0.0.0/8 ::ffff:1.2.3.4/120; \
              deny ua \"x\\\"y\"; allow default; } stream live/cam1 { input fake://fake; \
              on_play auth://b; segment_duration 1.5; } template t { x { y { } } }",
            b"",
        ];
        let mut parsed_ok = 0;
        for round in 0..4000 {
            let mut bytes: Vec<u8> = seeds[round % seeds.len()].to_vec();
            let mutations = 1 + rng.below(8);
            for _ in 0..mutations {
                let at = rng.below(bytes.len() + 1);
                let byte = if rng.below(2) == 0 {
                    SPICE[rng.below(SPICE.len())]
                } else {
                    rng.next() as u8
                };
                match rng.below(4) {
                    0 if at < bytes.len() => bytes[at] ^= 1 << rng.below(8),
                    1 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    2 if at < bytes.len() => {
                        // Duplicate a chunk: repeats blocks, names, listeners.
                        let end = (at + rng.below(64)).min(bytes.len());
                        let chunk = bytes[at..end].to_vec();
                        bytes.splice(at..at, chunk);
                    }
                    _ => bytes.insert(at, byte),
                }
            }
            if round % 10 == 9 {
                bytes = (0..rng.below(300))
                    .map(|_| SPICE[rng.below(SPICE.len())])
                    .collect();
            }
            let text = String::from_utf8_lossy(&bytes);
            match parse(&text, "fuzz.conf") {
                Ok(_) => parsed_ok += 1,
                Err(errors) => {
                    assert!(!errors.is_empty());
                    for e in &errors {
                        assert!(!e.to_string().contains('\n'), "multi-line error: {e:?}");
                        let span = e.span.expect("parse errors have positions");
                        assert!(span.line >= 1 && span.col >= 1);
                    }
                }
            }
        }
        assert!(
            parsed_ok > 0,
            "some mutations (e.g. in comments or token values) stay valid"
        );
    }

    #[test]
    fn huge_inputs_stay_linear_and_shallow() {
        // Deep nesting: no stack overflow.
        let deep = format!("{}{}", "a {".repeat(200_000), "}".repeat(200_000));
        let e = parse(&deep, "t.conf").unwrap_err();
        assert!(e.to_string().contains("blocks nested too deeply"));
        let unclosed = "a {".repeat(200_000);
        assert!(parse(&unclosed, "t.conf").is_err());

        // Many streams and backends, many dangling references: finishes quickly.
        let mut big = String::new();
        for i in 0..20_000 {
            big.push_str(&format!("auth_backend b{i} {{ allow token t{i}; }}\n"));
            big.push_str(&format!(
                "stream s{i} {{ input fake://fake; on_play auth://b{i}; }}\n"
            ));
        }
        let config = ok(&big);
        assert_eq!(config.streams.len(), 20_000);
        for i in 0..20_000 {
            big.push_str(&format!(
                "stream x{i} {{ input fake://fake; on_play auth://missing{i}; }}\n"
            ));
        }
        assert_eq!(parse(&big, "t.conf").unwrap_err().len(), 20_000);

        // One enormous word and one enormous line of garbage.
        let word = format!("stream {} {{ input fake://fake; }}", "n".repeat(1 << 20));
        ok(&word);
        let garbage = ";".repeat(1 << 18);
        assert_eq!(parse(&garbage, "t.conf").unwrap_err().len(), 1 << 18);
    }
}

#[cfg(test)]
mod service_tests {
    use super::*;

    fn missing(source: &str) -> Vec<String> {
        let config = parse(source, "f.conf").expect("well-formed");
        match require_service(&config, "f.conf") {
            Ok(()) => Vec::new(),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_served_config_needs_a_listener_and_a_stream() {
        let empty = missing("");
        assert_eq!(empty.len(), 2, "{empty:?}");
        assert!(
            empty[0].starts_with("f.conf: error: no listener"),
            "{empty:?}"
        );
        assert!(
            empty[1].starts_with("f.conf: error: no stream"),
            "{empty:?}"
        );
        assert_eq!(missing("rtmp 1935;").len(), 1);
        assert_eq!(missing("stream a { input fake://fake; }").len(), 1);
        assert!(missing("rtsp 1554;\nstream a { input publish://; }").is_empty());
        assert!(missing(DEFAULT_CONFIG).is_empty());
    }
}

#[cfg(test)]
mod connection_directive_tests {
    use super::*;

    #[test]
    fn per_ip_cap_and_handshake_timeout() {
        let c = parse("max_connections_per_ip 8;\nhandshake_timeout 1.5;\n", "f").unwrap();
        assert_eq!(c.max_connections_per_ip, 8);
        assert_eq!(c.handshake_timeout_ms, 1500);
        let d = parse("", "f").unwrap();
        assert_eq!(d.max_connections_per_ip, DEFAULT_MAX_CONNECTIONS_PER_IP);
        assert_eq!(d.handshake_timeout_ms, DEFAULT_HANDSHAKE_TIMEOUT_MS);
        assert_eq!(
            parse("max_connections_per_ip 0;", "f")
                .unwrap()
                .max_connections_per_ip,
            0
        );
        for (bad, at) in [
            (
                "max_connections_per_ip -1;",
                "f:1:24: error: invalid max_connections_per_ip",
            ),
            (
                "max_connections_per_ip +3;",
                "f:1:24: error: invalid max_connections_per_ip",
            ),
            ("max_connections_per_ip 2000000;", "f:1:24: error: invalid"),
            (
                "handshake_timeout 0.1;",
                "f:1:19: error: invalid handshake_timeout",
            ),
            (
                "handshake_timeout 61;",
                "f:1:19: error: invalid handshake_timeout",
            ),
            ("handshake_timeout;", "f:1:1: error:"),
        ] {
            let errors = parse(bad, "f").unwrap_err().to_string();
            assert!(errors.starts_with(at), "{bad}: {errors}");
        }
    }
}
