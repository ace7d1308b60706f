//! Tests of [`Template`] as a whole: loading rules, rendering, conditional
//! files and unsafe paths. The seed templates have their own tests in
//! `tests/seeds.rs`.

use std::collections::BTreeMap;

use serde_json::json;

use super::*;

const MANIFEST: &str = r#"
title = "Demo"
language = "rust"
tags = ["demo"]

[[questions]]
id = "name"
prompt = "Name"
kind = "text"
pattern = "kebab"
default = "my-app"

[[questions]]
id = "with_tests"
prompt = "Add tests?"
kind = "bool"
default = false

[[questions]]
id = "dir"
prompt = "A free-form directory"
kind = "text"
"#;

fn files(entries: &[(&str, &[u8])]) -> BTreeMap<String, Vec<u8>> {
    entries
        .iter()
        .map(|(p, b)| ((*p).to_owned(), b.to_vec()))
        .collect()
}

fn template(entries: &[(&str, &[u8])]) -> Result<Template> {
    Template::from_parts(MANIFEST, files(entries))
}

fn answers(t: &Template, value: serde_json::Value) -> Answers {
    let map = value.as_object().cloned().unwrap_or_default();
    match t.validate(&map) {
        Ok(a) => a,
        Err(e) => panic!("answers refused: {e}"),
    }
}

fn paths(rendered: &[RenderedFile]) -> Vec<&str> {
    rendered.iter().map(|f| f.path.as_str()).collect()
}

#[test]
fn renders_contents_and_paths_with_filters() -> Result<()> {
    let t = template(&[
        (
            "src/{{ name | snake }}.rs",
            b"// {{ name }}\npub struct {{ name | pascal }};\nconst NAME: &str = \"{{ name | screaming_snake }}\";\nfn {{ name | camel }}() {}\n",
        ),
        ("{{ name | kebab }}.txt", b"{{ name | upper }}"),
        ("{{ zfill(7, 3) }}_{{ snake(name) }}.sql", b"{{ singular('categories') }}"),
    ])?;
    let rendered = t.render(&answers(&t, json!({"name": "todo-list"})))?;
    assert_eq!(
        paths(&rendered),
        ["007_todo_list.sql", "src/todo_list.rs", "todo-list.txt"]
    );
    assert_eq!(rendered[0].bytes, b"category");
    assert_eq!(
        String::from_utf8_lossy(&rendered[1].bytes),
        "// todo-list\npub struct TodoList;\nconst NAME: &str = \"TODO_LIST\";\nfn todoList() {}\n"
    );
    assert_eq!(rendered[2].bytes, b"TODO-LIST");
    Ok(())
}

#[test]
fn block_tags_leave_no_blank_lines_and_newlines_are_kept() -> Result<()> {
    let t = template(&[(
        "a.rs",
        b"fn main() {\n    {% if with_tests %}\n    test();\n    {% endif %}\n    run();\n}\n",
    )])?;
    let off = t.render(&answers(&t, json!({})))?;
    assert_eq!(off[0].bytes, b"fn main() {\n    run();\n}\n");
    let on = t.render(&answers(&t, json!({"with_tests": true})))?;
    assert_eq!(on[0].bytes, b"fn main() {\n    test();\n    run();\n}\n");
    Ok(())
}

#[test]
fn conditional_files_are_dropped_and_added() -> Result<()> {
    let t = template(&[
        ("src/lib.rs", b"lib"),
        ("{% if with_tests %}tests/smoke.rs{% endif %}", b"test"),
        ("{% if with_tests %}tests/{% endif %}fixtures.json", b"{}"),
        ("{% if not with_tests %}NO_TESTS.md{% endif %}", b"none"),
    ])?;
    let off = t.render(&answers(&t, json!({})))?;
    assert_eq!(paths(&off), ["NO_TESTS.md", "fixtures.json", "src/lib.rs"]);
    let on = t.render(&answers(&t, json!({"with_tests": true})))?;
    assert_eq!(
        paths(&on),
        ["src/lib.rs", "tests/fixtures.json", "tests/smoke.rs"]
    );
    Ok(())
}

#[test]
fn a_path_rendering_to_a_directory_is_skipped() -> Result<()> {
    let t = template(&[("docs/{% if with_tests %}testing.md{% endif %}", b"x")])?;
    assert!(t.render(&answers(&t, json!({})))?.is_empty());
    Ok(())
}

#[test]
fn binary_files_are_copied_as_they_are() -> Result<()> {
    let png: &[u8] = &[0x89, b'P', b'N', b'G', b'{', b'{', 0xff, 0xfe];
    let t = template(&[("assets/{{ name }}.png", png)])?;
    let rendered = t.render(&answers(&t, json!({})))?;
    assert_eq!(paths(&rendered), ["assets/my-app.png"]);
    assert_eq!(rendered[0].bytes, png);
    Ok(())
}

