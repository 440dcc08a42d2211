//! The local backend's own promise: racing writers cannot both win.

use crate::support::{assert_one_racer_wins, TestEnv};

#[test]
fn racing_pushes_without_force_store_exactly_one() {
    let env = TestEnv::local();
    assert_one_racer_wins(&env, 8);
    // No temporary files are left in the store.
    assert_eq!(
        env.keys(),
        vec!["artifacts/jobs/job-1/contested.txt".to_string()]
    );
}
