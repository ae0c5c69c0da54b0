//! The forwarder's pure rules: replay safety, blame, idempotent methods.

use super::*;

#[test]
fn the_replay_safety_table_of_design_section_4() {
    use BodyState::{Consumed, Replayable, Unread};
    use Failure::*;
    // (failure, body, idempotent method) -> may retry
    let table = [
        (Connect, Replayable, false, true),
        (ConnectTimeout, Unread, false, true),
        (Local, Replayable, true, true),
        (Connect, Consumed, true, false),
        (ResponseTimeout, Replayable, true, true),
        (ResponseTimeout, Replayable, false, false),
        (Status, Replayable, true, true),
        (Status, Unread, true, false),
        (Status, Consumed, true, false),
        (Other, Replayable, false, false),
        (ClientBody, Replayable, true, false),
        (ClientBody, Unread, true, false),
    ];
    for (failure, body, idem, want) in table {
        assert_eq!(
            may_retry(failure, body, idem),
            want,
            "{failure:?} {body:?} idempotent={idem}"
        );
    }
}

#[test]
fn a_request_dependent_failure_is_the_upstreams_only_when_another_answered() {
    use Failure::*;
    let table = [
        (Connect, false, true),
        (ConnectTimeout, false, true),
        (Status, false, false),
        (Status, true, true),
        (ResponseTimeout, false, false),
        (ResponseTimeout, true, true),
        (Other, true, true),
        (ClientBody, true, false),
        (Local, true, false),
        (Local, false, false),
    ];
    for (failure, answered, want) in table {
        assert_eq!(
            failure.blames_upstream(answered),
            want,
            "{failure:?} answered elsewhere={answered}"
        );
    }
}

#[test]
fn only_post_patch_and_connect_are_not_idempotent() {
    for m in [
        Method::GET,
        Method::HEAD,
        Method::PUT,
        Method::DELETE,
        Method::OPTIONS,
    ] {
        assert!(idempotent(&m), "{m}");
    }
    for m in [Method::POST, Method::PATCH, Method::CONNECT] {
        assert!(!idempotent(&m), "{m}");
    }
}
