//! Requests, answers and what a state may hold.

use super::*;

fn io(run_line: u32, conn: u32, dir: Dir, data: &str) -> ClientIo {
    ClientIo {
        pos: Pos {
            run: 0,
            line: run_line,
        },
        conn,
        dir,
        data: data.as_bytes().to_vec(),
    }
}

fn pos(line: u32) -> Option<Pos> {
    Some(Pos { run: 0, line })
}

fn history() -> History {
    let put =
        |id: &str, v: u32| format!("{{\"op\":\"put\",\"id\":\"{id}\",\"data\":{{\"v\":{v}}}}}\n");
    let req = format!(
        "{}{}{}",
        put("a", 1),
        put("a", 2),
        r#"{"op":"delete","id":"a"}"#
    );
    History::from_io(&[
        io(10, 0, Dir::Recv, &req[..20]),
        io(
            11,
            0,
            Dir::Recv,
            &format!("{}\n{}", &req[20..], put("b", 9)),
        ),
        io(12, 1, Dir::Recv, &put("c", 5)),
        io(21, 1, Dir::Send, "{\"ok\":true,\"session\":{}}\n"),
        io(20, 0, Dir::Send, "{\"ok\":true,\"session\":{}}\n{\"ok\":tr"),
        io(30, 0, Dir::Send, "ue}\n{\"ok\":true}\n"),
        io(
            40,
            0,
            Dir::Send,
            "{\"ok\":false,\"error\":{\"code\":\"unavailable\"}}\n",
        ),
    ])
    .unwrap()
}

#[test]
fn requests_pair_with_answers_in_order() {
    let h = history();
    assert_eq!((h.requests, h.answers), (5, 5));
    let a = &h.by_id["a"];
    assert_eq!(a.len(), 3);
    assert_eq!(a[0].answered, Some((Pos { run: 0, line: 20 }, Outcome::Ok)));
    // The second answer's newline came at line 30.
    assert_eq!(a[1].answered.as_ref().unwrap().0.line, 30);
    assert_eq!(a[2].value, None);
    assert_eq!(
        h.by_id["b"][0].answered.as_ref().unwrap().1,
        Outcome::Failed("unavailable".into())
    );
}

#[test]
fn allowed_values_at_each_cut() {
    let h = history();
    let v = |n: u32| serde_json::json!({ "v": n });
    let kind = |id: &str, at: Option<Pos>, found: Option<Value>| {
        h.problem(id, at, found.as_ref()).map(|p| (p.kind, p.text))
    };
    let is = |got: Option<(Kind, String)>, k: Kind, text: &str| {
        let (got_kind, got_text) = got.expect("a problem");
        assert_eq!(got_kind, k, "{got_text}");
        assert!(got_text.contains(text), "{got_text}");
    };
    // Before anything was read: no session.
    assert!(kind("a", pos(5), None).is_none());
    is(
        kind("a", pos(5), Some(v(1))),
        Kind::Unsent,
        "no client sent",
    );
    // Read, not answered: any of them.
    for found in [None, Some(v(1)), Some(v(2))] {
        assert!(kind("a", pos(15), found).is_none());
    }
    // The first put answered: it, or a later one (the delete is read).
    assert!(kind("a", pos(25), Some(v(2))).is_none());
    is(kind("c", pos(25), None), Kind::Lost, "lost the put");
    assert!(kind("c", pos(15), None).is_none());
    // All answered: the delete.
    assert!(kind("a", None, None).is_none());
    is(kind("a", None, Some(v(2))), Kind::Lost, "lost the delete");
    // A refused put must not appear once refused.
    assert!(kind("b", pos(35), Some(v(9))).is_none());
    is(
        kind("b", None, Some(v(9))),
        Kind::Refused,
        "answered unavailable",
    );
    is(kind("zz", None, Some(v(9))), Kind::Unsent, "no client sent");
}

#[test]
fn one_id_on_two_connections_at_once_is_refused() {
    let put = "{\"op\":\"put\",\"id\":\"a\",\"data\":1}\n";
    let err = History::from_io(&[io(1, 0, Dir::Recv, put), io(2, 1, Dir::Recv, put)]).unwrap_err();
    assert!(err.contains("at once"), "{err}");
}

#[test]
fn only_writes_acknowledged_before_a_point_must_be_there() {
    let h = history();
    let v5 = serde_json::json!({ "v": 5 });
    let e = h.expect_since("c", pos(15), None);
    assert!(e.acked.is_none(), "{e:?}");
    assert_eq!(e.allowed, [None, Some(&v5)]);
    let e = h.expect_since("c", pos(25), None);
    assert_eq!(e.allowed, [Some(&v5)]);
}
