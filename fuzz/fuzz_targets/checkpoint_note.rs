//! C2SP signed notes and checkpoints: opening a note, parsing a checkpoint body and parsing
//! a verifier key never panic on any text; a body that parses is exactly the canonical body
//! of what it parsed to; a checkpoint signed here opens to itself, and a note changed in any
//! one byte never opens to another checkpoint.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use points_ledger::checkpoint::{self, Checkpoint, NoteVerifier};
use points_ledger::crypto::Keypair;

const ORIGIN: &str = "fuzz.points.local/log";

/// The fields of a checkpoint to sign, drawn from the same input.
#[derive(Arbitrary, Debug)]
struct Fields {
    size: u64,
    root: [u8; 32],
    head: [u8; 32],
    time_ms: u64,
    at: u16,
    byte: u8,
}

fuzz_target!(|data: &[u8]| {
    let key = Keypair::from_seed([7; 32]);
    let verifier = NoteVerifier::new(ORIGIN, key.public_key()).expect("a valid key name");

    // The input as text (seeds are real notes, bodies and verifier keys).
    let text = String::from_utf8_lossy(data);
    if let Ok(v) = NoteVerifier::parse(&text) {
        assert_eq!(NoteVerifier::parse(&v.vkey()).as_ref(), Ok(&v));
    }
    if let Ok(cp) = Checkpoint::parse_body(&text) {
        assert_eq!(cp.body(), text, "a body parsed that is not canonical");
    }
    let _ = checkpoint::check_note_text(&text);
    let _ = checkpoint::open_note(&text, std::slice::from_ref(&verifier));
    let _ = Checkpoint::open(&text, &verifier);

    let Ok(input) = Fields::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    // A checkpoint signed here.
    let cp = Checkpoint {
        origin: ORIGIN.to_string(),
        size: input.size,
        root: input.root,
        head: input.head,
        time_ms: input.time_ms,
    };
    if cp.validate().is_err() {
        return;
    }
    let note = cp.sign(ORIGIN, &key);
    let (opened, _) = Checkpoint::open(&note, &verifier).expect("a note signed here opens");
    assert_eq!(opened, cp);
    let mut bytes = note.clone().into_bytes();
    let i = usize::from(input.at) % bytes.len();
    bytes[i] = input.byte;
    if let Ok(changed) = String::from_utf8(bytes) {
        if changed != note {
            if let Ok((other, _)) = Checkpoint::open(&changed, &verifier) {
                assert_eq!(other, cp, "a changed note opened to another checkpoint");
            }
        }
    }
});
