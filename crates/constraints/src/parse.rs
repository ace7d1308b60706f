//! The parser for one constraint document (format: `constraints/README.md`).
//!
//! It is deliberately strict — unknown keys, malformed headings, unclosed
//! fences and checks without examples are errors — because a typo in a rule
//! would otherwise silently turn a check off.

use regex::{Regex, RegexBuilder};
use sha2::{Digest, Sha256};

use crate::error::{Error, Problem, Result};
use crate::rule::{Applies, Check, Example, ExampleKind, LANGUAGES, Rule, Severity};

/// The most memory one compiled regex may take. Documents may come from
/// tenants; this bounds what a single pattern can cost the host.
const REGEX_SIZE_LIMIT: usize = 2 << 20;

/// One parsed constraint document.
#[derive(Debug, Clone)]
pub struct Document {
    name: String,
    title: String,
    version: u32,
    sha256: String,
    rules: Vec<Rule>,
}

impl Document {
    /// Parses `text` as the document called `name` (a file stem such as
    /// `security`; it is what errors and rules refer to).
    pub fn parse(name: &str, text: &str) -> Result<Self> {
        let sha256 = hex::encode(Sha256::digest(text.as_bytes()));
        let body = text.strip_prefix('\u{feff}').unwrap_or(text);
        let lines: Vec<&str> = body
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .collect();
        let mut parser = Parser {
            name,
            lines: &lines,
            at: 0,
        };
        let (title, version) = parser.header()?;
        let rules = parser.rules()?;
        Ok(Document {
            name: name.to_string(),
            title,
            version,
            sha256,
            rules,
        })
    }

    /// The document's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `title:` from the header.
    pub fn title(&self) -> &str {
        &self.title
    }

    /// The `version:` the author declared; bumped by hand when rules change
    /// meaning (the hash changes on any edit).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Lowercase hex SHA-256 of the exact text parsed, to tell stored
    /// versions apart and detect edits that forgot to bump `version:`.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The rules in document order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
}

/// A cursor over the document's lines.
struct Parser<'a> {
    name: &'a str,
    lines: &'a [&'a str],
    /// 0-based index of the next line to read.
    at: usize,
}

