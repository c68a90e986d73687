//! A new journal generation across a power cut: it is never visible under
//! its name with a partial header, a temp left by a cut is removed at the
//! next start, and a header cut off by an earlier release does not stop it.

use std::fs;
use std::io;

use shared::paths::DataDir;

use super::journal::{self, Durable, Header, JournalFile};
use super::{recovery, OpenError};

/// What the directory held at one sync of [`JournalFile::create`].
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// The file sync: the temp file's bytes, and whether the final name exists.
    File { temp: Vec<u8>, named: bool },
    /// The directory sync: whether the temp and the final name exist, and
    /// the header under the final name.
    Dir { temp: bool, header: Option<Header> },
}

/// Reasoning as a power cut would: what survives is what was synced.
/// Before the file sync, nothing under the final name may exist, since
/// the bytes could be lost or torn. The rename must come after it, so the
/// name can only ever point at the synced header and zeros; and the
/// directory sync must come after the rename, or the generation could
/// vanish after it was used.
#[test]
fn a_generation_gets_its_name_only_after_its_header_is_synced() {
    let dir = tempfile::tempdir().unwrap();
    let named = dir.path().join(journal::file_name(5));
    let temp = dir.path().join(format!(
        "{}{}",
        shared::fsutil::TEMP_PREFIX,
        journal::file_name(5)
    ));
    let mut seen = Vec::new();
    let j = JournalFile::create_with(dir.path(), 5, 4096, &mut |step| {
        match step {
            Durable::File(_) => seen.push(Seen::File {
                temp: fs::read(&temp).unwrap_or_default(),
                named: named.exists(),
            }),
            Durable::Dir(d) => {
                assert_eq!(d, dir.path());
                seen.push(Seen::Dir {
                    temp: temp.exists(),
                    header: fs::read(&named).ok().map(|b| journal::decode_header(&b)),
                })
            }
        }
        Ok(())
    })
    .unwrap();
    let mut expected_bytes = journal::encode_header(5).to_vec();
    expected_bytes.resize(4096, 0);
    assert_eq!(
        seen,
        [
            Seen::File {
                temp: expected_bytes.clone(),
                named: false
            },
            Seen::Dir {
                temp: false,
                header: Some(Header::Valid {
                    generation: 5,
                    version: journal::FORMAT_VERSION
                })
            },
        ]
    );
    assert_eq!(j.path, named);
    assert_eq!(fs::read(&named).unwrap(), expected_bytes);
}

#[test]
fn a_failed_creation_leaves_nothing_and_a_journal_is_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let names = || {
        let mut n: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        n.sort();
        n
    };
    // A failed file sync, then a failed directory sync.
    for fail_at in [0, 1] {
        let mut step = 0;
        let err = JournalFile::create_with(dir.path(), 2, 4096, &mut |_| {
            step += 1;
            if step > fail_at {
                Err(io::Error::other("injected sync failure"))
            } else {
                Ok(())
            }
        })
        .err()
        .expect("a failed sync fails the creation");
        assert!(err.to_string().contains("injected"), "{err}");
        assert!(names().is_empty(), "left behind: {:?}", names());
    }
    // And the generation can be created after all.
    JournalFile::create(dir.path(), 2, 4096).unwrap();
    let before = fs::read(dir.path().join(journal::file_name(2))).unwrap();
    let err = JournalFile::create(dir.path(), 2, 4096)
        .err()
        .expect("an existing journal is not replaced");
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    assert!(err.to_string().contains(&journal::file_name(2)), "{err}");
    assert_eq!(
        fs::read(dir.path().join(journal::file_name(2))).unwrap(),
        before
    );
    assert_eq!(names(), [journal::file_name(2)]);
}

/// One put record, as the writer encodes it.
fn put_record(id: &str, data: &str) -> Vec<u8> {
    let payload =
        format!(r#"{{"put":{{"id":"{id}","data":{data},"created_at":"t","updated_at":"t"}}}}"#);
    let mut out = Vec::new();
    journal::encode_record(payload.as_bytes(), &mut out);
    out
}

/// A data dir whose generation 1 holds an acknowledged put of "a".
fn data_dir_with_one_put() -> (tempfile::TempDir, DataDir) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    shared::paths::ensure_private_dir(&dir.journal_dir()).unwrap();
    let mut j = JournalFile::create(&dir.journal_dir(), 1, 4096).unwrap();
    let mut batch = Vec::new();
    journal::start_batch(&mut batch);
    batch.extend_from_slice(&put_record("a", "1"));
    j.reserve(batch.len() as u64).unwrap();
    j.append_batch(&mut batch, 1).unwrap();
    (tmp, dir)
}

