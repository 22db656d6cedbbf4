//! The `Authorization` an RTSP origin asks for in its 401 (RFC 2326 §12.5 via HTTP): Basic
//! (RFC 7617) or Digest with MD5 (RFC 2617, RFC 7616 §3.4: `qop=auth`, or none for the
//! RFC 2069 form older cameras use). The credentials are the input URL's `user:pass`; they
//! and the header built from them are never logged.

use md5::{Digest, Md5};
use std::fmt::Write;

/// A challenge the client can answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Digest {
        realm: String,
        nonce: String,
        opaque: Option<String>,
        /// The server offered `qop=auth`.
        qop_auth: bool,
    },
}

/// The best challenge among a 401's `WWW-Authenticate` headers: Digest (MD5) over Basic.
/// `None` when none is one tessera answers (e.g. only SHA-256 Digest).
pub fn pick_challenge<'a>(headers: impl Iterator<Item = &'a str>) -> Option<Challenge> {
    let mut basic = false;
    for header in headers {
        let (scheme, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
        if scheme.eq_ignore_ascii_case("Basic") {
            basic = true;
        } else if scheme.eq_ignore_ascii_case("Digest")
            && let Some(challenge) = digest_challenge(params)
        {
            return Some(challenge);
        }
    }
    basic.then_some(Challenge::Basic)
}

fn digest_challenge(params: &str) -> Option<Challenge> {
    let mut realm = None;
    let mut nonce = None;
    let mut opaque = None;
    let mut qop_auth = false;
    for (key, value) in auth_params(params) {
        match key.to_ascii_lowercase().as_str() {
            "realm" => realm = Some(value),
            "nonce" => nonce = Some(value),
            "opaque" => opaque = Some(value),
            "qop" => qop_auth = value.split(',').any(|q| q.trim() == "auth"),
            "algorithm" if !value.eq_ignore_ascii_case("MD5") => return None,
            _ => {}
        }
    }
    Some(Challenge::Digest {
        realm: realm?,
        nonce: nonce?,
        opaque,
        qop_auth,
    })
}

/// `key=value` and `key="quoted, value"` pairs, comma-separated (RFC 7235 §2.1).
fn auth_params(mut rest: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key.trim().trim_start_matches(',').trim().to_owned();
        let after = after.trim_start();
        let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            (
                quoted[..end].to_owned(),
                quoted.get(end + 1..).unwrap_or(""),
            )
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        out.push((key, value));
        rest = tail.trim_start().trim_start_matches(',');
        if out.len() > 32 {
            break;
        }
    }
    out
}

/// What answers one request.
pub struct Answer<'a> {
    pub user: &'a str,
    pub password: &'a str,
    pub method: &'a str,
    pub uri: &'a str,
    /// The request count under this nonce (`nc`), from 1.
    pub count: u32,
    pub cnonce: &'a str,
}

/// The `Authorization` header's value for `challenge`.
pub fn authorization(challenge: &Challenge, a: &Answer<'_>) -> String {
    match challenge {
        Challenge::Basic => {
            let mut out = String::from("Basic ");
            crate::rtsp::sdp::base64_encode(
                format!("{}:{}", a.user, a.password).as_bytes(),
                &mut out,
            );
            out
        }
        Challenge::Digest {
            realm,
            nonce,
            opaque,
            qop_auth,
        } => {
            let ha1 = md5_hex(&format!("{}:{realm}:{}", a.user, a.password));
            let ha2 = md5_hex(&format!("{}:{}", a.method, a.uri));
            let nc = format!("{:08x}", a.count);
            let response = if *qop_auth {
                md5_hex(&format!("{ha1}:{nonce}:{nc}:{}:auth:{ha2}", a.cnonce))
            } else {
                md5_hex(&format!("{ha1}:{nonce}:{ha2}"))
            };
            let mut out = format!(
                "Digest username=\"{}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{}\", \
                 response=\"{response}\", algorithm=MD5",
                a.user, a.uri
            );
            if *qop_auth {
                let _ = write!(out, ", qop=auth, nc={nc}, cnonce=\"{}\"", a.cnonce);
            }
            if let Some(opaque) = opaque {
                let _ = write!(out, ", opaque=\"{opaque}\"");
            }
            out
        }
    }
}

fn md5_hex(text: &str) -> String {
    let digest = Md5::digest(text.as_bytes());
    let mut out = String::with_capacity(32);
    for b in digest {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer<'a>(
        user: &'a str,
        password: &'a str,
        method: &'a str,
        uri: &'a str,
        cnonce: &'a str,
    ) -> Answer<'a> {
        Answer {
            user,
            password,
            method,
            uri,
            count: 1,
            cnonce,
        }
    }

    fn response_of(header: &str) -> &str {
        let at = header.find("response=\"").unwrap() + 10;
        &header[at..at + 32]
    }

    /// The header answering `challenges` for the RFCs' example request (Mufasa, GET
    /// /dir/index.html, nc 1).
    fn rfc_example(challenges: &[&str], password: &str, cnonce: &str) -> String {
        let challenge = pick_challenge(challenges.iter().copied()).unwrap();
        let a = answer("Mufasa", password, "GET", "/dir/index.html", cnonce);
        authorization(&challenge, &a)
    }

    #[test]
    fn rfc_2617_section_3_5_vector() {
        let header = rfc_example(
            &[
                "Basic realm=\"x\"",
                "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
                 nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", \
                 opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
            ],
            "Circle Of Life",
            "0a4f113b",
        );
        assert_eq!(response_of(&header), "6629fae49393a05397450978507c4ef1");
        assert!(header.contains("nc=00000001"));
        assert!(header.contains("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""));
    }

    #[test]
    fn rfc_7616_section_3_9_1_md5_vector() {
        // The SHA-256 challenge comes first; tessera answers the MD5 one.
        let header = rfc_example(
            &[
                "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", \
                 algorithm=SHA-256, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\"",
                "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", \
                 algorithm=MD5, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
                 opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
            ],
            "Circle of Life",
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        );
        assert_eq!(response_of(&header), "8ca523f5e9506fed4657c9700eebdbec");
    }

    #[test]
    fn rfc_2069_form_basic_and_refusals() {
        // No qop: MD5(HA1:nonce:HA2) (RFC 2617 §3.2.2.1), what many cameras send.
        let c = pick_challenge(["Digest realm=\"r\", nonce=\"n\""].into_iter()).unwrap();
        let a = answer("u", "p", "DESCRIBE", "rtsp://h/s", "c");
        let ha1 = md5_hex("u:r:p");
        let ha2 = md5_hex("DESCRIBE:rtsp://h/s");
        let header = authorization(&c, &a);
        assert_eq!(response_of(&header), md5_hex(&format!("{ha1}:n:{ha2}")));
        assert!(!header.contains("qop"));
        let basic = pick_challenge(["Basic realm=\"cam\""].into_iter()).unwrap();
        assert_eq!(authorization(&basic, &a), "Basic dTpw");
        assert!(
            pick_challenge(["Digest realm=\"r\", nonce=\"n\", algorithm=SHA-256"].into_iter())
                .is_none()
        );
        assert!(pick_challenge(["Bearer x", "Digest realm"].into_iter()).is_none());
    }
}
