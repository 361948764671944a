//! Whole-connection tests: a client session against a server session with
//! bytes pumped between them, and a server fed hand-made client bytes.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::amf::{self, Value};
use super::chunk::{ChunkDecoder, ChunkEncoder, Message};
use super::handshake::PACKET_LEN;
use super::message::{self as msg, Command};
use super::*;

const NAME: &str = "cam1?token=abc";

fn publish_client() -> ClientSession {
    ClientSession::new(ClientConfig {
        app: "static".into(),
        tc_url: "rtmp://127.0.0.1/static".into(),
        mode: ClientMode::Publish { name: NAME.into() },
        limits: Limits::default(),
    })
}

/// A node that accepts every publish and refuses every play.
fn node(server: &mut ServerSession, events: &mut Vec<ServerEvent>) {
    while let Some(e) = server.poll_event() {
        match &e {
            ServerEvent::PublishRequested { stream_id, .. } => {
                server.accept_publish(*stream_id).expect("accept");
            }
            ServerEvent::PlayRequested { stream_id, .. } => {
                server
                    .reject_play(*stream_id, "NetStream.Play.StreamNotFound", "no")
                    .expect("reject");
            }
            _ => {}
        }
        events.push(e);
    }
}

/// Moves bytes both ways until both sides are quiet; what the client sent
/// is appended to `sent`.
fn pump(
    c: &mut ClientSession,
    s: &mut ServerSession,
    sev: &mut Vec<ServerEvent>,
    cev: &mut Vec<ClientEvent>,
    sent: &mut Vec<u8>,
) {
    loop {
        let a = c.take_output();
        sent.extend_from_slice(&a);
        s.feed(&a).expect("server feed");
        node(s, sev);
        let b = s.take_output();
        c.feed(&b).expect("client feed");
        cev.extend(std::iter::from_fn(|| c.poll_event()));
        if a.is_empty() && b.is_empty() && !c.has_output() && !s.has_output() {
            return;
        }
    }
}

/// Timestamps crossing the extended-timestamp threshold and the 32-bit wrap.
fn media_plan() -> Vec<(MediaKind, u32, Bytes)> {
    let mut out = Vec::new();
    let starts = [0u32, 0xFF_FF00, 0xFFFF_FF00];
    for (i, &start) in starts.iter().enumerate() {
        for k in 0..12u32 {
            let ts = start.wrapping_add(k * 40);
            let len = [1usize, 300, 5000, 9000][(k as usize + i) % 4];
            let body: Vec<u8> = (0..len).map(|j| (j as u32 ^ ts ^ k) as u8).collect();
            let kind = if k % 3 == 0 { MediaKind::Audio } else { MediaKind::Video };
            out.push((kind, ts, Bytes::from(body)));
        }
    }
    out
}

fn metadata() -> Vec<Value> {
    vec![
        "onMetaData".into(),
        Value::EcmaArray(vec![
            ("width".into(), 1280.0.into()),
            ("videocodecid".into(), 7.0.into()),
        ]),
    ]
}

struct Recording {
    server_events: Vec<ServerEvent>,
    /// Client bytes up to and including the publish command.
    before_publish: Vec<u8>,
    /// The rest.
    after_publish: Vec<u8>,
}

fn publish_session() -> Recording {
    let (mut c, mut s) = (publish_client(), ServerSession::new(Limits::default()));
    let (mut sev, mut cev, mut sent) = (Vec::new(), Vec::new(), Vec::new());
    pump(&mut c, &mut s, &mut sev, &mut cev, &mut sent);
    assert_eq!(cev, [ClientEvent::Connected, ClientEvent::Started { stream_id: 1 }]);
    let before_publish = std::mem::take(&mut sent);
    c.send_metadata(&metadata()).expect("metadata");
    for (kind, ts, body) in media_plan() {
        c.send_media(kind, ts, body).expect("media");
    }
    c.close().expect("close");
    pump(&mut c, &mut s, &mut sev, &mut cev, &mut sent);
    assert_eq!(s.stats().dropped, 0);
    Recording {
        server_events: sev,
        before_publish,
        after_publish: sent,
    }
}

