//! Parser for the config language (spec §2), in two passes over one file:
//!
//! 1. **Syntax**: tokens → a tree of `Directive { name, args, block }`. Recovers from every
//!    error (a missing `;`, a stray `}`, an unclosed block) so that one run reports them all.
//!    Block nesting is limited (`MAX_NESTING`); deeper blocks are skipped without recursion.
//! 2. **Meaning**: the tree → `Config`. Checks each directive in its context (top level,
//!    `auth_backend`, `stream`), refuses known-but-unsupported features by name, and runs the
//!    whole-file checks (duplicate names and addresses, dangling `auth://` references).
//!
//! Every error carries the line:column of the token at fault. Work is linear in the input;
//! hints (edit distance) are bounded per error.

use super::backend_url::BackendUrl;
use super::cluster::{self, ClusterConfig};
use super::error::{Diagnostics, did_you_mean, show};
use super::lexer::{Lexer, Token, Word};
use super::model::{
    API_PREFIX, AuthBackend, Cidr, Config, DEFAULT_SEGMENT_DURATION_MS, InputUrl, Listener,
    ListenerProto, MAX_BACKEND_TIMEOUT_MS, MAX_CONNECTIONS_PER_IP, MAX_HANDSHAKE_TIMEOUT_MS,
    MAX_SEGMENT_DURATION_MS, MAX_SHUTDOWN_TIMEOUT_MS, MAX_SRT_LATENCY_MS, MAX_SRT_PASSPHRASE,
    MIN_BACKEND_TIMEOUT_MS, MIN_HANDSHAKE_TIMEOUT_MS, MIN_SEGMENT_DURATION_MS, MIN_SRT_LATENCY_MS,
    MIN_SRT_PASSPHRASE, OnPlay, PLAYER_SEGMENT, Rules, SecureTokenConfig, ServerNameConfig,
    SignedKeyConfig, Span, StreamConfig, StreamSrt, Transport,
};
use super::signed_key;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Deepest block nesting the syntax pass builds (the grammar needs 1). Deeper blocks are
/// reported and skipped, so hostile input cannot exhaust the stack.
pub(crate) const MAX_NESTING: usize = 8;

/// On a dangling `auth://` reference, the first this-many backends are searched for a
/// "did you mean" (bounding the work per error)...
const MAX_BACKENDS_SEARCHED: usize = 64;
/// ...and the first this-many are listed when none is close.
const MAX_BACKENDS_LISTED: usize = 8;
/// Portal backends one `auth_backend` may ask in parallel.
const MAX_BACKENDS_PER_AUTH: usize = 8;

// ---------------------------------------------------------------------------------------
// Pass 1: syntax
// ---------------------------------------------------------------------------------------

/// `NAME ARGS... ;` or `NAME ARGS... { ITEMS }`.
#[derive(Debug, Clone)]
pub(crate) struct Directive {
    pub name: Word,
    pub args: Vec<Word>,
    pub block: Option<Block>,
}

#[derive(Debug, Clone)]
pub(crate) struct Block {
    /// The `{`.
    pub open: Span,
    pub items: Vec<Directive>,
}

struct SyntaxParser<'s, 'd> {
    lexer: Lexer<'s>,
    diags: &'d mut Diagnostics,
    peeked: Option<Token>,
}

/// Pass 1: the directive tree of a whole file.
pub(crate) fn parse_tree(source: &str, diags: &mut Diagnostics) -> Vec<Directive> {
    let mut parser = SyntaxParser {
        lexer: Lexer::new(source),
        diags,
        peeked: None,
    };
    parser.items(1, None)
}

impl SyntaxParser<'_, '_> {
    fn peek(&mut self) -> Option<&Token> {
        if self.peeked.is_none() {
            self.peeked = self.lexer.next_token(self.diags);
        }
        self.peeked.as_ref()
    }

    fn next(&mut self) -> Option<Token> {
        match self.peeked.take() {
            Some(t) => Some(t),
            None => self.lexer.next_token(self.diags),
        }
    }

    /// Directives until the `}` matching `open` (consumed), or end of input. `depth` counts
    /// the blocks we are in, the top level being 1.
    fn items(&mut self, depth: usize, open: Option<Span>) -> Vec<Directive> {
        let mut items = Vec::new();
        loop {
            let Some(token) = self.next() else {
                if let Some(open) = open {
                    self.diags
                        .error(open, "unclosed `{`: missing `}` before the end of the file");
                }
                return items;
            };
            match token {
                Token::CloseBrace(span) => {
                    if open.is_some() {
                        return items;
                    }
                    self.diags.error(span, "unexpected `}`: no block is open");
                }
                Token::Semicolon(span) => self
                    .diags
                    .error(span, "unexpected `;`: no directive before it"),
                Token::OpenBrace(span) => {
                    self.diags
                        .error(span, "unexpected `{`: a block must follow a directive name");
                    self.skip_block(span);
                }
                Token::Word(name) => items.push(self.directive(name, depth)),
            }
        }
    }

    fn directive(&mut self, name: Word, depth: usize) -> Directive {
        let mut args: Vec<Word> = Vec::new();
        loop {
            match self.peek() {
                Some(Token::Word(_)) => {
                    if let Some(Token::Word(w)) = self.next() {
                        args.push(w);
                    }
                }
                Some(Token::Semicolon(_)) => {
                    self.next();
                    return Directive {
                        name,
                        args,
                        block: None,
                    };
                }
                Some(Token::OpenBrace(open)) => {
                    let open = *open;
                    self.next();
                    let items = if depth >= MAX_NESTING {
                        self.diags.error(
                            open,
                            format!("blocks nested too deeply (the limit is {MAX_NESTING})"),
                        );
                        self.skip_block(open);
                        Vec::new()
                    } else {
                        self.items(depth + 1, Some(open))
                    };
                    let block = Some(Block { open, items });
                    return Directive { name, args, block };
                }
                // `}` or end of input: the `;` is missing. Leave the `}` to the caller.
                Some(Token::CloseBrace(_)) | None => {
                    let last = args.last().unwrap_or(&name);
                    self.diags.error(
                        last.end,
                        format!("expected `;` after `{}`", show(&last.text)),
                    );
                    return Directive {
                        name,
                        args,
                        block: None,
                    };
                }
            }
        }
    }

    /// Skips to the `}` matching an already consumed `{`, without recursion.
    fn skip_block(&mut self, open: Span) {
        let mut depth = 1usize;
        while let Some(token) = self.next() {
            match token {
                Token::OpenBrace(_) => depth += 1,
                Token::CloseBrace(_) => {
                    depth -= 1;
                    if depth == 0 {
                        return;
                    }
                }
                Token::Word(_) | Token::Semicolon(_) => {}
            }
        }
        self.diags
            .error(open, "unclosed `{`: missing `}` before the end of the file");
    }
}

// ---------------------------------------------------------------------------------------
// Pass 2: meaning
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    Top,
    AuthBackend,
    Stream,
    ServerName,
    SrtPlay,
    Template,
    Cluster,
}

impl Context {
    /// Every directive name valid here, including the known-but-unsupported ones.
    fn directives(self) -> &'static [&'static str] {
        match self {
            Context::Top => &[
                "http",
                "rtmp",
                "rtsp",
                "srt",
                "webrtc",
                "webrtc_candidate",
                "https",
                "rtmps",
                "rtsps",
                "ssl_certificate",
                "ssl_certificate_key",
                "server_name",
                "admin_http",
                "admin_https",
                "api_allowed_from",
                "auth_token",
                "player_assets",
                "auth_backend",
                "stream",
                "template",
                "api_key",
                "backend_timeout",
                "srt_latency",
                "srt_passphrase",
                "max_connections_per_ip",
                "handshake_timeout",
                "shutdown_timeout",
                "cluster",
                "cluster_key",
            ],
            Context::AuthBackend => &[
                "allow",
                "deny",
                "signed_key",
                "securetoken",
                "backend",
                "backend_timeout",
                "max_sessions_policy",
            ],
            Context::Stream => &[
                "input",
                "on_play",
                "on_publish",
                "segment_duration",
                "srt",
                "srt_play",
                "srt_passphrase",
                "static",
                "clients_timeout",
                "source_timeout",
                "first_segment_timeout",
            ],
            Context::ServerName => &["ssl_certificate", "ssl_certificate_key"],
            Context::SrtPlay => &["port"],
            Context::Template => TEMPLATE_DIRECTIVES,
            Context::Cluster => &["redis", "node"],
        }
    }

    fn here(self) -> &'static str {
        match self {
            Context::Top => "at top level",
            Context::AuthBackend => "inside `auth_backend`",
            Context::Stream => "inside `stream`",
            Context::ServerName => "inside `server_name`",
            Context::SrtPlay => "inside `srt_play`",
            Context::Template => "inside `template`",
            Context::Cluster => "inside `cluster`",
        }
    }

    fn home(self) -> &'static str {
        match self {
            Context::Top => "at top level",
            Context::AuthBackend => "inside `auth_backend NAME { ... }`",
            Context::Stream => "inside `stream NAME { ... }`",
            Context::ServerName => "inside `server_name NAME... { ... }`",
            Context::SrtPlay => "inside `srt_play { ... }`",
            Context::Template => "inside `template NAME { ... }`",
            Context::Cluster => "inside `cluster { ... }`",
        }
    }
}

/// A template takes a stream's directives and its prefixes.
const TEMPLATE_DIRECTIVES: &[&str] = &[
    "prefix",
    "input",
    "on_play",
    "segment_duration",
    "static",
    "clients_timeout",
    "source_timeout",
    "first_segment_timeout",
];

