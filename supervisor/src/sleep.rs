//! Waiting for an optional deadline in a `select!`.

/// Sleeps until `deadline`, or forever without one.
pub async fn sleep_until<I: Into<tokio::time::Instant>>(deadline: Option<I>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}
