//! The batch decoder never panics, whatever the bytes, and a corrupted byte inside the
//! CRC'd range of a batch is always detected ("bad bytes on disk are a value").

use ksim::log::{
    check_batch, decode_batch, decode_batches, parse_header, BatchBuilder, BatchError, BatchMeta,
    LeaderEpoch, Offset, ProducerId, BATCH_HEADER_BYTES,
};
use proptest::collection::vec;
use proptest::prelude::*;

type Header = (String, Vec<u8>);
type RecordInput = (i64, Option<Vec<u8>>, Option<Vec<u8>>, Vec<Header>);

fn record() -> impl Strategy<Value = RecordInput> {
    (
        any::<i64>(),
        proptest::option::of(vec(any::<u8>(), 0..40)),
        proptest::option::of(vec(any::<u8>(), 0..200)),
        vec(("[a-z]{0,5}", vec(any::<u8>(), 0..10)), 0..3),
    )
}

fn meta() -> impl Strategy<Value = BatchMeta> {
    (
        any::<i32>(),
        any::<i64>(),
        any::<i64>(),
        any::<i16>(),
        any::<i32>(),
    )
        .prop_map(
            |(epoch, ts, producer_id, producer_epoch, base_sequence)| BatchMeta {
                leader_epoch: LeaderEpoch(epoch),
                base_timestamp_ms: ts,
                producer_id: ProducerId(producer_id),
                producer_epoch,
                base_sequence,
            },
        )
}

/// A valid encoded batch and what went into it.
fn batch() -> impl Strategy<Value = (Vec<u8>, u64, BatchMeta, Vec<RecordInput>)> {
    (0..(i64::MAX as u64 / 2), meta(), vec(record(), 1..8)).prop_map(|(base, meta, records)| {
        let mut b = BatchBuilder::new(meta);
        for (ts, key, value, headers) in &records {
            let headers: Vec<(&str, &[u8])> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_slice()))
                .collect();
            b.push(*ts, key.as_deref(), value.as_deref(), &headers);
        }
        (b.encode(Offset(base)).to_vec(), base, meta, records)
    })
}

/// A header that passes the length, magic and CRC checks followed by arbitrary record
/// bytes: this is what reaches the record walker.
fn crc_valid_garbage() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<i64>(),
        any::<i32>(),
        any::<i32>(),
        vec(any::<u8>(), 0..300),
    )
        .prop_map(|(base, last_delta, count, tail)| {
            let mut b = Vec::new();
            b.extend_from_slice(&base.to_be_bytes());
            let length = (BATCH_HEADER_BYTES - 12 + tail.len()) as i32;
            b.extend_from_slice(&length.to_be_bytes());
            b.extend_from_slice(&0i32.to_be_bytes());
            b.push(2);
            b.extend_from_slice(&[0; 4]); // CRC, filled below
            b.extend_from_slice(&0i16.to_be_bytes());
            b.extend_from_slice(&last_delta.to_be_bytes());
            b.extend_from_slice(&[0; 8 + 8 + 8 + 2 + 4]);
            b.extend_from_slice(&count.to_be_bytes());
            b.extend_from_slice(&tail);
            let crc = crc32c::crc32c(&b[21..]);
            b[17..21].copy_from_slice(&crc.to_be_bytes());
            b
        })
}

fn decode_everything(bytes: &[u8]) {
    let _ = decode_batch(bytes);
    let _ = decode_batches(bytes);
    let _ = check_batch(bytes);
    let _ = parse_header(bytes);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..400)) {
        decode_everything(&bytes);
    }

    #[test]
    fn crc_valid_garbage_records_never_panic(bytes in crc_valid_garbage()) {
        decode_everything(&bytes);
        // Whatever the walker says, decode and check agree.
        prop_assert_eq!(decode_batch(&bytes).is_ok(), check_batch(&bytes).is_ok());
    }

    #[test]
    fn valid_batches_decode_to_what_was_pushed((bytes, base, meta, records) in batch()) {
        let (batch, used) = decode_batch(&bytes).unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(batch.base_offset, Offset(base));
        prop_assert_eq!(batch.partition_leader_epoch, meta.leader_epoch);
        prop_assert_eq!(batch.base_timestamp_ms, meta.base_timestamp_ms);
        prop_assert_eq!(batch.producer_id, meta.producer_id);
        prop_assert_eq!(batch.producer_epoch, meta.producer_epoch);
        prop_assert_eq!(batch.base_sequence, meta.base_sequence);
        prop_assert_eq!(batch.records.len(), records.len());
        prop_assert_eq!(batch.max_timestamp_ms, records.iter().map(|r| r.0).max().unwrap());
        for (i, (r, (ts, key, value, headers))) in batch.records.iter().zip(&records).enumerate() {
            prop_assert_eq!(r.offset, Offset(base + i as u64));
            prop_assert_eq!(r.timestamp_ms, *ts);
            prop_assert_eq!(&r.key, key);
            prop_assert_eq!(&r.value, value);
            prop_assert_eq!(&r.headers, headers);
        }
        prop_assert_eq!(check_batch(&bytes).unwrap().next_offset(), batch.next_offset());
    }

    #[test]
    fn a_changed_byte_in_the_crc_range_is_always_detected(
        (bytes, _, _, _) in batch(),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let at = 21 + at.index(bytes.len() - 21);
        let mut bad = bytes.clone();
        bad[at] ^= xor;
        prop_assert!(
            matches!(decode_batch(&bad), Err(BatchError::BadCrc { .. })),
            "byte {} ^ {:#x} undetected", at, xor
        );
        prop_assert!(check_batch(&bad).is_err());
        prop_assert!(decode_batches(&bad).is_err());
    }

    #[test]
    fn changes_and_truncations_anywhere_never_panic(
        (bytes, _, _, _) in batch(),
        at in any::<prop::sample::Index>(),
        xor in any::<u8>(),
        cut in any::<prop::sample::Index>(),
        suffix in vec(any::<u8>(), 0..80),
    ) {
        let mut bad = bytes.clone();
        let at = at.index(bad.len());
        bad[at] ^= xor;
        decode_everything(&bad);
        let truncated = &bytes[..cut.index(bytes.len())];
        prop_assert!(decode_batch(truncated).is_err());
        prop_assert_eq!(decode_batches(truncated).is_err(), !truncated.is_empty());
        // A valid batch followed by junk: the first decodes, the concatenation does not
        // (unless the junk is empty).
        let mut joined = bytes.clone();
        joined.extend_from_slice(&suffix);
        prop_assert_eq!(decode_batch(&joined).unwrap().1, bytes.len());
        prop_assert_eq!(decode_batches(&joined).is_ok(), suffix.is_empty());
    }
}
