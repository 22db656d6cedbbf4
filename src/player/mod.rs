//! The browser player: `/NAME/embed.html` (a page that plays the stream with hls.js or
//! dash.js) and the scripts it loads from `/_player/`, served by tessera itself so that
//! viewers of an edge node need nothing from the internet.
//!
//! Owns: the fixed table of player scripts (public name → file under the npm
//! `node_modules` directory named by `player_assets DIR;` or `TESSERA_PLAYER_ASSETS`), the
//! page's own script (`embed.js`, compiled into the binary), and rendering the page.
//! Request paths never reach the file system: a name is looked up in the table, and the
//! files are read once at startup ([`PlayerAssets::load`], the only I/O here, run by the
//! runtime before the shards start). Never decides who may play: the page carries no
//! media, and every URL its player fetches is authorized like any other.

pub mod page;

use bytes::Bytes;
use std::path::Path;

/// Path prefix of the player scripts; no stream name may start with [`ASSET_SEGMENT`].
pub const ASSET_PREFIX: &str = "/_player/";
pub use crate::config::PLAYER_SEGMENT as ASSET_SEGMENT;
/// Environment variable naming the assets directory when the config has no `player_assets`.
pub const ASSETS_ENV: &str = "TESSERA_PLAYER_ASSETS";

/// The player scripts: public name and path under `node_modules` (tools/player/package.json
/// pins the versions).
pub const NPM_ASSETS: [(&str, &str); 3] = [
    ("hls.min.js", "hls.js/dist/hls.min.js"),
    ("dash.all.min.js", "dashjs/dist/modern/umd/dash.all.min.js"),
    ("dash.mss.min.js", "dashjs/dist/modern/umd/dash.mss.min.js"),
];
/// The page's own script, always available.
const EMBED_JS: (&str, &[u8]) = ("embed.js", include_bytes!("embed.js"));

const JS_TYPE: &str = "text/javascript; charset=utf-8";

/// The player scripts, read once and shared (`Bytes`) by every shard.
#[derive(Clone, Debug, Default)]
pub struct PlayerAssets {
    /// One per [`NPM_ASSETS`] entry, `None` when not installed.
    files: [Option<Bytes>; NPM_ASSETS.len()],
}

/// What `/_player/NAME` is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Asset {
    Script {
        content_type: &'static str,
        body: Bytes,
    },
    /// A known script that is not installed on this server.
    NotInstalled,
    Unknown,
}

impl PlayerAssets {
    /// Reads the scripts from `node_modules` (`dir`). Missing or unreadable files are logged
    /// and answered 404 with an explanation; the server starts anyway.
    pub fn load(dir: &Path) -> PlayerAssets {
        let mut assets = PlayerAssets::default();
        for ((name, relative), slot) in NPM_ASSETS.iter().zip(&mut assets.files) {
            let path = dir.join(relative);
            match std::fs::read(&path) {
                Ok(bytes) => *slot = Some(Bytes::from(bytes)),
                Err(e) => log::warn!(
                    "player script {name} not served: {}: {e} (run tools/player/install.sh)",
                    path.display()
                ),
            }
        }
        assets
    }

    /// Built from bytes (tests).
    pub fn from_files(files: [Option<Bytes>; NPM_ASSETS.len()]) -> PlayerAssets {
        PlayerAssets { files }
    }

    /// Looks up `/_player/<name>`.
    pub fn get(&self, name: &str) -> Asset {
        if name == EMBED_JS.0 {
            return Asset::Script {
                content_type: JS_TYPE,
                body: Bytes::from_static(EMBED_JS.1),
            };
        }
        match NPM_ASSETS.iter().position(|(n, _)| *n == name) {
            Some(i) => match &self.files[i] {
                Some(body) => Asset::Script {
                    content_type: JS_TYPE,
                    body: body.clone(),
                },
                None => Asset::NotInstalled,
            },
            None => Asset::Unknown,
        }
    }

    /// How many of the scripts are installed.
    pub fn installed(&self) -> usize {
        self.files.iter().flatten().count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_looked_up_never_joined_to_paths() {
        let assets = PlayerAssets::from_files([Some(Bytes::from_static(b"hls")), None, None]);
        assert_eq!(assets.installed(), 1);
        assert!(matches!(
            assets.get("hls.min.js"),
            Asset::Script { body, .. } if body == "hls"
        ));
        assert_eq!(assets.get("dash.all.min.js"), Asset::NotInstalled);
        assert!(matches!(assets.get("embed.js"), Asset::Script { .. }));
        for unknown in ["", "../Cargo.toml", "hls.js/dist/hls.min.js", "HLS.MIN.JS"] {
            assert_eq!(assets.get(unknown), Asset::Unknown, "{unknown}");
        }
    }

    #[test]
    fn the_prefix_is_the_reserved_segment() {
        assert_eq!(ASSET_PREFIX, format!("/{ASSET_SEGMENT}/"));
    }

    #[test]
    fn load_reads_what_exists() {
        let dir = std::env::temp_dir().join(format!("tessera-player-{}", std::process::id()));
        let file = dir.join(NPM_ASSETS[0].1);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, b"var Hls;").unwrap();
        let assets = PlayerAssets::load(&dir);
        assert_eq!(assets.installed(), 1);
        assert_eq!(assets.get("dash.mss.min.js"), Asset::NotInstalled);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
