//! `Config::validate` at the edges of each rule: the value at a limit is accepted, one past it is
//! refused with the error naming the rule. A user sizing a config to the limit relies on both.

use tether_core::wire::{DATA_FRAME_LEN, MAX_CONTROL_FRAME_LEN};
use tether_core::{Config, ConfigError, Duration, MAX_WINDOW_BYTES};

#[test]
fn a_frame_exactly_one_largest_message_plus_its_header_is_enough() {
    let message = 1000;
    let exact = Config {
        max_message_size: message,
        max_frame_size: message + DATA_FRAME_LEN,
        ..Config::default()
    };
    assert_eq!(exact.validate(), Ok(()));
    let short = Config { max_frame_size: message + DATA_FRAME_LEN - 1, ..exact };
    assert_eq!(
        short.validate(),
        Err(ConfigError::FrameTooSmall {
            frame: message + DATA_FRAME_LEN - 1,
            message,
            overhead: DATA_FRAME_LEN
        })
    );
}

#[test]
fn a_frame_must_hold_a_control_frame_even_for_tiny_messages() {
    let tiny = Config { max_message_size: 1, ..Config::default() };
    let exact = Config { max_frame_size: MAX_CONTROL_FRAME_LEN, ..tiny.clone() };
    assert_eq!(exact.validate(), Ok(()));
    let short = Config { max_frame_size: MAX_CONTROL_FRAME_LEN - 1, ..tiny };
    assert!(matches!(short.validate(), Err(ConfigError::FrameTooSmall { .. })));
}

#[test]
fn byte_windows_may_reach_the_largest_supported_size_and_no_further() {
    let top = Config {
        receive_window_bytes: MAX_WINDOW_BYTES,
        max_unconfirmed_bytes: MAX_WINDOW_BYTES,
        ..Config::default()
    };
    assert_eq!(top.validate(), Ok(()));
    for c in [
        Config { receive_window_bytes: MAX_WINDOW_BYTES + 1, ..top.clone() },
        Config { max_unconfirmed_bytes: MAX_WINDOW_BYTES + 1, ..top.clone() },
    ] {
        assert!(matches!(c.validate(), Err(ConfigError::TooLarge(_, MAX_WINDOW_BYTES))), "{c:?}");
    }
}

#[test]
fn byte_windows_must_hold_one_largest_message() {
    let message = 4096;
    let exact = Config {
        max_message_size: message,
        max_frame_size: message + DATA_FRAME_LEN,
        receive_window_bytes: u64::from(message),
        max_unconfirmed_bytes: u64::from(message),
        ..Config::default()
    };
    assert_eq!(exact.validate(), Ok(()));
    let c = Config { receive_window_bytes: u64::from(message) - 1, ..exact.clone() };
    assert_eq!(c.validate(), Err(ConfigError::WindowTooSmall("receive_window_bytes")));
    let c = Config { max_unconfirmed_bytes: u64::from(message) - 1, ..exact.clone() };
    assert_eq!(c.validate(), Err(ConfigError::WindowTooSmall("max_unconfirmed_bytes")));
    let c = Config { max_unconfirmed_bytes: 1, ..exact };
    assert_eq!(c.validate(), Err(ConfigError::WindowTooSmall("max_unconfirmed_bytes")));
}

#[test]
fn a_fixed_reconnect_backoff_is_allowed_but_not_an_inverted_one() {
    let fixed = Config {
        reconnect_backoff_initial: Duration::from_millis(300),
        reconnect_backoff_max: Duration::from_millis(300),
        ..Config::default()
    };
    assert_eq!(fixed.validate(), Ok(()));
    let inverted = Config { reconnect_backoff_max: Duration::from_millis(299), ..fixed };
    assert_eq!(
        inverted.validate(),
        Err(ConfigError::TimerOrder {
            smaller: "reconnect_backoff_initial",
            larger: "reconnect_backoff_max"
        })
    );
}

#[test]
fn heartbeat_and_ack_delay_must_be_shorter_than_the_idle_timeout() {
    let idle = Duration::from_secs(5);
    for (c, smaller) in [
        (Config { heartbeat_interval: idle, ..Config::default() }, "heartbeat_interval"),
        (Config { ack_delay: idle, ..Config::default() }, "ack_delay"),
    ] {
        assert_eq!(c.validate(), Err(ConfigError::TimerOrder { smaller, larger: "idle_timeout" }));
    }
    let just_below = Config {
        heartbeat_interval: Duration::from_millis(4_999),
        ack_delay: Duration::from_millis(4_999),
        ..Config::default()
    };
    assert_eq!(just_below.validate(), Ok(()));
}
