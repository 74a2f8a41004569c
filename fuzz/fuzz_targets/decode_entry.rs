//! Canonical decoding of an entry (the Merkle leaf data): never panics, and whatever decodes
//! re-encodes to exactly the input, so an entry's hash is a function of its value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use points_ledger::chain::{self, Head};
use points_ledger::{codec, merkle};

fuzz_target!(|data: &[u8]| {
    let Ok(entry) = codec::decode_entry(data) else {
        return;
    };
    let (bytes, hash) = chain::seal(&entry);
    assert_eq!(bytes, data, "decoded an entry that is not canonical");
    assert_eq!(hash, chain::entry_hash(data));
    let _ = merkle::leaf_hash(data);
    // Linking checks never panic, whatever the entry claims.
    let _ = Head::EMPTY.check_link(&entry);
    let head = Head {
        next_seq: entry.seq,
        hash: entry.prev_hash,
        timestamp_ms: entry.timestamp_ms,
    };
    assert_eq!(head.check_link(&entry), Ok(()));
});
