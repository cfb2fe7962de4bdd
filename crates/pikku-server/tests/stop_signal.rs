//! `shutdown_signal` installs its handlers when called: a SIGTERM that arrives before the future is first
//! polled (between "listening" and the serve loop) is caught, not fatal. This file holds one test because it
//! signals its own process.

use std::process::Command;
use std::time::Duration;

#[cfg(unix)]
#[tokio::test]
async fn a_sigterm_before_the_first_poll_is_caught() {
    let signal = pikku_server::shutdown_signal();
    let status = Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    // Had the handler waited for the first poll, the default action would have ended the process by now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    tokio::time::timeout(Duration::from_secs(5), signal)
        .await
        .expect("the signal future resolves for the SIGTERM sent before it was polled");
}
