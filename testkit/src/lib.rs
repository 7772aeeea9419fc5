//! # tether-testkit
//!
//! What the runtime bindings' tests share (a dev-dependency; not published):
//!
//! - [`proxy`]: a fault-injecting TCP proxy (resets, blackholes, truncation, delays, half-closes,
//!   refused connects) on std threads and blocking sockets, usable from any runtime's tests and
//!   from the demonstration;
//! - [`bodies`]: the integration tests of the contract over TCP (every proxy fault, a random mix,
//!   blackhole detection, a server restart with the exact unconfirmed list, close and abort,
//!   `Sink`/`Stream`, backpressure, a junk-connection flood, no descriptor leak), each written
//!   once as an `async fn` generic over a [`Harness`];
//! - [`Harness`]: the little a body needs from a runtime binding (bind, connect, spawn, sleep);
//!   [`runtime_tests!`] turns every body into a `#[test]` on that binding;
//! - [`demo`]: the demonstration (tether and the naive way through the same faults), written
//!   once; each binding's `examples/demo.rs` runs it on its runtime;
//! - [`support`] and [`util`]: the bodies' helpers (test configs, payloads, one side of an
//!   exchange; `join`, `yield_now`, a oneshot channel), none of them tied to a runtime.
//!
//! A binding's test file is then a few lines: a `Harness` impl, a `block_on` that runs a future
//! on a fresh runtime, and
//!
//! ```ignore
//! tether_testkit::runtime_tests!(Tokio, block_on);
//! ```
//!
//! This crate depends on no async runtime: tokio's and smol's tests run the same bodies.

pub mod bodies;
pub mod demo;
mod harness;
pub mod proxy;
pub mod support;
pub mod util;

pub use harness::{BoxFuture, Harness, Task, Timeout, Within};
/// The async layer the bodies test (for naming its types in a [`Harness`] impl).
pub use tether_async;

/// Expands to one `#[test]` per body of [`bodies`], run on a runtime binding.
///
/// `runtime_tests!(harness, block_on)` runs the bodies of `loopback`, `faults` and `api`;
/// `runtime_tests!(harness, block_on, [module, ...])` those of the modules listed, among
/// `loopback`, `faults`, `api` and `fds`. Each module becomes a module of tests of the same name
/// (`faults::resets`, `api::sink_and_stream`, ...), each test calling
/// `block_on(bodies::MODULE::NAME(harness))`:
///
/// - `harness` is an expression giving the binding's [`Harness`], evaluated once per test;
/// - `block_on` is a function (or closure) that runs a future to completion on a fresh runtime
///   of the binding, from a plain `#[test]` thread, and returns its output.
///
/// Both are resolved from the module that invokes the macro. `fds` counts the whole process's
/// file descriptors, so give it a test binary of its own (Linux only; elsewhere it expands to
/// nothing).
///
/// ```ignore
/// // tests/contract.rs
/// fn block_on<F: std::future::Future>(f: F) -> F::Output {
///     tokio::runtime::Builder::new_multi_thread()
///         .worker_threads(2)
///         .enable_all()
///         .build()
///         .unwrap()
///         .block_on(f)
/// }
/// tether_testkit::runtime_tests!(Tokio, block_on);
///
/// // tests/fds.rs
/// tether_testkit::runtime_tests!(Tokio, block_on, [fds]);
/// ```
#[macro_export]
macro_rules! runtime_tests {
    (@module loopback, $h:expr, $b:expr) => {
        $crate::runtime_tests!(@tests loopback, $h, $b, [
            thousands_of_messages_both_ways_then_clean_close,
            echo_and_stats,
        ]);
    };
    (@module faults, $h:expr, $b:expr) => {
        $crate::runtime_tests!(@tests faults, $h, $b, [
            resets,
            cut_after_n_bytes_loses_an_unknown_suffix,
            half_close_either_side,
            refused_connects_for_a_while,
            delay,
            random_mix,
            blackhole_is_detected_within_idle_timeout_and_resumed,
            server_restart_ends_the_client_session_with_the_exact_unconfirmed_list,
        ]);
    };
    (@module api, $h:expr, $b:expr) => {
        $crate::runtime_tests!(@tests api, $h, $b, [
            sink_and_stream,
            sink_holds_a_message_through_backpressure,
            close_reports_the_messages_the_peer_never_took,
            close_takes_the_messages_the_application_has_not_read,
            batches_keep_order_backpressure_and_unsent_messages,
            dropping_the_last_handle_aborts,
            manual_ack_confirms_only_acked_messages,
            junk_flood_does_not_disturb_established_sessions,
            setup_errors_say_what_went_wrong,
            the_first_connect_fails_fast_with_the_os_reason,
            acks_flow_when_both_windows_are_full_and_the_apps_echo,
            a_session_arriving_after_the_server_was_dropped_is_aborted_promptly,
            acks_reopen_a_half_empty_window_without_waiting_for_ack_delay,
            an_ack_due_on_the_last_message_a_sender_may_have_in_flight_goes_out_at_once,
        ]);
    };
    (@module fds, $h:expr, $b:expr) => {
        #[cfg(target_os = "linux")]
        $crate::runtime_tests!(@tests fds, $h, $b, [
            hundreds_of_faulted_connections_leak_no_descriptor,
        ]);
    };
    (@tests $module:ident, $h:expr, $b:expr, [$($name:ident),* $(,)?]) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $name() {
                    ($b)($crate::bodies::$module::$name($h))
                }
            )*
        }
    };
    ($harness:expr, $block_on:expr, [$($module:ident),* $(,)?] $(,)?) => {
        $( $crate::runtime_tests!(@module $module, $harness, $block_on); )*
    };
    ($harness:expr, $block_on:expr $(,)?) => {
        $crate::runtime_tests!($harness, $block_on, [loopback, faults, api]);
    };
}