fn expected_events() -> Vec<ServerEvent> {
    let mut want = vec![
        ServerEvent::Connected {
            app: "static".into(),
            tc_url: Some("rtmp://127.0.0.1/static".into()),
            object_encoding: 0.0,
        },
        ServerEvent::PublishRequested {
            stream_id: 1,
            name: NAME.into(),
            kind: PublishKind::Live,
        },
        ServerEvent::Metadata {
            stream_id: 1,
            values: metadata(),
        },
    ];
    want.extend(
        media_plan()
            .into_iter()
            .map(|(kind, timestamp, payload)| ServerEvent::Media {
                stream_id: 1,
                kind,
                timestamp,
                payload,
            }),
    );
    want.push(ServerEvent::Unpublished { stream_id: 1 });
    want
}

#[test]
fn publish_loop_carries_media_unchanged() {
    let rec = publish_session();
    assert_eq!(rec.server_events, expected_events());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn any_split_gives_the_same_events(
        cuts_a in prop::collection::vec(any::<prop::sample::Index>(), 0..40),
        cuts_b in prop::collection::vec(any::<prop::sample::Index>(), 0..80),
    ) {
        let rec = publish_session();
        let mut s = ServerSession::new(Limits::default());
        let mut events = Vec::new();
        for (bytes, cuts) in [(&rec.before_publish, &cuts_a), (&rec.after_publish, &cuts_b)] {
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            points.extend([0, bytes.len()]);
            points.sort_unstable();
            for w in points.windows(2) {
                s.feed(&bytes[w[0]..w[1]]).expect("feed");
                node(&mut s, &mut events);
            }
        }
        prop_assert_eq!(events, rec.server_events);
    }
}

#[test]
fn byte_by_byte_gives_the_same_events() {
    let rec = publish_session();
    let mut s = ServerSession::new(Limits::default());
    let mut events = Vec::new();
    for b in rec.before_publish.iter().chain(&rec.after_publish) {
        s.feed(std::slice::from_ref(b)).expect("feed");
        node(&mut s, &mut events);
    }
    assert_eq!(events, rec.server_events);
}

#[test]
fn media_sent_before_the_answer_is_held_then_released() {
    let rec = publish_session();
    let mut s = ServerSession::new(Limits::default());
    s.feed(&rec.before_publish).expect("feed");
    s.feed(&rec.after_publish).expect("feed");
    let mut events: Vec<ServerEvent> = std::iter::from_fn(|| s.poll_event()).collect();
    // Everything arrived before the node answered: the publish was withdrawn
    // (FCUnpublish) before acceptance, so nothing was released.
    assert!(matches!(events[1], ServerEvent::PublishRequested { .. }));
    assert_eq!(events[2], ServerEvent::Unpublished { stream_id: 1 });
    assert!(s.accept_publish(1).is_err());
    assert_eq!(s.stats().dropped as usize, media_plan().len() + 1);

    // Without the withdrawal: held media comes out on acceptance, in order.
    let mut s = ServerSession::new(Limits::default());
    s.feed(&rec.before_publish).expect("feed");
    s.feed(&rec.after_publish[..end_of_media(&rec)]).expect("feed");
    events.clear();
    events.extend(std::iter::from_fn(|| s.poll_event()));
    assert_eq!(events.len(), 2);
    s.accept_publish(1).expect("accept");
    events.extend(std::iter::from_fn(|| s.poll_event()));
    let want = expected_events();
    assert_eq!(events, want[..want.len() - 1]);
}

/// Where the last media or data message of the recording's second part ends.
fn end_of_media(rec: &Recording) -> usize {
    let mut dec = ChunkDecoder::new(Limits::default());
    let mut input = &rec.before_publish[1 + 2 * PACKET_LEN..];
    while dec.decode(&mut input).expect("decodes").is_some() {}
    let after = &rec.after_publish[..];
    let mut input = after;
    let mut end = 0;
    while let Some(m) = dec.decode(&mut input).expect("decodes") {
        if m.type_id != msg::TYPE_COMMAND_AMF0 {
            end = after.len() - input.len();
        }
    }
    end
}

#[test]
fn publish_rejected_reaches_the_client() {
    let (mut c, mut s) = (publish_client(), ServerSession::new(Limits::default()));
    let mut cev = Vec::new();
    for _ in 0..10 {
        s.feed(&c.take_output()).expect("server");
        while let Some(e) = s.poll_event() {
            if let ServerEvent::PublishRequested { stream_id, .. } = e {
                s.reject_publish(stream_id, "NetStream.Publish.BadName", "busy")
                    .expect("reject");
            }
        }
        c.feed(&s.take_output()).expect("client");
        cev.extend(std::iter::from_fn(|| c.poll_event()));
    }
    assert_eq!(
        cev,
        [
            ClientEvent::Connected,
            ClientEvent::Rejected {
                code: "NetStream.Publish.BadName".into(),
                description: "busy".into()
            }
        ]
    );
    assert!(c.send_media(MediaKind::Video, 0, Bytes::new()).is_err());
}

