//! `/NAME/embed.html?token=T&format=hls|llhls|dash|mss`: the player page.
//!
//! The page holds no inline script and no request text but two things: the format, chosen
//! from a fixed set, and the token, written percent-encoded (RFC 3986 unreserved characters
//! and `%XX` only), which can close neither an HTML attribute nor a script. The manifest URL
//! sits in a `data-src` attribute that `/_player/embed.js` reads; the CSP ([`PAGE_HEADERS`])
//! allows scripts from this server only. The player carries the token on by itself, since
//! every manifest tessera writes puts it in every URL it lists.

use crate::uri::{TokenQuery, percent_encode_into};

/// Headers of the page: scripts, media and requests from this server only (`blob:` for the
/// MediaSource and hls.js's worker), nothing else loaded, no referrer (the URL has a token).
pub const PAGE_HEADERS: &str = "content-security-policy: default-src 'none'; script-src 'self'; \
connect-src 'self'; media-src 'self' blob:; worker-src 'self' blob:; img-src 'self' data:; \
base-uri 'none'; form-action 'none'\r\nx-content-type-options: nosniff\r\n\
referrer-policy: no-referrer\r\n";
/// Headers of the player scripts.
pub const SCRIPT_HEADERS: &str = "x-content-type-options: nosniff\r\n";

/// Which manifest the page plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Hls,
    LlHls,
    Dash,
    Mss,
    /// WHEP (`/NAME/whep`), played by embed.js's own small WHEP client.
    WebRtc,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Hls => "hls",
            Format::LlHls => "llhls",
            Format::Dash => "dash",
            Format::Mss => "mss",
            Format::WebRtc => "webrtc",
        }
    }

    fn scripts(self) -> &'static [&'static str] {
        match self {
            Format::Hls | Format::LlHls => &["hls.min.js"],
            Format::Dash => &["dash.all.min.js"],
            Format::Mss => &["dash.all.min.js", "dash.mss.min.js"],
            Format::WebRtc => &[],
        }
    }
}

/// A `format` query value outside the set (answered 400).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownFormat;

/// The `format` query parameter of a raw request-target: [`Format::Hls`] when absent.
pub fn format_from_target(raw_target: &[u8]) -> Result<Format, UnknownFormat> {
    let Some(q) = memchr::memchr(b'?', raw_target) else {
        return Ok(Format::Hls);
    };
    let value = raw_target[q + 1..]
        .split(|&b| b == b'&')
        .find_map(|pair| pair.strip_prefix(b"format="));
    match value {
        None => Ok(Format::Hls),
        Some(b"hls") => Ok(Format::Hls),
        Some(b"llhls") => Ok(Format::LlHls),
        Some(b"dash") => Ok(Format::Dash),
        Some(b"mss") => Ok(Format::Mss),
        Some(b"webrtc") => Ok(Format::WebRtc),
        Some(_) => Err(UnknownFormat),
    }
}

/// Writes the page for stream `name` (as configured) in `format`, its manifest URL relative
/// to `/NAME/embed.html` and carrying `token`.
pub fn write_page(out: &mut Vec<u8>, name: &str, format: Format, token: TokenQuery<'_>) {
    out.extend_from_slice(
        b"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
          <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
          <meta name=\"referrer\" content=\"no-referrer\">\n\
          <link rel=\"icon\" href=\"data:,\">\n<title>",
    );
    write_html_text(out, name);
    out.extend_from_slice(
        b"</title>\n</head>\n<body>\n<video id=\"tessera-video\" controls autoplay muted playsinline \
          width=\"640\" height=\"360\" data-format=\"",
    );
    out.extend_from_slice(format.as_str().as_bytes());
    out.extend_from_slice(b"\" data-src=\"");
    match format {
        Format::Hls => out.extend_from_slice(b"index.m3u8"),
        Format::LlHls => out.extend_from_slice(b"index.ll.m3u8"),
        Format::Dash => out.extend_from_slice(b"index.mpd"),
        Format::WebRtc => out.extend_from_slice(b"whep"),
        Format::Mss => {
            // `/a/b/embed.html` → `../b.isml/manifest` = `/a/b.isml/manifest`.
            let last = name.rsplit('/').next().unwrap_or(name);
            out.extend_from_slice(b"../");
            percent_encode_into(last.as_bytes(), out);
            out.extend_from_slice(b".isml/manifest");
        }
    }
    token.write(out);
    out.extend_from_slice(b"\"></video>\n<p id=\"tessera-status\" role=\"status\">loading</p>\n");
    for script in format.scripts() {
        out.extend_from_slice(b"<script src=\"/_player/");
        out.extend_from_slice(script.as_bytes());
        out.extend_from_slice(b"\"></script>\n");
    }
    out.extend_from_slice(b"<script src=\"/_player/embed.js\"></script>\n</body>\n</html>\n");
}

