//! The client against the fake server, for every provider kind: wire
//! bodies, usage, streaming, error mapping, timeouts and embeddings.

use std::time::Duration;

use futures::StreamExt as _;
use serde_json::json;
use weft_llm_wire::{
    ChatRequest, Client, Completion, EmbedRequest, Endpoint, ErrorKind, FakeLlm, Message, Part,
    ProviderKind, Role, Script, StreamEvent, Usage, WireError,
};

const KEY: &str = "sk-test-4242-secret";
const PNG: [u8; 4] = [1, 2, 3, 4];
const ALL: [ProviderKind; 5] = [
    ProviderKind::OpenAi,
    ProviderKind::Xai,
    ProviderKind::OpenAiCompatible,
    ProviderKind::Anthropic,
    ProviderKind::Gemini,
];

async fn setup() -> (FakeLlm, Client) {
    // The host installs ring once at start; tests do the same.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fake = FakeLlm::start().await.with_key(KEY);
    let client = Client::new().expect("client");
    (fake, client)
}

fn endpoint(fake: &FakeLlm, kind: ProviderKind) -> Endpoint {
    Endpoint::new(kind, KEY, Duration::from_secs(5)).with_base_url(fake.base_url())
}

fn model_for(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::OpenAi => "gpt-4o-mini",
        ProviderKind::Xai => "grok-3-mini",
        ProviderKind::OpenAiCompatible => "llama-3.1-8b",
        ProviderKind::Anthropic => "claude-sonnet-4-5",
        ProviderKind::Gemini => "gemini-2.0-flash",
    }
}

fn request(kind: ProviderKind) -> ChatRequest {
    ChatRequest {
        model: model_for(kind).into(),
        system: Some("be brief".into()),
        messages: vec![
            Message::text(Role::User, "earlier question"),
            Message::text(Role::Assistant, "earlier answer"),
            Message {
                role: Role::User,
                parts: vec![
                    Part::Text("describe this image please".into()),
                    Part::Image {
                        media_type: "image/png".into(),
                        data: PNG.to_vec(),
                    },
                ],
            },
        ],
        max_tokens: 100,
        temperature: Some(0.5),
    }
}

const REPLY: &str = "fake reply to: describe this image please";

/// The fake's documented rule applied to [`request`].
fn expected_usage() -> Usage {
    let texts = [
        "be brief",
        "earlier question",
        "earlier answer",
        "describe this image please",
    ];
    Usage {
        input_tokens: texts.iter().map(|t| FakeLlm::text_tokens(t)).sum::<u64>() + 85,
        output_tokens: FakeLlm::text_tokens(REPLY),
    }
}

async fn collect(
    client: &Client,
    ep: &Endpoint,
    req: &ChatRequest,
) -> Result<(Vec<String>, Completion), WireError> {
    let mut stream = client.stream(ep, req).await?;
    let mut deltas = Vec::new();
    let mut done = None;
    while let Some(event) = stream.next().await {
        match event? {
            StreamEvent::Delta(d) => {
                assert!(done.is_none(), "delta after Done");
                deltas.push(d);
            }
            StreamEvent::Done(c) => {
                assert!(done.is_none(), "two Done events");
                done = Some(c);
            }
        }
    }
    Ok((deltas, done.expect("stream ended without Done")))
}

