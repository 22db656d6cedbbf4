//! Pulled inputs in the operator API: the `/metrics` families of their state, current
//! source and reconnects, and `GET /streamer/api/v3/streams`, the stream listing with each
//! stream's inputs (field names after Flussonic's API v3: `stats.alive`, `stats.status`,
//! `stats.retry_count`, `inputs[].url`, `inputs[].stats.active`). URLs are shown as
//! `PullUrl` displays them: without credentials or query.

use crate::stream::input_status::{InputState, InputStatus};
use std::fmt::Write as _;

/// One pulled input's status, with its stream's name (a shard's part of a metrics call).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputMetric {
    pub stream: Box<str>,
    pub status: InputStatus,
}

/// `tessera_input_state{stream,source,state}`: 1 for the input's current state, 0 for the
/// others, so a dashboard can sum or alert per state.
pub fn write_input_state(o: &mut String, name: &str, inputs: &[InputMetric]) {
    for i in inputs {
        for state in InputState::ALL {
            let _ = writeln!(
                o,
                "{name}{{stream=\"{}\",source=\"{}\",state=\"{}\"}} {}",
                Label(&i.stream),
                Label(&i.status.source_url),
                state.as_str(),
                u8::from(i.status.state == state)
            );
        }
    }
}

/// `tessera_input_source_index{stream}`: 0 on the first `input` line, 1 on the first backup.
pub fn write_input_source(o: &mut String, name: &str, inputs: &[InputMetric]) {
    write_per_stream(o, name, inputs, |s| s.source as u64);
}

/// `tessera_input_reconnects_total{stream}`: connections after the first.
pub fn write_input_reconnects(o: &mut String, name: &str, inputs: &[InputMetric]) {
    write_per_stream(o, name, inputs, |s| s.reconnects);
}

/// One `NAME{stream} VALUE` line per input.
fn write_per_stream(
    o: &mut String,
    name: &str,
    inputs: &[InputMetric],
    value: fn(&InputStatus) -> u64,
) {
    for i in inputs {
        let _ = writeln!(
            o,
            "{name}{{stream=\"{}\"}} {}",
            Label(&i.stream),
            value(&i.status)
        );
    }
}

/// A Prometheus label value, escaped (`\`, `"`, newline): stream names come from requests.
struct Label<'a>(&'a str);

impl std::fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '"' => f.write_str("\\\"")?,
                '\n' => f.write_str("\\n")?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// A stream as `GET .../streams` lists it.
pub struct StreamEntry {
    pub name: Box<str>,
    /// `static false;` (and every template stream).
    pub on_demand: bool,
    /// Made from a template.
    pub from_template: bool,
    /// Its `input` lines as displayed; empty for `fake://` and `publish://`.
    pub sources: Vec<String>,
    /// Its pull's status, when one ran.
    pub status: Option<InputStatus>,
}

/// `{"streams":[...]}` and a newline.
pub fn write_streams(streams: &[StreamEntry]) -> String {
    let list: Vec<serde_json::Value> = streams.iter().map(stream_json).collect();
    let mut body = serde_json::json!({ "streams": list }).to_string();
    body.push('\n');
    body
}

fn stream_json(s: &StreamEntry) -> serde_json::Value {
    let state = s.status.as_ref().map(|st| st.state);
    let running = state == Some(InputState::Running);
    let inputs: Vec<serde_json::Value> = s
        .sources
        .iter()
        .enumerate()
        .map(|(at, url)| {
            let active = running && s.status.as_ref().is_some_and(|st| st.source == at);
            serde_json::json!({ "url": url, "stats": { "active": active } })
        })
        .collect();
    serde_json::json!({
        "name": s.name,
        "static": !s.on_demand,
        "template": s.from_template,
        "stats": {
            "alive": running,
            "status": state.map_or("idle", InputState::as_str),
            "retry_count": s.status.as_ref().map_or(0, |st| st.reconnects),
            "source_index": s.status.as_ref().map(|st| st.source),
        },
        "inputs": inputs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: InputState, source: usize) -> InputStatus {
        InputStatus {
            state,
            source,
            source_url: "rtmp://***@o:1935/live/s?...".into(),
            reconnects: 3,
        }
    }

    #[test]
    fn metrics_name_the_state_source_and_reconnects_with_escaped_labels() {
        let inputs = [InputMetric {
            stream: "tv/\"x\"".into(),
            status: status(InputState::Running, 1),
        }];
        let mut o = String::new();
        write_input_state(&mut o, "s", &inputs);
        write_input_source(&mut o, "i", &inputs);
        write_input_reconnects(&mut o, "r", &inputs);
        assert!(o.contains(
            "s{stream=\"tv/\\\"x\\\"\",source=\"rtmp://***@o:1935/live/s?...\",state=\"running\"} 1\n"
        ));
        assert!(o.contains("state=\"failed\"} 0\n"));
        assert!(o.contains("i{stream=\"tv/\\\"x\\\"\"} 1\n"));
        assert!(o.contains("r{stream=\"tv/\\\"x\\\"\"} 3\n"));
    }

    #[test]
    fn the_listing_marks_the_active_input() {
        let entry = StreamEntry {
            name: "s".into(),
            on_demand: true,
            from_template: false,
            sources: vec!["rtmp://a:1935/l/s".into(), "rtmp://b:1935/l/s".into()],
            status: Some(status(InputState::Running, 1)),
        };
        let text = write_streams(&[entry]);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let s = &v["streams"][0];
        assert_eq!(s["stats"]["alive"], true);
        assert_eq!(s["stats"]["status"], "running");
        assert_eq!(s["stats"]["retry_count"], 3);
        assert_eq!(s["inputs"][0]["stats"]["active"], false);
        assert_eq!(s["inputs"][1]["stats"]["active"], true);
        assert_eq!(s["static"], false);
    }
}