/// `text` escaped for HTML text and attribute values.
fn write_html_text(out: &mut Vec<u8>, text: &str) {
    for b in text.bytes() {
        match b {
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            b'&' => out.extend_from_slice(b"&amp;"),
            b'"' => out.extend_from_slice(b"&quot;"),
            b'\'' => out.extend_from_slice(b"&#39;"),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(name: &str, format: Format, token: Option<&[u8]>) -> String {
        let mut out = Vec::new();
        let token = TokenQuery {
            param: "token",
            token,
        };
        write_page(&mut out, name, format, token);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn formats_come_from_a_fixed_set() {
        assert_eq!(format_from_target(b"/a/embed.html"), Ok(Format::Hls));
        assert_eq!(
            format_from_target(b"/a/embed.html?token=x"),
            Ok(Format::Hls)
        );
        assert_eq!(
            format_from_target(b"/a/embed.html?token=x&format=dash"),
            Ok(Format::Dash)
        );
        assert_eq!(
            format_from_target(b"/a/embed.html?format=mss"),
            Ok(Format::Mss)
        );
        assert_eq!(
            format_from_target(b"/a/embed.html?format=webrtc"),
            Ok(Format::WebRtc)
        );
        assert_eq!(
            format_from_target(b"/a/embed.html?format=llhls&format=x"),
            Ok(Format::LlHls)
        );
        assert_eq!(
            format_from_target(b"/a/embed.html?format=<script>"),
            Err(UnknownFormat)
        );
        assert_eq!(
            format_from_target(b"/a/embed.html?format="),
            Err(UnknownFormat)
        );
    }

    #[test]
    fn manifest_urls_per_format() {
        let t = Some(&b"t1"[..]);
        assert!(page("a", Format::Hls, t).contains("data-src=\"index.m3u8?token=t1\""));
        assert!(page("a", Format::LlHls, t).contains("data-src=\"index.ll.m3u8?token=t1\""));
        let dash = page("a", Format::Dash, t);
        assert!(dash.contains("data-src=\"index.mpd?token=t1\""));
        assert!(dash.contains("<script src=\"/_player/dash.all.min.js\"></script>"));
        let webrtc = page("a", Format::WebRtc, t);
        assert!(webrtc.contains("data-format=\"webrtc\" data-src=\"whep?token=t1\""));
        assert_eq!(
            webrtc.matches("<script").count(),
            1,
            "embed.js alone: {webrtc}"
        );
        let mss = page("live/cam 1", Format::Mss, t);
        assert!(
            mss.contains("data-src=\"../cam%201.isml/manifest?token=t1\""),
            "{mss}"
        );
        assert!(mss.contains("/_player/dash.mss.min.js"));
        let open = page("a", Format::Hls, None);
        assert!(open.contains("data-src=\"index.m3u8\""));
        assert!(open.contains("<script src=\"/_player/hls.min.js\"></script>"));
        assert!(open.ends_with("<script src=\"/_player/embed.js\"></script>\n</body>\n</html>\n"));
    }

    #[test]
    fn hostile_tokens_and_names_cannot_escape() {
        let token = b"\"></video><script>alert(1)</script>'\\\n\xff";
        let text = page("<b>&\"x", Format::Hls, Some(token));
        assert!(!text.contains("alert(1)</script>"), "{text}");
        assert!(text.contains(
            "data-src=\"index.m3u8?token=%22%3E%3C%2Fvideo%3E%3Cscript%3Ealert%281%29%3C%2Fscript%3E%27%5C%0A%FF\""
        ));
        assert!(text.contains("<title>&lt;b&gt;&amp;&quot;x</title>"));
        // Inline scripts: none. Every <script> loads from /_player/.
        assert_eq!(
            text.matches("<script").count(),
            text.matches("<script src=\"/_player/").count()
        );
    }
}
