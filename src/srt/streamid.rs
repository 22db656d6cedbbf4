//! The SRT stream id as tessera reads it (spec playback-auth §6b, issue 12): which stream,
//! play or publish, and the token, from the forms callers already send:
//!
//! * libsrt's access-control syntax, `#!::r=NAME,m=request,token=T` (keys `r` resource,
//!   `m` mode, `u` user, the configured token key; `m=publish` for publishers, `u=T` as
//!   the publisher's token when no token key is given, Flussonic's ingest convention);
//! * a plain id with a query, `NAME?token=T` (or just `NAME`);
//! * either of them percent-encoded whole (`%23%21%3A%3A...`), as some URL builders send it.
//!
//! Values are percent-decoded where they contain `%`. Unknown keys are ignored, never an
//! error. Owns the parsing only: which stream exists and who may see it is decided elsewhere.
//!
//! Ready-to-paste caller URLs (the ffmpeg-family and srt-live-transmit forms were checked
//! against tessera's core with Debian's ffmpeg 5.1 / libsrt 1.5.1, which passes the stream id
//! on as written, undecoded; the OBS line uses the same libsrt but was not tried here):
//!
//! ```text
//! ffplay  'srt://HOST:PORT?streamid=#!::r=NAME,m=request,token=TOKEN'
//! ffplay  'srt://HOST:PORT?streamid=%23%21%3A%3Ar%3DNAME%2Cm%3Drequest%2Ctoken%3DTOKEN'
//! ffplay  'srt://HOST:PORT?streamid=NAME?token=TOKEN'
//! ffplay  'srt://HOST:PORT?streamid=#!::r=NAME,m=request,token=TOKEN&passphrase=PASSPHRASE'
//! srt-live-transmit 'srt://HOST:PORT?streamid=#!::r=NAME,m=request,token=TOKEN' file://con
//! ffmpeg -re -i in.ts -c copy -f mpegts 'srt://HOST:PORT?streamid=#!::r=NAME,m=publish,token=TOKEN'
//! ffmpeg -re -i in.ts -c copy -f mpegts 'srt://HOST:PORT?streamid=#!::u=TOKEN,r=NAME,m=publish'
//! OBS (Settings → Stream → Custom, key empty):
//!         srt://HOST:PORT?streamid=#!::r=NAME,m=publish,token=TOKEN
//! ```
//!
//! A token with `&`, `,` or `=` in it is percent-encoded (`%26`, `%2C`, `%3D`); the whole
//! stream id may be percent-encoded too (the second line), as URL builders often do.

use crate::uri::percent_decode_into;
use std::fmt;

/// What the caller wants to do with the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `m=request` (or no `m`): receive the stream.
    Play,
    /// `m=publish`: send the stream.
    Publish,
}

/// A parsed stream id.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct StreamRequest {
    /// The stream name (`r=` or the plain id's path); `None` when the id names none (a
    /// per-stream port supplies it).
    pub resource: Option<String>,
    pub mode: Option<Mode>,
    /// The token: the configured token key's value, else `u=` for a publisher.
    pub token: Option<Vec<u8>>,
    /// `u=`, the user name of the access-control syntax.
    pub user: Option<String>,
}

impl StreamRequest {
    /// The mode, play when the id did not say.
    pub fn mode(&self) -> Mode {
        self.mode.unwrap_or(Mode::Play)
    }
}

/// A stream id tessera cannot serve at all: a mode other than play or publish, or a name
/// that is not UTF-8. (Unknown keys never get here.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamIdError {
    /// `m=` with a value other than `request` or `publish` (e.g. `bidirectional`).
    UnsupportedMode(String),
    /// The resource is not UTF-8 after percent-decoding.
    NotUtf8,
}

impl fmt::Display for StreamIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamIdError::UnsupportedMode(m) => write!(f, "srt stream id: unsupported mode {m:?}"),
            StreamIdError::NotUtf8 => f.write_str("srt stream id: resource is not UTF-8"),
        }
    }
}

impl std::error::Error for StreamIdError {}

const ACCESS_CONTROL_PREFIX: &str = "#!::";

/// Parses a stream id; `token_key` is the configured token parameter (`auth_token`, default
/// `token`).
pub fn parse(stream_id: &str, token_key: &str) -> Result<StreamRequest, StreamIdError> {
    let decoded;
    let id = if stream_id.starts_with("%23") {
        decoded = decode_lossy(stream_id);
        decoded.as_str()
    } else {
        stream_id
    };
    match id.strip_prefix(ACCESS_CONTROL_PREFIX) {
        Some(pairs) => parse_pairs(pairs.split(','), token_key),
        None => parse_plain(id, token_key),
    }
}

/// `#!::k=v,k=v`: every pair, unknown keys ignored.
fn parse_pairs<'a>(
    pairs: impl Iterator<Item = &'a str>,
    token_key: &str,
) -> Result<StreamRequest, StreamIdError> {
    let mut req = StreamRequest::default();
    for pair in pairs {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key.trim() {
            "r" => req.resource = Some(decode_utf8(value)?),
            "m" => req.mode = Some(parse_mode(value)?),
            "u" => req.user = Some(decode_lossy(value)),
            k if k == token_key => req.token = Some(decode_bytes(value)),
            _ => {}
        }
    }
    publisher_user_as_token(&mut req);
    Ok(req)
}

