//! The caller against tessera's own listener and connection, in process: the handshake,
//! then payloads from the listener's side delivered at their TSBPD time.

use super::*;
use crate::srt::connection::{AuthAnswer, Output};
use crate::srt::handshake::{Listener, ListenerReply};

fn config(passphrase: Option<&[u8]>) -> CallerConfig {
    CallerConfig {
        local_socket_id: 0x1111,
        isn: SeqNo::new(1000),
        stream_id: "#!::r=s,m=request,token=t".into(),
        passphrase: passphrase.map(<[u8]>::to_vec),
        latency: Duration::from_millis(120),
        key_seed: [7; SALT_LEN + KEY_LEN],
    }
}

fn caller_addr() -> SocketAddr {
    "127.0.0.1:5000".parse().unwrap()
}

/// Runs the handshake against a tessera listener that accepts with `listener_pass`; returns
/// both ends, or the caller's error.
fn connect(
    caller_pass: Option<&[u8]>,
    listener_pass: Option<&[u8]>,
) -> Result<(SrtConnection, SrtConnection, Instant), CallerError> {
    let now = Instant::now();
    let listener = Listener::new([3; 32], now);
    let peer: SocketAddr = "127.0.0.1:9000".parse().unwrap();
    let mut caller = SrtCaller::new(config(caller_pass), peer, now)?;
    let induction = caller.poll_transmit(now).unwrap();
    assert!(caller.poll_transmit(now).is_none(), "one per resend period");
    let ListenerReply::Induction(reply) = listener.handle(&induction, caller_addr(), now).unwrap()
    else {
        panic!("induction expected")
    };
    assert!(caller.handle_input(&reply, now)?.is_none());
    let conclusion = caller.poll_transmit(now).unwrap();
    let ListenerReply::Conclusion(hello) =
        listener.handle(&conclusion, caller_addr(), now).unwrap()
    else {
        panic!("conclusion expected")
    };
    assert_eq!(
        hello.stream_id.as_deref(),
        Some("#!::r=s,m=request,token=t")
    );
    let mut server = SrtConnection::new(hello, caller_addr(), ConnectionConfig::new(0x2222), now);
    assert!(matches!(
        server.poll_output(),
        Some(Output::Authorize { .. })
    ));
    server.authorized(
        AuthAnswer::Accept {
            latency: Duration::from_millis(200),
            passphrase: listener_pass.map(<[u8]>::to_vec),
        },
        now,
    );
    let mut answer = None;
    while let Some(out) = server.poll_output() {
        if let Output::Transmit(d) = out {
            answer = Some(d);
            break;
        }
    }
    let client = caller.handle_input(&answer.unwrap(), now)?.unwrap();
    Ok((server, client, now))
}

/// Sends `payload` from the listener's side and returns what the caller delivers by
/// `now + 1 s`.
fn deliver(server: &mut SrtConnection, client: &mut SrtConnection, now: Instant) -> Vec<Vec<u8>> {
    server.send(b"0123456789", now).unwrap();
    let mut got = Vec::new();
    while let Some(out) = server.poll_output() {
        if let Output::Transmit(d) = out {
            client.handle_input(&d, now).unwrap();
        }
    }
    client.handle_timeout(now + Duration::from_secs(1));
    while let Some(out) = client.poll_output() {
        if let Output::Payload(p) = out {
            got.push(p);
        }
    }
    got
}

#[test]
fn a_call_to_tessera_s_listener_connects_and_receives() {
    let (mut server, mut client, now) = connect(None, None).unwrap();
    assert!(client.is_established());
    assert_eq!(client.peer_socket_id(), 0x2222);
    assert_eq!(
        deliver(&mut server, &mut client, now),
        [b"0123456789".to_vec()]
    );
}

#[test]
fn an_encrypted_call_agrees_on_the_key() {
    let pass = b"correct horse battery";
    let (mut server, mut client, now) = connect(Some(pass), Some(pass)).unwrap();
    assert_eq!(
        deliver(&mut server, &mut client, now),
        [b"0123456789".to_vec()]
    );
}

#[test]
fn refusals_are_reported_with_their_reason() {
    assert_eq!(
        connect(Some(b"correct horse battery"), Some(b"another passphrase")).err(),
        Some(CallerError::Rejected(RejectReason::BADSECRET))
    );
    assert_eq!(
        connect(None, Some(b"another passphrase")).err(),
        Some(CallerError::Rejected(RejectReason::UNSECURE))
    );
    let now = Instant::now();
    let mut caller = SrtCaller::new(config(None), "127.0.0.1:9".parse().unwrap(), now).unwrap();
    assert!(matches!(
        caller.handle_input(&[0u8; 3], now),
        Err(CallerError::Stray(_))
    ));
    // The induction is sent again until answered.
    assert!(caller.poll_transmit(now).is_some());
    assert!(caller.poll_transmit(now + RESEND_EVERY).is_some());
}
