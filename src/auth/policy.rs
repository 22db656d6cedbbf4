//! An `auth_backend` compiled for evaluation: the rule order of the spec (§2), constant-time
//! token comparison, and nothing else. Pure: no clock, no I/O, no state.
//!
//! Order, first match decides: a signed token (`signed_key`, then `securetoken`: valid allows; expired, forged,
//! for another stream or another address denies; anything else falls through) →
//! `allow token` → `deny token` → `allow ip` → `deny ip` → `allow ua` → `deny ua` →
//! portal backends (`PolicyAnswer::AskPortal`: the caller asks them) → `allow default` or
//! deny.

use crate::auth::securetoken::SecureToken;
use crate::auth::signed::{SignedKeys, SignedVerdict};
use crate::auth::verdict::{DenyReason, PlayRequest, Verdict, canonical_ip};
use crate::config::{AuthBackend, Cidr};
use crate::constant_time::constant_time_eq;
use memchr::memmem::Finder;

#[derive(Debug)]
pub struct Policy {
    pub name: Box<str>,
    allow_tokens: Vec<Box<[u8]>>,
    deny_tokens: Vec<Box<[u8]>>,
    allow_ips: Vec<Cidr>,
    deny_ips: Vec<Cidr>,
    allow_uas: Vec<Finder<'static>>,
    deny_uas: Vec<Finder<'static>>,
    allow_default: bool,
    signed_keys: SignedKeys,
    securetoken: Option<SecureToken>,
    /// Indices into `AuthCatalog::backends`: the portals asked when no rule matched.
    pub backends: Vec<u32>,
    /// `max_sessions_policy refuse_new;`
    pub refuse_new_sessions: bool,
}

/// What the rules say about a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyAnswer {
    Decided(Decision),
    /// No rule matched and the policy has portal backends: their answer decides.
    AskPortal,
}

/// A policy's answer: the verdict, and until when it may be trusted (a signed token's
/// expiry, Unix seconds) when that is sooner than the usual decision duration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    pub valid_until_unix: Option<i64>,
}

impl From<Verdict> for Decision {
    fn from(verdict: Verdict) -> Self {
        Decision {
            verdict,
            valid_until_unix: None,
        }
    }
}

impl Policy {
    /// Compiles `backend`; `backends` are the indices its `backend` URLs got in the catalog.
    pub fn compile(backend: &AuthBackend, backends: Vec<u32>) -> Policy {
        let r = &backend.rules;
        let bytes = |v: &Vec<String>| v.iter().map(|s| s.as_bytes().into()).collect();
        let finders = |v: &Vec<String>| {
            v.iter()
                .map(|s| Finder::new(s.as_bytes()).into_owned())
                .collect()
        };
        Policy {
            name: backend.name.as_str().into(),
            allow_tokens: bytes(&r.allow_tokens),
            deny_tokens: bytes(&r.deny_tokens),
            allow_ips: r.allow_ips.clone(),
            deny_ips: r.deny_ips.clone(),
            allow_uas: finders(&r.allow_uas),
            deny_uas: finders(&r.deny_uas),
            allow_default: r.allow_default,
            signed_keys: {
                let mut keys = SignedKeys::new();
                for k in &r.signed_keys {
                    // The config parser validated every key with the same rules.
                    if let Err(e) = keys.insert(&k.id, k.secret.as_bytes()) {
                        log::error!("auth_backend {}: signed_key skipped: {e}", backend.name);
                    }
                }
                keys
            },
            securetoken: r
                .securetoken
                .as_ref()
                .map(|t| SecureToken::new(t.secret.as_bytes(), t.check_ip)),
            backends,
            refuse_new_sessions: r.refuse_new_sessions,
        }
    }

    /// `allow default;`: what an unanswered question defaults to (also when every portal
    /// backend is unreachable).
    pub fn allows_by_default(&self) -> bool {
        self.allow_default
    }

    /// Whether the user agent can change this policy's answer (so it must be in cache keys).
    pub fn reads_user_agent(&self) -> bool {
        !self.allow_uas.is_empty() || !self.deny_uas.is_empty()
    }

    /// Evaluates the rules in spec order for a play of `stream` (its name) at `now_unix`.
    pub fn decide(&self, req: &PlayRequest<'_>, stream: &str, now_unix: i64) -> PolicyAnswer {
        if let Some(token) = req.token {
            let ip = canonical_ip(req.ip);
            let mut signed = SignedVerdict::NotSigned;
            if !self.signed_keys.is_empty() {
                signed = self.signed_keys.verify(token, stream, ip, now_unix);
            }
            if let (SignedVerdict::NotSigned, Some(st)) = (signed, &self.securetoken) {
                signed = st.verify(token, stream, ip, now_unix);
            }
            match signed {
                SignedVerdict::NotSigned => {}
                SignedVerdict::Valid { expires } => {
                    return PolicyAnswer::Decided(Decision {
                        verdict: Verdict::Allow,
                        valid_until_unix: Some(expires),
                    });
                }
                denied => {
                    let reason = denied.deny_reason().unwrap_or(DenyReason::BackendDenied);
                    return PolicyAnswer::Decided(Verdict::Deny(reason).into());
                }
            }
        }
        match self.evaluate_rules(req) {
            Some(verdict) => PolicyAnswer::Decided(verdict.into()),
            None if !self.backends.is_empty() => PolicyAnswer::AskPortal,
            None => PolicyAnswer::Decided(self.fallback().into()),
        }
    }

