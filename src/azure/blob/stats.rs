//! Request and byte counters of one container client (what benchmarks and tests report).

use std::sync::atomic::{AtomicU64, Ordering};

/// Kinds of request the client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Head,
    Get,
    List,
    PutBlob,
    PutBlock,
    PutBlockList,
    Copy,
}

const OPS: usize = 7;

#[derive(Debug, Default)]
pub(super) struct Counters {
    requests: [AtomicU64; OPS],
    bytes_sent: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlobStats {
    pub head: u64,
    pub get: u64,
    pub list: u64,
    pub put_blob: u64,
    pub put_block: u64,
    pub put_block_list: u64,
    pub copy: u64,
    /// Request body bytes sent (file content and index/manifest blobs).
    pub bytes_sent: u64,
}

impl BlobStats {
    pub fn total_requests(&self) -> u64 {
        self.head
            + self.get
            + self.list
            + self.put_blob
            + self.put_block
            + self.put_block_list
            + self.copy
    }
}

impl Counters {
    pub(super) fn record(&self, op: Op, body_bytes: u64) {
        self.requests[op as usize].fetch_add(1, Ordering::Relaxed);
        self.bytes_sent.fetch_add(body_bytes, Ordering::Relaxed);
    }

    pub(super) fn snapshot(&self) -> BlobStats {
        let n = |op: Op| self.requests[op as usize].load(Ordering::Relaxed);
        BlobStats {
            head: n(Op::Head),
            get: n(Op::Get),
            list: n(Op::List),
            put_blob: n(Op::PutBlob),
            put_block: n(Op::PutBlock),
            put_block_list: n(Op::PutBlockList),
            copy: n(Op::Copy),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
        }
    }
}
