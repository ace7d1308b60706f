//! The operator CLI, run as the real binary against a fresh SQLite data dir:
//! every command a new operator needs, then `serve` answers with what they set up.

use std::path::Path;
use std::process::{Command, Stdio};

fn weft(data: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .env("WEFT_DATA_DIR", data)
        .env("WEFT_CONFIG", data.join("none.toml"))
        .env("WEFT_LOG", "warn")
        .env("WEFT_SEED_DEMO", "false")
        .env("WEFT_USER_PASSWORD", "operator-password")
        .stdin(Stdio::null())
        .output()
        .expect("run weft");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_set_up_a_tenant_end_to_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let run = |args: &[&str]| {
        let (ok, out, err) = weft(data, args);
        assert!(ok, "weft {args:?} failed:\n{out}\n{err}");
        out
    };
    assert!(run(&["migrate"]).contains("migrations applied"));
    run(&["tenant", "create", "acme", "Acme Inc"]);
    assert!(run(&["tenant", "list"]).contains("acme"));
    run(&[
        "user",
        "create",
        "--tenant",
        "acme",
        "--email",
        "ops@acme.test",
        "--name",
        "Ops",
        "--role",
        "admin",
    ]);
    run(&[
        "user",
        "create",
        "--superadmin",
        "--email",
        "root@acme.test",
        "--name",
        "Root",
    ]);
    let key = run(&[
        "apikey", "create", "--tenant", "acme", "--name", "ci", "--role", "admin",
    ]);
    let key = key.lines().next().expect("secret line").trim().to_owned();
    assert!(key.starts_with("wft_"), "{key}");

    let hostile = weft::bundled::TEST_PLUGINS
        .iter()
        .find(|(n, _, _)| *n == "hostile")
        .expect("hostile");
    assert!(run(&["plugin", "install", hostile.1, hostile.2]).contains("installed hostile 0.1.0"));
    assert!(run(&["plugin", "list"]).contains("hostile\t0.1.0"));
    // Installing the same version again is refused with the reason.
    let (ok, _, err) = weft(data, &["plugin", "install", hostile.1, hostile.2]);
    assert!(!ok && err.contains("already installed"), "{err}");
    // An undeclared import is refused by name.
    let undeclared = weft::bundled::TEST_PLUGINS
        .iter()
        .find(|(n, _, _)| *n == "undeclared")
        .expect("undeclared");
    let (ok, _, err) = weft(data, &["plugin", "install", undeclared.1, undeclared.2]);
    assert!(!ok && err.contains("weft:platform/docs@0.5.0"), "{err}");
    assert!(
        run(&["plugin", "enable", "--tenant", "acme", "hostile"])
            .contains("hostile enabled for acme")
    );
    let (ok, _, err) = weft(data, &["tenant", "create", "Bad Slug", "x"]);
    assert!(!ok && err.contains("slug"), "{err}");

    // The server sees all of it.
    let (mut child, base, _) = crate::common::spawn_serve(data, &[]).await;
    let client = reqwest::Client::new();
    let resp = client
        .get(format!("{base}/t/acme/p/hostile/ok"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("call");
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    let login = client
        .post(format!("{base}/v1/auth/login"))
        .json(&serde_json::json!({"tenant": "acme", "email": "ops@acme.test", "password": "operator-password"}))
        .send()
        .await
        .expect("login");
    assert_eq!(
        login.status(),
        reqwest::StatusCode::OK,
        "the CLI-created user signs in"
    );
    let _ = child.kill();
    let _ = child.wait();
}