#[tokio::test]
async fn openai_family_completion_wire_body() {
    let (fake, client) = setup().await;
    for kind in [
        ProviderKind::OpenAi,
        ProviderKind::Xai,
        ProviderKind::OpenAiCompatible,
    ] {
        let c = client
            .complete(&endpoint(&fake, kind), &request(kind))
            .await
            .expect("complete");
        assert_eq!(c.text, REPLY);
        assert_eq!(c.model, model_for(kind));
        assert_eq!(c.finish_reason, "stop");
        assert_eq!(c.usage, expected_usage());

        let seen = fake.last_request().expect("recorded");
        assert_eq!(seen.provider, ProviderKind::OpenAi);
        assert_eq!(seen.path, "/v1/chat/completions");
        assert_eq!(seen.api_key.as_deref(), Some(KEY));
        assert!(!seen.stream);
        assert_eq!(
            seen.body["messages"][0],
            json!({"role": "system", "content": "be brief"})
        );
        assert_eq!(
            seen.body["messages"][1],
            json!({"role": "user", "content": "earlier question"})
        );
        assert_eq!(seen.body["messages"][2]["role"], "assistant");
        assert_eq!(
            seen.body["messages"][3]["content"],
            json!([
                {"type": "text", "text": "describe this image please"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AQIDBA=="}}
            ])
        );
        assert_eq!(seen.body["max_tokens"], 100);
        assert_eq!(seen.body["temperature"], 0.5);
        assert!(seen.body.get("stream").is_none());
    }
}

#[tokio::test]
async fn anthropic_completion_wire_body() {
    let (fake, client) = setup().await;
    let kind = ProviderKind::Anthropic;
    let c = client
        .complete(&endpoint(&fake, kind), &request(kind))
        .await
        .expect("complete");
    assert_eq!(c.text, REPLY);
    assert_eq!(c.finish_reason, "end_turn");
    assert_eq!(c.usage, expected_usage());

    let seen = fake.last_request().expect("recorded");
    assert_eq!(seen.provider, kind);
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(seen.api_key.as_deref(), Some(KEY));
    assert_eq!(seen.body["system"], "be brief");
    assert_eq!(seen.body["max_tokens"], 100);
    assert_eq!(seen.body["messages"].as_array().expect("messages").len(), 3);
    assert_eq!(
        seen.body["messages"][2]["content"],
        json!([
            {"type": "text", "text": "describe this image please"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AQIDBA=="}}
        ])
    );
}

#[tokio::test]
async fn gemini_completion_wire_body() {
    let (fake, client) = setup().await;
    let kind = ProviderKind::Gemini;
    let c = client
        .complete(&endpoint(&fake, kind), &request(kind))
        .await
        .expect("complete");
    assert_eq!(c.text, REPLY);
    assert_eq!(c.model, "gemini-2.0-flash");
    assert_eq!(c.finish_reason, "STOP");
    assert_eq!(c.usage, expected_usage());

    let seen = fake.last_request().expect("recorded");
    assert_eq!(seen.provider, kind);
    assert_eq!(seen.path, "/v1beta/models/gemini-2.0-flash:generateContent");
    assert_eq!(seen.model, "gemini-2.0-flash");
    assert_eq!(seen.api_key.as_deref(), Some(KEY));
    assert_eq!(
        seen.body["systemInstruction"],
        json!({"parts": [{"text": "be brief"}]})
    );
    assert_eq!(seen.body["contents"][1]["role"], "model");
    assert_eq!(
        seen.body["contents"][2],
        json!({"role": "user", "parts": [
            {"text": "describe this image please"},
            {"inline_data": {"mime_type": "image/png", "data": "AQIDBA=="}}
        ]})
    );
    assert_eq!(
        seen.body["generationConfig"],
        json!({"maxOutputTokens": 100, "temperature": 0.5})
    );
}

#[tokio::test]
async fn streams_concatenate_to_done_with_final_usage() {
    let (fake, client) = setup().await;
    for kind in ALL {
        let ep = endpoint(&fake, kind);
        let (deltas, done) = collect(&client, &ep, &request(kind))
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert!(deltas.len() > 1, "{kind}: {deltas:?}");
        assert_eq!(deltas.concat(), done.text, "{kind}");
        assert_eq!(done.text, REPLY, "{kind}");
        assert_eq!(done.usage, expected_usage(), "{kind}");
        assert_eq!(done.model, model_for(kind), "{kind}");
        let seen = fake.last_request().expect("recorded");
        assert!(seen.stream, "{kind}");
    }
    let openai = fake
        .requests()
        .into_iter()
        .find(|r| r.model == "gpt-4o-mini")
        .expect("openai");
    assert_eq!(openai.body["stream"], true);
    assert_eq!(
        openai.body["stream_options"],
        json!({"include_usage": true})
    );
}

#[tokio::test]
async fn max_tokens_cuts_the_reply() {
    let (fake, client) = setup().await;
    for (kind, reason) in [
        (ProviderKind::OpenAi, "length"),
        (ProviderKind::Anthropic, "max_tokens"),
        (ProviderKind::Gemini, "MAX_TOKENS"),
    ] {
        let mut req = request(kind);
        req.max_tokens = 3;
        let ep = endpoint(&fake, kind);
        let c = client.complete(&ep, &req).await.expect("complete");
        assert_eq!(c.text, "fake reply t", "{kind}");
        assert_eq!(c.usage.output_tokens, 3);
        assert_eq!(c.finish_reason, reason);
        let (_, done) = collect(&client, &ep, &req).await.expect("stream");
        assert_eq!(done.text, "fake reply t", "{kind}");
        assert_eq!(done.usage.output_tokens, 3, "{kind}");
        assert_eq!(done.finish_reason, reason);
    }
}

#[tokio::test]
async fn scripted_reply_and_usage() {
    let (fake, client) = setup().await;
    let fixed = Usage {
        input_tokens: 1234,
        output_tokens: 56,
    };
    for kind in ALL {
        fake.script(
            model_for(kind),
            Script::new().reply("scripted answer text").usage(fixed),
        );
        let ep = endpoint(&fake, kind);
        let c = client
            .complete(&ep, &request(kind))
            .await
            .expect("complete");
        assert_eq!(c.text, "scripted answer text", "{kind}");
        assert_eq!(c.usage, fixed, "{kind}");
        let (deltas, done) = collect(&client, &ep, &request(kind)).await.expect("stream");
        assert_eq!(deltas.concat(), "scripted answer text", "{kind}");
        assert_eq!(done.usage, fixed, "{kind}");
    }
}

#[tokio::test]
async fn failure_statuses_map_to_kinds() {
    let (fake, client) = setup().await;
    for kind in [
        ProviderKind::OpenAi,
        ProviderKind::Anthropic,
        ProviderKind::Gemini,
    ] {
        let ep = endpoint(&fake, kind);
        let model = model_for(kind);
        for (status, want) in [
            (500, ErrorKind::Server { status: 500 }),
            (503, ErrorKind::Server { status: 503 }),
            (529, ErrorKind::Server { status: 529 }),
            (429, ErrorKind::RateLimited),
        ] {
            fake.script(model, Script::new().fail(status, 1));
            let err = client
                .complete(&ep, &request(kind))
                .await
                .expect_err("scripted failure");
            assert_eq!(err.kind, want, "{kind} {status}: {err}");
            assert!(err.retryable(), "{kind} {status}");
            assert!(err.message.contains("scripted failure"), "{err}");
            // Only the next request fails.
            client
                .complete(&ep, &request(kind))
                .await
                .expect("after the scripted failure");

            fake.script(model, Script::new().fail(status, 1));
            let err = client
                .stream(&ep, &request(kind))
                .await
                .err()
                .expect("stream refused");
            assert_eq!(err.kind, want, "{kind} stream {status}");
        }
        fake.reset();
        fake.script(model, Script::new().fail(500, 2));
        for _ in 0..2 {
            assert!(client.complete(&ep, &request(kind)).await.is_err());
        }
        client
            .complete(&ep, &request(kind))
            .await
            .expect("third succeeds");
        assert_eq!(fake.count(model), 3);
    }
}

#[tokio::test]
async fn bad_requests_are_rejected_not_retryable() {
    let (fake, client) = setup().await;
    for kind in ALL {
        let ep = endpoint(&fake, kind);
        let mut req = request(kind);
        req.messages.clear();
        req.system = None;
        let err = client.complete(&ep, &req).await.expect_err("no messages");
        assert_eq!(
            err.kind,
            ErrorKind::Rejected { status: 400 },
            "{kind}: {err}"
        );
        assert!(!err.retryable());

        // An image the provider cannot take (not base64 of an image type).
        let mut req = request(kind);
        req.messages[2].parts[1] = Part::Image {
            media_type: "text/plain".into(),
            data: b"x".to_vec(),
        };
        let result = client.complete(&ep, &req).await;
        if kind == ProviderKind::Gemini {
            // Gemini takes any MIME type inline.
            result.expect("gemini accepts");
        } else {
            assert_eq!(
                result.expect_err("bad image").kind,
                ErrorKind::Rejected { status: 400 },
                "{kind}"
            );
        }
    }
}

#[tokio::test]
async fn wrong_key_is_rejected_and_never_echoed() {
    let (fake, client) = setup().await;
    for kind in ALL {
        let mut ep = endpoint(&fake, kind);
        ep.api_key = "sk-wrong-key-987654".into();
        let err = client
            .complete(&ep, &request(kind))
            .await
            .expect_err("wrong key");
        assert_eq!(
            err.kind,
            ErrorKind::Rejected { status: 401 },
            "{kind}: {err}"
        );
        assert!(!err.retryable());
        assert!(!err.to_string().contains("sk-wrong-key-987654"), "{err}");
        assert!(!format!("{ep:?}").contains("sk-wrong-key-987654"));
        let err = client
            .embed(
                &ep,
                &EmbedRequest {
                    model: "m".into(),
                    inputs: vec!["x".into()],
                },
            )
            .await
            .expect_err("wrong key");
        assert!(!err.to_string().contains("sk-wrong-key-987654"), "{err}");
    }
}

#[tokio::test]
async fn any_non_empty_key_is_accepted_without_with_key() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fake = FakeLlm::start().await;
    assert_eq!(fake.api_key(), None);
    let client = Client::new().expect("client");
    for kind in ALL {
        let mut ep = endpoint(&fake, kind);
        ep.api_key = "whatever".into();
        client.complete(&ep, &request(kind)).await.expect("any key");
        ep.api_key = String::new();
        let err = client
            .complete(&ep, &request(kind))
            .await
            .expect_err("empty key");
        assert_eq!(err.kind, ErrorKind::Rejected { status: 401 }, "{kind}");
    }
}

#[tokio::test]
async fn slow_provider_times_out() {
    let (fake, client) = setup().await;
    for kind in ALL {
        let model = model_for(kind);
        let mut ep = endpoint(&fake, kind);
        ep.timeout = Duration::from_millis(150);

        fake.script(model, Script::new().delay(Duration::from_secs(2)));
        let err = client
            .complete(&ep, &request(kind))
            .await
            .expect_err("timeout");
        assert_eq!(err.kind, ErrorKind::Timeout, "{kind}: {err}");
        assert!(err.retryable());
        let err = client
            .stream(&ep, &request(kind))
            .await
            .err()
            .expect("no head in time");
        assert_eq!(err.kind, ErrorKind::Timeout, "{kind}");

        // The head comes at once but the stream stalls between chunks.
        fake.script(model, Script::new().chunk_delay(Duration::from_secs(2)));
        let err = collect(&client, &ep, &request(kind))
            .await
            .expect_err("gap timeout");
        assert_eq!(err.kind, ErrorKind::Timeout, "{kind}: {err}");

        // Short gaps are fine, even if the whole stream takes longer.
        fake.script(model, Script::new().chunk_delay(Duration::from_millis(50)));
        let (_, done) = collect(&client, &ep, &request(kind))
            .await
            .expect("slow but steady");
        assert_eq!(done.text, REPLY);
    }
}

#[tokio::test]
async fn stream_without_end_marker_is_a_protocol_error() {
    let (fake, client) = setup().await;
    for kind in ALL {
        fake.script(model_for(kind), Script::new().cut_stream());
        let err = collect(&client, &endpoint(&fake, kind), &request(kind))
            .await
            .expect_err("cut");
        assert_eq!(err.kind, ErrorKind::Protocol, "{kind}: {err}");
    }
}

#[tokio::test]
async fn unreachable_server_is_a_transport_error() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = Client::new().expect("client");
    // Bind and drop to get a port that is (almost certainly) closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let ep = Endpoint::new(ProviderKind::OpenAi, KEY, Duration::from_secs(5))
        .with_base_url(format!("http://127.0.0.1:{port}"));
    let err = client
        .complete(&ep, &request(ProviderKind::OpenAi))
        .await
        .expect_err("closed port");
    assert_eq!(err.kind, ErrorKind::Transport, "{err}");
    assert!(err.retryable());
    assert!(!err.message.contains(KEY));
}

