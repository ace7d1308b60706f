//! The seed templates under `library/templates/`: each loads, renders with
//! its defaults and with every combination of its choice and yes/no
//! answers, produces valid TOML wherever it writes TOML, and zips.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Cursor, Read};
use std::path::PathBuf;

use serde_json::{Map, Value, json};
use weft_templates::{AnswerErrorCode, QuestionKind, RenderedFile, Template, to_zip};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn seeds_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../library/templates")
}

fn seeds() -> BTreeMap<String, Template> {
    match Template::load_all(&seeds_dir()) {
        Ok(all) => all,
        Err(e) => panic!("the seed templates do not load: {e}"),
    }
}

fn seed(id: &str) -> Template {
    match seeds().remove(id) {
        Some(t) => t,
        None => panic!("no seed template {id}"),
    }
}

fn obj(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

fn render(t: &Template, answers: Value) -> Vec<RenderedFile> {
    let answers = match t.validate(&obj(answers)) {
        Ok(a) => a,
        Err(e) => panic!("answers refused: {e}"),
    };
    match t.render(&answers) {
        Ok(files) => files,
        Err(e) => panic!("render failed: {e}"),
    }
}

fn paths(files: &[RenderedFile]) -> BTreeSet<&str> {
    files.iter().map(|f| f.path.as_str()).collect()
}

fn text<'a>(files: &'a [RenderedFile], path: &str) -> &'a str {
    match files.iter().find(|f| f.path == path) {
        Some(f) => std::str::from_utf8(&f.bytes).unwrap_or_default(),
        None => panic!("no {path} among {:?}", paths(files)),
    }
}

/// Every combination of the choice and bool answers (text and number
/// questions keep their defaults).
fn combinations(t: &Template) -> Vec<Map<String, Value>> {
    let mut combos = vec![Map::new()];
    for q in t.questions() {
        let options: Vec<Value> = match q.kind {
            QuestionKind::Choice => q.choices.iter().map(|c| json!(c)).collect(),
            QuestionKind::Bool => vec![json!(false), json!(true)],
            QuestionKind::Text | QuestionKind::Number => continue,
        };
        combos = combos
            .into_iter()
            .flat_map(|combo| {
                options.iter().map(move |o| {
                    let mut next = combo.clone();
                    next.insert(q.id.clone(), o.clone());
                    next
                })
            })
            .collect();
    }
    combos
}

/// What every rendered file must be: TOML that parses, no template syntax
/// left over, no blank line at the top.
fn check_output(id: &str, answers: &Map<String, Value>, files: &[RenderedFile]) {
    assert!(!files.is_empty(), "{id} {answers:?}: no files");
    for f in files {
        let Ok(body) = std::str::from_utf8(&f.bytes) else {
            continue;
        };
        let at = format!("{id} {answers:?} {}", f.path);
        if f.path.ends_with(".toml")
            && let Err(e) = body.parse::<toml::Table>()
        {
            panic!("{at} is not valid TOML: {e}\n{body}");
        }
        assert!(
            !body.contains("{{") && !body.contains("{%"),
            "{at}: template syntax left over"
        );
        assert!(!body.starts_with('\n'), "{at} starts with a blank line");
        assert!(body.ends_with('\n'), "{at} does not end with a newline");
        assert!(
            !body.contains("\n\n\n"),
            "{at} has two blank lines in a row"
        );
    }
}

#[test]
fn there_are_at_least_five_seeds_and_each_asks_two_to_five_questions() {
    let all = seeds();
    assert!(all.len() >= 5, "{:?}", all.keys().collect::<Vec<_>>());
    for (id, t) in &all {
        let n = t.questions().len();
        assert!((2..=5).contains(&n), "{id} asks {n} questions");
        assert!(t.manifest().root_dir.is_some(), "{id} names no root_dir");
        assert!(!t.manifest().description.is_empty(), "{id}");
    }
}

#[test]
fn every_seed_renders_with_its_defaults() {
    for (id, t) in seeds() {
        let answers = match t.default_answers() {
            Ok(a) => a,
            Err(e) => panic!("{id}: defaults refused: {e}"),
        };
        let files = match t.render(&answers) {
            Ok(f) => f,
            Err(e) => panic!("{id}: {e}"),
        };
        check_output(&id, answers.as_map(), &files);
        match t.root_dir_name(&answers) {
            Ok(Some(_)) => {}
            other => panic!("{id}: root_dir renders to {other:?}"),
        }
    }
}

#[test]
fn every_seed_renders_every_combination_of_choices() {
    for (id, t) in seeds() {
        let mut outputs = BTreeSet::new();
        for combo in combinations(&t) {
            let files = render(&t, Value::Object(combo.clone()));
            check_output(&id, &combo, &files);
            outputs.insert(format!("{files:?}"));
        }
        // Each choice and yes/no question changes what is generated.
        let combos = combinations(&t).len();
        assert_eq!(outputs.len(), combos, "{id}: some answers change nothing");
    }
}

