//! The local backend's own promise: racing writers cannot both win.

use std::process::{Child, Stdio};

use crate::support::TestEnv;

#[test]
fn racing_pushes_without_force_store_exactly_one() {
    let env = TestEnv::local();
    let racers = 8;
    for i in 0..racers {
        env.write(&format!("v{i}.txt"), format!("version {i}").as_bytes());
    }
    let children: Vec<Child> = (0..racers)
        .map(|i| {
            let name = format!("v{i}.txt");
            let mut cmd = env.command(&["push", "job", &name, "-d", "contested.txt"]);
            cmd.stdout(Stdio::null()).stderr(Stdio::piped());
            cmd.spawn().expect("spawn")
        })
        .collect();
    let codes: Vec<i32> = children
        .into_iter()
        .map(|c| {
            c.wait_with_output()
                .expect("wait")
                .status
                .code()
                .unwrap_or(-1)
        })
        .collect();
    let winners: Vec<usize> = (0..racers).filter(|&i| codes[i] == 0).collect();
    assert_eq!(winners.len(), 1, "exit codes: {codes:?}");
    assert!(
        codes.iter().all(|&c| c == 0 || c == 5),
        "exit codes: {codes:?}"
    );
    let stored = env.object("artifacts/jobs/job-1/contested.txt").unwrap();
    assert_eq!(stored, format!("version {}", winners[0]).into_bytes());
    // No temporary files are left in the store.
    assert_eq!(
        env.keys(),
        vec!["artifacts/jobs/job-1/contested.txt".to_string()]
    );
}
