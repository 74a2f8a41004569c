//! Batch signature verification says exactly what one-by-one verification says, item by
//! item, for any mix of valid signatures and arbitrary or tampered keys, messages and
//! signatures (batches are long enough to span several chunks and hit the fallback that
//! names the bad items).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use points_ledger::crypto::{self, BatchItem, Keypair};

/// Longest batch tried: a few of the verifier's chunks.
const ITEMS_MAX: usize = 600;

#[derive(Arbitrary, Debug)]
enum Tamper {
    None,
    Key([u8; 32]),
    Signature([u8; 64]),
    FlipSignature {
        at: u8,
        bit: u8,
    },
    FlipMessage {
        at: u16,
        bit: u8,
    },
    FlipKey {
        at: u8,
        bit: u8,
    },
    /// The identity point as R (small order), s unchanged.
    SmallOrderR,
    /// s + L: the same scalar, not in canonical form.
    NonCanonicalS,
    /// The identity point as the key (small order).
    SmallOrderKey,
}

#[derive(Arbitrary, Debug)]
struct Item {
    key: u8,
    msg: Vec<u8>,
    tamper: Tamper,
}

#[derive(Arbitrary, Debug)]
struct Input {
    items: Vec<Item>,
    /// Repeat the items this many times over (bigger batches, more chunks).
    repeat: u8,
}

/// The group order L, little-endian.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// The encoding of the identity point.
const IDENTITY: [u8; 32] = {
    let mut p = [0u8; 32];
    p[0] = 1;
    p
};

fn add_l(s: &mut [u8]) {
    let mut carry = 0u16;
    for (b, l) in s.iter_mut().zip(L) {
        let v = u16::from(*b) + u16::from(l) + carry;
        *b = v as u8;
        carry = v >> 8;
    }
}

fuzz_target!(|input: Input| {
    let keys: Vec<Keypair> = (0..4u8).map(|i| Keypair::from_seed([i + 1; 32])).collect();
    let mut owned: Vec<([u8; 32], Vec<u8>, [u8; 64])> = Vec::new();
    let rounds = 1 + usize::from(input.repeat % 4);
    'fill: for _ in 0..rounds {
        for item in &input.items {
            if owned.len() >= ITEMS_MAX {
                break 'fill;
            }
            let kp = &keys[usize::from(item.key) % keys.len()];
            let mut pk = kp.public_key();
            let mut msg = item.msg.clone();
            let mut sig = kp.sign(&msg);
            match &item.tamper {
                Tamper::None => {}
                Tamper::Key(k) => pk = *k,
                Tamper::Signature(s) => sig = *s,
                Tamper::FlipSignature { at, bit } => sig[usize::from(*at) % 64] ^= 1 << (bit % 8),
                Tamper::FlipMessage { at, bit } => {
                    if msg.is_empty() {
                        msg.push(0);
                    } else {
                        let i = usize::from(*at) % msg.len();
                        msg[i] ^= 1 << (bit % 8);
                    }
                }
                Tamper::FlipKey { at, bit } => pk[usize::from(*at) % 32] ^= 1 << (bit % 8),
                Tamper::SmallOrderR => sig[..32].copy_from_slice(&IDENTITY),
                Tamper::NonCanonicalS => add_l(&mut sig[32..]),
                Tamper::SmallOrderKey => pk = IDENTITY,
            }
            owned.push((pk, msg, sig));
        }
    }
    let items: Vec<BatchItem<'_>> = owned
        .iter()
        .map(|(pk, msg, sig)| BatchItem {
            public_key: pk,
            msg,
            signature: sig,
        })
        .collect();
    let batch = crypto::verify_batch(&items);
    assert_eq!(batch.len(), items.len());
    for (i, (item, got)) in items.iter().zip(&batch).enumerate() {
        let alone = crypto::verify(item.public_key, item.msg, item.signature);
        assert_eq!(*got, alone, "item {i} of {}: {item:?}", items.len());
    }
});