#[tokio::test]
async fn embeddings() {
    let (fake, client) = setup().await;
    let inputs = vec!["hello world".to_owned(), "second text here".to_owned()];
    let want: Vec<Vec<f32>> = inputs.iter().map(|t| FakeLlm::embedding(t)).collect();

    for kind in [
        ProviderKind::OpenAi,
        ProviderKind::Xai,
        ProviderKind::OpenAiCompatible,
    ] {
        let e = client
            .embed(
                &endpoint(&fake, kind),
                &EmbedRequest {
                    model: "text-embedding-3-small".into(),
                    inputs: inputs.clone(),
                },
            )
            .await
            .expect("embed");
        assert_eq!(e.vectors, want);
        assert_eq!(e.usage.input_tokens, 3 + 4);
        assert_eq!(e.usage.output_tokens, 0);
        let seen = fake.last_request().expect("recorded");
        assert_eq!(seen.path, "/v1/embeddings");
        assert_eq!(
            seen.body,
            json!({"model": "text-embedding-3-small", "input": ["hello world", "second text here"]})
        );
    }

    let e = client
        .embed(
            &endpoint(&fake, ProviderKind::Gemini),
            &EmbedRequest {
                model: "text-embedding-004".into(),
                inputs: inputs.clone(),
            },
        )
        .await
        .expect("gemini embed");
    assert_eq!(e.vectors, want);
    assert_eq!(e.usage, Usage::default());
    let seen = fake.last_request().expect("recorded");
    assert_eq!(
        seen.path,
        "/v1beta/models/text-embedding-004:batchEmbedContents"
    );
    assert_eq!(
        seen.body["requests"][1],
        json!({"model": "models/text-embedding-004", "content": {"parts": [{"text": "second text here"}]}})
    );

    let before = fake.requests().len();
    let err = client
        .embed(
            &endpoint(&fake, ProviderKind::Anthropic),
            &EmbedRequest {
                model: "none".into(),
                inputs,
            },
        )
        .await
        .expect_err("anthropic has no embeddings");
    assert_eq!(err.kind, ErrorKind::Unsupported);
    assert!(!err.retryable());
    assert_eq!(fake.requests().len(), before, "nothing sent");

    fake.script("text-embedding-3-small", Script::new().fail(429, 1));
    let err = client
        .embed(
            &endpoint(&fake, ProviderKind::OpenAi),
            &EmbedRequest {
                model: "text-embedding-3-small".into(),
                inputs: vec!["x".into()],
            },
        )
        .await
        .expect_err("rate limited");
    assert_eq!(err.kind, ErrorKind::RateLimited);
}