/// The longest a first request may wait for a stream's first segment.
const MAX_FIRST_SEGMENT_TIMEOUT_MS: u32 = 60_000;

/// How each directive is written, for messages about missing or extra arguments.
fn usage(directive: &str) -> &'static str {
    match directive {
        "http" => "http PORT|IP:PORT|[IPV6]:PORT;",
        "rtmp" => "rtmp PORT|IP:PORT|[IPV6]:PORT;",
        "rtsp" => "rtsp PORT|IP:PORT|[IPV6]:PORT;",
        "srt" => "srt PORT|IP:PORT|[IPV6]:PORT;",
        "webrtc" => "webrtc PORT|IP:PORT|[IPV6]:PORT;",
        "webrtc_candidate" => "webrtc_candidate IP;",
        "https" => "https PORT|IP:PORT|[IPV6]:PORT;",
        "rtmps" => "rtmps PORT|IP:PORT|[IPV6]:PORT;",
        "rtsps" => "rtsps PORT|IP:PORT|[IPV6]:PORT;",
        "ssl_certificate" => "ssl_certificate PATH;",
        "ssl_certificate_key" => "ssl_certificate_key PATH;",
        "admin_http" => "admin_http PORT|IP:PORT|[IPV6]:PORT;",
        "admin_https" => "admin_https PORT|IP:PORT|[IPV6]:PORT;",
        "api_allowed_from" => "api_allowed_from CIDR...;",
        "server_name" => "server_name NAME... { ssl_certificate PATH; ssl_certificate_key PATH; }",
        "auth_token" => "auth_token NAME;",
        "player_assets" => "player_assets DIR;",
        "auth_backend" => "auth_backend NAME { ... }",
        "stream" => "stream NAME { ... }",
        "template" => "template NAME { prefix PREFIX; input URL-with-%s; ... }",
        "prefix" => "prefix PREFIX;",
        "input" => "input URL;",
        "on_play" => "on_play auth://NAME | http://URL;",
        "api_key" => "api_key KEY;",
        "backend" => "backend http://HOST[:PORT]/PATH;",
        "backend_timeout" => "backend_timeout SECONDS;",
        "srt_latency" => "srt_latency MS;",
        "srt_passphrase" => "srt_passphrase PASSPHRASE;",
        "srt_play" => "srt_play { port PORT|IP:PORT; }",
        "port" => "port PORT|IP:PORT;",
        "max_connections_per_ip" => "max_connections_per_ip N;",
        "handshake_timeout" => "handshake_timeout SECONDS;",
        "shutdown_timeout" => "shutdown_timeout SECONDS;",
        "max_sessions_policy" => "max_sessions_policy close_oldest|refuse_new;",
        "segment_duration" => "segment_duration SECONDS;",
        "static" => "static true|false;",
        "clients_timeout" => "clients_timeout SECONDS;",
        "source_timeout" => "source_timeout SECONDS;",
        "first_segment_timeout" => "first_segment_timeout SECONDS;",
        "signed_key" => "signed_key ID SECRET;",
        "securetoken" => "securetoken SECRET [no_check_ip];",
        "cluster" => "cluster { redis redis://[USER:PASSWORD@]HOST:PORT[/DB]; node NAME; }",
        "cluster_key" => "cluster_key KEY;",
        "redis" => "redis redis://[USER:PASSWORD@]HOST:PORT[/DB];",
        "node" => "node NAME;",
        _ => "",
    }
}

/// Input schemes of later work: recognised, refused as "not supported yet".
const LATER_INPUT_SCHEMES: &[&str] = &["http", "https", "hlss", "rtmps", "rtsps"];

/// Pass 2: the model of a directive tree. Whatever it returns is only meaningful when no
/// error was reported.
pub(crate) fn lower(items: Vec<Directive>, diags: &mut Diagnostics) -> Config {
    let mut lowering = Lowering {
        diags,
        config: Config::default(),
        auth_token_at: None,
        player_assets_at: None,
        listeners_at: HashMap::new(),
        port_use: HashMap::new(),
        backends_at: HashMap::new(),
        streams_at: HashMap::new(),
        template_prefixes: Vec::new(),
        srt_passphrase_at: None,
        on_play_refs: Vec::new(),
    };
    for d in split_missing_semicolons(items, Context::Top, lowering.diags) {
        lowering.top_level(d);
    }
    lowering.check_references();
    lowering.config
}

/// What a listen address is already bound by, for the conflict message.
#[derive(Clone, Copy)]
struct Bound {
    proto: ListenerProto,
    addr: SocketAddr,
    span: Span,
}

/// Per (transport, port, IP family): the wildcard listener and one specific-address listener,
/// so that `0.0.0.0:80` next to `127.0.0.1:80` is caught in O(1).
#[derive(Default)]
struct PortUse {
    wildcard: Option<Bound>,
    specific: Option<Bound>,
}

struct Lowering<'d> {
    diags: &'d mut Diagnostics,
    config: Config,
    auth_token_at: Option<Span>,
    player_assets_at: Option<Span>,
    listeners_at: HashMap<(Transport, SocketAddr), Bound>,
    port_use: HashMap<(Transport, u16, bool), PortUse>,
    backends_at: HashMap<String, Span>,
    streams_at: HashMap<String, Span>,
    /// Every template's prefixes so far: (prefix, template, where), for overlap errors.
    template_prefixes: Vec<(String, String, Span)>,
    srt_passphrase_at: Option<Span>,
    /// `on_play auth://NAME` references, checked once every backend is known.
    on_play_refs: Vec<(String, Span)>,
}

