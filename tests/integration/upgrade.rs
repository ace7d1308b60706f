//! Install checks and upgrades without restart.

use reqwest::StatusCode;

use crate::both_engines;
use crate::common::{Server, code};

both_engines!(undeclared_import_is_refused_by_name, async |s: &Server| {
    let (manifest, component) = weft::bundled::test_plugin("undeclared").expect("built");
    let (status, body) = s.install(&manifest, &component).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "undeclared_import"),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("weft:platform/docs@0.5.0")),
        "the message names the import: {body}"
    );
    let (_, plugins) = s.get("/v1/plugins", Some(&s.root_token)).await;
    assert!(
        !plugins.to_string().contains("undeclared"),
        "nothing was recorded: {plugins}"
    );
    // Not a component at all.
    let (status, body) = s.install(&manifest, b"\0asm junk").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_component"),
        "{body}"
    );
    let (status, body) = s.install("[plugin]\nname = \"x\"", &component).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_manifest"),
        "{body}"
    );
});

both_engines!(
    upgrade_switches_new_calls_and_lets_old_ones_finish,
    async |s: &Server| {
        s.install_test_plugin("hostile").await;
        let t = s.tenant("up").await;
        s.enable(&t, "hostile").await;
        let (manifest, component) = weft::bundled::test_plugin("hostile").expect("built");

        // A call in flight on 0.1.0 (1000 ms limit)...
        let in_flight = s.spawn_get("/t/up/p/hostile/slow", &t.api_key);
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        // ...while 0.2.0 with a 300 ms limit is installed, without a restart.
        let v2 = manifest
            .replace("version = \"0.1.0\"\nwit", "version = \"0.2.0\"\nwit")
            .replace("timeout_ms = 1000", "timeout_ms = 300");
        assert_ne!(v2, manifest, "the manifest edit applied");
        let (status, body) = s.install(&v2, &component).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = s.install(&v2, &component).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::CONFLICT, "version_exists"),
            "versions are immutable: {body}"
        );

        let (status, new_call) = s.get("/t/up/p/hostile/slow", Some(&t.api_key)).await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
        assert!(
            new_call["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("300 ms")),
            "new calls run 0.2.0: {new_call}"
        );
        let (_, old_call) = in_flight.await.expect("in-flight call");
        assert!(
            old_call["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("1000 ms")),
            "the in-flight call finished on 0.1.0: {old_call}"
        );

        let (_, routes) = s.get("/v1/plugins/hostile/routes", None).await;
        assert_eq!(routes["version"], "0.2.0");
        let (_, plugins) = s.get("/v1/plugins", Some(&s.root_token)).await;
        assert!(
            plugins.to_string().contains("0.1.0") && plugins.to_string().contains("0.2.0"),
            "{plugins}"
        );
    }
);