#[test]
fn play_is_reported_and_refused() {
    let mut c = ClientSession::new(ClientConfig {
        app: "static".into(),
        tc_url: "rtmp://h/static".into(),
        mode: ClientMode::Play { name: "news".into() },
        limits: Limits::default(),
    });
    let mut s = ServerSession::new(Limits::default());
    let (mut sev, mut cev, mut sent) = (Vec::new(), Vec::new(), Vec::new());
    pump(&mut c, &mut s, &mut sev, &mut cev, &mut sent);
    assert_eq!(
        sev[1],
        ServerEvent::PlayRequested {
            stream_id: 1,
            name: "news".into()
        }
    );
    assert_eq!(
        cev.last(),
        Some(&ClientEvent::Rejected {
            code: "NetStream.Play.StreamNotFound".into(),
            description: "no".into()
        })
    );
}

#[test]
fn client_plays_media_from_a_server() {
    // A hand-driven server side: answers connect, createStream and play,
    // then sends an aggregate and a plain video message.
    let mut c = ClientSession::new(ClientConfig {
        app: "live".into(),
        tc_url: "rtmp://h/live".into(),
        mode: ClientMode::Play { name: "x".into() },
        limits: Limits::default(),
    });
    let out = c.take_output();
    assert_eq!(out.len(), 1 + PACKET_LEN);
    let mut s0s1s2 = vec![3u8];
    s0s1s2.extend(std::iter::repeat_n(0u8, 2 * PACKET_LEN));
    c.feed(&s0s1s2).expect("handshake");
    let mut dec = ChunkDecoder::new(Limits::default());
    let mut decode = |b: &[u8]| {
        let mut input = b;
        std::iter::from_fn(|| dec.decode(&mut input).expect("our output decodes")).collect::<Vec<_>>()
    };
    let sent = decode(&c.take_output()[PACKET_LEN..]);
    let connect = command(&sent[0]);
    assert_eq!(connect.name, "connect");
    let four_cc = connect.object.get("fourCcList").expect("fourCcList");
    assert_eq!(four_cc, &Value::StrictArray(vec!["hvc1".into()]));

    let mut enc = ChunkEncoder::new();
    let mut b = BytesMut::new();
    let info = msg::status_info("status", "NetConnection.Connect.Success", "ok");
    let amf = |sid: u32, v: &[Value]| msg::amf_message(3, sid, msg::TYPE_COMMAND_AMF0, v);
    enc.write(&mut b, &msg::window_ack_size(100)).expect("write");
    enc.write(&mut b, &amf(0, &["_result".into(), 1.0.into(), Value::Null, info]))
        .expect("write");
    enc.write(
        &mut b,
        &amf(0, &["_result".into(), 2.0.into(), Value::Null, 1.0.into()]),
    )
    .expect("write");
    let start = msg::status_info("status", "NetStream.Play.Start", "go");
    enc.write(&mut b, &amf(1, &["onStatus".into(), 0.0.into(), Value::Null, start]))
        .expect("write");
    let video = Message {
        csid: 6,
        timestamp: 77,
        type_id: msg::TYPE_VIDEO,
        stream_id: 1,
        payload: Bytes::from_static(&[0x17, 1, 2, 3]),
    };
    enc.write(&mut b, &video).expect("write");
    let ping = msg::user_control(msg::EVENT_PING_REQUEST, &9u32.to_be_bytes());
    enc.write(&mut b, &ping).expect("write");
    c.feed(&b).expect("feed");
    let events: Vec<ClientEvent> = std::iter::from_fn(|| c.poll_event()).collect();
    assert_eq!(
        events,
        [
            ClientEvent::Connected,
            ClientEvent::Started { stream_id: 1 },
            ClientEvent::Media {
                stream_id: 1,
                kind: MediaKind::Video,
                timestamp: 77,
                payload: Bytes::from_static(&[0x17, 1, 2, 3])
            }
        ]
    );
    let replies = decode(&c.take_output());
    let types: Vec<u8> = replies.iter().map(|m| m.type_id).collect();
    // createStream, Set Buffer Length, play, Ping Response, Acknowledgement
    // (window 100).
    assert_eq!(types, [20, 4, 20, 4, 3]);
    assert_eq!(command(&replies[2]).arg_str(0), Some("x"));
    assert_eq!(&replies[3].payload[..], &[0, 7, 0, 0, 0, 9]);
    assert_eq!(c.stats().acks_sent, 1);
}