/// A rule's keys as read, before validation: (1-based line, value), so
/// that a bad value is reported on its own line.
#[derive(Default)]
struct Keys<'a> {
    applies: Option<(usize, &'a str)>,
    tags: Option<(usize, &'a str)>,
    except_tags: Option<(usize, &'a str)>,
    ignore_after: Option<(usize, &'a str)>,
    severity: Option<(usize, &'a str)>,
    instruction: Option<(usize, &'a str)>,
    redact: Option<(usize, &'a str)>,
    checks: Vec<(usize, &'a str)>,
}

impl<'a> Parser<'a> {
    fn error(&self, line: usize, problem: Problem) -> Error {
        Error::Parse {
            document: self.name.to_string(),
            line,
            problem,
        }
    }

    fn skip_blank(&mut self) {
        while self.lines.get(self.at).is_some_and(|l| l.trim().is_empty()) {
            self.at += 1;
        }
    }

    /// Reads consecutive `key: value` lines up to a blank line, the end, or
    /// (for the header) a rule heading. Returns (1-based line, key, value).
    fn key_block(&mut self) -> Result<Vec<(usize, &'a str, &'a str)>> {
        let mut out = Vec::new();
        while let Some(&line) = self.lines.get(self.at) {
            if line.trim().is_empty() || line.starts_with("##") {
                break;
            }
            let number = self.at + 1;
            let Some((key, value)) = key_value(line) else {
                return Err(self.error(number, Problem::NotKeyValue(line.trim().to_string())));
            };
            out.push((number, key, value));
            self.at += 1;
        }
        Ok(out)
    }

    fn header(&mut self) -> Result<(String, u32)> {
        self.skip_blank();
        let first = self.at + 1;
        let block = self.key_block()?;
        if block.is_empty() {
            return Err(self.error(first, Problem::MissingHeader));
        }
        let (mut title, mut version) = (None, None);
        for (number, key, value) in block {
            let slot = match key {
                "title" => &mut title,
                "version" => &mut version,
                other => {
                    return Err(self.error(number, Problem::UnknownHeaderKey(other.to_string())));
                }
            };
            if slot.replace((number, value)).is_some() {
                return Err(self.error(number, Problem::DuplicateKey(key.to_string())));
            }
        }
        let title = match title {
            Some((_, t)) if !t.is_empty() => t.to_string(),
            Some((number, _)) => return Err(self.error(number, Problem::MissingHeaderKey("title"))),
            None => return Err(self.error(first, Problem::MissingHeaderKey("title"))),
        };
        let Some((number, version)) = version else {
            return Err(self.error(first, Problem::MissingHeaderKey("version")));
        };
        let version = version
            .parse::<u32>()
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| self.error(number, Problem::BadVersion(version.to_string())))?;
        Ok((title, version))
    }

    /// Reads the rest of the document: optional prose, then rules.
    fn rules(&mut self) -> Result<Vec<Rule>> {
        // Prose before the first rule is documentation for readers only.
        self.prose()?;
        let mut rules: Vec<Rule> = Vec::new();
        while self.at < self.lines.len() {
            let rule = self.rule()?;
            if let Some(first) = rules.iter().find(|r| r.id == rule.id) {
                let first = format!("{}:{}", self.name, first.line);
                return Err(self.error(rule.line, Problem::DuplicateRule { id: rule.id, first }));
            }
            rules.push(rule);
        }
        if rules.is_empty() {
            return Err(self.error(self.lines.len(), Problem::NoRules));
        }
        Ok(rules)
    }

    /// Reads prose up to the next rule heading (outside fences) or the end,
    /// collecting `bad`/`good` examples. Returns the prose and the examples.
    fn prose(&mut self) -> Result<(String, Vec<Example>)> {
        let mut text: Vec<&str> = Vec::new();
        let mut examples = Vec::new();
        while let Some(&line) = self.lines.get(self.at) {
            if line.starts_with("##") && !line.starts_with("###") {
                break;
            }
            let number = self.at + 1;
            self.at += 1;
            text.push(line);
            let Some((ticks, info)) = fence_open(line) else {
                continue;
            };
            let mut code: Vec<&str> = Vec::new();
            loop {
                let Some(&inner) = self.lines.get(self.at) else {
                    return Err(self.error(number, Problem::UnclosedFence));
                };
                self.at += 1;
                text.push(inner);
                if is_fence_close(inner, ticks) {
                    break;
                }
                code.push(inner);
            }
            let mut words = info.split_whitespace();
            let kind = match words.next() {
                Some("bad") => ExampleKind::Bad,
                Some("good") => ExampleKind::Good,
                _ => continue,
            };
            examples.push(Example {
                kind,
                language: words.next().map(str::to_ascii_lowercase),
                code: code.join("\n"),
                line: number,
            });
        }
        Ok((text.join("\n").trim().to_string(), examples))
    }

    fn rule(&mut self) -> Result<Rule> {
        let line = self.at + 1;
        let heading = self.lines.get(self.at).copied().unwrap_or("");
        let (id, title) = parse_heading(heading)
            .ok_or_else(|| self.error(line, Problem::BadHeading(heading.trim().to_string())))?;
        self.at += 1;
        self.skip_blank();
        let mut keys = Keys::default();
        for (number, key, value) in self.key_block()? {
            let slot = match key {
                "applies" => &mut keys.applies,
                "tags" => &mut keys.tags,
                "except-tags" => &mut keys.except_tags,
                "ignore-after" => &mut keys.ignore_after,
                "severity" => &mut keys.severity,
                "instruction" => &mut keys.instruction,
                "redact" => &mut keys.redact,
                "check" => {
                    keys.checks.push((number, value));
                    continue;
                }
                other => {
                    return Err(self.error(number, Problem::UnknownRuleKey(other.to_string())));
                }
            };
            if slot.replace((number, value)).is_some() {
                return Err(self.error(number, Problem::DuplicateKey(key.to_string())));
            }
        }
        let (prose, examples) = self.prose()?;
        self.build(line, id, title, keys, prose, examples)
    }

    fn build(
        &self,
        line: usize,
        id: &str,
        title: &str,
        keys: Keys<'_>,
        prose: String,
        examples: Vec<Example>,
    ) -> Result<Rule> {
        let missing = |key| {
            self.error(
                line,
                Problem::MissingRuleKey {
                    rule: id.to_string(),
                    key,
                },
            )
        };
        let (at, value) = keys.applies.ok_or_else(|| missing("applies"))?;
        let applies = parse_applies(value).map_err(|p| self.error(at, p))?;
        let tags = match keys.tags {
            Some((at, value)) => parse_tags(value).map_err(|p| self.error(at, p))?,
            None => Vec::new(),
        };
        let except_tags = match keys.except_tags {
            Some((at, value)) => parse_tags(value).map_err(|p| self.error(at, p))?,
            None => Vec::new(),
        };
        let ignore_after = match keys.ignore_after {
            Some((at, value)) => Some(parse_ignore_after(value).map_err(|p| self.error(at, p))?),
            None => None,
        };
        let severity = match keys.severity.ok_or_else(|| missing("severity"))? {
            (_, "error") => Severity::Error,
            (_, "warning") => Severity::Warning,
            (at, other) => return Err(self.error(at, Problem::BadSeverity(other.to_string()))),
        };
        let instruction = keys
            .instruction
            .map(|(_, i)| i.to_string())
            .filter(|i| !i.is_empty())
            .ok_or_else(|| missing("instruction"))?;
        let redact = match keys.redact {
            None | Some((_, "false")) => false,
            Some((_, "true")) => true,
            Some((at, other)) => {
                return Err(self.error(at, Problem::BadRedact(other.to_string())));
            }
        };
        if keys.checks.is_empty() {
            return Err(missing("check"));
        }
        let mut checks = Vec::new();
        let mut review = false;
        for &(number, value) in &keys.checks {
            match parse_check(value).map_err(|p| self.error(number, p))? {
                Some(check) => checks.push(check),
                None if review => return Err(self.error(number, Problem::DuplicateReview)),
                None => review = true,
            }
        }
        if !checks.is_empty() {
            for kind in [ExampleKind::Bad, ExampleKind::Good] {
                if !examples.iter().any(|e| e.kind == kind) {
                    let problem = Problem::MissingExample {
                        rule: id.to_string(),
                        kind: kind.as_str(),
                    };
                    return Err(self.error(line, problem));
                }
            }
        }
        for example in &examples {
            if let Some(language) = &example.language
                && !applies.covers(language)
            {
                let problem = Problem::ExampleLanguage {
                    rule: id.to_string(),
                    language: language.clone(),
                };
                return Err(self.error(example.line, problem));
            }
        }
        Ok(Rule {
            id: id.to_string(),
            title: title.to_string(),
            document: self.name.to_string(),
            line,
            applies,
            tags,
            except_tags,
            severity,
            instruction,
            checks,
            review,
            redact,
            ignore_after,
            prose,
            examples,
        })
    }
}

/// Splits `key: value` where the key is lowercase letters and hyphens.
fn key_value(line: &str) -> Option<(&str, &str)> {
    let (key, value) = line.split_once(':')?;
    let valid = !key.is_empty()
        && key.starts_with(|c: char| c.is_ascii_lowercase())
        && key.chars().all(|c| c.is_ascii_lowercase() || c == '-');
    valid.then(|| (key, value.trim()))
}

/// `## SEC-001 Title` → (`SEC-001`, `Title`).
fn parse_heading(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix("## ")?;
    let (id, title) = rest.trim().split_once(' ')?;
    let (prefix, number) = id.split_once('-')?;
    let valid_id = prefix.starts_with(|c: char| c.is_ascii_uppercase())
        && prefix
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        && number.len() == 3
        && number.chars().all(|c| c.is_ascii_digit());
    let title = title.trim();
    (valid_id && !title.is_empty()).then_some((id, title))
}

/// An opening fence: three or more backticks, then the info string.
fn fence_open(line: &str) -> Option<(usize, &str)> {
    let trimmed = line.trim_start();
    let ticks = trimmed.len() - trimmed.trim_start_matches('`').len();
    (ticks >= 3).then(|| (ticks, trimmed[ticks..].trim()))
}

fn is_fence_close(line: &str, ticks: usize) -> bool {
    let trimmed = line.trim();
    trimmed.len() >= ticks && trimmed.chars().all(|c| c == '`')
}

fn parse_applies(value: &str) -> Result<Applies, Problem> {
    if value.trim() == "*" {
        return Ok(Applies::All);
    }
    let mut list: Vec<String> = Vec::new();
    for language in value.split(',').map(|l| l.trim().to_ascii_lowercase()) {
        if language == "*" || language.is_empty() || list.contains(&language) {
            return Err(Problem::BadApplies(value.to_string()));
        }
        if !LANGUAGES.contains(&language.as_str()) {
            return Err(Problem::UnknownLanguage(language));
        }
        list.push(language);
    }
    Ok(Applies::Languages(list))
}

fn parse_tags(value: &str) -> Result<Vec<String>, Problem> {
    value
        .split(',')
        .map(|t| {
            let tag = t.trim();
            let valid = tag.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && tag
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if valid {
                Ok(tag.to_string())
            } else {
                Err(Problem::BadTag(tag.to_string()))
            }
        })
        .collect()
}

/// Parses a `check:` value; `Ok(None)` is `review`.
fn parse_check(value: &str) -> Result<Option<Check>, Problem> {
    let bad = || Problem::BadCheck(value.to_string());
    if value == "review" {
        return Ok(None);
    }
    let (verb, rest) = value.split_once(' ').ok_or_else(bad)?;
    let (pattern, rest) = slashed(rest.trim_start()).ok_or_else(bad)?;
    let pattern = compile(&pattern)?;
    let rest = rest.trim();
    let (clause, extra) = if rest.is_empty() {
        (None, None)
    } else {
        let (word, tail) = rest.split_once(' ').ok_or_else(bad)?;
        let (extra, tail) = slashed(tail.trim_start()).ok_or_else(bad)?;
        if !tail.trim().is_empty() {
            return Err(bad());
        }
        (Some(word), Some(compile(&extra)?))
    };
    match (verb, clause) {
        ("forbid", None | Some("unless")) => Ok(Some(Check::Forbid {
            pattern,
            unless: extra,
        })),
        ("require", None | Some("when")) => Ok(Some(Check::Require {
            pattern,
            when: extra,
        })),
        _ => Err(bad()),
    }
}

/// Parses an `ignore-after:` value: one `/regex/` and nothing else.
fn parse_ignore_after(value: &str) -> Result<Regex, Problem> {
    match slashed(value) {
        Some((pattern, rest)) if rest.trim().is_empty() => compile(&pattern),
        _ => Err(Problem::BadIgnoreAfter(value.to_string())),
    }
}

/// Reads `/.../` from the start of `text`, returning the pattern and the
/// text after the closing slash. A backslash escapes the next character;
/// `\/` becomes `/` (the regex crate needs no escape for it).
fn slashed(text: &str) -> Option<(String, &str)> {
    let body = text.strip_prefix('/')?;
    let mut pattern = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '/' => return Some((pattern, &body[i + 1..])),
            '\\' => {
                let (_, next) = chars.next()?;
                if next != '/' {
                    pattern.push('\\');
                }
                pattern.push(next);
            }
            _ => pattern.push(c),
        }
    }
    None
}

/// Compiles a pattern in multi-line mode (`^`/`$` at line boundaries),
/// refusing ones that match the empty string.
fn compile(pattern: &str) -> Result<Regex, Problem> {
    let regex = RegexBuilder::new(pattern)
        .multi_line(true)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| Problem::BadRegex {
            pattern: pattern.to_string(),
            reason: e.to_string(),
        })?;
    if regex.is_match("") {
        return Err(Problem::EmptyMatch(pattern.to_string()));
    }
    Ok(regex)
}