#[test]
fn html_files_escape_answers_code_files_do_not() -> Result<()> {
    let t = template(&[("index.html", b"<p>{{ dir }}</p>"), ("a.ts", b"{{ dir }}")])?;
    let rendered = t.render(&answers(&t, json!({"dir": "Tom & <Jerry>"})))?;
    assert_eq!(rendered[0].bytes, b"Tom & <Jerry>");
    assert_eq!(rendered[1].bytes, b"<p>Tom &amp; &lt;Jerry&gt;</p>");
    Ok(())
}

#[test]
fn path_traversal_is_refused() -> Result<()> {
    let t = template(&[("{{ dir }}/evil.txt", b"x")])?;
    for dir in ["..", "../../etc", "/etc", "a/../..", "..\\..", "C:", "c:x"] {
        match t.render(&answers(&t, json!({ "dir": dir }))) {
            Err(Error::RenderedPath { rendered, .. }) => {
                assert_eq!(rendered, format!("{dir}/evil.txt"));
            }
            other => panic!("{dir:?} was not refused: {other:?}"),
        }
    }
    // Normalization keeps what is harmless.
    let ok = t.render(&answers(&t, json!({ "dir": "./a//b" })))?;
    assert_eq!(paths(&ok), ["a/b/evil.txt"]);
    Ok(())
}

#[test]
fn unsafe_stored_paths_are_refused_at_load() {
    for path in ["/abs.txt", "../up.txt", "a/./b", "a\\b", "a//b"] {
        assert!(
            matches!(template(&[(path, b"x")]), Err(Error::SourcePath { .. })),
            "{path:?}"
        );
    }
}

#[test]
fn duplicate_rendered_paths_are_refused() -> Result<()> {
    let t = template(&[("{{ name }}.txt", b"a"), ("my-app.txt", b"b")])?;
    match t.render(&answers(&t, json!({}))) {
        Err(Error::DuplicatePath { path, sources }) => {
            assert_eq!(path, "my-app.txt");
            assert_eq!(sources, ["my-app.txt", "{{ name }}.txt"]);
        }
        other => panic!("not refused: {other:?}"),
    }
    let t = template(&[("{{ dir }}", b"a"), ("x/y.txt", b"b")])?;
    assert!(matches!(
        t.render(&answers(&t, json!({"dir": "x"}))),
        Err(Error::PathClash { .. })
    ));
    Ok(())
}

#[test]
fn load_checks_syntax_and_variables() {
    let err = |entries: &[(&str, &[u8])]| match template(entries) {
        Ok(_) => "loaded".to_owned(),
        Err(e) => e.to_string(),
    };
    let syntax = err(&[("a.rs", b"line one\n{% if name %}unclosed")]);
    assert!(
        syntax.contains("a.rs") && syntax.contains("syntax error"),
        "{syntax}"
    );
    let path_syntax = err(&[("{{ name", b"x")]);
    assert!(path_syntax.contains("the path of"), "{path_syntax}");
    // A misspelt variable fails at load even in a branch no default takes.
    let unknown = err(&[("a.rs", b"{% if with_tests %}{{ nmae }}{% endif %}")]);
    assert!(
        unknown.contains("`nmae`, which is not a question"),
        "{unknown}"
    );
    // Loop variables, `set` and the engine's globals are fine.
    let fine = err(&[(
        "a.rs",
        b"{% set x = name %}{% for i in range(3) %}{{ loop.index }}{{ i }}{{ x }}{% endfor %}",
    )]);
    assert_eq!(fine, "loaded");
    assert!(err(&[]).contains("no files"));
    let include = err(&[("a.rs", b"{% include 'b.rs' %}"), ("b.rs", b"x")]);
    assert!(include.contains("not supported"), "{include}");
}

#[test]
fn from_parts_enforces_size_limits() {
    let big = vec![b'x'; MAX_FILE_BYTES + 1];
    assert!(matches!(
        template(&[("big.txt", &big)]),
        Err(Error::Limit(_))
    ));
    let many: Vec<(String, Vec<u8>)> = (0..=MAX_FILES)
        .map(|i| (format!("f{i}.txt"), Vec::new()))
        .collect();
    assert!(matches!(
        Template::from_parts(MANIFEST, many.into_iter().collect()),
        Err(Error::Limit(_))
    ));
}

#[test]
fn runaway_templates_hit_a_budget() -> Result<()> {
    let t = template(&[(
        "loop.txt",
        b"{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
    )])?;
    let err = t.render(&answers(&t, json!({})));
    assert!(matches!(err, Err(Error::Limit(_))), "{err:?}");
    let t = template(&[(
        "big.txt",
        b"{% for i in range(100) %}{{ 'x' * 10000000 }}{% endfor %}",
    )])?;
    let err = t.render(&answers(&t, json!({})));
    assert!(matches!(err, Err(Error::Limit(_))), "{err:?}");
    Ok(())
}

