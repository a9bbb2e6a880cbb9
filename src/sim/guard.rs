//! Turning a panic inside a simulated node into a `crash` verdict instead of a dead process.
//!
//! Owns: [`guarded`], the wrapper every node's main future runs in, and the process-wide
//! panic hook. Inside a ksim run the hook stays quiet and keeps the panic's location for
//! the report; elsewhere it defers to the default hook.

use crate::history::{Crash, ShellEvent};
use crate::node::progress::Progress;
use crate::node::recorder::{sim_now_us, Recorder};
use std::cell::RefCell;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Once;
use std::task::{Context, Poll};

thread_local! {
    /// Set on a thread that runs a simulation: panics there are ours to report.
    static IN_RUN: RefCell<bool> = const { RefCell::new(false) };
    /// The last panic on this thread: "message (at file:line:col)".
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs the panic hook (once per process) and marks this thread as a simulation thread.
pub fn enter_run_thread() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default_hook = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if IN_RUN.with(|flag| *flag.borrow()) {
                let message = payload_message(info.payload());
                let text = match info.location() {
                    Some(at) => {
                        format!("{message} (at {}:{}:{})", at.file(), at.line(), at.column())
                    }
                    None => message,
                };
                LAST_PANIC.with(|last| *last.borrow_mut() = Some(text));
            } else {
                default_hook(info);
            }
        }));
    });
    IN_RUN.with(|flag| *flag.borrow_mut() = true);
}

/// Unmarks this thread: the run is over, and a panic from here on is an ordinary one.
pub fn leave_run_thread() {
    IN_RUN.with(|flag| *flag.borrow_mut() = false);
}

/// The last panic seen on this thread, with its location.
pub fn take_last_panic() -> Option<String> {
    LAST_PANIC.with(|last| last.borrow_mut().take())
}

/// The text of a panic payload.
pub fn payload_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

/// Runs a node's main future; a panic in it becomes a recorded crash of `node`.
pub async fn guarded(
    node: String,
    recorder: Recorder,
    progress: Progress,
    future: impl Future<Output = ()> + 'static,
) {
    if let Err(message) = (CatchUnwind {
        future: Box::pin(future),
    })
    .await
    {
        recorder.event(
            &node,
            ShellEvent::Crash {
                message: message.clone(),
            },
        );
        progress.crashed(Crash {
            node,
            message,
            at_us: sim_now_us(),
        });
    }
}

struct CatchUnwind<F> {
    future: Pin<Box<F>>,
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let future = self.future.as_mut();
        match panic::catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => {
                let message = take_last_panic().unwrap_or_else(|| payload_message(&*payload));
                Poll::Ready(Err(message))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_panicking_node_is_recorded_as_a_crash_not_a_dead_process() {
        enter_run_thread();
        let runtime = madsim::runtime::Runtime::with_seed_and_config(1, madsim::Config::default());
        let (recorder, progress) = (Recorder::new(), Progress::default());
        let (r, p) = (recorder.clone(), progress.clone());
        runtime.block_on(async move {
            madsim::runtime::Handle::current()
                .create_node()
                .name("writer-1")
                .init(move || {
                    guarded("writer-1".into(), r.clone(), p.clone(), async {
                        crate::node::sleep(Duration::from_millis(5)).await;
                        panic!("HW went backwards");
                    })
                })
                .build();
            crate::node::sleep(Duration::from_secs(1)).await;
        });
        let crash = progress.crash().expect("the panic was caught");
        assert_eq!(crash.node, "writer-1");
        assert!(
            crash.message.contains("HW went backwards"),
            "{}",
            crash.message
        );
        assert!(
            crash.message.contains("guard.rs"),
            "location kept: {}",
            crash.message
        );
        assert_eq!(crash.at_us / 1000, 5);
        let (events, _) = recorder.snapshot();
        assert_eq!(events.last().unwrap().kind(), "crash");
    }
}
