//! The opt-in panic hook bounds what the process's hook prints for repeated panics (a handler that panics on
//! every message). Its own test binary, since it replaces the process-wide hook.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn repeated_panics_reach_the_previous_hook_a_bounded_number_of_times() {
    let printed = Arc::new(AtomicUsize::new(0));
    let counter = printed.clone();
    // Stands for the default hook, which would print a line (and a backtrace) each time.
    std::panic::set_hook(Box::new(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    }));
    pikku_core::log_limit::install_panic_hook(3, Duration::from_secs(3600));
    for i in 0..1000 {
        let caught = std::panic::catch_unwind(|| panic!("handler failure {i}"));
        assert!(caught.is_err());
    }
    assert_eq!(printed.load(Ordering::SeqCst), 3);
    // Another location has its own budget.
    let _ = std::panic::catch_unwind(|| panic!("elsewhere"));
    assert_eq!(printed.load(Ordering::SeqCst), 4);
    let _ = std::panic::take_hook();
}