impl Lowering<'_> {
    fn top_level(&mut self, d: Directive) {
        match d.name.text.as_str() {
            "http" => self.listener(ListenerProto::Http, &d),
            "rtmp" => self.listener(ListenerProto::Rtmp, &d),
            "rtsp" => self.listener(ListenerProto::Rtsp, &d),
            "srt" => self.listener(ListenerProto::Srt, &d),
            "webrtc" => self.listener(ListenerProto::Webrtc, &d),
            "webrtc_candidate" => self.webrtc_candidate(&d),
            "https" => self.listener(ListenerProto::Https, &d),
            "rtmps" => self.listener(ListenerProto::Rtmps, &d),
            "rtsps" => self.listener(ListenerProto::Rtsps, &d),
            "server_name" => self.server_name(d),
            "admin_http" => self.listener(ListenerProto::AdminHttp, &d),
            "admin_https" => self.listener(ListenerProto::AdminHttps, &d),
            "api_allowed_from" => self.api_allowed_from(&d),
            "ssl_certificate" => {
                let mut seen = self.config.ssl_certificate.as_ref().map(|(_, at)| *at);
                self.config.ssl_certificate = self
                    .path_once(&mut seen, &d)
                    .or(self.config.ssl_certificate.take());
            }
            "ssl_certificate_key" => {
                let mut seen = self.config.ssl_certificate_key.as_ref().map(|(_, at)| *at);
                self.config.ssl_certificate_key = self
                    .path_once(&mut seen, &d)
                    .or(self.config.ssl_certificate_key.take());
            }
            "auth_token" => self.auth_token(&d),
            "player_assets" => self.player_assets(&d),
            "auth_backend" => self.auth_backend(d),
            "stream" => self.stream(d),
            "api_key" => self.api_key(&d),
            "backend_timeout" => {
                self.no_block(&d);
                if let Some(ms) = self.backend_timeout(&d) {
                    self.config.backend_timeout_ms = ms;
                }
            }
            "srt_latency" => {
                self.no_block(&d);
                if let Some(ms) = self.srt_latency(&d) {
                    self.config.srt_latency_ms = ms;
                }
            }
            "srt_passphrase" => {
                let mut seen = self.srt_passphrase_at;
                let duplicate =
                    |first| format!("duplicate `srt_passphrase` (first set at {first})");
                if let Some(pass) = self.srt_passphrase(&mut seen, &d, duplicate) {
                    self.config.srt_passphrase = Some(pass);
                }
                self.srt_passphrase_at = seen;
            }
            "max_connections_per_ip" => {
                self.no_block(&d);
                if let Some(n) = self.max_connections_per_ip(&d) {
                    self.config.max_connections_per_ip = n;
                }
            }
            "handshake_timeout" => {
                self.no_block(&d);
                if let Some(ms) = self.handshake_timeout(&d) {
                    self.config.handshake_timeout_ms = ms;
                }
            }
            "shutdown_timeout" => {
                self.no_block(&d);
                if let Some(ms) = self.shutdown_timeout(&d) {
                    self.config.shutdown_timeout_ms = ms;
                }
            }
            "template" => self.template(d),
            "cluster" => self.cluster(d),
            "cluster_key" => self.cluster_key(&d),
            _ => self.unknown_directive(&d.name, Context::Top),
        }
    }

    fn unknown_directive(&mut self, name: &Word, context: Context) {
        let text = name.text.as_str();
        let elsewhere = [Context::Top, Context::AuthBackend, Context::Stream]
            .into_iter()
            .find(|c| *c != context && c.directives().contains(&text));
        let message = match elsewhere {
            Some(home) => format!(
                "`{text}` is not allowed {}; it belongs {}",
                context.here(),
                home.home()
            ),
            None => match did_you_mean(text, context.directives().iter().copied()) {
                Some(hint) => format!("unknown directive `{}`; did you mean `{hint}`?", show(text)),
                None => format!("unknown directive `{}`", show(text)),
            },
        };
        self.diags.error(name.span, message);
    }

    /// Reports a `{ ... }` after a directive that takes none.
    fn no_block(&mut self, d: &Directive) {
        if let Some(block) = &d.block {
            self.diags.error(
                block.open,
                format!("`{}` does not take a `{{ ... }}` block", d.name.text),
            );
        }
    }

    /// The single argument of `d`, reporting a missing one or extra ones.
    fn one_arg<'w>(&mut self, d: &'w Directive) -> Option<&'w Word> {
        let name = &d.name.text;
        if let Some(extra) = d.args.get(1) {
            self.diags.error(
                extra.span,
                format!(
                    "unexpected argument `{}` (usage: `{}`)",
                    show(&extra.text),
                    usage(name)
                ),
            );
        }
        match d.args.first() {
            Some(arg) => Some(arg),
            None => {
                self.diags.error(
                    d.name.span,
                    format!("`{name}` needs an argument (usage: `{}`)", usage(name)),
                );
                None
            }
        }
    }

    /// The block of a block directive, reporting a missing one.
    fn block_of(&mut self, d: &mut Directive) -> Option<Block> {
        let block = d.block.take();
        if block.is_none() {
            self.diags.error(
                d.name.span,
                format!(
                    "`{}` needs a `{{ ... }}` block (usage: `{}`)",
                    d.name.text,
                    usage(&d.name.text)
                ),
            );
        }
        block
    }

    /// The argument of a directive allowed once per block: reports a block after it, a
    /// repeat (`duplicate` gets the first one's position) and a missing or extra argument.
    fn once<'w>(
        &mut self,
        seen: &mut Option<Span>,
        d: &'w Directive,
        duplicate: impl FnOnce(Span) -> String,
    ) -> Option<&'w Word> {
        self.no_block(d);
        if let Some(first) = *seen {
            self.diags.error(d.name.span, duplicate(first));
            return None;
        }
        *seen = Some(d.name.span);
        self.one_arg(d)
    }

    fn listener(&mut self, proto: ListenerProto, d: &Directive) {
        self.no_block(d);
        let Some(arg) = self.one_arg(d) else { return };
        if let Some(addr) = self.listen_address(proto, arg) {
            self.config.listeners.push(Listener {
                proto,
                addr,
                span: d.name.span,
            });
        }
    }

    /// Parses a listen address and claims it for `proto` (no other listener, top-level or a
    /// stream's, may take it or overlap it).
    fn listen_address(&mut self, proto: ListenerProto, arg: &Word) -> Option<SocketAddr> {
        let addr = match parse_listen_addr(&arg.text) {
            Ok(addr) => addr,
            Err(message) => {
                self.diags.error(arg.span, message);
                return None;
            }
        };
        let this = Bound {
            proto,
            addr,
            span: arg.span,
        };
        let transport = proto.transport();
        match self.listeners_at.entry((transport, addr)) {
            Entry::Occupied(first) => {
                let first = *first.get();
                self.diags.error(
                    arg.span,
                    format!(
                        "listen address `{addr}` is already used by `{}` at {}",
                        first.proto, first.span
                    ),
                );
                return None;
            }
            Entry::Vacant(slot) => {
                slot.insert(this);
            }
        }
        let family = self
            .port_use
            .entry((transport, addr.port(), addr.is_ipv4()))
            .or_default();
        let clash = if addr.ip().is_unspecified() {
            family.wildcard = Some(this);
            family.specific
        } else {
            family.specific.get_or_insert(this);
            family.wildcard
        };
        if let Some(other) = clash {
            self.diags.error(
                arg.span,
                format!(
                    "listen address `{addr}` overlaps `{}` of `{}` at {}",
                    other.addr, other.proto, other.span
                ),
            );
            return None;
        }
        Some(addr)
    }

    /// `srt_passphrase PASSPHRASE;` (once where it appears): 10 to 79 bytes, as libsrt takes.
    fn srt_passphrase(
        &mut self,
        seen: &mut Option<Span>,
        d: &Directive,
        duplicate: impl FnOnce(Span) -> String,
    ) -> Option<String> {
        let arg = self.once(seen, d, duplicate)?;
        if !(MIN_SRT_PASSPHRASE..=MAX_SRT_PASSPHRASE).contains(&arg.text.len()) {
            self.diags.error(
                arg.span,
                format!(
                    "invalid srt_passphrase: expected {MIN_SRT_PASSPHRASE} to \
                     {MAX_SRT_PASSPHRASE} bytes (libsrt's limits), found {}",
                    arg.text.len()
                ),
            );
            return None;
        }
        Some(arg.text.clone())
    }

    /// `srt_play { port PORT; }` inside a stream: the port that plays only this stream.
    fn srt_play(&mut self, body: &mut StreamBody, item: &Directive) {
        let mut item = item.clone();
        if !item.args.is_empty() {
            let message = format!("usage: `{}`", usage("srt_play"));
            self.diags.error(item.args[0].span, message);
        }
        let Some(block) = self.block_of(&mut item) else {
            return;
        };
        for inner in split_missing_semicolons(block.items, Context::SrtPlay, self.diags) {
            match inner.name.text.as_str() {
                "port" => {
                    let duplicate = |first| format!("duplicate `srt_play` (first set at {first})");
                    let Some(arg) = self.once(&mut body.srt_play_at, &inner, duplicate) else {
                        continue;
                    };
                    body.srt.play = self.listen_address(ListenerProto::Srt, arg);
                }
                _ => self.unknown_directive(&inner.name, Context::SrtPlay),
            }
        }
    }

    fn auth_token(&mut self, d: &Directive) {
        self.no_block(d);
        let Some(arg) = self.one_arg(d) else { return };
        if let Some(first) = self.auth_token_at {
            return self.diags.error(
                d.name.span,
                format!("duplicate `auth_token` (first set at {first})"),
            );
        }
        self.auth_token_at = Some(d.name.span);
        let valid = !arg.text.is_empty()
            && arg
                .text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'));
        if !valid {
            return self.diags.error(
                arg.span,
                format!(
                    "invalid `auth_token` name `{}`: use letters, digits, `-`, `_`, `.` or `~`",
                    show(&arg.text)
                ),
            );
        }
        self.config.auth_token_param = arg.text.clone();
    }

    /// `player_assets DIR;`: the `node_modules` directory the player scripts are read from.
    fn player_assets(&mut self, d: &Directive) {
        let mut seen = self.player_assets_at;
        let arg = self.once(&mut seen, d, |first| {
            format!("duplicate `player_assets` (first set at {first})")
        });
        self.player_assets_at = seen;
        let Some(arg) = arg else { return };
        if arg.text.is_empty() {
            return self
                .diags
                .error(arg.span, "`player_assets` needs a directory".to_string());
        }
        self.config.player_assets = Some(arg.text.clone());
    }

    /// `api_allowed_from CIDR...;` (once; addresses and networks, IPv4 or IPv6).
    fn api_allowed_from(&mut self, d: &Directive) {
        self.no_block(d);
        if !self.config.api_allowed_from.is_empty() {
            return self
                .diags
                .error(d.name.span, "duplicate `api_allowed_from`");
        }
        if d.args.is_empty() {
            let message = format!("usage: `{}`", usage("api_allowed_from"));
            return self.diags.error(d.name.span, message);
        }
        for arg in &d.args {
            match arg.text.parse::<Cidr>() {
                Ok(cidr) => self.config.api_allowed_from.push(cidr),
                Err(e) => self
                    .diags
                    .error(arg.span, format!("`{}`: {e}", show(&arg.text))),
            }
        }
    }

    /// `server_name NAME... { ssl_certificate PATH; ssl_certificate_key PATH; }`.
    fn server_name(&mut self, mut d: Directive) {
        let block = self.block_of(&mut d);
        if d.args.is_empty() {
            let message = format!("usage: `{}`", usage("server_name"));
            return self.diags.error(d.name.span, message);
        }
        let mut names = Vec::new();
        for arg in &d.args {
            let name = arg.text.to_ascii_lowercase();
            let valid = !name.is_empty()
                && name.len() <= 253
                && name.split('.').all(|l| {
                    !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !valid {
                let message = format!("`{}` is not a DNS name", show(&arg.text));
                return self.diags.error(arg.span, message);
            }
            let taken = self
                .config
                .server_names
                .iter()
                .any(|s| s.names.contains(&name));
            if taken || names.contains(&name) {
                let message = format!("`{name}` has a certificate already");
                return self.diags.error(arg.span, message);
            }
            names.push(name);
        }
        let Some(block) = block else { return };
        let (mut certificate, mut key) = (None, None);
        for item in split_missing_semicolons(block.items, Context::ServerName, self.diags) {
            let mut seen;
            match item.name.text.as_str() {
                "ssl_certificate" => {
                    seen = certificate.as_ref().map(|(_, at)| *at);
                    certificate = self.path_once(&mut seen, &item).or(certificate);
                }
                "ssl_certificate_key" => {
                    seen = key.as_ref().map(|(_, at)| *at);
                    key = self.path_once(&mut seen, &item).or(key);
                }
                _ => self.unknown_directive(&item.name, Context::ServerName),
            }
        }
        match (certificate, key) {
            (Some(certificate), Some(key)) => self.config.server_names.push(ServerNameConfig {
                names,
                certificate,
                key,
            }),
            _ => self.diags.error(
                d.name.span,
                "`server_name` needs both `ssl_certificate` and `ssl_certificate_key`",
            ),
        }
    }

    /// A directive that names a file once (`ssl_certificate PATH;`): the path and where.
    fn path_once(&mut self, seen: &mut Option<Span>, d: &Directive) -> Option<(String, Span)> {
        self.no_block(d);
        let name = d.name.text.clone();
        let arg = self.once(seen, d, |first| {
            format!("duplicate `{name}` (first set at {first})")
        })?;
        if arg.text.is_empty() {
            self.diags
                .error(arg.span, format!("`{name}` needs a file path"));
            return None;
        }
        Some((arg.text.clone(), arg.span))
    }

    /// `signed_key ID SECRET;`, validated by the same rules the verifier applies.
    fn signed_key(&mut self, rules: &mut Rules, d: &Directive) {
        let [id, secret] = d.args.as_slice() else {
            let message = format!("usage: `{}`", usage("signed_key"));
            return self.diags.error(d.name.span, message);
        };
        let existing = rules.signed_keys.iter().map(|k| k.id.as_str());
        match signed_key::check_new_key(existing, &id.text, secret.text.as_bytes()) {
            Ok(()) => rules.signed_keys.push(SignedKeyConfig {
                id: id.text.clone(),
                secret: secret.text.clone(),
                span: d.name.span,
            }),
            Err(e) => self.diags.error(id.span, format!("signed_key: {e}")),
        }
    }

    /// `securetoken SECRET [no_check_ip];` (Flussonic securetoken).
    fn securetoken(&mut self, rules: &mut Rules, d: &Directive) {
        let (secret, check_ip) = match d.args.as_slice() {
            [secret] => (secret, true),
            [secret, flag] if flag.text == "no_check_ip" => (secret, false),
            [_, flag] => {
                let message = format!("expected `no_check_ip`, found `{}`", show(&flag.text));
                return self.diags.error(flag.span, message);
            }
            _ => {
                let message = format!("usage: `{}`", usage("securetoken"));
                return self.diags.error(d.name.span, message);
            }
        };
        if secret.text.len() < 8 {
            return self
                .diags
                .error(secret.span, "securetoken secret shorter than 8 bytes");
        }
        if rules.securetoken.is_some() {
            return self
                .diags
                .error(d.name.span, "a second `securetoken` in one auth_backend");
        }
        rules.securetoken = Some(SecureTokenConfig {
            secret: secret.text.clone(),
            check_ip,
        });
    }

    fn auth_backend(&mut self, mut d: Directive) {
        let name = self.one_arg(&d).cloned();
        let block = self.block_of(&mut d);
        let name = name.filter(|n| self.check_backend_name(n));
        let mut rules = Rules::default();
        if let Some(block) = block {
            for item in split_missing_semicolons(block.items, Context::AuthBackend, self.diags) {
                match item.name.text.as_str() {
                    "allow" => self.rule(&mut rules, &item, true),
                    "deny" => self.rule(&mut rules, &item, false),
                    "signed_key" => self.signed_key(&mut rules, &item),
                    "securetoken" => self.securetoken(&mut rules, &item),
                    "backend" => self.backend(&mut rules, &item),
                    "backend_timeout" => {
                        self.no_block(&item);
                        if let Some(ms) = self.backend_timeout(&item) {
                            rules.backend_timeout_ms = Some(ms);
                        }
                    }
                    "max_sessions_policy" => self.max_sessions_policy(&mut rules, &item),
                    _ => self.unknown_directive(&item.name, Context::AuthBackend),
                }
            }
        }
        let Some(name) = name else { return };
        match self.backends_at.entry(name.text.clone()) {
            Entry::Occupied(first) => {
                let message = format!(
                    "duplicate auth_backend `{}` (first defined at {})",
                    show(&name.text),
                    first.get()
                );
                self.diags.error(name.span, message);
            }
            Entry::Vacant(slot) => {
                slot.insert(name.span);
                self.config.auth_backends.push(AuthBackend {
                    name: name.text,
                    rules,
                    span: d.name.span,
                });
            }
        }
    }

    /// `api_key KEY;`: the operator API's Bearer key.
    fn api_key(&mut self, d: &Directive) {
        self.no_block(d);
        let Some(arg) = self.one_arg(d) else { return };
        if self.config.api_key.is_some() {
            return self.diags.error(d.name.span, "duplicate `api_key`");
        }
        if arg.text.len() < 16 || !arg.text.bytes().all(|b| b.is_ascii_graphic()) {
            return self.diags.error(
                arg.span,
                "api_key must be at least 16 printable characters without spaces",
            );
        }
        self.config.api_key = Some(arg.text.clone());
    }

    /// `cluster { redis URL; node NAME; }`, once.
    fn cluster(&mut self, mut d: Directive) {
        let block = self.block_of(&mut d);
        if let Some(extra) = d.args.first() {
            let message = format!("unexpected argument (usage: `{}`)", usage("cluster"));
            return self.diags.error(extra.span, message);
        }
        if self.config.cluster.is_some() {
            return self.diags.error(d.name.span, "duplicate `cluster`");
        }
        let Some(block) = block else { return };
        let (mut redis, mut node) = (None, None);
        let (mut redis_at, mut node_at) = (None, None);
        for item in split_missing_semicolons(block.items, Context::Cluster, self.diags) {
            let name = item.name.text.clone();
            let duplicate = |first| format!("duplicate `{name}` (first set at {first})");
            match item.name.text.as_str() {
                "redis" => {
                    let Some(arg) = self.once(&mut redis_at, &item, duplicate) else {
                        continue;
                    };
                    match cluster::RedisUrl::parse(&arg.text) {
                        Ok(url) => redis = Some(url),
                        Err(why) => self.diags.error(arg.span, why),
                    }
                }
                "node" => {
                    let Some(arg) = self.once(&mut node_at, &item, duplicate) else {
                        continue;
                    };
                    match cluster::check_node_name(&arg.text) {
                        Ok(()) => node = Some(arg.text.clone()),
                        Err(why) => self.diags.error(arg.span, why),
                    }
                }
                _ => self.unknown_directive(&item.name, Context::Cluster),
            }
        }
        match redis {
            Some(redis) => self.config.cluster = Some(ClusterConfig { redis, node }),
            None if redis_at.is_none() => {
                let message = format!("`cluster` needs `redis` (usage: `{}`)", usage("cluster"));
                self.diags.error(d.name.span, message);
            }
            None => {}
        }
    }

    /// `cluster_key KEY;`: the secret every node of the fleet shares.
    fn cluster_key(&mut self, d: &Directive) {
        self.no_block(d);
        let Some(arg) = self.one_arg(d) else { return };
        if self.config.cluster_key.is_some() {
            return self.diags.error(d.name.span, "duplicate `cluster_key`");
        }
        let min = cluster::MIN_CLUSTER_KEY_LEN;
        if arg.text.len() < min || !arg.text.bytes().all(|b| b.is_ascii_graphic()) {
            let message = format!("cluster_key must be at least {min} printable characters");
            return self.diags.error(arg.span, message);
        }
        self.config.cluster_key = Some(arg.text.clone());
    }

    /// `backend_timeout SECONDS;` (`3`, `0.5`) → milliseconds.
    fn backend_timeout(&mut self, d: &Directive) -> Option<u32> {
        let arg = self.one_arg(d)?;
        self.seconds_as_ms(
            arg,
            "backend_timeout",
            MIN_BACKEND_TIMEOUT_MS..=MAX_BACKEND_TIMEOUT_MS,
            "0.1 to 60",
        )
    }

    /// A duration in seconds (`2`, `1.5`) as milliseconds within `range`; otherwise an error
    /// naming `directive` and the range as `shown`.
    fn seconds_as_ms(
        &mut self,
        arg: &Word,
        directive: &str,
        range: std::ops::RangeInclusive<u32>,
        shown: &str,
    ) -> Option<u32> {
        let ms = arg
            .text
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite())
            .map(|s| (s * 1000.0).round());
        match ms {
            Some(ms) if ms >= f64::from(*range.start()) && ms <= f64::from(*range.end()) => {
                Some(ms as u32)
            }
            _ => {
                self.diags.error(
                    arg.span,
                    format!(
                        "invalid {directive} `{}`: expected seconds from {shown}",
                        show(&arg.text)
                    ),
                );
                None
            }
        }
    }

    /// `srt_latency MS;`: whole milliseconds in the accepted range.
    fn srt_latency(&mut self, d: &Directive) -> Option<u16> {
        let arg = self.one_arg(d)?;
        match arg.text.parse::<u16>() {
            Ok(ms) if (MIN_SRT_LATENCY_MS..=MAX_SRT_LATENCY_MS).contains(&ms) => Some(ms),
            _ => {
                self.diags.error(
                    arg.span,
                    format!(
                        "invalid srt_latency `{}`: expected milliseconds from \
                         {MIN_SRT_LATENCY_MS} to {MAX_SRT_LATENCY_MS}",
                        show(&arg.text)
                    ),
                );
                None
            }
        }
    }

    /// `max_connections_per_ip N;`: 0 (no limit) to `MAX_CONNECTIONS_PER_IP`.
    fn max_connections_per_ip(&mut self, d: &Directive) -> Option<u32> {
        let arg = self.one_arg(d)?;
        match arg.text.parse::<u32>() {
            Ok(n)
                if n <= MAX_CONNECTIONS_PER_IP && arg.text.bytes().all(|b| b.is_ascii_digit()) =>
            {
                Some(n)
            }
            _ => {
                self.diags.error(
                    arg.span,
                    format!(
                        "invalid max_connections_per_ip `{}`: expected 0 (no limit) to \
                         {MAX_CONNECTIONS_PER_IP}",
                        show(&arg.text)
                    ),
                );
                None
            }
        }
    }

    /// `webrtc_candidate IP;`: an IPv4 or IPv6 address, not a wildcard.
    fn webrtc_candidate(&mut self, d: &Directive) {
        self.no_block(d);
        let Some(arg) = self.one_arg(d) else { return };
        match arg.text.parse::<std::net::IpAddr>() {
            Ok(ip) if !ip.is_unspecified() => self.config.webrtc_candidate = Some(ip),
            _ => self.diags.error(
                arg.span,
                format!(
                    "invalid webrtc_candidate `{}`: expected the IP address browsers reach \
                     the webrtc ports at",
                    show(&arg.text)
                ),
            ),
        }
    }

    /// `handshake_timeout SECONDS;`: 0.5 to 60 s, as milliseconds.
    fn handshake_timeout(&mut self, d: &Directive) -> Option<u32> {
        let arg = self.one_arg(d)?;
        self.seconds_as_ms(
            arg,
            "handshake_timeout",
            MIN_HANDSHAKE_TIMEOUT_MS..=MAX_HANDSHAKE_TIMEOUT_MS,
            "0.5 to 60",
        )
    }

    /// `shutdown_timeout SECONDS;`: 0 to 300 s, as milliseconds.
    fn shutdown_timeout(&mut self, d: &Directive) -> Option<u32> {
        let arg = self.one_arg(d)?;
        self.seconds_as_ms(
            arg,
            "shutdown_timeout",
            0..=MAX_SHUTDOWN_TIMEOUT_MS,
            "0 to 300",
        )
    }

    /// `backend http://HOST[:PORT]/PATH;` inside an `auth_backend`.
    fn backend(&mut self, rules: &mut Rules, d: &Directive) {
        self.no_block(d);
        let Some(arg) = self.one_arg(d) else { return };
        if let Some(url) = self.backend_url(arg) {
            if rules.backends.contains(&url) {
                return self
                    .diags
                    .error(arg.span, format!("duplicate backend `{}`", show(&url)));
            }
            if rules.backends.len() >= MAX_BACKENDS_PER_AUTH {
                return self.diags.error(
                    arg.span,
                    format!("more than {MAX_BACKENDS_PER_AUTH} backends in one auth_backend"),
                );
            }
            rules.backends.push(url);
        }
    }

    fn backend_url(&mut self, arg: &Word) -> Option<String> {
        match BackendUrl::parse(&arg.text) {
            Ok(_) => Some(arg.text.clone()),
            Err(e) => {
                // The error's own text starts by saying it is about a backend URL.
                let e = e.to_string();
                let why = e.trim_start_matches("bad backend URL: ");
                self.diags.error(
                    arg.span,
                    format!("invalid backend URL `{}`: {why}", show(&arg.text)),
                );
                None
            }
        }
    }

    /// `on_play http://URL;`: an auth backend of its own, named after the URL, whose only
    /// rule is that portal (spec §2). Streams naming the same URL share it.
    fn on_play_http(&mut self, arg: &Word) -> Option<String> {
        let url = self.backend_url(arg)?;
        if !self.backends_at.contains_key(&url) {
            self.backends_at.insert(url.clone(), arg.span);
            self.config.auth_backends.push(AuthBackend {
                name: url.clone(),
                rules: Rules {
                    backends: vec![url.clone()],
                    ..Rules::default()
                },
                span: arg.span,
            });
        }
        Some(url)
    }

    /// `max_sessions_policy close_oldest|refuse_new;`
    fn max_sessions_policy(&mut self, rules: &mut Rules, d: &Directive) {
        self.no_block(d);
        let Some(arg) = self.one_arg(d) else { return };
        match arg.text.as_str() {
            "close_oldest" => rules.refuse_new_sessions = false,
            "refuse_new" => rules.refuse_new_sessions = true,
            other => self.diags.error(
                arg.span,
                format!(
                    "unknown max_sessions_policy `{}`: expected `close_oldest` or `refuse_new`",
                    show(other)
                ),
            ),
        }
    }

    fn check_backend_name(&mut self, name: &Word) -> bool {
        let problem = if name.text.is_empty() {
            Some("auth_backend name must not be empty".to_owned())
        } else if name
            .text
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            Some(format!(
                "auth_backend name `{}` must not contain whitespace",
                show(&name.text)
            ))
        } else {
            None
        };
        match problem {
            Some(message) => {
                self.diags.error(name.span, message);
                false
            }
            None => true,
        }
    }

    /// `allow|deny token|ip|ua|country|default VALUES...;`
    fn rule(&mut self, rules: &mut Rules, d: &Directive, allow: bool) {
        self.no_block(d);
        let verb = d.name.text.as_str();
        let Some((kind, values)) = d.args.split_first() else {
            let message =
                format!("`{verb}` needs a rule kind: `token`, `ip`, `ua`, `country` or `default`");
            return self.diags.error(d.name.span, message);
        };
        let needs_values = |lowering: &mut Self| {
            if values.is_empty() {
                let message = format!("`{verb} {}` needs at least one value", kind.text);
                lowering.diags.error(kind.span, message);
            }
        };
        match kind.text.as_str() {
            "token" => {
                needs_values(self);
                let list = if allow { &mut rules.allow_tokens } else { &mut rules.deny_tokens };
                for v in values {
                    if v.text.is_empty() {
                        self.diags.error(v.span, "empty token value");
                    } else {
                        list.push(v.text.clone());
                    }
                }
            }
            "ip" => {
                needs_values(self);
                let list = if allow { &mut rules.allow_ips } else { &mut rules.deny_ips };
                for v in values {
                    match v.text.parse::<Cidr>() {
                        Ok(cidr) => list.push(cidr),
                        Err(e) => self
                            .diags
                            .error(v.span, format!("invalid IP or CIDR `{}`: {e}", show(&v.text))),
                    }
                }
            }
            "ua" => {
                needs_values(self);
                let list = if allow { &mut rules.allow_uas } else { &mut rules.deny_uas };
                for v in values {
                    if v.text.is_empty() {
                        self.diags.error(v.span, "empty user-agent substring");
                    } else {
                        list.push(v.text.clone());
                    }
                }
            }
            "country" => {
                self.diags
                    .error(kind.span, format!("`{verb} country` is not supported yet"));
            }
            "default" if allow => {
                if let Some(extra) = values.first() {
                    self.diags.error(
                        extra.span,
                        format!("`allow default` takes no values, found `{}`", show(&extra.text)),
                    );
                }
                rules.allow_default = true;
            }
            "default" => self.diags.error(
                kind.span,
                "`deny default` is not a rule: requests are denied by default unless `allow default;` is set",
            ),
            other => {
                let kinds = ["token", "ip", "ua", "country", "default"];
                let message = match did_you_mean(other, kinds) {
                    Some(hint) => format!("unknown rule kind `{}`; did you mean `{hint}`?", show(other)),
                    None => format!(
                        "unknown rule kind `{}`: expected `token`, `ip`, `ua`, `country` or `default`",
                        show(other)
                    ),
                };
                self.diags.error(kind.span, message);
            }
        }
    }

    fn stream(&mut self, mut d: Directive) {
        let name = self.one_arg(&d).cloned();
        let block = self.block_of(&mut d);
        let name = name.filter(|n| match check_stream_name(&n.text) {
            Ok(()) => true,
            Err(message) => {
                self.diags.error(n.span, message);
                false
            }
        });
        let Some(block) = block else { return };
        let mut body = StreamBody::default();
        for item in split_missing_semicolons(block.items, Context::Stream, self.diags) {
            self.stream_item(&mut body, &item);
        }
        if let Some(name) = name {
            self.add_stream(name, body, d.name.span);
        }
    }

    /// `template NAME { prefix P; input URL-with-%s; on_play ...; ... }` (`config::template`).
    fn template(&mut self, mut d: Directive) {
        let name = self.one_arg(&d).cloned();
        let Some(block) = self.block_of(&mut d) else {
            return;
        };
        let mut body = StreamBody::default();
        let mut prefixes = Vec::new();
        let mut any_prefix = false;
        for item in split_missing_semicolons(block.items, Context::Template, self.diags) {
            match item.name.text.as_str() {
                "prefix" => {
                    any_prefix = true;
                    self.template_prefix(&mut prefixes, &item);
                }
                "on_publish" | "srt" | "srt_play" | "srt_passphrase" => {
                    self.unknown_directive(&item.name, Context::Template)
                }
                _ => self.stream_item(&mut body, &item),
            }
        }
        if let Some(name) = name {
            self.add_template(name, body, (prefixes, any_prefix));
        }
    }

    /// `prefix P;`: normalized to `P/`, and no other template's prefix may overlap it.
    fn template_prefix(&mut self, prefixes: &mut Vec<(String, Span)>, item: &Directive) {
        self.no_block(item);
        let Some(arg) = self.one_arg(item) else {
            return;
        };
        let prefix = match super::template::normalize_prefix(&arg.text) {
            Ok(p) => p,
            Err(message) => return self.diags.error(arg.span, message),
        };
        let earlier = self
            .template_prefixes
            .iter()
            .map(|(p, t, at)| (p, Some(t), at));
        let own = prefixes.iter().map(|(p, at)| (p, None, at));
        if let Some((other, template, at)) = earlier
            .chain(own)
            .find(|(other, _, _)| super::template::overlap(other, &prefix))
        {
            let whose = template.map_or(String::new(), |t| format!(" of template `{}`", show(t)));
            let message = format!("prefix `{prefix}` overlaps prefix `{other}`{whose} (at {at})");
            return self.diags.error(arg.span, message);
        }
        prefixes.push((prefix, arg.span));
    }

    /// Checks a parsed template block as a whole and adds it.
    /// `any_prefix`: a `prefix` was written (an invalid one has its own error).
    fn add_template(
        &mut self,
        name: Word,
        mut body: StreamBody,
        (prefixes, any_prefix): (Vec<(String, Span)>, bool),
    ) {
        if !any_prefix {
            let message = format!(
                "template `{}` has no `prefix` (add e.g. `prefix live;`: it serves the names \
                 under `live/`)",
                show(&name.text)
            );
            self.diags.error(name.span, message);
        }
        match (&body.input, body.input_at) {
            (Some(InputUrl::Pull(_)), _) => {}
            (_, None) => self.diags.error(
                name.span,
                format!(
                    "template `{}` has no `input` (add e.g. `input tshttp://origin/%s/mpegts;`)",
                    show(&name.text)
                ),
            ),
            (_, Some(at)) => self.diags.error(
                at,
                "a template's `input` must be pulled (rtmp://, tshttp://): its streams are \
                 pulled on demand",
            ),
        }
        if let (Some(at), false) = (body.static_at, body.pull.on_demand) {
            self.diags.error(
                at,
                "a template's streams are pulled on demand: only `static false;`",
            );
        }
        if self.config.templates.iter().any(|t| t.name == name.text) {
            let message = format!("duplicate template `{}`", show(&name.text));
            return self.diags.error(name.span, message);
        }
        for (prefix, at) in &prefixes {
            self.template_prefixes
                .push((prefix.clone(), name.text.clone(), *at));
        }
        body.pull.on_demand = true;
        let Some(input) = body.input else { return };
        self.config.templates.push(super::template::TemplateConfig {
            prefixes: prefixes.into_iter().map(|(p, _)| p).collect(),
            stream: StreamConfig {
                name: name.text.clone(),
                input,
                on_play: body.on_play,
                on_publish: None,
                segment_duration_ms: body
                    .segment_duration_ms
                    .unwrap_or(DEFAULT_SEGMENT_DURATION_MS),
                srt: StreamSrt::default(),
                pull: body.pull,
                span: name.span,
            },
            name: name.text,
        });
    }

    /// One directive inside a `stream` block.
    fn stream_item(&mut self, body: &mut StreamBody, item: &Directive) {
        match item.name.text.as_str() {
            "input" => self.stream_input(body, item),
            "static" => {
                let duplicate = |first| format!("duplicate `static` (first set at {first})");
                let Some(arg) = self.once(&mut body.static_at, item, duplicate) else {
                    return;
                };
                match arg.text.as_str() {
                    "true" => body.pull.on_demand = false,
                    "false" => body.pull.on_demand = true,
                    _ => self
                        .diags
                        .error(arg.span, "expected `static true;` or `static false;`"),
                }
            }
            "clients_timeout" | "source_timeout" | "first_segment_timeout" => {
                self.stream_timeout(body, item)
            }
            "on_play" => {
                let duplicate = |first| format!("duplicate `on_play` (first set at {first})");
                if let Some(arg) = self.once(&mut body.on_play_at, item, duplicate) {
                    body.on_play = self.auth_target(arg);
                }
            }
            "on_publish" => {
                // The same targets and rules as `on_play`, asked about publishers.
                let duplicate = |first| format!("duplicate `on_publish` (first set at {first})");
                if let Some(arg) = self.once(&mut body.on_publish_at, item, duplicate) {
                    body.on_publish = self.auth_target(arg);
                }
            }
            "srt" => {
                let duplicate = |first| format!("duplicate `srt` (first set at {first})");
                if let Some(arg) = self.once(&mut body.srt_at, item, duplicate) {
                    body.srt.play_publish = self.listen_address(ListenerProto::Srt, arg);
                }
            }
            "srt_play" => self.srt_play(body, item),
            "srt_passphrase" => {
                let duplicate =
                    |first| format!("duplicate `srt_passphrase` (first set at {first})");
                let mut seen = body.srt_passphrase_at;
                body.srt.passphrase = self.srt_passphrase(&mut seen, item, duplicate);
                body.srt_passphrase_at = seen;
            }
            "segment_duration" => {
                let duplicate =
                    |first| format!("duplicate `segment_duration` (first set at {first})");
                let Some(arg) = self.once(&mut body.segment_duration_at, item, duplicate) else {
                    return;
                };
                match parse_segment_duration(&arg.text) {
                    Ok(ms) => body.segment_duration_ms = Some(ms),
                    Err(message) => self.diags.error(arg.span, message),
                }
            }
            _ => self.unknown_directive(&item.name, Context::Stream),
        }
    }

    /// `input URL;`: the first is the stream's input; more are failover sources, which
    /// only pulled inputs take.
    fn stream_input(&mut self, body: &mut StreamBody, item: &Directive) {
        self.no_block(item);
        let first = body.input_at;
        body.input_at.get_or_insert(item.name.span);
        let Some(arg) = self.one_arg(item) else {
            return;
        };
        let url = match parse_input_url(&arg.text) {
            Ok(url) => url,
            Err(message) => return self.diags.error(arg.span, message),
        };
        let Some(first) = first else {
            body.input = Some(url);
            return;
        };
        match (&body.input, url) {
            (Some(InputUrl::Pull(_)), InputUrl::Pull(backup)) => body.pull.backups.push(backup),
            (Some(_), _) => self.diags.error(
                item.name.span,
                format!(
                    "a second `input` is a failover source, which only pulled inputs \
                     (rtmp://, tshttp://) take; the first is at {first}"
                ),
            ),
            (None, _) => {}
        }
    }

    /// `clients_timeout SECONDS;` / `source_timeout SECONDS;` / `first_segment_timeout
    /// SECONDS;`.
    fn stream_timeout(&mut self, body: &mut StreamBody, item: &Directive) {
        let name = item.name.text.as_str();
        let seen = match name {
            "clients_timeout" => &mut body.clients_timeout_at,
            "source_timeout" => &mut body.source_timeout_at,
            _ => &mut body.first_segment_timeout_at,
        };
        let duplicate = |first| format!("duplicate `{name}` (first set at {first})");
        let Some(arg) = self.once(seen, item, duplicate) else {
            return;
        };
        match super::pull::parse_timeout_seconds(name, &arg.text) {
            Ok(ms) if name == "clients_timeout" => body.pull.clients_timeout_ms = ms,
            Ok(ms) if name == "source_timeout" => body.pull.source_timeout_ms = ms,
            Ok(ms) if ms > MAX_FIRST_SEGMENT_TIMEOUT_MS => self.diags.error(
                arg.span,
                format!(
                    "invalid {name} `{}`: expected whole seconds from 1 to 60",
                    arg.text
                ),
            ),
            Ok(ms) => body.pull.first_segment_timeout_ms = ms,
            Err(message) => self.diags.error(arg.span, message),
        }
    }

    /// An `on_play` / `on_publish` target: `auth://NAME` (checked once the file is read) or
    /// `http://URL` (an auth backend of its own).
    fn auth_target(&mut self, arg: &Word) -> Option<OnPlay> {
        match parse_on_play(&arg.text) {
            Ok(target) => {
                let OnPlay::Auth { backend } = &target;
                self.on_play_refs.push((backend.clone(), arg.span));
                Some(target)
            }
            Err(OnPlayError::Http) => self
                .on_play_http(arg)
                .map(|backend| OnPlay::Auth { backend }),
            Err(OnPlayError::Message(message)) => {
                self.diags.error(arg.span, message);
                None
            }
        }
    }

    /// Checks a parsed stream block as a whole and adds it, unless its name is taken.
    fn add_stream(&mut self, name: Word, body: StreamBody, span: Span) {
        if let (Some(at), Some(input)) = (body.on_publish_at, &body.input)
            && *input != InputUrl::Publish
        {
            self.diags.error(
                at,
                "`on_publish` needs `input publish://;` (only published streams take publishers)",
            );
        }
        if let (Some(at), Some(input)) = (body.static_at, &body.input)
            && !matches!(input, InputUrl::Pull(_))
        {
            self.diags.error(
                at,
                "`static` needs a pulled input (rtmp://, tshttp://): only pulls run on demand",
            );
        }
        if body.input_at.is_none() {
            let message = format!(
                "stream `{}` has no `input` (add e.g. `input fake://fake;`)",
                show(&name.text)
            );
            self.diags.error(name.span, message);
        }
        match self.streams_at.entry(name.text.clone()) {
            Entry::Occupied(first) => {
                let message = format!(
                    "duplicate stream `{}` (first defined at {})",
                    show(&name.text),
                    first.get()
                );
                self.diags.error(name.span, message);
            }
            Entry::Vacant(slot) => {
                slot.insert(name.span);
                if let Some(input) = body.input {
                    self.config.streams.push(StreamConfig {
                        name: name.text,
                        input,
                        on_play: body.on_play,
                        on_publish: body.on_publish,
                        segment_duration_ms: body
                            .segment_duration_ms
                            .unwrap_or(DEFAULT_SEGMENT_DURATION_MS),
                        srt: body.srt,
                        pull: body.pull,
                        span,
                    });
                }
            }
        }
    }

    /// Every `auth://NAME` must name an `auth_backend` of this file (defined anywhere in it).
    fn check_references(&mut self) {
        let refs = std::mem::take(&mut self.on_play_refs);
        for (backend, span) in refs {
            if self.backends_at.contains_key(&backend) {
                continue;
            }
            let defined = &self.config.auth_backends;
            let names = |n: usize| defined.iter().take(n).map(|b| b.name.as_str());
            let mut message = format!("auth_backend `{}` is not defined", show(&backend));
            // Writing to a String cannot fail.
            if let Some(hint) = did_you_mean(&backend, names(MAX_BACKENDS_SEARCHED)) {
                let _ = write!(message, "; did you mean `{hint}`?");
            } else if defined.is_empty() {
                message.push_str(" (this file defines no auth_backend)");
            } else {
                message.push_str("; defined backends: ");
                for (i, name) in names(MAX_BACKENDS_LISTED).enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    let _ = write!(message, "{sep}`{}`", show(name));
                }
                if defined.len() > MAX_BACKENDS_LISTED {
                    let _ = write!(message, " and {} more", defined.len() - MAX_BACKENDS_LISTED);
                }
            }
            self.diags.error(span, message);
        }
    }
}

