//! Stream templates, in Flussonic's form: `template NAME { prefix PREFIX; input URL; ... }`.
//! One block serves every stream name under its prefixes (`prefix tv;` matches `tv/ch1`,
//! `tv/a/b`): a request for such a name, when no `stream` of that name exists, is
//! authorized by the template's `on_play` and then becomes a stream of the template's
//! settings, pulled on demand. `%s` in an `input` URL is replaced by the requested stream
//! name (`input tshttp://origin/%s/mpegts;`).
//!
//! Here: the parsed block, the prefix match and the checks across templates (overlapping
//! prefixes); the parser reads the block's directives (`config::parser`).

use super::model::{InputUrl, StreamConfig};
use super::pull::PullUrl;

/// Where the requested stream name goes in a template's input URLs.
pub const PLACEHOLDER: &str = "%s";

/// A `template` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateConfig {
    pub name: String,
    /// Each ends with `/`: a stream name under it starts with it and goes on.
    pub prefixes: Vec<String>,
    /// What each stream it makes gets: the template's name and its `input` URLs with `%s`
    /// still in them; always on demand.
    pub stream: StreamConfig,
}

impl TemplateConfig {
    /// Whether `name` falls under one of the prefixes (and is more than the prefix), and
    /// is a name a `stream` block could have (it goes into the origin's URL as it is).
    pub fn matches(&self, name: &str) -> bool {
        self.prefixes
            .iter()
            .any(|p| name.len() > p.len() && name.starts_with(p.as_str()))
            && super::parser::check_stream_name(name).is_ok()
    }

    /// The stream this template makes for `name`: its settings, with `%s` in the input URLs
    /// replaced by `name`.
    pub fn instance(&self, name: &str) -> StreamConfig {
        let mut stream = self.stream.clone();
        stream.name = name.to_owned();
        if let InputUrl::Pull(url) = &mut stream.input {
            substitute(url, name);
        }
        for backup in &mut stream.pull.backups {
            substitute(backup, name);
        }
        stream
    }
}

fn substitute(url: &mut PullUrl, name: &str) {
    url.path = url.path.replace(PLACEHOLDER, name);
}

/// `prefix P;` as a prefix of stream names: `P` without its leading or trailing `/`, then
/// `/`. `Err` says why `P` cannot be one.
pub fn normalize_prefix(text: &str) -> Result<String, String> {
    let bare = text.trim_matches('/');
    super::parser::check_stream_name(bare).map_err(|e| {
        format!(
            "invalid prefix `{text}`: {}",
            e.replace("stream name", "prefix")
        )
    })?;
    Ok(format!("{bare}/"))
}

/// Whether two prefixes overlap: one is the other, or under it (`tv/` and `tv/sport/`).
pub fn overlap(a: &str, b: &str) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(text: &str) -> TemplateConfig {
        let cfg = crate::config::parse(text, "t.conf").expect("config parses");
        cfg.templates.into_iter().next().expect("one template")
    }

    #[test]
    fn a_name_under_a_prefix_makes_a_stream_with_its_url() {
        let t = template(
            "template tv { prefix tv; prefix /radio/; input tshttp://o:81/%s/mpegts; \
             input rtmp://b/live/%s; clients_timeout 5; }",
        );
        assert_eq!(t.prefixes, ["tv/", "radio/"]);
        assert!(t.matches("tv/ch1") && t.matches("radio/a/b"));
        assert!(!t.matches("tv") && !t.matches("tv/") && !t.matches("tvx/ch1"));
        assert!(!t.matches("tv/a b") && !t.matches("tv/a//b") && !t.matches("tv/%41"));
        let s = t.instance("tv/ch1");
        assert_eq!(s.name, "tv/ch1");
        assert_eq!(
            s.input,
            InputUrl::Pull(
                PullUrl::parse("tshttp", "o:81/tv/ch1/mpegts")
                    .unwrap()
                    .unwrap()
            )
        );
        assert_eq!(s.pull.backups[0].path, "/live/tv/ch1");
        assert!(s.pull.on_demand, "template streams are pulled on demand");
        assert_eq!(s.pull.clients_timeout_ms, 5000);
    }

    #[test]
    fn prefixes_overlap_segment_wise() {
        assert!(overlap("tv/", "tv/sport/"));
        assert!(overlap("tv/", "tv/"));
        assert!(!overlap("tv/", "tvx/"));
        assert_eq!(normalize_prefix("/tv/").unwrap(), "tv/");
        assert!(normalize_prefix("a//b").is_err());
        assert!(normalize_prefix("/").is_err());
    }

    fn errors(text: &str) -> String {
        crate::config::parse(text, "t.conf")
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn template_mistakes_are_errors_with_their_position() {
        assert_eq!(
            errors("template tv { input tshttp://o/%s/mpegts; }"),
            "t.conf:1:10: error: template `tv` has no `prefix` (add e.g. `prefix live;`: it \
             serves the names under `live/`)"
        );
        assert_eq!(
            errors(
                "template a { prefix tv; input rtmp://o/live/%s; }\n\
                 template b { prefix tv/sport; input rtmp://o/live/%s; }"
            ),
            "t.conf:2:21: error: prefix `tv/sport/` overlaps prefix `tv/` of template `a` (at 1:21)"
        );
        assert_eq!(
            errors("template a { prefix x; input fake://fake; }"),
            "t.conf:1:24: error: a template's `input` must be pulled (rtmp://, tshttp://): its \
             streams are pulled on demand"
        );
        assert_eq!(
            errors("template a { prefix x; input rtmp://o/l/%s; static true; }"),
            "t.conf:1:45: error: a template's streams are pulled on demand: only `static false;`"
        );
        assert_eq!(
            errors("template a { prefix x/../y; input rtmp://o/l/%s; }"),
            "t.conf:1:21: error: invalid prefix `x/../y`: prefix `x/../y` must not contain `..` \
             segments"
        );
        assert!(
            errors("template a { prefix x; input rtmp://o/l/%s; on_publish auth://b; }")
                .contains("on_publish")
        );
    }
}
