//! Version 2 batches under power cuts: any truncation and any subset of
//! the sectors of the last batch is a torn tail; damage with a valid batch
//! after it is corruption; the first release's journals still scan.

use rand::{Rng, SeedableRng};

use super::batch::seal;
use super::*;

const SECTOR: usize = 512;

/// A put-like payload of about `n` bytes.
fn payload(tag: usize, n: usize) -> Vec<u8> {
    format!(
        r#"{{"put":{{"id":"k{tag}","data":"{}","updated_at":"t"}}}}"#,
        "x".repeat(n)
    )
    .into_bytes()
}

/// A journal with one batch per element of `sizes` (each a list of
/// payload sizes), as the writer writes it, followed by zeros up to the
/// next 4 KiB as preallocation leaves it. Returns the bytes, where each
/// batch starts, and where the last one ends.
fn journal(sizes: &[&[usize]]) -> (Vec<u8>, Vec<usize>, usize) {
    let mut bytes = encode_header(7).to_vec();
    let mut starts = Vec::new();
    let mut buf = Vec::new();
    for (seq, records) in sizes.iter().enumerate() {
        start_batch(&mut buf);
        for (i, n) in records.iter().enumerate() {
            encode_record(&payload(seq * 100 + i, *n), &mut buf);
        }
        seal(&mut buf, records.len() as u32, seq as u64 + 1);
        starts.push(bytes.len());
        bytes.extend_from_slice(&buf);
    }
    let end = bytes.len();
    bytes.resize(end.div_ceil(4096) * 4096 + 4096, 0);
    (bytes, starts, end)
}

/// How many records the first `n` batches of `sizes` hold.
fn records_in(sizes: &[&[usize]], n: usize) -> usize {
    sizes[..n].iter().map(|b| b.len()).sum()
}

/// `image` lost (part of) the last batch, which starts at `last`: the
/// batches before it are kept, and what is left of it is a torn tail (or
/// nothing, when only zeros are left).
fn assert_torn(image: &[u8], last: usize, kept: usize, what: &str) {
    let s = scan(image, FORMAT_VERSION);
    assert_eq!(s.records.len(), kept, "{what}: {:?}", s.tail);
    assert_eq!(s.end, last, "{what}");
    let expected = match image[last..].iter().rposition(|b| *b != 0) {
        None => Tail::Clean,
        Some(i) => Tail::Torn {
            from: last,
            to: last + i + 1,
        },
    };
    assert_eq!(s.tail, expected, "{what}");
}

/// The sectors (absolute indexes) that `range` touches.
fn sectors(range: std::ops::Range<usize>) -> std::ops::Range<usize> {
    range.start / SECTOR..range.end.div_ceil(SECTOR)
}

/// `bytes` with only the sectors in `kept` of the write `range` on disk;
/// the rest of that write reads as `lost` (zeros: the preallocation).
fn persist(
    bytes: &[u8],
    range: std::ops::Range<usize>,
    kept: impl Fn(usize) -> bool,
    lost: u8,
) -> Vec<u8> {
    let mut image = bytes.to_vec();
    for sector in sectors(range.clone()) {
        if !kept(sector) {
            let from = (sector * SECTOR).max(range.start);
            let to = ((sector + 1) * SECTOR).min(range.end);
            image[from..to].fill(lost);
        }
    }
    image
}

const SMALL: [&[usize]; 3] = [&[40, 70], &[300], &[900, 1200, 1700, 400]];

#[test]
fn a_whole_journal_scans_clean_with_consecutive_sequence_numbers() {
    let (bytes, starts, end) = journal(&SMALL);
    let s = scan(&bytes, FORMAT_VERSION);
    assert_eq!(s.records.len(), 7);
    assert_eq!((s.end, s.next_seq, s.tail), (end, 4, Tail::Clean));
    let last: serde_json::Value = serde_json::from_slice(&bytes[s.records[6].clone()]).unwrap();
    assert_eq!(last["put"]["id"], "k203");
    assert_eq!(starts[0], HEADER_LEN);
}

#[test]
fn every_truncation_of_the_last_batch_is_a_torn_tail() {
    let (bytes, starts, end) = journal(&SMALL);
    let last = starts[2];
    for cut in last..end {
        for pad in [0, 4096] {
            let mut image = bytes[..cut].to_vec();
            image.resize(cut + pad, 0);
            assert_torn(&image, last, 3, &format!("cut at {cut}, {pad} zeros after"));
        }
    }
}