#[test]
fn stored_file_names_are_portable() {
    // Windows refuses these in file names, and the seeds are checked out
    // everywhere.
    for (id, t) in seeds() {
        for path in t.source_paths() {
            assert!(
                !path.contains(['"', '<', '>', ':', '|', '?', '*', '\\']),
                "{id}: {path:?} cannot be checked out on Windows"
            );
        }
    }
}

#[test]
fn weft_plugin_follows_the_storage_and_layout_answers() {
    let t = seed("weft-plugin-rust");
    let files = render(&t, json!({"plugin_name": "todo-list", "resource": "tasks"}));
    assert_eq!(
        paths(&files),
        BTreeSet::from([
            "Cargo.toml",
            "README.md",
            "plugin.toml",
            "src/lib.rs",
            "src/tasks.rs"
        ])
    );
    let manifest = text(&files, "plugin.toml");
    assert!(manifest.contains("name = \"todo-list\""), "{manifest}");
    assert!(manifest.contains("capabilities = [\"kv\", \"docs\", \"config\", \"log\"]"));
    assert!(manifest.contains("path = \"/tasks/{id}\""));
    assert!(text(&files, "src/lib.rs").contains("weft_sdk::plugin!(TodoList);"));
    assert!(text(&files, "src/tasks.rs").contains("struct Task {"));
    assert!(text(&files, "Cargo.toml").contains("version.workspace = true"));

    let files = render(
        &t,
        json!({"plugin_name": "counter", "storage": "kv", "with_settings": false, "layout": "standalone"}),
    );
    assert_eq!(
        paths(&files),
        BTreeSet::from([
            ".cargo/config.toml",
            ".gitignore",
            "Cargo.toml",
            "README.md",
            "plugin.toml",
            "src/counter.rs",
            "src/lib.rs"
        ])
    );
    assert!(text(&files, "plugin.toml").contains("capabilities = [\"kv\"]\n"));
    let cargo = text(&files, "Cargo.toml");
    assert!(
        cargo.contains("weft-sdk = { path = \"../weft/sdk\" }") && !cargo.contains(".workspace")
    );

    let files = render(&t, json!({"storage": "none", "with_settings": false}));
    assert!(text(&files, "plugin.toml").contains("capabilities = []\n"));
    assert_eq!(
        paths(&files),
        BTreeSet::from(["Cargo.toml", "README.md", "plugin.toml", "src/lib.rs"])
    );
}

#[test]
fn axum_service_adds_the_database_tests_and_docker_it_is_asked_for() {
    let t = seed("axum-service");
    let files = render(
        &t,
        json!({"service_name": "billing", "database": "none", "with_tests": false}),
    );
    assert_eq!(
        paths(&files),
        BTreeSet::from([
            ".gitignore",
            "Cargo.toml",
            "README.md",
            "src/error.rs",
            "src/lib.rs",
            "src/main.rs",
            "src/notes.rs"
        ])
    );
    assert!(!text(&files, "Cargo.toml").contains("sqlx"));

    let files = render(
        &t,
        json!({"service_name": "billing", "database": "postgres", "port": 8088, "with_docker": true}),
    );
    let got = paths(&files);
    for added in [
        "Dockerfile",
        ".dockerignore",
        "src/db.rs",
        "migrations/0001_create_notes.sql",
        "tests/api.rs",
    ] {
        assert!(got.contains(added), "{added} missing from {got:?}");
    }
    assert!(text(&files, "Cargo.toml").contains("\"postgres\""));
    assert!(text(&files, "src/notes.rs").contains("WHERE id = $1"));
    assert!(text(&files, "src/main.rs").contains("127.0.0.1:8088"));
    assert!(text(&files, "Dockerfile").contains("EXPOSE 8088"));
    assert!(text(&files, "tests/api.rs").contains("use billing::{AppState, app, db};"));

    let sqlite = render(&t, json!({"database": "sqlite"}));
    assert!(text(&sqlite, "src/notes.rs").contains("WHERE id = ?"));
}

#[test]
fn react_component_files_follow_the_answers() {
    let t = seed("react-component");
    let files = render(&t, json!({"component_name": "ShippingInfo"}));
    assert_eq!(
        paths(&files),
        BTreeSet::from([
            "ShippingInfo.module.css",
            "ShippingInfo.test.tsx",
            "ShippingInfo.tsx",
            "index.ts"
        ])
    );
    assert!(!text(&files, "ShippingInfo.tsx").contains("aria-expanded"));

    let files = render(
        &t,
        json!({"component_name": "Faq", "collapsible": true, "with_css_module": false, "with_test": false, "with_story": true}),
    );
    assert_eq!(
        paths(&files),
        BTreeSet::from(["Faq.stories.tsx", "Faq.tsx", "index.ts"])
    );
    let tsx = text(&files, "Faq.tsx");
    assert!(tsx.contains("aria-expanded={open}") && !tsx.contains("styles."));
}