/// Splits directives that swallowed the next one because a `;` was missing at the end of a
/// line: an unquoted argument that starts a new line and is itself a directive name of this
/// context begins a new directive (`http 8080⏎rtmp 1935;`). This keeps the error at the
/// missing `;` and, for rule lists, keeps `allow token a⏎deny token b;` from silently
/// allowing the tokens `deny`, `token` and `b`. (A token literally named like a directive
/// can still be given in quotes.)
fn split_missing_semicolons(
    items: Vec<Directive>,
    context: Context,
    diags: &mut Diagnostics,
) -> Vec<Directive> {
    let known = context.directives();
    let starts_directive = |prev: &Word, arg: &Word| {
        !arg.quoted && arg.span.line > prev.end.line && known.contains(&arg.text.as_str())
    };
    let mut out = Vec::with_capacity(items.len());
    for d in items {
        let mut prev = &d.name;
        let needs_split = d.args.iter().any(|arg| {
            let split = starts_directive(prev, arg);
            prev = arg;
            split
        });
        if !needs_split {
            out.push(d);
            continue;
        }
        let Directive { name, args, block } = d;
        let mut current = Directive {
            name,
            args: Vec::new(),
            block: None,
        };
        for arg in args {
            let prev = current.args.last().unwrap_or(&current.name);
            if starts_directive(prev, &arg) {
                diags.error(
                    prev.end,
                    format!("expected `;` after `{}`", show(&prev.text)),
                );
                let next = Directive {
                    name: arg,
                    args: Vec::new(),
                    block: None,
                };
                out.push(std::mem::replace(&mut current, next));
            } else {
                current.args.push(arg);
            }
        }
        current.block = block;
        out.push(current);
    }
    out
}

