//! A tiny trace and the exact states each model makes of it.

use std::path::Path;

use super::super::fs::{Fs, View};
use super::super::ops::Timeline;
use super::super::trace::parse;
use super::*;

const TRACE: &str = r#"1 mkdir("/r/d", 0700) = 0
1 openat(AT_FDCWD</r>, "/r/d/f", O_RDWR|O_CREAT, 0600) = 3</r/d/f>
1 pwrite64(3</r/d/f>, "abc", 3, 0) = 3
1 fsync(3</r/d/f>) = 0
1 openat(AT_FDCWD</r>, "/r/d", O_RDONLY|O_DIRECTORY) = 4</r/d>
1 fsync(4</r/d>) = 0
1 sendto(9<socket:[1]>, "x", 1, 0, NULL, 0) = 1
1 openat(AT_FDCWD</r>, "/r", O_RDONLY|O_DIRECTORY) = 5</r>
1 fsync(5</r>) = 0
1 pwrite64(3</r/d/f>, "BIG", 3, 510) = 3
"#;

fn sampling() -> Sampling {
    Sampling {
        seed: 1,
        tear_all_below: 4,
        tears_per_write: 3,
        all_subsets_up_to: 3,
        subsets_per_write: 4,
        max_per_model: 100,
    }
}

/// `path=content` for each file, `path/` for each directory.
fn render(view: &View) -> String {
    let parts: Vec<String> = view
        .0
        .iter()
        .map(|(p, c)| match c {
            None => format!("{p}/"),
            Some(c) => {
                let bytes: String = c
                    .to_vec()
                    .iter()
                    .map(|b| if *b == 0 { '.' } else { *b as char })
                    .collect();
                format!("{p}={}", bytes.trim_end_matches('.'))
            }
        })
        .collect();
    parts.join(" ")
}

fn states(model: Model) -> Vec<(String, Option<u32>)> {
    states_of(TRACE, model)
}

fn states_of(trace: &str, model: Model) -> Vec<(String, Option<u32>)> {
    let mut t = Timeline::new(Path::new("/r"), Fs::new());
    t.add_run(&parse(trace).unwrap()).unwrap();
    let (plan_, _) = plan(&t.ops, &t.initial, &sampling());
    let wanted: Vec<CrashState> = plan_.into_iter().filter(|s| s.model == model).collect();
    let mut out = Vec::new();
    build(&t.ops, &t.initial, &sampling(), &wanted, |s, view| {
        out.push((render(&view), s.horizon.map(|p| p.line)));
    });
    out
}

fn expect(got: Vec<(String, Option<u32>)>, want: &[(&str, Option<u32>)]) {
    let want: Vec<(String, Option<u32>)> = want.iter().map(|(s, h)| (s.to_string(), *h)).collect();
    assert_eq!(got, want);
}

#[test]
fn segments_end_at_each_sync() {
    let mut t = Timeline::new(Path::new("/r"), Fs::new());
    t.add_run(&parse(TRACE).unwrap()).unwrap();
    let segs = segments(&t.ops);
    let bounds: Vec<(usize, usize, Option<u32>)> = segs
        .iter()
        .map(|s| (s.start, s.end, s.horizon.map(|p| p.line)))
        .collect();
    // mkdir, create, pwrite | fsync f | fsync d | fsync root | pwrite
    assert_eq!(
        bounds,
        [
            (0, 3, Some(4)),
            (4, 4, Some(6)),
            (5, 5, Some(9)),
            (6, 7, None)
        ]
    );
}

#[test]
fn model_1_keeps_only_what_was_synced() {
    // The file and its directory were synced, but the root holds the
    // directory's name only from its own fsync on: before, nothing.
    expect(
        states(Model::Synced),
        &[("", Some(9)), ("d/ d/f=abc", None)],
    );
}

#[test]
fn model_2_keeps_a_prefix_and_tears_the_last_write() {
    // "BIG" lands at 510, after a hole.
    let big = |n: usize| format!("d/ d/f=abc{}{}", ".".repeat(507), &"BIG"[..n]);
    expect(
        states(Model::Torn),
        &[
            ("d/", Some(4)),
            ("d/ d/f=", Some(4)),
            ("d/ d/f=a", Some(4)),
            ("d/ d/f=ab", Some(4)),
            ("d/ d/f=abc", Some(4)),
            (&big(1), None),
            (&big(2), None),
            (&big(3), None),
        ],
    );
}

#[test]
fn model_3_keeps_any_subset_of_the_sectors_of_the_last_write() {
    // "BIG" at 510 spans sectors 0 ("BI") and 1 ("G").
    let first = format!("d/ d/f=abc{}BI", ".".repeat(507));
    let second = format!("d/ d/f=abc{}G", ".".repeat(509));
    expect(states(Model::Sectors), &[(&first, None), (&second, None)]);
}

#[test]
fn tear_points_and_sector_masks_are_bounded_and_seeded() {
    let s = sampling();
    assert_eq!(tear_points(0, 4, &s, 7), [1, 2, 3]);
    let long = tear_points(100, 5000, &s, 7);
    assert_eq!(long, tear_points(100, 5000, &s, 7));
    assert!(long.len() <= s.tears_per_write + 2 && long.contains(&1) && long.contains(&4999));
    assert!(
        long.iter().any(|p| (100 + p) % 512 == 0),
        "a sector boundary: {long:?}"
    );
    assert_eq!(sector_masks(0, 512, &s, 1).len(), 0);
    assert_eq!(sector_masks(500, 600, &s, 1).len(), 6); // 3 sectors: 2^3 - 2
    let many = sector_masks(0, 512 * 10, &s, 1);
    assert_eq!(many.len(), s.subsets_per_write);
    assert!(many
        .iter()
        .all(|m| m.len() == 10 && m.contains(&true) && m.contains(&false)));
}

#[test]
fn model_4_keeps_any_subset_of_the_directory_operations() {
    let trace = r#"1 openat(AT_FDCWD</r>, "/r/a", O_RDWR|O_CREAT, 0600) = 3</r/a>
1 openat(AT_FDCWD</r>, "/r/b", O_RDWR|O_CREAT, 0600) = 4</r/b>
1 openat(AT_FDCWD</r>, "/r", O_RDONLY|O_DIRECTORY) = 5</r>
1 fsync(5</r>) = 0
1 unlink("/r/a") = 0
1 unlink("/r/b") = 0
1 fsync(5</r>) = 0
"#;
    expect(
        states_of(trace, Model::Reordered),
        &[
            ("", Some(4)),
            ("a=", Some(4)),
            ("b=", Some(4)),
            ("a= b=", Some(7)),
            ("b=", Some(7)),
            // The later removal persisted, the earlier one not.
            ("a=", Some(7)),
        ],
    );
}