/// `NAME`, `NAME?k=v&k=v`: the query's keys as in the access-control form.
fn parse_plain(id: &str, token_key: &str) -> Result<StreamRequest, StreamIdError> {
    let (name, query) = id.split_once('?').unwrap_or((id, ""));
    let mut req = parse_pairs(query.split('&').filter(|p| !p.is_empty()), token_key)?;
    if req.resource.is_none() && !name.is_empty() {
        req.resource = Some(decode_utf8(name)?);
    }
    Ok(req)
}

fn parse_mode(value: &str) -> Result<Mode, StreamIdError> {
    match value {
        "request" | "play" => Ok(Mode::Play),
        "publish" => Ok(Mode::Publish),
        other => Err(StreamIdError::UnsupportedMode(other.to_owned())),
    }
}

/// Flussonic's publishers send their token as `u=`; it counts when no token key was given.
fn publisher_user_as_token(req: &mut StreamRequest) {
    if req.mode == Some(Mode::Publish) && req.token.is_none() {
        req.token = req.user.as_ref().map(|u| u.as_bytes().to_vec());
    }
}

/// Percent-decodes when there is a `%`; a malformed escape keeps the value as sent.
fn decode_bytes(value: &str) -> Vec<u8> {
    if !value.contains('%') {
        return value.as_bytes().to_vec();
    }
    let mut out = Vec::with_capacity(value.len());
    match percent_decode_into(value.as_bytes(), &mut out) {
        Ok(()) => out,
        Err(_) => value.as_bytes().to_vec(),
    }
}

fn decode_lossy(value: &str) -> String {
    String::from_utf8_lossy(&decode_bytes(value)).into_owned()
}

fn decode_utf8(value: &str) -> Result<String, StreamIdError> {
    String::from_utf8(decode_bytes(value)).map_err(|_| StreamIdError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(name: &str, mode: Option<Mode>, token: Option<&str>) -> StreamRequest {
        StreamRequest {
            resource: Some(name.to_owned()),
            mode,
            token: token.map(|t| t.as_bytes().to_vec()),
            user: None,
        }
    }

    #[test]
    fn access_control_syntax_with_token() {
        let got = parse("#!::r=auth-check,m=request,token=test1", "token").unwrap();
        assert_eq!(got, req("auth-check", Some(Mode::Play), Some("test1")));
    }

    #[test]
    fn unknown_keys_are_ignored_and_the_token_key_is_configurable() {
        let got = parse(
            "#!::h=example.com,r=a/b,s=xyz,t=stream,key=K9,m=request",
            "key",
        );
        assert_eq!(got.unwrap(), req("a/b", Some(Mode::Play), Some("K9")));
        let got = parse("#!::r=cam,token=t1,junk,=,", "token").unwrap();
        assert_eq!(got, req("cam", None, Some("t1")));
        assert_eq!(got.mode(), Mode::Play);
    }

    #[test]
    fn publisher_user_is_the_token_unless_a_token_is_given() {
        let got = parse("#!::u=pub1,r=live/cam,m=publish", "token").unwrap();
        assert_eq!(got.mode(), Mode::Publish);
        assert_eq!(got.token.as_deref(), Some(&b"pub1"[..]));
        assert_eq!(got.user.as_deref(), Some("pub1"));
        let got = parse("#!::u=alice,r=x,m=publish,token=T", "token").unwrap();
        assert_eq!(got.token.as_deref(), Some(&b"T"[..]));
        // A viewer's user name is not a token.
        let got = parse("#!::u=alice,r=x,m=request", "token").unwrap();
        assert_eq!(got.token, None);
    }

    #[test]
    fn plain_names_with_and_without_a_query() {
        assert_eq!(
            parse("cam1?token=abc", "token").unwrap(),
            req("cam1", None, Some("abc"))
        );
        assert_eq!(
            parse("live/cam", "token").unwrap(),
            req("live/cam", None, None)
        );
        let got = parse("cam1?x=1&token=a%2Bb%3D&m=publish", "token").unwrap();
        assert_eq!(got, req("cam1", Some(Mode::Publish), Some("a+b=")));
        assert_eq!(parse("", "token").unwrap(), StreamRequest::default());
    }

    #[test]
    fn whole_id_percent_encoded() {
        let got = parse(
            "%23%21%3A%3Ar%3Dcam%2Cm%3Drequest%2Ctoken%3Dt%2520",
            "token",
        )
        .unwrap();
        assert_eq!(got, req("cam", Some(Mode::Play), Some("t ")));
    }

    #[test]
    fn unsupported_mode_and_bad_utf8_are_errors() {
        assert_eq!(
            parse("#!::r=x,m=bidirectional", "token"),
            Err(StreamIdError::UnsupportedMode("bidirectional".into()))
        );
        assert_eq!(parse("#!::r=%ff", "token"), Err(StreamIdError::NotUtf8));
        // A malformed escape is kept as sent rather than refused.
        assert_eq!(
            parse("#!::r=100%", "token").unwrap().resource.as_deref(),
            Some("100%")
        );
    }
}