/// `PORT` (on `0.0.0.0`), `IPV4:PORT` or `[IPV6]:PORT`.
pub(crate) fn parse_listen_addr(text: &str) -> Result<SocketAddr, String> {
    const FORMS: &str = "expected PORT, IP:PORT or [IPV6]:PORT";
    if let Some(rest) = text.strip_prefix('[') {
        let Some((ip, port)) = rest.split_once("]:") else {
            return Err(format!("invalid listen address `{}`: {FORMS}", show(text)));
        };
        let ip: Ipv6Addr = ip
            .parse()
            .map_err(|_| format!("invalid IPv6 address `{}` in listen address", show(ip)))?;
        return Ok(SocketAddr::new(IpAddr::V6(ip), parse_port(port)?));
    }
    match text.split_once(':') {
        None if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => Ok(
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), parse_port(text)?),
        ),
        None => Err(format!("invalid listen address `{}`: {FORMS}", show(text))),
        Some((ip, _)) if ip.contains(':') || text.matches(':').count() > 1 => Err(format!(
            "invalid listen address `{}`: write IPv6 addresses in brackets, e.g. `[::1]:8080`",
            show(text)
        )),
        Some((ip, port)) => match ip.parse::<Ipv4Addr>() {
            Ok(ip) => Ok(SocketAddr::new(IpAddr::V4(ip), parse_port(port)?)),
            Err(_) if ip.bytes().any(|b| b.is_ascii_alphabetic()) => Err(format!(
                "invalid listen address `{}`: `{}` is not an IP address (host names are not supported)",
                show(text),
                show(ip)
            )),
            Err(_) => Err(format!(
                "invalid IPv4 address `{}` in listen address",
                show(ip)
            )),
        },
    }
}

