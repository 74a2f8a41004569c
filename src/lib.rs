//! points-ledger: a loyalty-points program as a verifiable token ledger.
//!
//! Points are a token moved by ed25519-signed operations (mint, earn, transfer, burn, …)
//! appended to an append-only, hash-chained log in sled, with an RFC 9162 Merkle tree over
//! the entries and signed checkpoints. The format and the rules are specified in
//! `ledger-spec/`; this crate is one implementation of it.
//!
//! Layout: [`op`] (types), [`codec`] (the canonical bytes), [`crypto`] (signatures),
//! [`rules`] (the pure state machine), [`chain`] (entry hashes and links), [`merkle`]
//! (tree and proofs), [`checkpoint`] (signed notes), [`store`] (sled and the sequencer),
//! [`api`] (HTTP), [`server`] (`points serve`), [`client`] (for merchants and members).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod api;
pub mod audit;
pub mod bench;
pub mod chain;
pub mod checkpoint;
pub mod client;
pub mod codec;
pub mod crypto;
pub mod export;
pub mod loyalty;
pub mod mall;
pub mod merkle;
pub mod op;
pub mod rules;
pub mod server;
pub mod settlement;
pub mod store;
pub mod verify;
pub mod web;
