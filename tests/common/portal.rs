//! The example portal (`tools/portal.rs`) as a test's real auth backend: a separate
//! process that answers tessera's questions and counts them.

use super::{Response, request};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

const PORTAL_BIN: &str = env!("CARGO_BIN_EXE_tessera-portal");

/// The example portal, killed when dropped.
pub struct Portal {
    child: Child,
    pub port: u16,
}

impl Portal {
    pub fn start(args: &[&str]) -> Portal {
        let mut child = Command::new(PORTAL_BIN)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tessera-portal");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("portal says where it listens");
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected portal line {line:?}"));
        Portal { child, port }
    }

    pub fn http(&self, method: &str, path: &str) -> Response {
        request(self.port, method, path, "")
    }

    /// `/stats` as (key, value) lines.
    pub fn stat(&self, key: &str) -> u64 {
        let text = self.http("GET", "/stats").text();
        text.lines()
            .find_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                (k == key).then(|| v.parse().ok())?
            })
            .unwrap_or(0)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Portal {
    fn drop(&mut self) {
        self.kill();
    }
}