#[test]
fn sql_migration_writes_an_up_and_down_pair_per_engine() {
    let t = seed("sql-migration");
    let files = render(
        &t,
        json!({"table": "invoices", "version": 12, "tenant_scoped": true}),
    );
    assert_eq!(
        paths(&files),
        BTreeSet::from([
            "0012_create_invoices.down.sql",
            "0012_create_invoices.up.sql"
        ])
    );
    let up = text(&files, "0012_create_invoices.up.sql");
    assert!(up.contains("FORCE ROW LEVEL SECURITY") && up.contains("UNIQUE (tenant_id, name)"));
    assert!(text(&files, "0012_create_invoices.down.sql").contains("DROP FUNCTION"));

    let files = render(
        &t,
        json!({"engine": "sqlite", "table": "invoices", "with_timestamps": false}),
    );
    let up = text(&files, "0001_create_invoices.up.sql");
    assert!(up.contains(") STRICT;") && !up.contains("updated_at") && !up.contains("POLICY"));
}

#[test]
fn landing_page_escapes_answers_and_drops_the_form() {
    let t = seed("landing-page");
    let files = render(
        &t,
        json!({"site_name": "Tom & Jerry", "with_signup": false, "theme": "dark", "accent": "green"}),
    );
    assert_eq!(
        paths(&files),
        BTreeSet::from(["favicon.svg", "index.html", "styles.css"])
    );
    let html = text(&files, "index.html");
    assert!(html.contains("<h1 id=\"hero-title\">Tom &amp; Jerry</h1>"));
    assert!(!html.contains("<form"));
    let css = text(&files, "styles.css");
    assert!(css.contains("color-scheme: dark;") && css.contains("#6ee7b7"));
    assert!(!css.contains("prefers-color-scheme"));
    assert!(text(&files, "favicon.svg").contains(">\n    T\n  </text>"));
}

#[test]
fn bad_answers_to_a_seed_are_all_reported_at_once() {
    let t = seed("axum-service");
    let errors = match t.validate(&obj(json!({
        "service_name": "Not A Name",
        "database": "mysql",
        "port": 70000,
        "with_tests": "yes",
        "colour": "red",
    }))) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.errors,
    };
    let got: Vec<(&str, AnswerErrorCode)> = errors
        .iter()
        .map(|e| (e.question.as_str(), e.code))
        .collect();
    assert_eq!(
        got,
        [
            ("service_name", AnswerErrorCode::BadShape),
            ("database", AnswerErrorCode::NotAChoice),
            ("port", AnswerErrorCode::OutOfRange),
            ("with_tests", AnswerErrorCode::WrongType),
            ("colour", AnswerErrorCode::UnknownQuestion),
        ]
    );
    assert!(errors.iter().all(|e| !e.message.is_empty()));
    let missing = t.validate(&obj(json!({"service_name": ""})));
    assert_eq!(
        missing.map_err(|e| e.errors[0].code).err(),
        Some(AnswerErrorCode::Empty)
    );
}

#[test]
fn a_seed_zips_and_reads_back_identically() -> TestResult {
    for (id, t) in seeds() {
        let answers = t.default_answers()?;
        let files = t.render(&answers)?;
        let root = t.root_dir_name(&answers)?.unwrap_or_else(|| id.clone());
        let zip = to_zip(&files, &root)?;
        let mut archive = zip::ZipArchive::new(Cursor::new(zip))?;
        let mut read_back = BTreeMap::new();
        for i in 0..archive.len() {
            let mut entry = archive.by_index(i)?;
            if entry.is_dir() {
                continue;
            }
            let name = entry.name()?.into_owned();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes)?;
            read_back.insert(name, bytes);
        }
        let expected: BTreeMap<String, Vec<u8>> = files
            .iter()
            .map(|f| (format!("{root}/{}", f.path), f.bytes.clone()))
            .collect();
        assert_eq!(read_back, expected, "{id}");
    }
    Ok(())
}

#[test]
fn the_largest_seed_renders_and_zips_every_combination_quickly() -> TestResult {
    // The brief is "well under 10 s"; no timing assert (CI machines vary),
    // but every combination of the biggest template must get through.
    let all = seeds();
    let (id, largest) = all
        .iter()
        .max_by_key(|(_, t)| t.source_paths().count())
        .ok_or("no seeds")?;
    for combo in combinations(largest) {
        let answers = largest.validate(&combo).map_err(|e| e.to_string())?;
        let files = largest.render(&answers)?;
        to_zip(&files, id)?;
    }
    Ok(())
}