/// A TCP/UDP port in 1..=65535, written in decimal.
fn parse_port(text: &str) -> Result<u16, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "invalid port `{}`: expected a number from 1 to 65535",
            show(text)
        ));
    }
    let digits = text.trim_start_matches('0');
    match digits.parse::<u16>() {
        _ if digits.is_empty() => {
            Err("port 0 is not allowed: expected a number from 1 to 65535".to_owned())
        }
        Ok(port) => Ok(port),
        Err(_) => Err(format!(
            "port {} is out of range: expected a number from 1 to 65535",
            show(text)
        )),
    }
}

/// `input URL` → the input, or why it is refused.
fn parse_input_url(text: &str) -> Result<InputUrl, String> {
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(format!(
            "invalid input URL `{}`: expected SCHEME://..., e.g. `fake://fake`",
            show(text)
        ));
    };
    let lower = scheme.to_ascii_lowercase();
    if lower == "fake" {
        return match rest {
            "fake" => Ok(InputUrl::Fake),
            _ => Err(format!(
                "unknown fake source `{}`: the built-in test source is `fake://fake`",
                show(text)
            )),
        };
    }
    if lower == "publish" {
        return match rest {
            "" => Ok(InputUrl::Publish),
            _ => Err(format!(
                "unexpected `{}` after `publish://`: a published stream is `input publish://;` (the publisher picks the name)",
                show(rest)
            )),
        };
    }
    if let Some(pull) = super::pull::PullUrl::parse(&lower, rest) {
        return pull.map(InputUrl::Pull);
    }
    if LATER_INPUT_SCHEMES.contains(&lower.as_str()) {
        return Err(format!(
            "input scheme `{}://` is not supported yet",
            show(scheme)
        ));
    }
    let known = ["fake", "publish", "rtmp", "tshttp", "hls", "rtsp", "srt"]
        .into_iter()
        .chain(LATER_INPUT_SCHEMES.iter().copied());
    Err(match did_you_mean(scheme, known) {
        Some(hint) => format!(
            "unknown input scheme `{}://`; did you mean `{hint}://`?",
            show(scheme)
        ),
        None => format!("unknown input scheme `{}://`", show(scheme)),
    })
}