    /// Evaluates the unsigned rules in spec order, portals left out (tests, benches).
    pub fn evaluate(&self, req: &PlayRequest<'_>) -> Verdict {
        self.evaluate_rules(req).unwrap_or(self.fallback())
    }

    fn fallback(&self) -> Verdict {
        if self.allow_default {
            Verdict::Allow
        } else {
            Verdict::Deny(DenyReason::BackendDenied)
        }
    }

    /// The first local rule that matches, if any.
    fn evaluate_rules(&self, req: &PlayRequest<'_>) -> Option<Verdict> {
        if let Some(token) = req.token {
            if any_token_matches(token, &self.allow_tokens) {
                return Some(Verdict::Allow);
            }
            if any_token_matches(token, &self.deny_tokens) {
                return Some(Verdict::Deny(DenyReason::BackendDenied));
            }
        }
        let ip = canonical_ip(req.ip);
        if self.allow_ips.iter().any(|c| c.contains(ip)) {
            return Some(Verdict::Allow);
        }
        if self.deny_ips.iter().any(|c| c.contains(ip)) {
            return Some(Verdict::Deny(DenyReason::BackendDenied));
        }
        if let Some(ua) = req.user_agent {
            if self.allow_uas.iter().any(|f| f.find(ua).is_some()) {
                return Some(Verdict::Allow);
            }
            if self.deny_uas.iter().any(|f| f.find(ua).is_some()) {
                return Some(Verdict::Deny(DenyReason::BackendDenied));
            }
        }
        None
    }
}

/// Compares `token` with every entry, without stopping at the first match, so the time
/// taken says nothing about which entry (or how much of it) matched.
fn any_token_matches(token: &[u8], list: &[Box<[u8]>]) -> bool {
    list.iter()
        .fold(false, |found, known| found | constant_time_eq(token, known))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::verdict::Proto;
    use std::net::IpAddr;

    fn policy(src: &str) -> Policy {
        let conf = format!("{src}\nstream s {{ input fake://fake; on_play auth://b; }}");
        let cfg = crate::config::parse(&conf, "t.conf").expect("test config parses");
        Policy::compile(&cfg.auth_backends[0], Vec::new())
    }

    fn ask(p: &Policy, token: Option<&str>, ip: &str, ua: Option<&str>) -> Verdict {
        let ip: IpAddr = ip.parse().unwrap();
        p.evaluate(&PlayRequest {
            stream: 0,
            proto: Proto::Hls,
            token: token.map(str::as_bytes),
            ip,
            user_agent: ua.map(str::as_bytes),
            referer: None,
            qs: b"",
        })
    }

    const DENIED: Verdict = Verdict::Deny(DenyReason::BackendDenied);

    #[test]
    fn token_rules() {
        let p = policy("auth_backend b { allow token test1 other; }");
        assert_eq!(ask(&p, Some("test1"), "1.2.3.4", None), Verdict::Allow);
        assert_eq!(ask(&p, Some("other"), "1.2.3.4", None), Verdict::Allow);
        assert_eq!(ask(&p, Some("test"), "1.2.3.4", None), DENIED);
        assert_eq!(ask(&p, Some("test12"), "1.2.3.4", None), DENIED);
        assert_eq!(ask(&p, Some(""), "1.2.3.4", None), DENIED);
        assert_eq!(ask(&p, None, "1.2.3.4", None), DENIED);
    }

    #[test]
    fn rule_order_is_first_match() {
        let p = policy(
            "auth_backend b { allow token good; deny token bad; allow ip 10.0.0.0/8; deny ip 10.1.0.0/16; allow ua VLC; deny ua curl; allow default; }",
        );
        // allow token beats deny ip.
        assert_eq!(ask(&p, Some("good"), "10.1.2.3", None), Verdict::Allow);
        // deny token beats allow ip.
        assert_eq!(ask(&p, Some("bad"), "10.2.3.4", None), DENIED);
        // allow ip beats deny ip even when both match.
        assert_eq!(ask(&p, None, "10.1.2.3", None), Verdict::Allow);
        assert_eq!(ask(&p, None, "::ffff:10.9.9.9", None), Verdict::Allow);
        assert_eq!(ask(&p, None, "192.0.2.1", Some("VLC/3")), Verdict::Allow);
        assert_eq!(ask(&p, None, "192.0.2.1", Some("curl/8")), DENIED);
        assert_eq!(ask(&p, None, "192.0.2.1", Some("ffmpeg")), Verdict::Allow);
    }

    #[test]
    fn deny_ip_without_default() {
        let p = policy("auth_backend b { deny ip 192.0.2.0/24; allow ua ffmpeg; }");
        assert_eq!(ask(&p, None, "192.0.2.7", Some("ffmpeg")), DENIED);
        assert_eq!(
            ask(&p, None, "198.51.100.1", Some("Lavf/ffmpeg")),
            Verdict::Allow
        );
        assert_eq!(ask(&p, None, "198.51.100.1", None), DENIED);
    }
}
