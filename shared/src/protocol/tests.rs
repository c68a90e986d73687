use super::*;

fn bad(line: &str) -> ApiError {
    Request::parse(line.as_bytes()).expect_err(line)
}

#[test]
fn parses_every_op() {
    assert_eq!(Request::parse(br#"{"op":"ping"}"#).unwrap(), Request::Ping);
    let put = Request::parse(br#"{"op":"put","id":"a","data":{"x": [1, 2]},"extra":1}"#).unwrap();
    match put {
        Request::Put { id, data } => {
            assert_eq!(id, "a");
            assert_eq!(data.get(), r#"{"x": [1, 2]}"#);
        }
        other => panic!("{other:?}"),
    }
    match Request::parse(br#"{"op":"put","id":"a","data":null}"#).unwrap() {
        Request::Put { data, .. } => assert_eq!(data.get(), "null"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        Request::parse(br#"{"op":"list","prefix":"a","limit":2}"#).unwrap(),
        Request::List {
            prefix: Some("a".into()),
            limit: Some(2)
        }
    );
    assert_eq!(
        Request::parse(br#"{"op":"stats"}"#).unwrap(),
        Request::Stats
    );
}

#[test]
fn every_problem_is_a_bad_request() {
    for line in [
        "",
        "{",
        "[]",
        "null",
        r#"{"op":"nope"}"#,
        r#"{"id":"a"}"#,
        r#"{"op":5}"#,
        r#"{"op":"get"}"#,
        r#"{"op":"get","id":5}"#,
        r#"{"op":"get","id":"a b"}"#,
        r#"{"op":"put","id":"a"}"#,
        r#"{"op":"list","limit":-1}"#,
        r#"{"op":"list","prefix":3}"#,
    ] {
        assert_eq!(bad(line).code, ErrorCode::BadRequest, "{line}");
    }
    let err = Request::parse(b"{\"op\":\"get\",\"id\":\"\xff\"}").unwrap_err();
    assert_eq!(err.code, ErrorCode::BadRequest);
    assert!(err.message.contains("UTF-8"), "{}", err.message);
}

#[test]
fn requests_round_trip_through_lines() {
    let data = RawValue::from_string(r#"{"k":"v"}"#.into()).unwrap();
    for req in [
        Request::Ping,
        Request::Put {
            id: "x".into(),
            data,
        },
        Request::Get { id: "x".into() },
        Request::Delete { id: "x".into() },
        Request::List {
            prefix: Some("p".into()),
            limit: None,
        },
        Request::Stats,
    ] {
        let line = req.to_line();
        let back = Request::parse(line.as_bytes()).unwrap();
        assert_eq!(back.to_line(), line);
    }
}

#[test]
fn stats_carry_the_sync_method_and_read_older_answers() {
    let stats = Stats {
        count: 2,
        sync: Some("F_BARRIERFSYNC".into()),
        ..Stats::default()
    };
    let v: serde_json::Value =
        serde_json::from_slice(&Response::Stats(stats.clone()).to_line()).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["count"], 2);
    assert_eq!(v["sync"], "F_BARRIERFSYNC");
    let fresh = Response::Stats(Stats::default()).to_line();
    let v: serde_json::Value = serde_json::from_slice(&fresh).unwrap();
    assert!(v["sync"].is_null() && v.get("sync").is_some(), "{v}");
    // An answer from a worker that predates the field still parses.
    let old = r#"{"count":1,"journal_bytes":0,"snapshot_bytes":0,"writes":0,
        "commits":0,"checkpoints":0,"last_checkpoint_at":null,"connections":1}"#;
    let parsed: Stats = serde_json::from_str(old).unwrap();
    assert_eq!(parsed.sync, None);
    assert_eq!(parsed.count, 1);
}

#[test]
fn error_response_shape() {
    let line = Response::Error(ApiError::new(ErrorCode::NotFound, "no such session")).to_line();
    let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"ok":false,"error":{"code":"not_found","message":"no such session"}})
    );
}