// --- A server fed hand-made client bytes. ---

/// C0+C1+C2 of a plain handshake.
fn handshake_bytes() -> Vec<u8> {
    let mut b = vec![3u8];
    b.extend((0..2 * PACKET_LEN).map(|i| i as u8));
    b
}

fn client_bytes(msgs: &[Message]) -> Vec<u8> {
    let mut enc = ChunkEncoder::new();
    let mut b = BytesMut::new();
    for m in msgs {
        enc.write(&mut b, m).expect("write");
    }
    b.to_vec()
}

fn command(m: &Message) -> Command {
    let (values, err) = msg::decode_values(m.type_id, &m.payload);
    assert!(err.is_none());
    Command::from_values(values).expect("a command")
}

/// A server past the handshake, with the client's view of its output.
struct Peer {
    s: ServerSession,
    dec: ChunkDecoder,
}

impl Peer {
    fn new(limits: Limits) -> Self {
        let mut s = ServerSession::new(limits);
        s.feed(&handshake_bytes()).expect("handshake");
        assert!(s.handshake_done());
        assert_eq!(s.take_output().len(), 1 + 2 * PACKET_LEN);
        Peer {
            s,
            dec: ChunkDecoder::new(Limits::default()),
        }
    }

    fn send(&mut self, msgs: &[Message]) -> Result<(), RtmpError> {
        self.s.feed(&client_bytes(msgs))
    }

    /// Messages the server sent since the last call.
    fn replies(&mut self) -> Vec<Message> {
        let out = self.s.take_output();
        let mut input = &out[..];
        let mut msgs = Vec::new();
        while let Some(m) = self.dec.decode(&mut input).expect("our output decodes") {
            msgs.push(m);
        }
        msgs
    }

    fn events(&mut self) -> Vec<ServerEvent> {
        std::iter::from_fn(|| self.s.poll_event()).collect()
    }
}

fn server() -> Peer {
    Peer::new(Limits::default())
}

fn connect_values() -> Vec<Value> {
    vec![
        "connect".into(),
        1.0.into(),
        Value::Object(vec![
            ("app".into(), "static?k=v".into()),
            ("tcUrl".into(), "rtmp://h/static?k=v".into()),
        ]),
    ]
}

fn connected_server() -> Peer {
    let mut p = server();
    p.send(&[msg::amf_message(3, 0, msg::TYPE_COMMAND_AMF0, &connect_values())])
        .expect("connect");
    p.replies();
    assert!(matches!(p.events()[..], [ServerEvent::Connected { .. }]));
    p
}

#[test]
fn connect_is_answered_with_success() {
    let mut p = server();
    p.send(&[msg::amf_message(3, 0, msg::TYPE_COMMAND_AMF0, &connect_values())])
        .expect("connect");
    assert_eq!(
        p.events(),
        [ServerEvent::Connected {
            app: "static?k=v".into(),
            tc_url: Some("rtmp://h/static?k=v".into()),
            object_encoding: 0.0
        }]
    );
    let out = p.replies();
    let types: Vec<u8> = out.iter().map(|m| m.type_id).collect();
    // Window Ack Size, Set Peer Bandwidth, (Set Chunk Size applied), _result.
    assert_eq!(types, [5, 6, 20]);
    assert_eq!(p.dec.chunk_size(), 4096);
    let r = command(&out[2]);
    assert_eq!((r.name.as_str(), r.transaction_id), ("_result", 1.0));
    assert_eq!(
        r.args[0].get("code").and_then(Value::as_str),
        Some("NetConnection.Connect.Success")
    );
    assert!(r.object.get("fmsVer").is_some());
}