#[test]
fn every_sector_subset_of_a_small_last_batch_is_a_torn_tail() {
    let (bytes, starts, end) = journal(&SMALL);
    let last = starts[2];
    let touched = sectors(last..end);
    assert!(touched.len() >= 9, "the last batch spans {touched:?}");
    let n = touched.len();
    for mask in 0u32..(1 << n) - 1 {
        let kept = |sector: usize| mask & (1 << (sector - touched.start)) != 0;
        for lost in [0u8, 0xa5] {
            let image = persist(&bytes, last..end, kept, lost);
            assert_torn(
                &image,
                last,
                3,
                &format!("sectors {mask:#b}, lost as {lost:#x}"),
            );
        }
    }
    // All sectors on disk: the batch is there.
    let all = persist(&bytes, last..end, |_| true, 0);
    assert_eq!(scan(&all, FORMAT_VERSION).records.len(), 7);
}

#[test]
fn sampled_sector_subsets_of_a_big_last_batch_are_torn_tails() {
    let big: [&[usize]; 3] = [&[100], &[2000, 50], &[8000; 8]];
    let (bytes, starts, end) = journal(&big);
    let last = starts[2];
    let touched = sectors(last..end);
    let n = touched.len();
    assert!(n > 120, "{n} sectors");
    let mut subsets: Vec<Vec<bool>> = Vec::new();
    for i in 0..n {
        // One sector lost; one sector kept; a prefix; a suffix.
        subsets.push((0..n).map(|j| j != i).collect());
        subsets.push((0..n).map(|j| j == i).collect());
        subsets.push((0..n).map(|j| j < i).collect());
        subsets.push((0..n).map(|j| j > i).collect());
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    for _ in 0..400 {
        let p: f64 = rng.gen();
        subsets.push((0..n).map(|_| rng.gen_bool(p)).collect());
    }
    for (k, subset) in subsets.iter().enumerate() {
        if subset.iter().all(|k| *k) {
            continue;
        }
        let kept = |sector: usize| subset[sector - touched.start];
        let lost = if k % 2 == 0 { 0 } else { 0xff };
        let image = persist(&bytes, last..end, kept, lost);
        assert_torn(&image, last, 3, &format!("subset {k}, lost as {lost:#x}"));
    }
}

#[test]
fn random_garbage_over_the_last_batch_is_a_torn_tail() {
    let (bytes, starts, end) = journal(&SMALL);
    let last = starts[2];
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    for _ in 0..300 {
        let from = rng.gen_range(last..end);
        let to = rng.gen_range(from..end + 600);
        let mut image = bytes.clone();
        rng.fill(&mut image[from..to]);
        assert_torn(&image, last, 3, &format!("garbage over {from}..{to}"));
    }
}

/// `image` is damaged at batch `bad` (start `offset`) with a valid batch
/// after it at `next_valid`: corruption, nothing guessed past it.
fn assert_corrupt(image: &[u8], offset: usize, next_valid: usize, kept: usize, what: &str) {
    let s = scan(image, FORMAT_VERSION);
    assert_eq!(
        s.tail,
        Tail::Corrupt { offset, next_valid },
        "{what}: records {}",
        s.records.len()
    );
    assert_eq!(s.records.len(), kept, "{what}");
    assert_eq!(s.end, offset, "{what}");
}

const FOUR: [&[usize]; 4] = [&[40], &[700, 900, 20], &[60, 60], &[100]];

#[test]
fn a_damaged_batch_followed_by_a_valid_one_is_corruption() {
    let (bytes, starts, _) = journal(&FOUR);
    let (bad, next) = (starts[1], starts[2]);
    let kept = records_in(&FOUR, 1);
    // Each header field (the length becomes garbage), the records, zeros,
    // and garbage over the header.
    let mut damages: Vec<(String, Vec<u8>)> = Vec::new();
    for at in [0, 3, 7, 8, 12, 19, 20, 23, 24, 30, 500, next - bad - 1] {
        let mut image = bytes.clone();
        image[bad + at] ^= 0x40;
        damages.push((format!("flip at +{at}"), image));
    }
    let mut zeroed = bytes.clone();
    zeroed[bad..next].fill(0);
    damages.push(("zeroed".into(), zeroed));
    let mut garbage = bytes.clone();
    garbage[bad..bad + BATCH_HEADER_LEN].fill(0xee);
    damages.push(("garbage header".into(), garbage));
    // Every sector subset of the damaged batch but all of it.
    let touched = sectors(bad..next);
    for mask in 0u32..(1 << touched.len()) - 1 {
        let kept = |sector: usize| mask & (1 << (sector - touched.start)) != 0;
        damages.push((
            format!("sectors {mask:#b}"),
            persist(&bytes, bad..next, kept, 0),
        ));
    }
    for (what, image) in damages {
        assert_corrupt(&image, bad, next, kept, &what);
    }
}

#[test]
fn two_damaged_batches_before_a_valid_one_are_corruption() {
    let (bytes, starts, _) = journal(&FOUR);
    let mut image = bytes.clone();
    image[starts[1] + 2] ^= 1;
    image[starts[2]..starts[3]].fill(0);
    assert_corrupt(&image, starts[1], starts[3], 1, "batches 2 and 3");
}

#[test]
fn a_batch_whose_checksum_matches_but_records_do_not_add_up_is_damage() {
    for (count, records, reason) in [
        (3, 2, "unreadable record"),
        (1, 2, "longer than its records"),
    ] {
        let mut bytes = encode_header(1).to_vec();
        let mut buf = Vec::new();
        start_batch(&mut buf);
        for i in 0..records {
            encode_record(&payload(i, 10), &mut buf);
        }
        seal(&mut buf, count, 1);
        bytes.extend_from_slice(&buf);
        let s = scan(&bytes, FORMAT_VERSION);
        assert!(s.records.is_empty());
        match s.tail {
            Tail::BadBatch { offset, reason: r } => {
                assert_eq!(offset, HEADER_LEN);
                assert!(r.contains(reason), "{r}");
            }
            other => panic!("count {count}, {records} records: {other:?}"),
        }
    }
}

#[test]
fn a_batch_out_of_sequence_is_not_read() {
    // A batch with the wrong sequence number where the next one belongs is
    // not the next batch: its bytes are a torn tail, never replayed.
    let (bytes, starts, _) = journal(&FOUR);
    let mut image = bytes.clone();
    let mut third = bytes[starts[2]..starts[3]].to_vec();
    seal(&mut third, 2, 7);
    image[starts[2]..starts[3]].copy_from_slice(&third);
    image[starts[3]..].fill(0);
    assert_torn(
        &image,
        starts[2],
        records_in(&FOUR, 2),
        "sequence 7 after 2",
    );
}

#[test]
fn the_first_release_journal_still_scans() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/journal-first-release.journal");
    let bytes = std::fs::read(fixture).unwrap();
    let Header::Valid {
        generation: _,
        version,
    } = decode_header(&bytes)
    else {
        panic!("the fixture's header is not valid")
    };
    assert_eq!(version, FORMAT_VERSION_1);
    let s = scan(&bytes, version);
    assert_eq!(s.records.len(), 5);
    assert_eq!(s.tail, Tail::Clean);
    // Read as version 2 it would be damage: the version decides.
    assert!(scan(&bytes, FORMAT_VERSION).records.is_empty());
}

