//! The status view for a person.

use super::*;

#[test]
fn durations_read_well() {
    assert_eq!(human_duration(42), "42s");
    assert_eq!(human_duration(310), "5m 10s");
    assert_eq!(human_duration(3 * 3600 + 120), "3h 02m");
    assert_eq!(human_duration(2 * 86_400 + 3600), "2d 01h");
}

#[test]
fn a_retry_is_shown_as_not_held_with_the_next_try() {
    let in_a_minute = std::time::SystemTime::now() + std::time::Duration::from_secs(90);
    let s: Status = serde_json::from_value(serde_json::json!({
        "supervisor": {"pid": 1, "version": "0", "commit": null, "started_at": "x", "uptime_secs": 1},
        "worker": {"state": "ready", "pid": 2, "commit": null, "started_at": null, "restarts": 0,
                   "last_exit": null, "binary": null, "next_start_in_ms": null},
        "sessions": null,
        "update": {"repo": null, "branch": "main", "poll_interval_ms": 300000, "last_poll_at": null,
                   "last_poll": null, "deployed_commit": null, "state": "idle", "last_error": "offline",
                   "held_commits": [], "target_commit": null, "step_started_at": null, "checkout": null,
                   "retry": {"reason": "offline", "attempts": 2,
                             "next_at": shared::time::rfc3339(in_a_minute)}},
        "paths": {"data_dir": "/d", "log_dir": "/l"}
    }))
    .expect("a status");
    let text = s.render();
    assert!(
        text.contains("retrying   not held, failed 2 time(s); next try in 1m"),
        "{text}"
    );
}

#[test]
fn a_worker_on_probation_shows_the_time_left() {
    let mut s: Status = serde_json::from_value(serde_json::json!({
        "supervisor": {"pid": 1, "version": "0", "commit": null, "started_at": "x", "uptime_secs": 1},
        "worker": {"state": "ready", "pid": 2, "commit": "0123456789abcdef", "started_at": null,
                   "restarts": 1, "last_exit": null, "binary": null, "next_start_in_ms": null},
        "sessions": null,
        "update": {"repo": null, "branch": "main", "poll_interval_ms": 0, "last_poll_at": null,
                   "last_poll": null, "deployed_commit": "fedcba9876543210", "state": "swapping",
                   "last_error": null, "held_commits": [], "target_commit": null,
                   "step_started_at": null, "checkout": null},
        "paths": {"data_dir": "/d", "log_dir": "/l"}
    }))
    .expect("a status");
    assert!(!s.render().contains("probation"));
    s.worker.probation = Some(ProbationStatus {
        commit: Some("0123456789abcdef".into()),
        left_ms: 5_200,
    });
    let text = s.render();
    assert!(
        text.contains("worker     ready, pid 2, commit 0123456789ab, on probation for 6s more"),
        "{text}"
    );
    assert!(text.contains("deployed fedcba987654"), "{text}");
}