#[test]
fn odd_amf0_connect_is_accepted() {
    // Strict and ECMA arrays inside the command object, an end marker as a
    // bare 0x09, a stray one after it, and extra arguments.
    let mut body = amf::encode_all(&["connect".into(), 1.0.into()]);
    body.extend_from_slice(&[0x03, 0, 3]);
    body.extend_from_slice(b"app");
    amf::encode(&mut body, &"live".into());
    body.extend_from_slice(&[0, 10]);
    body.extend_from_slice(b"fourCcList");
    amf::encode(&mut body, &Value::StrictArray(vec!["hvc1".into(), "av01".into()]));
    body.extend_from_slice(&[0, 5]);
    body.extend_from_slice(b"extra");
    body.extend_from_slice(&[0x08, 0, 0, 0, 9, 0, 1, b'k', 0x05, 0, 0, 0x09]);
    body.extend_from_slice(&[0x09, 0x09]);
    amf::encode(&mut body, &Value::EcmaArray(vec![("x".into(), true.into())]));
    body.extend_from_slice(&[0, 0, 0x09]);
    let m = Message {
        csid: 3,
        timestamp: 0,
        type_id: msg::TYPE_COMMAND_AMF0,
        stream_id: 0,
        payload: Bytes::from(body),
    };
    let mut p = server();
    p.send(&[m]).expect("accepted");
    assert!(matches!(
        &p.events()[..],
        [ServerEvent::Connected { app, .. }] if app == "live"
    ));
    assert_eq!(p.s.stats().amf_errors, 0);
    assert_eq!(command(&p.replies()[2]).name, "_result");
}

#[test]
fn amf3_connect_is_accepted_and_answered_in_kind() {
    let mut body = vec![0u8];
    body.extend(amf::encode_all(&["connect".into(), 1.0.into()]));
    // AVM+ switch, then an AMF3 dynamic anonymous object.
    body.extend_from_slice(&[0x11, 0x0A, 0x0B, 0x01]);
    for (k, v) in [("app", "live"), ("tcUrl", "rtmp://h/live")] {
        body.push((k.len() as u8) << 1 | 1);
        body.extend_from_slice(k.as_bytes());
        body.extend_from_slice(&[0x06, (v.len() as u8) << 1 | 1]);
        body.extend_from_slice(v.as_bytes());
    }
    body.push(14 << 1 | 1);
    body.extend_from_slice(b"objectEncoding");
    body.extend_from_slice(&[0x04, 0x03]);
    body.push(0x01);
    let m = Message {
        csid: 3,
        timestamp: 0,
        type_id: msg::TYPE_COMMAND_AMF3,
        stream_id: 0,
        payload: Bytes::from(body),
    };
    let mut p = server();
    p.send(&[m]).expect("accepted");
    assert_eq!(
        p.events(),
        [ServerEvent::Connected {
            app: "live".into(),
            tc_url: Some("rtmp://h/live".into()),
            object_encoding: 3.0
        }]
    );
    let out = p.replies();
    let result = out.last().expect("an answer");
    assert_eq!(result.type_id, msg::TYPE_COMMAND_AMF3);
    assert_eq!(command(result).name, "_result");
    assert_eq!(command(result).args[0].get("objectEncoding"), Some(&Value::Number(3.0)));
}

#[test]
fn unknown_commands_are_answered_never_fatal() {
    let mut p = connected_server();
    let cmds = [
        msg::amf_message(3, 0, 20, &["fooBar".into(), 7.0.into(), Value::Null]),
        msg::amf_message(3, 0, 20, &["fooBaz".into(), 0.0.into(), Value::Null]),
        msg::amf_message(3, 0, 20, &["releaseStream".into(), 8.0.into(), Value::Null, "x".into()]),
        // No command name at all.
        msg::amf_message(3, 0, 20, &[1.0.into()]),
    ];
    p.send(&cmds).expect("never fatal");
    let out = p.replies();
    let answered: Vec<f64> = out.iter().map(|m| command(m).transaction_id).collect();
    assert_eq!(answered, [7.0, 8.0]);
    assert!(out.iter().all(|m| command(m).name == "_result"));
    assert_eq!(p.s.stats().unknown_commands, 2);
    assert_eq!(p.s.stats().dropped, 1);
}

#[test]
fn commands_before_connect_close_the_connection() {
    let mut p = server();
    let m = msg::amf_message(3, 0, 20, &["createStream".into(), 2.0.into(), Value::Null]);
    assert_eq!(p.send(&[m]).expect_err("refused").kind(), "protocol");
}

