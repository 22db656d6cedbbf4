//! What a pulled input is doing, for `/metrics` and the API's stream listing: its state,
//! which source (`input` line) it uses, and how often it connected again. Kept by the
//! shard that runs the input (the stream's owner), written by the pull's driver at each
//! change of state, never per frame.

/// A pulled input's state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InputState {
    /// Connecting to the current source, or connected and waiting for its first frame.
    #[default]
    Connecting,
    /// The current source sends frames.
    Running,
    /// Every source failed in a row: waiting out the backoff before the next round.
    Failed,
    /// Stopped (an on-demand pull without viewers, a reload, the shard stopping).
    Stopped,
}

impl InputState {
    pub const ALL: [InputState; 4] = [
        InputState::Connecting,
        InputState::Running,
        InputState::Failed,
        InputState::Stopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InputState::Connecting => "connecting",
            InputState::Running => "running",
            InputState::Failed => "failed",
            InputState::Stopped => "stopped",
        }
    }
}

/// One pulled input's status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InputStatus {
    pub state: InputState,
    /// The current source: 0 the first `input` line, 1 the first backup, ...
    pub source: usize,
    /// Its URL as `PullUrl` displays it (no credentials, no query).
    pub source_url: Box<str>,
    /// Connections made after the first: reconnects and failovers.
    pub reconnects: u64,
}