#[test]
fn created_journal_is_preallocated_and_batches_land_in_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = JournalFile::create(dir.path(), 3, 4096).unwrap();
    assert_eq!(std::fs::metadata(&j.path).unwrap().len(), 4096);
    let mut buf = Vec::new();
    start_batch(&mut buf);
    encode_record(b"hello", &mut buf);
    encode_record(b"world", &mut buf);
    j.reserve(buf.len() as u64).unwrap();
    j.append_batch(&mut buf, 2).unwrap();
    start_batch(&mut buf);
    encode_record(&[b'x'; 5000], &mut buf);
    j.reserve(buf.len() as u64).unwrap();
    j.append_batch(&mut buf, 1).unwrap();
    let bytes = std::fs::read(&j.path).unwrap();
    assert_eq!(bytes.len(), 8192);
    assert_eq!(
        decode_header(&bytes),
        Header::Valid {
            generation: 3,
            version: FORMAT_VERSION
        }
    );
    let s = scan(&bytes, FORMAT_VERSION);
    assert_eq!((s.records.len(), s.next_seq, s.tail), (3, 3, Tail::Clean));
    assert_eq!(s.end as u64, j.written());

    // Reopened where the scan ended, the sequence goes on.
    drop(j);
    let path = dir.path().join(file_name(3));
    let mut j = JournalFile::reopen(&path, 3, s.end as u64, s.next_seq, 4096).unwrap();
    start_batch(&mut buf);
    encode_record(b"again", &mut buf);
    j.reserve(buf.len() as u64).unwrap();
    j.append_batch(&mut buf, 1).unwrap();
    let s = scan(&std::fs::read(&path).unwrap(), FORMAT_VERSION);
    assert_eq!((s.records.len(), s.next_seq, s.tail), (4, 4, Tail::Clean));
}