#[test]
fn garbage_after_the_handshake_is_an_error_and_stays_one() {
    let mut p = server();
    let err = p.s.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").expect_err("refused");
    assert_eq!(err.kind(), "protocol");
    assert_eq!(p.s.feed(&[0x03]).expect_err("still failed"), err);
}

#[test]
fn chunk_size_and_length_limits_close_the_connection() {
    for size in [0u32, 0x8000_0000] {
        let mut p = server();
        let m = msg::control(msg::TYPE_SET_CHUNK_SIZE, &size.to_be_bytes());
        assert_eq!(p.send(&[m]).expect_err("refused"), RtmpError::ChunkSize(size));
    }
    let mut p = Peer::new(Limits {
        max_message_len: 1 << 20,
        ..Limits::default()
    });
    // A video message header announcing 2 MiB.
    let err =
        p.s.feed(&[0x06, 0, 0, 0, 0x20, 0, 0, 9, 1, 0, 0, 0])
            .expect_err("refused");
    assert_eq!(err.kind(), "too_large");
}

#[test]
fn unadmitted_limits_are_tight_until_widened() {
    // A video message header announcing 2 MiB.
    let header = [0x06, 0, 0, 0, 0x20, 0, 0, 9, 1, 0, 0, 0];
    let mut p = Peer::new(Limits::UNADMITTED);
    assert_eq!(p.s.feed(&header).expect_err("refused").kind(), "too_large");
    let mut p = Peer::new(Limits::UNADMITTED);
    p.s.set_limits(Limits::default());
    p.s.feed(&header).expect("accepted once widened");
}

#[test]
fn media_for_a_stream_not_publishing_is_dropped_and_counted() {
    let mut p = connected_server();
    let video = Message {
        csid: 6,
        timestamp: 0,
        type_id: msg::TYPE_VIDEO,
        stream_id: 1,
        payload: Bytes::from_static(b"v"),
    };
    p.send(&[video]).expect("feed");
    assert_eq!(p.events(), []);
    assert_eq!(p.s.stats().dropped, 1);
}

#[test]
fn held_media_is_capped() {
    let mut p = Peer::new(Limits {
        max_held_bytes: 1000,
        ..Limits::default()
    });
    // publish without createStream, media right behind it.
    let publish = msg::amf_message(5, 1, 20, &["publish".into(), 0.0.into(), Value::Null, "n".into()]);
    let mut all = vec![msg::amf_message(3, 0, 20, &connect_values()), publish];
    all.extend((0..5).map(|i| Message {
        csid: 6,
        timestamp: i * 40,
        type_id: msg::TYPE_VIDEO,
        stream_id: 1,
        payload: Bytes::from(vec![i as u8; 400]),
    }));
    p.send(&all).expect("feed");
    let ev = p.events();
    assert!(matches!(
        &ev[1],
        ServerEvent::PublishRequested { stream_id: 1, name, kind: PublishKind::Live } if name == "n"
    ));
    p.replies();
    p.s.accept_publish(1).expect("accept");
    let released: Vec<u32> = p
        .events()
        .into_iter()
        .filter_map(|e| match e {
            ServerEvent::Media { timestamp, .. } => Some(timestamp),
            _ => None,
        })
        .collect();
    assert_eq!(released, [0, 40]);
    assert_eq!(p.s.stats().dropped, 3);
    assert_eq!(p.s.stats().media_in, 2);
    let out = p.replies();
    assert_eq!(out[0].type_id, msg::TYPE_USER_CONTROL, "Stream Begin");
    let status = command(out.last().expect("onStatus"));
    assert_eq!(
        status.args[0].get("code").and_then(Value::as_str),
        Some("NetStream.Publish.Start")
    );
    assert_eq!(out.last().map(|m| m.stream_id), Some(1));
    assert!(p.s.accept_publish(1).is_err(), "only once");
}

#[test]
fn stream_count_is_capped() {
    let mut p = connected_server();
    let creates: Vec<Message> = (0..20)
        .map(|i| {
            msg::amf_message(
                3,
                0,
                20,
                &["createStream".into(), (10.0 + i as f64).into(), Value::Null],
            )
        })
        .collect();
    p.send(&creates).expect("never fatal");
    let names: Vec<String> = p.replies().iter().map(|m| command(m).name).collect();
    assert_eq!(names.iter().filter(|n| *n == "_result").count(), 16);
    assert_eq!(names.iter().filter(|n| *n == "_error").count(), 4);
}