#[test]
fn render_errors_name_the_file() -> Result<()> {
    let t = template(&[("a.txt", b"{{ with_tests | snake }}")])?;
    match t.render(&answers(&t, json!({}))) {
        Err(e @ Error::Render { .. }) => {
            assert!(e.to_string().contains("a.txt"), "{e}");
            assert_eq!(e.code(), "render_failed");
        }
        other => panic!("expected a render error: {other:?}"),
    }
    Ok(())
}

#[test]
fn load_reads_a_directory() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("weft-templates-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let write = |rel: &str, bytes: &[u8]| {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io_error(parent))?;
        }
        std::fs::write(&path, bytes).map_err(io_error(&path))
    };
    write("demo/template.toml", MANIFEST.as_bytes())?;
    write("demo/files/.gitignore", b"/target\n")?;
    write("demo/files/src/{{ name | snake }}.rs", b"// {{ name }}\n")?;
    write("README.md", b"not a template")?;
    let all = Template::load_all(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    let all = all?;
    let t = &all["demo"];
    assert_eq!(
        t.source_paths().collect::<Vec<_>>(),
        [".gitignore", "src/{{ name | snake }}.rs"]
    );
    let rendered = t.render(
        &t.default_answers()
            .map_err(|e| Error::Manifest(e.to_string()))?,
    )?;
    assert_eq!(paths(&rendered), [".gitignore", "src/my_app.rs"]);
    Ok(())
}

#[test]
fn questions_serialize_for_rest() -> Result<()> {
    let t = template(&[("a.txt", b"x")])?;
    let json = serde_json::to_value(t.questions()).unwrap_or_default();
    assert_eq!(
        json[0],
        json!({"id": "name", "prompt": "Name", "kind": "text", "default": "my-app", "required": false, "pattern": "kebab"})
    );
    assert_eq!(json[1]["kind"], "bool");
    Ok(())
}

#[test]
fn root_dir_renders_from_answers() -> Result<()> {
    let manifest = MANIFEST.replace(
        "tags = [\"demo\"]",
        "tags = [\"demo\"]\nroot_dir = \"{{ name }}\"",
    );
    let t = Template::from_parts(&manifest, files(&[("a.txt", b"x")]))?;
    assert_eq!(
        t.root_dir_name(&answers(&t, json!({})))?,
        Some("my-app".to_owned())
    );
    let t = Template::from_parts(
        &MANIFEST.replace("tags = [\"demo\"]", "root_dir = \"{{ dir }}\""),
        files(&[("a.txt", b"x")]),
    )?;
    assert_eq!(t.root_dir_name(&answers(&t, json!({})))?, None, "blank");
    for bad in ["a/b", "..", "/x"] {
        assert!(
            matches!(
                t.root_dir_name(&answers(&t, json!({ "dir": bad }))),
                Err(Error::RenderedPath { .. })
            ),
            "{bad}"
        );
    }
    let unknown = Template::from_parts(
        &MANIFEST.replace("tags = [\"demo\"]", "root_dir = \"{{ nope }}\""),
        files(&[("a.txt", b"x")]),
    );
    assert!(matches!(unknown, Err(Error::FileTemplate { .. })));
    let no_root = template(&[("a.txt", b"x")])?;
    assert_eq!(no_root.root_dir_name(&answers(&no_root, json!({})))?, None);
    Ok(())
}

#[test]
fn multiline_text_allows_line_breaks_only_when_asked() -> Result<()> {
    let manifest = format!(
        "{MANIFEST}\n[[questions]]\nid = \"notes\"\nprompt = \"Notes\"\nkind = \"text\"\nmultiline = true\n"
    );
    let t = Template::from_parts(&manifest, files(&[("a.txt", b"{{ notes }}")]))?;
    let rendered = t.render(&answers(&t, json!({ "notes": "one\ntwo\tthree" })))?;
    assert_eq!(rendered[0].bytes, b"one\ntwo\tthree");
    let refused = t.validate(
        json!({ "dir": "a\nb", "notes": "bell\u{7}" })
            .as_object()
            .unwrap_or(&Map::new()),
    );
    let codes: Vec<_> = refused
        .map_err(|e| e.errors.iter().map(|e| e.code).collect::<Vec<_>>())
        .err()
        .unwrap_or_default();
    assert_eq!(
        codes,
        [
            AnswerErrorCode::InvalidCharacter,
            AnswerErrorCode::InvalidCharacter
        ]
    );
    Ok(())
}

#[test]
fn templates_can_be_shared_across_threads() {
    // The host keeps loaded templates in shared state and renders them from
    // any request's task.
    fn shared<T: Send + Sync + Clone + 'static>() {}
    shared::<Template>();
    shared::<Answers>();
}
