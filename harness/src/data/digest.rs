//! Checksums of data files: MD5 to compare with published sums, SHA-256 for our records.

use md5::Md5;
use sha2::{Digest, Sha256};

pub fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The `sha256sum`-compatible listing of `files` (name, contents).
pub fn sha256_listing(files: &[(&str, &[u8])]) -> String {
    files
        .iter()
        .map(|(name, b)| format!("{}  {name}\n", sha256_hex(b)))
        .collect()
}