#[test]
fn acknowledgements_follow_the_window() {
    let mut p = connected_server();
    let media: Vec<Message> = (0..10)
        .map(|i| Message {
            csid: 6,
            timestamp: i,
            type_id: msg::TYPE_VIDEO,
            stream_id: 1,
            payload: Bytes::from(vec![0; 300]),
        })
        .collect();
    p.send(&[msg::window_ack_size(1000)]).expect("feed");
    for piece in client_bytes(&media).chunks(500) {
        p.s.feed(piece).expect("feed");
    }
    let acks: Vec<u32> = p
        .replies()
        .iter()
        .filter(|m| m.type_id == msg::TYPE_ACKNOWLEDGEMENT)
        .map(|m| u32::from_be_bytes(m.payload[..4].try_into().expect("4 bytes")))
        .collect();
    assert!(acks.len() >= 2, "{acks:?}");
    assert!(acks.windows(2).all(|w| w[1] - w[0] >= 1000));
    assert_eq!(p.s.stats().acks_sent as usize, acks.len());
}

#[test]
fn ping_request_gets_a_ping_response() {
    let mut p = connected_server();
    let ping = msg::user_control(msg::EVENT_PING_REQUEST, &0x0102_0304u32.to_be_bytes());
    p.send(&[ping]).expect("feed");
    let out = p.replies();
    assert_eq!(out.len(), 1);
    assert_eq!(&out[0].payload[..], &[0, 7, 1, 2, 3, 4]);
}

proptest! {
    #[test]
    fn arbitrary_bytes_after_a_handshake_never_panic(
        data in prop::collection::vec(any::<u8>(), 0..3000),
        connect_first in any::<bool>(),
    ) {
        let mut p = if connect_first { connected_server() } else { server() };
        let _ = p.s.feed(&data);
        p.events();
        let _ = p.s.take_output();
    }
}

