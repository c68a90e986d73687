//! The file model: contents, operations, views.

use super::*;

#[test]
fn content_keeps_zero_tails_implicit() {
    let mut c = Content::from_bytes(b"head");
    c.write(4, &[0; 1000]);
    assert_eq!((c.bytes.len(), c.len), (4, 1004));
    c.write(10, b"xy");
    assert_eq!(c.bytes.len(), 12);
    assert_eq!(&c.to_vec()[..12], b"head\0\0\0\0\0\0xy");
    c.write(0, &[0; 3]);
    assert_eq!(&c.bytes[..4], b"\0\0\0d");
    c.set_len(6);
    assert_eq!(c.to_vec(), b"\0\0\0d\0\0");
    c.set_len(100);
    assert_eq!(c.to_vec().len(), 100);
    assert_eq!(c.bytes.len(), 6);
}

#[test]
fn operations_and_view() {
    let mut fs = Fs::new();
    let ops = [
        FsOp::Create {
            parent: ROOT,
            name: "d".into(),
            ino: 1,
            dir: true,
        },
        FsOp::Create {
            parent: 1,
            name: "tmp".into(),
            ino: 2,
            dir: false,
        },
        FsOp::Write {
            ino: 2,
            offset: 0,
            data: b"new".to_vec(),
        },
        FsOp::Create {
            parent: 1,
            name: "f".into(),
            ino: 3,
            dir: false,
        },
        FsOp::Rename {
            from: 1,
            from_name: "tmp".into(),
            to: 1,
            to_name: "f".into(),
            ino: 2,
        },
        FsOp::Create {
            parent: 1,
            name: "gone".into(),
            ino: 4,
            dir: false,
        },
        FsOp::Unlink {
            parent: 1,
            name: "gone".into(),
        },
    ];
    for op in &ops {
        fs.apply(op);
    }
    assert_eq!(fs.lookup(["d", "f"]), Some(2));
    let view = fs.view();
    assert_eq!(view.summary(), "d/, d/f (3 B)");
    let dir = tempfile::tempdir().unwrap();
    view.write_to(dir.path()).unwrap();
    assert_eq!(std::fs::read(dir.path().join("d/f")).unwrap(), b"new");
}