/// Why `parse_on_play` did not return a named backend.
#[derive(Debug, PartialEq, Eq)]
enum OnPlayError {
    /// `http(s)://...`: a portal URL, lowered into its own auth backend by the caller.
    Http,
    Message(String),
}

/// `on_play auth://NAME` → the target; `http://` is the caller's; anything else is refused.
fn parse_on_play(text: &str) -> Result<OnPlay, OnPlayError> {
    const EXPECTED: &str = "expected `auth://NAME` or `http://HOST/PATH`";
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(OnPlayError::Message(format!(
            "invalid on_play target `{}`: {EXPECTED}",
            show(text)
        )));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "auth" if rest.is_empty() => Err(OnPlayError::Message(format!(
            "`auth://` needs a backend name: {EXPECTED}"
        ))),
        "auth" => Ok(OnPlay::Auth {
            backend: rest.to_owned(),
        }),
        "http" | "https" => Err(OnPlayError::Http),
        _ => Err(OnPlayError::Message(format!(
            "unknown on_play scheme `{}://`: {EXPECTED}",
            show(scheme)
        ))),
    }
}

/// `segment_duration SECONDS` (`2`, `1.5`, `0.75`) → milliseconds in 0.5..=30 s.
fn parse_segment_duration(text: &str) -> Result<u32, String> {
    let invalid = || {
        format!(
            "invalid segment_duration `{}`: expected seconds, e.g. `2` or `1.5`",
            show(text)
        )
    };
    let out_of_range = || {
        format!(
            "segment_duration `{}` is out of range: expected 0.5 to 30 seconds",
            show(text)
        )
    };
    let (whole, frac) = match text.split_once('.') {
        Some((whole, frac)) => (whole, frac),
        None => (text, ""),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || !all_digits(whole)
        || !all_digits(frac)
        || (text.contains('.') && frac.is_empty())
    {
        return Err(invalid());
    }
    let whole = whole.trim_start_matches('0');
    if whole.len() > 3 {
        return Err(out_of_range());
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > 3 {
        return Err(format!(
            "segment_duration `{}` is finer than a millisecond",
            show(text)
        ));
    }
    // Both parts are at most 3 digits here, so these cannot fail or overflow.
    let whole_ms = whole.parse::<u32>().unwrap_or(0) * 1000;
    let frac_ms = format!("{frac:0<3}").parse::<u32>().unwrap_or(0);
    let ms = whole_ms + frac_ms;
    if !(MIN_SEGMENT_DURATION_MS..=MAX_SEGMENT_DURATION_MS).contains(&ms) {
        return Err(out_of_range());
    }
    Ok(ms)
}

/// Stream names become URL paths (`/NAME/index.m3u8`) and may one day become file paths, so
/// they are plain `/`-separated segments.
pub(crate) fn check_stream_name(name: &str) -> Result<(), String> {
    let shown = show(name);
    if name.is_empty() {
        return Err("stream name must not be empty".to_owned());
    }
    if let Some(c) = name.chars().find(|c| c.is_whitespace() || c.is_control()) {
        let what = if c.is_whitespace() {
            "whitespace"
        } else {
            "control characters"
        };
        return Err(format!(
            "stream name `{}` must not contain {what}",
            show(&name.escape_debug().to_string())
        ));
    }
    if let Some(c) = name.chars().find(|c| matches!(c, '?' | '#' | '%' | '\\')) {
        return Err(format!("stream name `{shown}` must not contain `{c}`"));
    }
    if name.starts_with('/') || name.ends_with('/') {
        return Err(format!(
            "stream name `{shown}` must not start or end with `/`"
        ));
    }
    if name.split('/').next() == Some(PLAYER_SEGMENT) {
        return Err(format!(
            "stream name `{shown}` must not start with `{PLAYER_SEGMENT}`: `/{PLAYER_SEGMENT}/` \
             serves the player's scripts"
        ));
    }
    // `/streamer/api/...` is the operator API; a stream there could never be played.
    let api = API_PREFIX.trim_matches('/');
    if name.starts_with("streamer/api") {
        return Err(format!(
            "stream name `{shown}` must not start with `streamer/api`: `/{api}/` is the operator API"
        ));
    }
    for segment in name.split('/') {
        match segment {
            "" => {
                return Err(format!(
                    "stream name `{shown}` must not contain an empty segment (`//`)"
                ));
            }
            "." | ".." => {
                return Err(format!(
                    "stream name `{shown}` must not contain `{segment}` segments"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// What a `stream` block said, each with where it said it (for duplicate errors).
#[derive(Default)]
struct StreamBody {
    input: Option<InputUrl>,
    input_at: Option<Span>,
    on_play: Option<OnPlay>,
    on_play_at: Option<Span>,
    on_publish: Option<OnPlay>,
    on_publish_at: Option<Span>,
    segment_duration_ms: Option<u32>,
    segment_duration_at: Option<Span>,
    srt: StreamSrt,
    srt_at: Option<Span>,
    srt_play_at: Option<Span>,
    srt_passphrase_at: Option<Span>,
    pull: super::pull::PullOptions,
    static_at: Option<Span>,
    clients_timeout_at: Option<Span>,
    first_segment_timeout_at: Option<Span>,
    source_timeout_at: Option<Span>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        let ok = |s: &str| {
            parse_listen_addr(s)
                .unwrap_or_else(|e| panic!("{s}: {e}"))
                .to_string()
        };
        assert_eq!(ok("8080"), "0.0.0.0:8080");
        assert_eq!(ok("08080"), "0.0.0.0:8080");
        assert_eq!(ok("127.0.0.1:1935"), "127.0.0.1:1935");
        assert_eq!(ok("[::]:8080"), "[::]:8080");
        assert_eq!(ok("[2001:db8::1]:65535"), "[2001:db8::1]:65535");

        let err = |s: &str| parse_listen_addr(s).unwrap_err();
        assert_eq!(
            err("0"),
            "port 0 is not allowed: expected a number from 1 to 65535"
        );
        assert_eq!(
            err("65536"),
            "port 65536 is out of range: expected a number from 1 to 65535"
        );
        assert_eq!(
            err("99999999999999999999999"),
            "port 99999999999999999999999 is out of range: expected a number from 1 to 65535"
        );
        assert_eq!(
            err("http"),
            "invalid listen address `http`: expected PORT, IP:PORT or [IPV6]:PORT"
        );
        assert_eq!(
            err("-1"),
            "invalid listen address `-1`: expected PORT, IP:PORT or [IPV6]:PORT"
        );
        assert_eq!(
            err("1.2.3.4:"),
            "invalid port ``: expected a number from 1 to 65535"
        );
        assert_eq!(
            err("1.2.3.4:+80"),
            "invalid port `+80`: expected a number from 1 to 65535"
        );
        assert_eq!(
            err("1.2.3.4:0"),
            "port 0 is not allowed: expected a number from 1 to 65535"
        );
        assert_eq!(
            err("1.2.3:80"),
            "invalid IPv4 address `1.2.3` in listen address"
        );
        assert_eq!(
            err("localhost:80"),
            "invalid listen address `localhost:80`: `localhost` is not an IP address (host names are not supported)"
        );
        assert_eq!(
            err("::1:8080"),
            "invalid listen address `::1:8080`: write IPv6 addresses in brackets, e.g. `[::1]:8080`"
        );
        assert_eq!(
            err("[::1]"),
            "invalid listen address `[::1]`: expected PORT, IP:PORT or [IPV6]:PORT"
        );
        assert_eq!(
            err("[1.2.3.4]:80"),
            "invalid IPv6 address `1.2.3.4` in listen address"
        );
        assert_eq!(
            err(""),
            "invalid listen address ``: expected PORT, IP:PORT or [IPV6]:PORT"
        );
    }

    #[test]
    fn segment_durations() {
        let ok = |s: &str| parse_segment_duration(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(ok("2"), 2000);
        assert_eq!(ok("1.5"), 1500);
        assert_eq!(ok("0.5"), 500);
        assert_eq!(ok("30"), 30_000);
        assert_eq!(ok("30.000"), 30_000);
        assert_eq!(ok("0.75"), 750);
        assert_eq!(ok("007.250"), 7250);
        assert_eq!(ok("1.2500000"), 1250);

        let err = |s: &str| parse_segment_duration(s).unwrap_err();
        assert_eq!(
            err("0.4"),
            "segment_duration `0.4` is out of range: expected 0.5 to 30 seconds"
        );
        assert_eq!(
            err("30.001"),
            "segment_duration `30.001` is out of range: expected 0.5 to 30 seconds"
        );
        assert_eq!(
            err("0"),
            "segment_duration `0` is out of range: expected 0.5 to 30 seconds"
        );
        assert_eq!(
            err("99999999999"),
            "segment_duration `99999999999` is out of range: expected 0.5 to 30 seconds"
        );
        assert_eq!(
            err("1.0001"),
            "segment_duration `1.0001` is finer than a millisecond"
        );
        for bad in ["", ".5", "1.", "1.2.3", "2s", "-1", "+1", "1e3", "NaN"] {
            assert_eq!(
                err(bad),
                format!("invalid segment_duration `{bad}`: expected seconds, e.g. `2` or `1.5`")
            );
        }
    }

    #[test]
    fn stream_names() {
        for good in [
            "auth-check",
            "live/cam1",
            "a/b/c",
            "a.b",
            "...x",
            "ünïcode",
            "a..b",
        ] {
            assert_eq!(check_stream_name(good), Ok(()), "{good}");
        }
        let err = |s: &str| check_stream_name(s).unwrap_err();
        assert_eq!(err(""), "stream name must not be empty");
        assert_eq!(
            err("_player/x"),
            "stream name `_player/x` must not start with `_player`: `/_player/` serves the player's scripts"
        );
        assert_eq!(check_stream_name("x/_player"), Ok(()));
        assert!(check_stream_name("streamer/api/v3/sessions").is_err());
        assert!(check_stream_name("streamer/apis").is_err());
        assert_eq!(check_stream_name("streamer/live"), Ok(()));
        assert_eq!(
            err("a/../b"),
            "stream name `a/../b` must not contain `..` segments"
        );
        assert_eq!(err(".."), "stream name `..` must not contain `..` segments");
        assert_eq!(
            err("a/./b"),
            "stream name `a/./b` must not contain `.` segments"
        );
        assert_eq!(
            err("/live"),
            "stream name `/live` must not start or end with `/`"
        );
        assert_eq!(
            err("live/"),
            "stream name `live/` must not start or end with `/`"
        );
        assert_eq!(
            err("a//b"),
            "stream name `a//b` must not contain an empty segment (`//`)"
        );
        assert_eq!(err("a?b"), "stream name `a?b` must not contain `?`");
        assert_eq!(err("a#b"), "stream name `a#b` must not contain `#`");
        assert_eq!(err("a%20b"), "stream name `a%20b` must not contain `%`");
        assert_eq!(err("a\\b"), "stream name `a\\b` must not contain `\\`");
        assert_eq!(err("a b"), "stream name `a b` must not contain whitespace");
        assert_eq!(
            err("a\tb"),
            "stream name `a\\tb` must not contain whitespace"
        );
    }

    #[test]
    fn input_urls_and_on_play() {
        assert_eq!(parse_input_url("fake://fake"), Ok(InputUrl::Fake));
        assert_eq!(parse_input_url("publish://"), Ok(InputUrl::Publish));
        assert!(parse_input_url("publish://x").is_err());
        assert!(matches!(
            parse_input_url("https://origin/live/index.m3u8"),
            Ok(InputUrl::Pull(_))
        ));
        assert_eq!(
            parse_input_url("https://origin/live/stream.ts"),
            Err("input scheme `https://` is not supported yet".to_owned())
        );
        assert_eq!(
            parse_input_url("fake://other"),
            Err(
                "unknown fake source `fake://other`: the built-in test source is `fake://fake`"
                    .to_owned()
            )
        );
        assert_eq!(
            parse_input_url("rtps://x"),
            Err("unknown input scheme `rtps://`; did you mean `rtsp://`?".to_owned())
        );
        assert_eq!(
            parse_input_url("fake"),
            Err("invalid input URL `fake`: expected SCHEME://..., e.g. `fake://fake`".to_owned())
        );
        assert_eq!(
            parse_on_play("auth://play-auth"),
            Ok(OnPlay::Auth {
                backend: "play-auth".into()
            })
        );
        assert_eq!(parse_on_play("http://portal/auth"), Err(OnPlayError::Http));
        assert_eq!(
            parse_on_play("auth://"),
            Err(OnPlayError::Message(
                "`auth://` needs a backend name: expected `auth://NAME` or `http://HOST/PATH`"
                    .to_owned()
            ))
        );
        assert_eq!(
            parse_on_play("play-auth"),
            Err(OnPlayError::Message(
                "invalid on_play target `play-auth`: expected `auth://NAME` or `http://HOST/PATH`"
                    .to_owned()
            ))
        );
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let mut diags = Diagnostics::default();
        let src = format!("a {} {}", "x {".repeat(100_000), "}".repeat(100_000));
        let tree = parse_tree(&src, &mut diags);
        assert_eq!(tree.len(), 1);
        let errors = diags.into_errors("t").unwrap().to_string();
        assert!(
            errors.contains("blocks nested too deeply (the limit is 8)"),
            "{errors}"
        );
        assert_eq!(errors.lines().count(), 1, "{errors}");
    }
}