/// Writes the seed corpora of the `rtmp_chunk` and `amf0` fuzz targets
/// (`cargo test -p strom-media --lib write_fuzz_seeds -- --ignored`).
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).expect("corpus dir");
        std::fs::write(dir.join(name), bytes).expect("seed written");
    };

    // A publish as OBS does it, with metadata, audio, and a video message
    // over the 4096-byte chunk size; mode 0 (server), pieces of 64 bytes.
    let (mut c, mut s) = (publish_client(), ServerSession::new(Limits::default()));
    let (mut sev, mut cev, mut sent) = (Vec::new(), Vec::new(), Vec::new());
    pump(&mut c, &mut s, &mut sev, &mut cev, &mut sent);
    c.send_metadata(&metadata()).expect("metadata");
    c.send_media(MediaKind::Video, 0, Bytes::from(vec![0x17; 4500]))
        .expect("video");
    c.send_media(MediaKind::Audio, 0xFF_FFFF, Bytes::from_static(&[0xAF, 1, 2]))
        .expect("audio");
    c.close().expect("close");
    pump(&mut c, &mut s, &mut sev, &mut cev, &mut sent);
    let mut seed = vec![63 << 2];
    seed.extend_from_slice(&sent[1 + 2 * PACKET_LEN..]);
    write("rtmp_chunk", "server_publish", &seed);

    // An AMF3 (type 17) connect, fed byte by byte.
    let mut body = vec![0u8];
    body.extend(amf::encode_all(&["connect".into(), 1.0.into()]));
    body.extend_from_slice(&[0x11, 0x0A, 0x0B, 0x01, 0x07, b'a', b'p', b'p', 0x06, 0x09]);
    body.extend_from_slice(b"live\x01");
    let m = Message {
        csid: 3,
        timestamp: 0,
        type_id: msg::TYPE_COMMAND_AMF3,
        stream_id: 0,
        payload: Bytes::from(body.clone()),
    };
    let mut seed = vec![0u8];
    seed.extend(client_bytes(&[m]));
    write("rtmp_chunk", "server_amf3_connect", &seed);

    // A server's answers to a play client, then media; mode 1.
    let mut enc = ChunkEncoder::new();
    let mut b = BytesMut::new();
    let amf = |sid: u32, v: &[Value]| msg::amf_message(3, sid, msg::TYPE_COMMAND_AMF0, v);
    let ok = msg::status_info("status", "NetConnection.Connect.Success", "ok");
    let start = msg::status_info("status", "NetStream.Play.Start", "go");
    for m in [
        msg::window_ack_size(5000),
        msg::set_peer_bandwidth(5000, msg::LIMIT_DYNAMIC),
        amf(0, &["_result".into(), 1.0.into(), Value::Null, ok]),
        amf(0, &["_result".into(), 2.0.into(), Value::Null, 1.0.into()]),
        amf(1, &["onStatus".into(), 0.0.into(), Value::Null, start]),
        msg::amf_message(5, 1, msg::TYPE_DATA_AMF0, &metadata()),
        Message {
            csid: 6,
            timestamp: 40,
            type_id: msg::TYPE_VIDEO,
            stream_id: 1,
            payload: Bytes::from(vec![0x27; 300]),
        },
    ] {
        enc.write(&mut b, &m).expect("write");
    }
    let mut seed = vec![1 | 15 << 2];
    seed.extend_from_slice(&b);
    write("rtmp_chunk", "client_play", &seed);

    // Bare chunk decoder: extended timestamps on type-3 chunks, types 1–3.
    let mut seed = vec![2 | 7 << 2];
    seed.extend_from_slice(&[0x06, 0xFF, 0xFF, 0xFF, 0x00, 0x01, 0x2C, 0x09, 1, 0, 0, 0]);
    seed.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    for (i, n) in [128usize, 128, 44].into_iter().enumerate() {
        if i > 0 {
            seed.push(0xC6);
            seed.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        }
        seed.extend(std::iter::repeat_n(i as u8, n));
    }
    seed.extend_from_slice(&[
        0x46, 0, 0, 40, 0, 0, 2, 8, 0xAF, 1, 0x86, 0, 0, 20, 0xAF, 2, 0xC6, 0xAF, 3,
    ]);
    write("rtmp_chunk", "decoder_chunks", &seed);

    // AMF bodies.
    let obs = amf::encode_all(&[
        "connect".into(),
        1.0.into(),
        Value::Object(vec![
            ("app".into(), "static".into()),
            ("type".into(), "nonprivate".into()),
            ("flashVer".into(), "FMLE/3.0 (compatible; FMSc/1.0)".into()),
            ("swfUrl".into(), "rtmp://h/static".into()),
            ("tcUrl".into(), "rtmp://h/static".into()),
        ]),
    ]);
    write("amf0", "connect_obs", &obs);
    let mut meta = amf::encode_all(&["@setDataFrame".into()]);
    meta.extend(amf::encode_all(&[
        "onMetaData".into(),
        Value::EcmaArray(vec![
            ("duration".into(), 0.0.into()),
            ("width".into(), 1920.0.into()),
            ("height".into(), 1080.0.into()),
            ("videocodecid".into(), 7.0.into()),
            ("audiocodecid".into(), 10.0.into()),
            ("encoder".into(), "obs-output module (libobs version 30.0.0)".into()),
            ("stereo".into(), true.into()),
        ]),
    ]));
    write("amf0", "onmetadata", &meta);
    write("amf0", "amf3_connect", &body[1..]);
    let mut odd = amf::encode_all(&["play".into(), 0.0.into(), Value::Null]);
    odd.extend_from_slice(&[0x0A, 0, 0, 0, 2, 0x02, 0, 1, b'x', 0x09, 0x09, 0x07, 0, 1]);
    odd.extend_from_slice(&[0x10, 0, 1, b'C', 0, 1, b'k', 0x0B, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x09]);
    odd.extend_from_slice(&[0x0C, 0, 0, 0, 2, b'h', b'i', 0, 0, 0x09]);
    write("amf0", "odd_markers", &odd);
}

#[test]
fn create_stream_skips_ids_taken_without_asking() {
    let mut p = connected_server();
    let publish = msg::amf_message(5, 1, 20, &["publish".into(), 0.0.into(), Value::Null, "a".into()]);
    let create = msg::amf_message(3, 0, 20, &["createStream".into(), 4.0.into(), Value::Null]);
    p.send(&[publish, create]).expect("feed");
    assert!(matches!(
        p.events()[..],
        [ServerEvent::PublishRequested { stream_id: 1, .. }]
    ));
    let created = p.replies().iter().map(command).find(|c| c.name == "_result");
    assert_eq!(created.map(|c| c.args[0].clone()), Some(Value::Number(2.0)));
    p.s.accept_publish(1).expect("stream 1 still waits");
}