#[test]
fn a_temp_journal_left_by_a_power_cut_is_ignored_and_removed() {
    let (_tmp, dir) = data_dir_with_one_put();
    // Generation 2 was being created: a torn header in its temp file, and
    // a record-like tail that must never be replayed.
    let temp = dir.journal_dir().join(format!(
        "{}{}",
        shared::fsutil::TEMP_PREFIX,
        journal::file_name(2)
    ));
    let mut bytes = journal::encode_header(2)[..11].to_vec();
    bytes.resize(journal::HEADER_LEN, 0);
    bytes.extend(put_record("ghost", "2"));
    fs::write(&temp, &bytes).unwrap();

    let recovered = recovery::recover(&dir, 4096).unwrap();
    assert!(!temp.exists(), "the temp journal is still there");
    let temp_name = temp.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(recovered.report.temps_removed, [temp_name]);
    assert_eq!(recovered.report.journals, 1);
    assert!(recovered.report.set_aside.is_empty());
    assert_eq!(recovered.sessions.len(), 1, "ghost replayed?");
    assert_eq!(recovered.sessions["a"].data.get(), "1");
    // Appends go on in generation 1, and generation 2 can be created.
    assert_eq!(recovered.journal.generation, 1);
    drop(recovered);
    JournalFile::create(&dir.journal_dir(), 2, 4096).unwrap();
}

#[test]
fn a_cut_off_header_with_nothing_after_it_is_set_aside_not_fatal() {
    let header = journal::encode_header(2);
    // Ways a header write can be cut: each prefix short of the checksum's
    // end (bytes 20..24 are zeros anyway), and single bytes of it.
    let mut torn: Vec<Vec<u8>> = (1..20).map(|n| header[..n].to_vec()).collect();
    torn.extend((0..20).map(|i| {
        let mut h = vec![0u8; journal::HEADER_LEN];
        h[i] = header[i] | 1;
        h
    }));
    for (case, start) in torn.into_iter().enumerate() {
        let (_tmp, dir) = data_dir_with_one_put();
        let path = dir.journal_dir().join(journal::file_name(2));
        let mut bytes = start.clone();
        bytes.resize(4096, 0);
        fs::write(&path, &bytes).unwrap();
        let recovered = recovery::recover(&dir, 4096)
            .unwrap_or_else(|e| panic!("case {case} ({start:?}): {e}"));
        assert_eq!(recovered.sessions["a"].data.get(), "1", "case {case}");
        assert_eq!(recovered.report.set_aside.len(), 1, "case {case}");
        assert!(!path.exists(), "case {case}");
        // Never overwritten: the bytes are kept aside as they were.
        let aside = dir
            .damaged_dir()
            .join(format!("{}.torn-header", journal::file_name(2)));
        assert_eq!(fs::read(&aside).unwrap(), bytes, "case {case}");
        assert_eq!(recovered.journal.generation, 3, "case {case}");
    }
}

#[test]
fn a_damaged_header_with_records_after_it_still_refuses_to_start() {
    let (_tmp, dir) = data_dir_with_one_put();
    let path = dir.journal_dir().join(journal::file_name(2));
    let mut bytes = journal::encode_header(2).to_vec();
    bytes[3] ^= 0x20;
    bytes.extend(put_record("b", "2"));
    bytes.resize(4096, 0);
    fs::write(&path, &bytes).unwrap();
    match recovery::recover(&dir, 4096) {
        Err(OpenError::Journal {
            path: p, offset, ..
        }) => {
            assert_eq!((p, offset), (path.clone(), 0));
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a damaged header with records after it was accepted"),
    }
    assert_eq!(fs::read(&path).unwrap(), bytes, "the journal was changed");
    assert!(!dir.damaged_dir().exists());
}
