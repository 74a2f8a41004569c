//! RFC 9162 proofs: the verifiers never panic on arbitrary sizes, indexes, roots and proofs;
//! proofs generated from a tree of arbitrary size (stored as perfect nodes, the way the store
//! keeps them) verify, and a proof with one bit changed, or for another leaf, does not.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use points_ledger::merkle::{self, Frontier, Hash, MemNodes};

/// Largest generated tree, in leaves.
const LEAVES_MAX: u64 = 700;

#[derive(Arbitrary, Debug)]
struct Input {
    // Arbitrary verifier inputs.
    leaf: Hash,
    index: u64,
    size: u64,
    root: Hash,
    proof: Vec<Hash>,
    old_size: u64,
    new_size: u64,
    old_root: Hash,
    new_root: Hash,
    consistency: Vec<Hash>,
    // A generated tree.
    leaves: u16,
    salt: u8,
    pick: u64,
    pick_old: u64,
    flip: u16,
}

fn leaf(salt: u8, i: u64) -> Hash {
    let mut data = vec![salt];
    data.extend_from_slice(&i.to_le_bytes());
    merkle::leaf_hash(&data)
}

fn flipped(proof: &[Hash], flip: u16) -> Vec<Hash> {
    let mut p = proof.to_vec();
    let bit = usize::from(flip) % (p.len() * 256);
    p[bit / 256][(bit % 256) / 8] ^= 1 << (bit % 8);
    p
}

fuzz_target!(|input: Input| {
    let _ = merkle::verify_inclusion(
        &input.leaf,
        input.index,
        input.size,
        &input.proof,
        &input.root,
    );
    let _ = merkle::verify_consistency(
        input.old_size,
        input.new_size,
        &input.old_root,
        &input.new_root,
        &input.consistency,
    );

    let n = u64::from(input.leaves) % (LEAVES_MAX + 1);
    let mut nodes = MemNodes::new();
    let mut frontier = Frontier::new();
    for i in 0..n {
        nodes.insert_all(&frontier.append(leaf(input.salt, i)));
    }
    let root = merkle::root_at(n, &nodes).expect("every node of the tree is stored");
    assert_eq!(root, frontier.root());
    assert_eq!(Frontier::load(n, &nodes).expect("frontier").root(), root);
    if n == 0 {
        assert_eq!(root, merkle::empty_root());
        return;
    }

    let i = input.pick % n;
    let proof = merkle::inclusion_proof(i, n, &nodes).expect("inclusion proof");
    let l = leaf(input.salt, i);
    assert_eq!(merkle::verify_inclusion(&l, i, n, &proof, &root), Ok(()));
    if !proof.is_empty() {
        assert!(merkle::verify_inclusion(&l, i, n, &flipped(&proof, input.flip), &root).is_err());
        let other = (i + 1) % n;
        assert!(merkle::verify_inclusion(&leaf(input.salt, other), i, n, &proof, &root).is_err());
    }

    let m = 1 + input.pick_old % n;
    let old_root = merkle::root_at(m, &nodes).expect("old root");
    let proof = merkle::consistency_proof(m, n, &nodes).expect("consistency proof");
    assert_eq!(
        merkle::verify_consistency(m, n, &old_root, &root, &proof),
        Ok(())
    );
    if !proof.is_empty() {
        let bad = flipped(&proof, input.flip);
        assert!(merkle::verify_consistency(m, n, &old_root, &root, &bad).is_err());
    }
});
