//! Version 1 (the first release's format): records without batches, and
//! the header shared by both versions.

use super::records::{last_nonzero, scan_v1 as scan};
use super::*;

fn journal(payloads: &[&[u8]]) -> (Vec<u8>, Vec<usize>) {
    let mut bytes = encode_header(7).to_vec();
    let mut starts = Vec::new();
    for p in payloads {
        starts.push(bytes.len());
        encode_record(p, &mut bytes);
    }
    (bytes, starts)
}

const PAYLOADS: [&[u8]; 3] = [
    b"{\"del\":\"a\"}",
    b"second record",
    b"the third and last one",
];

#[test]
fn header_round_trip_and_damage() {
    let h = encode_header(42);
    assert_eq!(
        decode_header(&h),
        Header::Valid {
            generation: 42,
            version: FORMAT_VERSION
        }
    );
    assert_eq!(decode_header(&[]), Header::Blank);
    assert_eq!(decode_header(&[0; 100]), Header::Blank);
    let mut bad = h;
    bad[9] ^= 1;
    assert_eq!(decode_header(&bad), Header::Damaged);
    assert_eq!(decode_header(&h[..10]), Header::Damaged);
    assert_eq!(decode_header(b"garbage garbage garbage!"), Header::Damaged);
    let with_version = |v: u16| {
        let mut h = h;
        h[6..8].copy_from_slice(&v.to_le_bytes());
        let crc = crc32fast::hash(&h[..16]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        decode_header(&h)
    };
    assert_eq!(
        with_version(1),
        Header::Valid {
            generation: 42,
            version: 1
        }
    );
    assert_eq!(with_version(3), Header::UnknownVersion(3));
    assert_eq!(with_version(0), Header::UnknownVersion(0));
}

#[test]
fn clean_journal_with_and_without_zero_tail() {
    let (bytes, _) = journal(&PAYLOADS);
    let s = scan(&bytes);
    assert_eq!(s.records.len(), 3);
    assert_eq!(&bytes[s.records[2].clone()], PAYLOADS[2]);
    assert_eq!(s.end, bytes.len());
    assert_eq!(s.tail, Tail::Clean);
    let mut padded = bytes.clone();
    padded.resize(bytes.len() + 4096, 0);
    let s = scan(&padded);
    assert_eq!(
        (s.records.len(), s.end, s.tail),
        (3, bytes.len(), Tail::Clean)
    );
}

#[test]
fn truncation_at_every_offset_of_the_last_record_is_a_torn_tail() {
    let (bytes, starts) = journal(&PAYLOADS);
    let last = starts[2];
    for cut in last..bytes.len() {
        for pad in [0usize, 4096] {
            let mut b = bytes[..cut].to_vec();
            b.resize(cut + pad, 0);
            let s = scan(&b);
            assert_eq!(s.records.len(), 2, "cut at {cut}");
            assert_eq!(s.end, last, "cut at {cut}");
            // Truncation inside the length field can leave only zeros.
            let nonzero = bytes[last..cut].iter().any(|x| *x != 0);
            let expected = if nonzero {
                let to = last + bytes[last..cut].iter().rposition(|x| *x != 0).unwrap() + 1;
                Tail::Torn { from: last, to }
            } else {
                Tail::Clean
            };
            assert_eq!(s.tail, expected, "cut at {cut} pad {pad}");
        }
    }
}

#[test]
fn bit_flips_in_the_last_record_are_a_torn_tail() {
    let (bytes, starts) = journal(&PAYLOADS);
    let last = starts[2];
    for at in last..bytes.len() {
        for bit in [0, 3, 7] {
            let mut b = bytes.clone();
            b[at] ^= 1 << bit;
            let s = scan(&b);
            assert_eq!(s.records.len(), 2, "flip at {at}");
            assert!(
                matches!(s.tail, Tail::Torn { from, .. } if from == last),
                "flip at {at}: {:?}",
                s.tail
            );
        }
    }
}

#[test]
fn a_bad_record_followed_by_good_ones_is_corruption() {
    let (bytes, starts) = journal(&PAYLOADS);
    // Flip bits in the length, the checksum and the payload of record 0 and 1.
    for rec in 0..2 {
        for at in [starts[rec], starts[rec] + 5, starts[rec] + 9] {
            let mut b = bytes.clone();
            b[at] ^= 0x10;
            let s = scan(&b);
            assert_eq!(s.records.len(), rec, "flip at {at}");
            match s.tail {
                Tail::Corrupt { offset, next_valid } => {
                    assert_eq!(offset, starts[rec]);
                    assert_eq!(next_valid, starts[rec + 1]);
                }
                other => panic!("flip at {at}: {other:?}"),
            }
        }
    }
}

#[test]
fn zeroed_record_in_the_middle_is_corruption() {
    let (mut bytes, starts) = journal(&PAYLOADS);
    bytes[starts[1]..starts[2]].fill(0);
    let s = scan(&bytes);
    assert_eq!(s.records.len(), 1);
    assert_eq!(
        s.tail,
        Tail::Corrupt {
            offset: starts[1],
            next_valid: starts[2]
        }
    );
}

#[test]
fn garbage_after_the_records_is_torn() {
    let (mut bytes, _) = journal(&PAYLOADS);
    let end = bytes.len();
    bytes.extend_from_slice(&[0xff; 100]);
    bytes.extend_from_slice(&[0; 100]);
    let s = scan(&bytes);
    assert_eq!(
        s.tail,
        Tail::Torn {
            from: end,
            to: end + 100
        }
    );
}

#[test]
fn last_nonzero_finds_the_last_set_byte_anywhere() {
    assert_eq!(last_nonzero(&[]), None);
    assert_eq!(last_nonzero(&[0; 37]), None);
    for len in [1usize, 7, 8, 9, 16, 37, 64] {
        for at in 0..len {
            let mut b = vec![0u8; len];
            b[at] = 1;
            if at > 0 {
                b[0] = 9;
            }
            assert_eq!(last_nonzero(&b), Some(at), "len {len} at {at}");
        }
    }
}

#[test]
fn file_names_round_trip() {
    assert_eq!(file_name(26), "000000000000001a.journal");
    assert_eq!(parse_file_name("000000000000001a.journal"), Some(26));
    assert_eq!(parse_file_name("1a.journal"), None);
    assert_eq!(parse_file_name("000000000000001a.journal.torn"), None);
}