#[tokio::test]
async fn fake_checks_requests_like_the_providers() {
    let (fake, _) = setup().await;
    let http = reqwest::Client::new();
    let base = fake.base_url();
    let post = |path: &str, headers: &[(&str, &str)], body: serde_json::Value| {
        let mut req = http.post(format!("{base}{path}")).body(body.to_string());
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        async move {
            let response = req.send().await.expect("send");
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.expect("json body");
            (status, body)
        }
    };
    let bearer = format!("Bearer {KEY}");

    // OpenAI: stream_options only with stream; error shape.
    let (status, body) = post(
        "/v1/chat/completions",
        &[("authorization", bearer.as_str())],
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream_options": {"include_usage": true}}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let (status, body) = post(
        "/v1/chat/completions",
        &[],
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "invalid_api_key");

    // Anthropic: version header, max_tokens and top-level system required.
    let good =
        json!({"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    let (status, body) = post("/v1/messages", &[("x-api-key", KEY)], good.clone()).await;
    assert_eq!(status, 400);
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let versioned = [("x-api-key", KEY), ("anthropic-version", "2023-06-01")];
    let (status, _) = post("/v1/messages", &versioned, good).await;
    assert_eq!(status, 200);
    let (status, _) = post(
        "/v1/messages",
        &versioned,
        json!({"model": "c", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 400, "max_tokens is required");
    let (status, _) = post(
        "/v1/messages",
        &versioned,
        json!({"model": "c", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 400, "system is not a message role");
    let (status, body) = post("/v1/messages", &[("x-api-key", "nope")], json!({})).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["type"], "authentication_error");

    // Gemini: camelCase and snake_case both accepted, bad base64 refused,
    // key in the query accepted, error shape.
    let key = [("x-goog-api-key", KEY)];
    let (status, body) = post(
        "/v1beta/models/g:generateContent",
        &key,
        json!({"contents": [{"parts": [{"text": "hi"}, {"inlineData": {"mimeType": "image/png", "data": "AQID"}}]}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["usageMetadata"]["promptTokenCount"], 1 + 85);
    let (status, body) = post(
        "/v1beta/models/g:generateContent",
        &key,
        json!({"contents": [{"parts": [{"inline_data": {"mime_type": "image/png", "data": "not base64!"}}]}]}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
    let (status, _) = post(
        &format!("/v1beta/models/g:generateContent?key={KEY}"),
        &[],
        json!({"contents": [{"parts": [{"text": "hi"}]}]}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = post("/v1beta/models/g:nothing", &key, json!({})).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["status"], "NOT_FOUND");
    let (status, body) = post(
        "/v1beta/models/g:streamGenerateContent",
        &key,
        json!({"contents": [{"parts": [{"text": "hi"}]}]}),
    )
    .await;
    assert_eq!(status, 200);
    let chunks = body.as_array().expect("JSON array stream without alt=sse");
    assert_eq!(
        chunks.last().expect("chunk")["candidates"][0]["finishReason"],
        "STOP"
    );
}

#[tokio::test]
async fn counts_and_reset() {
    let (fake, client) = setup().await;
    let kind = ProviderKind::Anthropic;
    let ep = endpoint(&fake, kind);
    for _ in 0..3 {
        client
            .complete(&ep, &request(kind))
            .await
            .expect("complete");
    }
    assert_eq!(fake.count(model_for(kind)), 3);
    assert_eq!(fake.count("other"), 0);
    assert_eq!(fake.requests().len(), 3);
    fake.reset();
    assert_eq!(fake.count(model_for(kind)), 0);
    assert!(fake.requests().is_empty());

    let fake = fake.without_recording();
    client
        .complete(&ep, &request(kind))
        .await
        .expect("complete");
    assert_eq!(fake.count(model_for(kind)), 1);
    assert!(fake.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_requests_share_the_pool() {
    let (fake, client) = setup().await;
    let fake = fake.without_recording();
    let started = std::time::Instant::now();
    let (workers, each) = (16, 50);
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let client = client.clone();
            let eps: Vec<Endpoint> = [
                ProviderKind::OpenAi,
                ProviderKind::Anthropic,
                ProviderKind::Gemini,
            ]
            .into_iter()
            .map(|kind| endpoint(&fake, kind))
            .collect();
            tokio::spawn(async move {
                for i in 0..each {
                    let ep = &eps[(w + i) % 3];
                    let text = if i % 2 == 0 {
                        client.complete(ep, &request(ep.kind)).await.map(|c| c.text)
                    } else {
                        collect(&client, ep, &request(ep.kind))
                            .await
                            .map(|(_, c)| c.text)
                    };
                    assert_eq!(text.expect("request"), REPLY);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("join");
    }
    let n = workers * each;
    let total: usize = ALL.iter().map(|k| fake.count(model_for(*k))).sum();
    assert_eq!(total, n);
    eprintln!(
        "{n} mixed requests (half streamed) in {:?}: {:.0}/s, client and fake on one runtime",
        started.elapsed(),
        n as f64 / started.elapsed().as_secs_f64()
    );
}
