//! The write-ahead log's frame codec, the CPU work of every commit that goes to the log:
//!
//! - `wal_frame/encode_and_seal/N`: [`encode_unsealed`] of an N-byte record into a reused
//!   buffer (what an appender does under the log's lock), then [`seal_frame`] (the xxh3
//!   checksum the writer adds once the segment is known);
//! - `wal_frame/decode/N`: [`decode_frame`] of a sealed N-byte frame (what recovery and the
//!   reader do per record: bounds, position, checksum and padding checks, no copy).
//!
//! 128 bytes is the `inmem bench --workload wal` record; 4 KiB a large commit.

#![allow(
    clippy::expect_used,
    reason = "a bench whose frame does not decode has nothing to measure"
)]
#![allow(missing_docs, reason = "criterion_group! generates an undocumented pub fn")]

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use inmem_wal::format::{decode_frame, encode_unsealed, seal_frame, Decoded, FrameKind};
use inmem_wal::LogPosition;

#[allow(dead_code, reason = "the prefill is the engine benches'")]
mod common;

/// Record sizes measured.
const RECORD_BYTES: [usize; 2] = [128, 4096];
/// The checksum seed (a segment number) and the position every frame claims.
const SEED: u64 = 7;
const POSITION: LogPosition = LogPosition::new(1 << 20);

fn frame_codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("wal_frame");
    for len in RECORD_BYTES {
        let payload = vec![0x5A_u8; len];
        group.throughput(Throughput::Bytes(len as u64));
        let mut buffer = Vec::with_capacity(2 * len + 64);
        group.bench_with_input(BenchmarkId::new("encode_and_seal", len), &payload, |b, payload| {
            b.iter(|| {
                buffer.clear();
                encode_unsealed(&mut buffer, FrameKind::RECORD, POSITION, black_box(payload));
                seal_frame(&mut buffer, SEED, POSITION)
            });
        });
        let mut sealed = Vec::new();
        encode_unsealed(&mut sealed, FrameKind::RECORD, POSITION, &payload);
        seal_frame(&mut sealed, SEED, POSITION).expect("a whole frame");
        group.bench_with_input(BenchmarkId::new("decode", len), &sealed, |b, sealed| {
            b.iter(|| match decode_frame(black_box(sealed), POSITION, SEED, 1 << 20) {
                Decoded::Frame(frame) => frame.payload.len(),
                other => panic!("the frame does not decode: {other:?}"),
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = frame_codec
}
criterion_main!(benches);
