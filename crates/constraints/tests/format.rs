//! The document format: what parses, what is refused (with the line), and
//! how each kind of check behaves.

use weft_constraints::{
    Applies, ConstraintSet, Document, Error, ExampleKind, Problem, Severity, prompt_section,
};

const HEADER: &str = "title: Test\nversion: 2\n\n";

/// A minimal valid rule with the given key lines and examples.
fn rule(id: &str, keys: &str, examples: &str) -> String {
    format!("## {id} A rule\n{keys}\n\nWhy it matters.\n\n{examples}\n")
}

const EVAL_KEYS: &str = "applies: typescript, tsx\nseverity: error\ninstruction: Never call eval.\ncheck: forbid /\\beval\\(/";
const EVAL_EXAMPLES: &str = "```bad typescript\neval(x);\n```\n\n```good\nJSON.parse(x);\n```";

fn doc(body: &str) -> String {
    format!("{HEADER}{body}")
}

/// The line and problem of a parse error, or a panic naming the result.
fn parse_error(text: &str) -> (usize, Problem) {
    match Document::parse("test", text) {
        Err(Error::Parse {
            document,
            line,
            problem,
        }) => {
            assert_eq!(document, "test");
            (line, problem)
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

fn parse(text: &str) -> ConstraintSet {
    match ConstraintSet::parse("test", text) {
        Ok(set) => set,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn a_minimal_document_parses() {
    let text = doc(&rule("EX-001", EVAL_KEYS, EVAL_EXAMPLES));
    let set = parse(&text);
    let document = &set.documents()[0];
    assert_eq!(document.name(), "test");
    assert_eq!(document.title(), "Test");
    assert_eq!(document.version(), 2);
    assert_eq!(document.sha256().len(), 64);
    let rule = &document.rules()[0];
    assert_eq!(rule.id(), "EX-001");
    assert_eq!(rule.title(), "A rule");
    assert_eq!(rule.line(), 4);
    assert_eq!(rule.severity(), Severity::Error);
    assert_eq!(
        rule.applies(),
        &Applies::Languages(vec!["typescript".into(), "tsx".into()])
    );
    assert!(rule.is_static() && !rule.needs_review());
    assert_eq!(rule.examples().len(), 2);
    assert_eq!(rule.examples()[0].kind, ExampleKind::Bad);
    assert_eq!(rule.examples()[0].language.as_deref(), Some("typescript"));
    assert_eq!(rule.examples()[0].code, "eval(x);");
    assert_eq!(rule.examples()[0].line, 12);
    assert!(rule.prose().starts_with("Why it matters."));
    assert!(set.verify_examples().is_empty());
}

#[test]
fn crlf_and_a_byte_order_mark_are_accepted_and_hashed_as_given() {
    let text = doc(&rule("EX-001", EVAL_KEYS, EVAL_EXAMPLES));
    let windows = format!("\u{feff}{}", text.replace('\n', "\r\n"));
    let a = Document::parse("a", &text).expect("unix");
    let b = Document::parse("b", &windows).expect("windows");
    assert_eq!(a.rules()[0].examples(), b.rules()[0].examples());
    assert_ne!(a.sha256(), b.sha256());
}

#[test]
fn header_problems_name_their_line() {
    assert_eq!(parse_error("").1, Problem::MissingHeader);
    assert_eq!(
        parse_error("\n\n## EX-001 x\n"),
        (3, Problem::MissingHeader)
    );
    assert_eq!(
        parse_error("title: T\n\n## EX-001 x\n"),
        (1, Problem::MissingHeaderKey("version"))
    );
    assert_eq!(
        parse_error("title: T\nversion: one\n"),
        (2, Problem::BadVersion("one".into()))
    );
    assert_eq!(
        parse_error("title: T\nversion: 0\n"),
        (2, Problem::BadVersion("0".into()))
    );
    assert_eq!(
        parse_error("title: T\nversion: 1\nauthor: me\n"),
        (3, Problem::UnknownHeaderKey("author".into()))
    );
    assert_eq!(
        parse_error("title: T\ntitle: U\nversion: 1\n"),
        (2, Problem::DuplicateKey("title".into()))
    );
    assert_eq!(
        parse_error("# Security\ntitle: T\nversion: 1\n"),
        (1, Problem::NotKeyValue("# Security".into()))
    );
    assert_eq!(
        parse_error("title: T\nversion: 1\n\nJust prose.\n").1,
        Problem::NoRules
    );
}

#[test]
fn heading_problems_name_their_line() {
    let text = doc("Intro.\n\n##EX-001 No space\n");
    assert_eq!(
        parse_error(&text),
        (6, Problem::BadHeading("##EX-001 No space".into()))
    );
    let text = doc("## ex-001 lower case\n");
    assert_eq!(parse_error(&text).0, 4);
    let text = doc("## EX-1 short number\n");
    assert!(matches!(parse_error(&text).1, Problem::BadHeading(_)));
    let text = doc("## EX-001\n");
    assert!(matches!(parse_error(&text).1, Problem::BadHeading(_)));
    // `###` is prose, and headings inside fences are code.
    let text = doc(&rule(
        "EX-001",
        EVAL_KEYS,
        &format!("### Notes\n\n```text\n## not a heading\n```\n\n{EVAL_EXAMPLES}"),
    ));
    assert_eq!(parse(&text).rules().count(), 1);
}

#[test]
fn rule_key_problems_name_their_line() {
    let cases: &[(&str, usize, Problem)] = &[
        (
            "applies: rust\nseverity: error\ninstruction: x\ncheck: review\nowner: me",
            9,
            Problem::UnknownRuleKey("owner".into()),
        ),
        (
            "severity: error\ninstruction: x\ncheck: review",
            4,
            Problem::MissingRuleKey {
                rule: "EX-001".into(),
                key: "applies",
            },
        ),
        (
            "applies: rust\nseverity: error\ncheck: review",
            4,
            Problem::MissingRuleKey {
                rule: "EX-001".into(),
                key: "instruction",
            },
        ),
        (
            "applies: rust\nseverity: error\ninstruction: x",
            4,
            Problem::MissingRuleKey {
                rule: "EX-001".into(),
                key: "check",
            },
        ),
        (
            "applies: rust, python\nseverity: error\ninstruction: x\ncheck: review",
            5,
            Problem::UnknownLanguage("python".into()),
        ),
        (
            "applies: *, rust\nseverity: error\ninstruction: x\ncheck: review",
            5,
            Problem::BadApplies("*, rust".into()),
        ),
        (
            "applies: rust, rust\nseverity: error\ninstruction: x\ncheck: review",
            5,
            Problem::BadApplies("rust, rust".into()),
        ),
        (
            "applies: rust\ntags: Payments\nseverity: error\ninstruction: x\ncheck: review",
            6,
            Problem::BadTag("Payments".into()),
        ),
        (
            "applies: rust\nseverity: fatal\ninstruction: x\ncheck: review",
            6,
            Problem::BadSeverity("fatal".into()),
        ),
        (
            "applies: rust\nseverity: error\nseverity: warning\ninstruction: x\ncheck: review",
            7,
            Problem::DuplicateKey("severity".into()),
        ),
        (
            "applies: rust\nseverity: error\ninstruction: x\ncheck: review\nredact: yes",
            9,
            Problem::BadRedact("yes".into()),
        ),
        (
            "applies: rust\nseverity: error\ninstruction: x\ncheck: review\ncheck: review",
            9,
            Problem::DuplicateReview,
        ),
        (
            "applies: rust\nseverity: error\ninstruction: x\ncheck: review\nThe rationale without a blank line.",
            9,
            Problem::NotKeyValue("The rationale without a blank line.".into()),
        ),
    ];
    for (keys, line, problem) in cases {
        let text = doc(&rule("EX-001", keys, ""));
        assert_eq!(
            &parse_error(&text),
            &(*line, problem.clone()),
            "keys:\n{keys}"
        );
    }
}

#[test]
fn check_problems_name_their_line() {
    let with_check = |check: &str| {
        let keys = format!("applies: rust\nseverity: error\ninstruction: x\ncheck: {check}");
        parse_error(&doc(&rule("EX-001", &keys, EVAL_EXAMPLES)))
    };
    for bad in [
        "forbid eval",
        "forbid /eval",
        "ban /eval/",
        "forbid /eval/ when /x/",
        "require /x/ unless /y/",
        "forbid /eval/ unless",
        "forbid /eval/ unless /x/ extra",
        "reviewed",
    ] {
        assert_eq!(with_check(bad), (8, Problem::BadCheck(bad.into())), "{bad}");
    }
    assert!(matches!(
        with_check("forbid /eval(/"),
        (8, Problem::BadRegex { pattern, .. }) if pattern == "eval("
    ));
    assert_eq!(
        with_check("forbid /x*/"),
        (8, Problem::EmptyMatch("x*".into()))
    );
    assert_eq!(
        with_check("require /a/ when /^/"),
        (8, Problem::EmptyMatch("^".into()))
    );
}

#[test]
fn static_checks_need_both_kinds_of_example() {
    let missing_good = doc(&rule("EX-001", EVAL_KEYS, "```bad\neval(x);\n```"));
    assert_eq!(
        parse_error(&missing_good),
        (
            4,
            Problem::MissingExample {
                rule: "EX-001".into(),
                kind: "good"
            }
        )
    );
    let missing_bad = doc(&rule("EX-001", EVAL_KEYS, "```good\nx;\n```"));
    assert!(matches!(
        parse_error(&missing_bad).1,
        Problem::MissingExample { kind: "bad", .. }
    ));
    let wrong_language = doc(&rule(
        "EX-001",
        EVAL_KEYS,
        "```bad rust\neval(x);\n```\n\n```good\nx;\n```",
    ));
    assert_eq!(
        parse_error(&wrong_language),
        (
            12,
            Problem::ExampleLanguage {
                rule: "EX-001".into(),
                language: "rust".into()
            }
        )
    );
    let unclosed = doc(&rule("EX-001", EVAL_KEYS, "```bad\neval(x);\n"));
    assert_eq!(parse_error(&unclosed), (12, Problem::UnclosedFence));
    // Review-only rules need no examples.
    let review = doc(&rule(
        "EX-002",
        "applies: *\nseverity: warning\ninstruction: Be kind.\ncheck: review",
        "",
    ));
    assert!(!parse(&review).rules().any(|r| r.is_static()));
}

#[test]
fn rule_ids_are_unique_within_and_across_documents() {
    let twice = doc(&format!(
        "{}{}",
        rule("EX-001", EVAL_KEYS, EVAL_EXAMPLES),
        rule("EX-001", EVAL_KEYS, EVAL_EXAMPLES)
    ));
    let (line, problem) = parse_error(&twice);
    assert_eq!(line, 19);
    assert_eq!(
        problem,
        Problem::DuplicateRule {
            id: "EX-001".into(),
            first: "test:4".into()
        }
    );

    let one = doc(&rule("EX-001", EVAL_KEYS, EVAL_EXAMPLES));
    match ConstraintSet::parse_all([("first", one.as_str()), ("second", one.as_str())]) {
        Err(e @ Error::Parse { .. }) => {
            assert_eq!(
                e.to_string(),
                "second:4: rule id EX-001 is already defined in first:4"
            );
        }
        other => panic!("expected a duplicate, got {other:?}"),
    }
}

#[test]
fn examples_that_disagree_with_their_checks_are_reported() {
    let text = doc(&rule(
        "EX-001",
        EVAL_KEYS,
        "```bad\nwindow.eval (x);\n```\n\n```good\nconst y = eval(x);\n```",
    ));
    let failures = parse(&text).verify_examples();
    assert_eq!(failures.len(), 2);
    assert_eq!(failures[0].kind, ExampleKind::Bad);
    assert_eq!(failures[0].line, 12);
    assert_eq!(
        failures[0].to_string(),
        "test:12: EX-001's bad example is not flagged"
    );
    assert_eq!(failures[1].kind, ExampleKind::Good);
    assert_eq!(
        failures[1].to_string(),
        "test:16: EX-001's good example is flagged (example line 1)"
    );
}

/// One rule per check form, to exercise the checker on its own.
fn check_set() -> ConstraintSet {
    let rules = [
        rule(
            "EX-001",
            "applies: typescript\nseverity: error\ninstruction: Sanitize.\ncheck: forbid /\\.innerHTML\\s*=/ unless /sanitize\\(/",
            "```bad\na.innerHTML = b;\n```\n\n```good\na.innerHTML = sanitize(b);\n```",
        ),
        rule(
            "EX-002",
            "applies: html\nseverity: warning\ninstruction: Declare the language.\ncheck: require /<html[^>]*lang=/ when /<html/",
            "```bad\n<html>\n```\n\n```good\n<html lang=\"en\">\n```\n\n```good\n<p>fragment</p>\n```",
        ),
        rule(
            "EX-003",
            "applies: rust\nseverity: error\ninstruction: Use tokio::fs.\ncheck: forbid /async fn[^{]*\\{[^}]*?(?P<at>std::fs::)/\ncheck: review",
            "```bad\nasync fn f() {\n    std::fs::read(p);\n}\n```\n\n```good\nasync fn f() {\n    tokio::fs::read(p).await;\n}\n```",
        ),
        rule(
            "EX-004",
            "applies: *\ntags: payments, billing\nseverity: error\ninstruction: No floats for money.\ncheck: forbid /amount: f64|price = \\d+\\.\\d+/\nredact: true",
            "```bad\namount: f64\n```\n\n```good\namount_minor: i64\n```",
        ),
        rule(
            "EX-005",
            "applies: *\nseverity: warning\ninstruction: Paths are absolute.\ncheck: forbid /\"\\/tmp\\/|'\\/var\\//",
            "```bad\nlet p = \"/tmp/x\";\n```\n\n```good\nlet p = dir.join(\"x\");\n```",
        ),
    ];
    parse(&doc(&rules.concat()))
}

#[test]
fn forbid_with_unless_excuses_its_line() {
    let set = check_set();
    let code = "a.innerHTML = sanitize(x);\nb.innerHTML = y;\nc.innerHTML = z; d.innerHTML = w;\n";
    let report = set.check(code, "typescript", &[]);
    let lines: Vec<usize> = report.violations.iter().map(|v| v.line).collect();
    assert_eq!(lines, [2, 3], "one violation per rule and line");
    assert_eq!(report.violations[0].excerpt, "b.innerHTML = y;");
    assert_eq!(report.violations[0].message, "A rule: Sanitize.");
    assert_eq!(report.checked, ["EX-001", "EX-005"]);
    assert!(report.needs_review.is_empty());
}

#[test]
fn require_with_when_reports_at_the_trigger() {
    let set = check_set();
    let report = set.check(
        "<!doctype html>\n<html>\n<body></body>\n</html>",
        "HTML",
        &[],
    );
    assert_eq!(report.violations.len(), 1);
    assert_eq!(report.violations[0].line, 2);
    assert_eq!(report.violations[0].severity, Severity::Warning);
    assert!(!report.has_errors());
    assert!(set.check("<p>no document</p>", "html", &[]).is_clean());
    assert!(set.check("<html lang=\"de\">", "html", &[]).is_clean());
}

#[test]
fn the_at_group_places_the_violation_and_review_is_listed() {
    let set = check_set();
    let code = "async fn load() -> String {\n    let t = std::fs::read_to_string(\"a\");\n    t\n}";
    let report = set.check(code, "rust", &[]);
    assert_eq!(report.violations.len(), 1);
    assert_eq!(report.violations[0].line, 2);
    assert_eq!(
        report.violations[0].excerpt,
        "let t = std::fs::read_to_string(\"a\");"
    );
    assert_eq!(report.needs_review, ["EX-003"]);
    assert!(report.checked.contains(&"EX-003".to_string()));
}

#[test]
fn tags_scope_rules_and_redact_hides_excerpts() {
    let set = check_set();
    let code = "amount: f64";
    assert!(set.check(code, "rust", &[]).is_clean(), "no tag, no rule");
    let tags = vec!["Billing".to_string()];
    let report = set.check(code, "rust", &tags);
    assert_eq!(report.violations.len(), 1);
    assert_eq!(report.violations[0].excerpt, "[redacted]");
    let applicable: Vec<&str> = set
        .applicable("sql", &tags)
        .iter()
        .map(|r| r.id())
        .collect();
    assert_eq!(applicable, ["EX-004", "EX-005"]);
}

#[test]
fn slashes_are_escaped_inside_patterns() {
    let set = check_set();
    let report = set.check("open('/var/log'); open(\"/tmp/a\")", "shell", &[]);
    assert_eq!(report.violations.len(), 1, "both on line 1");
    assert_eq!(report.violations[0].rule_id, "EX-005");
}

#[test]
fn the_prompt_marks_warnings_and_reviews() {
    let set = check_set();
    let rules: Vec<_> = set.rules().collect();
    let prompt = prompt_section(&rules);
    assert!(prompt.contains("- EX-001 A rule (error): Sanitize.\n"));
    assert!(prompt.contains("- EX-002 A rule (warning): Declare the language.\n"));
    assert!(prompt.contains("- EX-003 A rule (error): Use tokio::fs.\n"));
    let review = parse(&doc(&rule(
        "EX-009",
        "applies: *\nseverity: warning\ninstruction: Be kind.\ncheck: review",
        "",
    )));
    let rules: Vec<_> = review.rules().collect();
    assert!(prompt_section(&rules).contains("- EX-009 A rule (warning, reviewed): Be kind.\n"));
}

#[test]
fn loading_a_directory_skips_the_readme_and_needs_documents() {
    let dir = std::env::temp_dir().join(format!("weft-constraints-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("README.md"), "# Not a document\n").expect("write");
    assert!(matches!(
        ConstraintSet::load(&dir),
        Err(Error::NoDocuments(_))
    ));
    std::fs::write(
        dir.join("b.md"),
        doc(&rule("EX-002", EVAL_KEYS, EVAL_EXAMPLES)),
    )
    .expect("write");
    std::fs::write(
        dir.join("a.md"),
        doc(&rule("EX-001", EVAL_KEYS, EVAL_EXAMPLES)),
    )
    .expect("write");
    std::fs::write(dir.join("notes.txt"), "ignored").expect("write");
    let set = ConstraintSet::load(&dir).expect("loads");
    let names: Vec<&str> = set.documents().iter().map(|d| d.name()).collect();
    assert_eq!(names, ["a", "b"]);
    assert!(set.rule("EX-002").is_some_and(|r| r.document() == "b"));

    std::fs::write(dir.join("c.md"), "title: C\n").expect("write");
    let err = ConstraintSet::load(&dir).expect_err("c.md is broken");
    assert_eq!(err.to_string(), "c:1: the header lacks `version:`");
    std::fs::remove_dir_all(&dir).expect("clean up");
    assert!(matches!(ConstraintSet::load(&dir), Err(Error::Io { .. })));
}

#[test]
fn except_tags_and_ignore_after_narrow_a_rule() {
    let text = doc(&rule(
        "EX-001",
        "applies: rust\nexcept-tags: email, print\nseverity: error\ninstruction: No expect.\nignore-after: /^#\\[cfg\\(test\\)\\]/\ncheck: forbid /\\.expect\\(/",
        "```bad\nx.expect(\"a\");\n```\n\n```good\nx?;\n#[cfg(test)]\nmod tests { fn t() { x.expect(\"a\"); } }\n```",
    ));
    let set = parse(&text);
    let parsed = set.rule("EX-001").expect("parsed");
    assert_eq!(parsed.except_tags(), ["email", "print"]);
    assert!(parsed.ignore_after().is_some());
    assert!(set.verify_examples().is_empty());

    let code =
        "let a = b.expect(\"x\");\n#[cfg(test)]\nmod tests {\n    fn t() { c.expect(\"y\"); }\n}\n";
    let report = set.check(code, "rust", &[]);
    assert_eq!(report.violations.len(), 1);
    assert_eq!(report.violations[0].line, 1);
    assert!(
        set.check(code, "rust", &["EMAIL".to_string()])
            .checked
            .is_empty()
    );

    let bad = |key: &str| {
        let keys = format!("applies: rust\nseverity: error\ninstruction: x\n{key}\ncheck: review");
        parse_error(&doc(&rule("EX-001", &keys, "")))
    };
    assert_eq!(
        bad("ignore-after: #[cfg(test)]"),
        (8, Problem::BadIgnoreAfter("#[cfg(test)]".into()))
    );
    assert_eq!(
        bad("ignore-after: /a/ /b/"),
        (8, Problem::BadIgnoreAfter("/a/ /b/".into()))
    );
    assert_eq!(
        bad("except-tags: Email"),
        (8, Problem::BadTag("Email".into()))
    );
}
