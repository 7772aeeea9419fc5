//! The byte examples in docs/PROTOCOL.md are what the encoder writes (and decode back), so the
//! specification cannot drift from the implementation.

use bytes::{Bytes, BytesMut};
use tether_core::wire::{Decoder, Frame, Hello, HelloKind, Positions, PROTOCOL_VERSION};
use tether_core::{Config, Reason};

fn protocol_md() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md");
    std::fs::read_to_string(path).expect("docs/PROTOCOL.md is readable")
}

fn encode(f: &Frame) -> Vec<u8> {
    let mut b = BytesMut::new();
    f.encode(&mut b);
    let mut d = Decoder::new(1 << 20);
    d.push(b.clone().freeze());
    assert_eq!(d.next_frame().unwrap().as_ref(), Some(f), "the example decodes back");
    b.to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

/// The bytes of the fenced block that follows `intro` in the document: on each line, the leading
/// two-digit hex tokens (`00 × 16` repeats a byte), up to the annotation.
fn block_after(doc: &str, intro: &str) -> Vec<u8> {
    let at = doc.find(intro).unwrap_or_else(|| panic!("PROTOCOL.md lost {intro:?}"));
    let block = doc[at..].split("```").nth(1).expect("a fenced block follows");
    let mut out = Vec::new();
    for line in block.lines() {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let mut i = 0;
        while let Some(byte) = tokens.get(i).and_then(|t| parse_byte(t)) {
            if tokens.get(i + 1) == Some(&"×") {
                let n: usize = tokens[i + 2].parse().unwrap();
                out.extend(std::iter::repeat_n(byte, n));
                i += 3;
            } else {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

fn parse_byte(token: &str) -> Option<u8> {
    (token.len() == 2).then(|| u8::from_str_radix(token, 16).ok()).flatten()
}

#[test]
fn the_framing_table_examples_are_what_the_encoder_writes() {
    let doc = protocol_md();
    let examples = [
        (Frame::CloseDone, "`00 00 00 01 0a 3d 32 c6 7a`"),
        (Frame::Ping { token: 1 }, "`00 00 00 09 06 00 00 00 00 00 00 00 01 f0 e2 ae 1e`"),
        (Frame::ConnClose { reason: Reason::IdleTimeout }, "`00 00 00 02 0c 21 19 0d 81 3e`"),
        (
            Frame::Reject { reason: Reason::UnknownSession, min_version: 2, max_version: 2 },
            "`00 00 00 06 03 03 00 02 00 02 44 e0 35 fe`",
        ),
    ];
    for (frame, written) in examples {
        assert_eq!(format!("`{}`", hex(&encode(&frame))), written, "{frame:?}");
        assert!(doc.contains(written), "PROTOCOL.md shows {frame:?} as {written}");
    }
    let data = encode(&Frame::data(0, 0, &[Bytes::from_static(b"hi")]));
    let written = "`00 00 00 14 04` + 16 zero bytes + `02 68 69 f6 e9 e7 63`";
    assert_eq!(format!("`{}` + 16 zero bytes + `{}`", hex(&data[..5]), hex(&data[21..])), written);
    assert_eq!(data[5..21], [0; 16]);
    assert!(doc.contains(written));
}

#[test]
fn the_hello_example_is_what_a_default_client_writes() {
    let c = Config::default();
    let hello = Frame::Hello(Hello {
        min_version: PROTOCOL_VERSION,
        max_version: PROTOCOL_VERSION,
        kind: HelloKind::New,
        session_id: 0,
        secret: [0; 16],
        positions: Positions {
            received: 0,
            acked: 0,
            max_seq: u64::from(c.receive_window_messages),
            max_bytes: c.receive_window_bytes,
        },
        max_message_size: c.max_message_size,
    });
    let doc = protocol_md();
    assert_eq!(block_after(&doc, "A new-session `Hello` from a client"), encode(&hello));
}

#[test]
fn the_data_run_example_is_what_the_encoder_writes() {
    let run = [Bytes::from_static(b"hi"), Bytes::new(), Bytes::from_static(b"abc")];
    let doc = protocol_md();
    let shown = block_after(&doc, "A `Data` frame with three messages");
    assert_eq!(shown, encode(&Frame::data(5, 2, &run)));
    let long = encode(&Frame::data(0, 0, &[Bytes::from(vec![0x61; 200])]));
    assert_eq!(long[21..23], [0xc8, 0x01], "a 200-byte message's prefix, as the text says");
}

/// Section 12's table is what `Reason` decodes, names and classifies: every listed code decodes to
/// the variant of that name, its category says whether it is a protocol violation, and its
/// `Display` (what the adapters log) is the name and the code. Codes not listed decode as
/// `Unknown`.
#[test]
fn the_reason_code_table_is_what_reason_decodes_and_classifies() {
    let doc = protocol_md();
    let at = doc.find("## 12. Reason codes").expect("PROTOCOL.md has section 12");
    let section = &doc[at..at + doc[at..].find("\n## 13.").expect("section 13 follows")];
    let mut listed = Vec::new();
    for line in section.lines().filter(|l| l.starts_with("| ")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let Ok(code) = cells[1].parse::<u8>() else { continue }; // the header row
        let name = cells[2].trim_matches('`');
        let reason = Reason::from_code(code);
        assert_eq!(format!("{reason:?}"), name, "code {code}");
        assert_eq!(reason.code(), code, "{name}");
        assert_eq!(reason.to_string(), format!("{name} ({code})"), "Display of {name}");
        assert_eq!(
            reason.is_protocol_violation(),
            cells[3] == "protocol violation",
            "{name}: category {:?}",
            cells[3]
        );
        listed.push(code);
    }
    assert!(listed.len() >= 27, "the table lists every reason ({} rows read)", listed.len());
    for code in (0..=255u8).filter(|c| !listed.contains(c)) {
        assert_eq!(Reason::from_code(code), Reason::Unknown, "unlisted code {code}");
    }
    assert!(!Reason::Unknown.is_protocol_violation());
    assert_eq!(Reason::ChecksumMismatch.to_string(), "ChecksumMismatch (18)");
}
