//! Case conversions for names in generated code, registered as the filters
//! `snake`, `kebab`, `pascal`, `camel` and `screaming_snake`, plus
//! `singular` (a type name from a collection name) and `zfill` (migration
//! numbers).
//!
//! One answer usually appears in several shapes in one template (a crate
//! `my-plugin`, its type `MyPlugin`, a constant `MY_PLUGIN`), so the
//! conversions share one word splitter: any run of characters that are not
//! letters or digits separates words, and so does a change of case
//! (`fooBar` → `foo`, `bar`; `HTTPServer` → `http`, `server`). Digits stay
//! with the word before them (`v2Api` → `v2`, `api`).

/// The words of `s`, lowercased, in order.
pub fn words(s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let mut words = Vec::new();
    let mut current = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            flush(&mut words, &mut current);
            continue;
        }
        if c.is_uppercase() && !current.is_empty() {
            let prev = chars[i - 1];
            let next_is_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            // `fooBar`, `v2Api`: a capital after a lowercase letter or a digit
            // starts a word; `HTTPServer`: the last capital of a run starts
            // one when a lowercase letter follows it.
            let starts_word =
                prev.is_lowercase() || prev.is_numeric() || (prev.is_uppercase() && next_is_lower);
            if starts_word {
                flush(&mut words, &mut current);
            }
        }
        current.extend(c.to_lowercase());
    }
    flush(&mut words, &mut current);
    words
}

fn flush(words: &mut Vec<String>, current: &mut String) {
    if !current.is_empty() {
        words.push(std::mem::take(current));
    }
}

/// `snake_case`.
pub fn snake(s: &str) -> String {
    words(s).join("_")
}

/// `kebab-case`.
pub fn kebab(s: &str) -> String {
    words(s).join("-")
}

/// `SCREAMING_SNAKE_CASE`, for constants and environment variables.
pub fn screaming_snake(s: &str) -> String {
    snake(s).to_uppercase()
}

/// `PascalCase`, for type names.
pub fn pascal(s: &str) -> String {
    words(s).iter().map(|w| capitalize(w)).collect()
}

/// `camelCase`, for functions and variables in JavaScript and TypeScript.
pub fn camel(s: &str) -> String {
    let words = words(s);
    let mut out = String::new();
    for (i, w) in words.iter().enumerate() {
        if i == 0 {
            out.push_str(w);
        } else {
            out.push_str(&capitalize(w));
        }
    }
    out
}

/// The singular of an English plural, by the rules that cover names of
/// collections and tables (`notes` → `note`, `categories` → `category`,
/// `addresses` → `address`, `boxes` → `box`); words ending in `ss`, `us`
/// or `is` (`class`, `status`, `analysis`) and anything else are returned
/// as they are. Irregular plurals (`people`) are not known: name the question's
/// default so that the rule fits.
pub fn singular(s: &str) -> String {
    let lower = s.to_ascii_lowercase();
    let cut = |n: usize| s[..s.len() - n].to_owned();
    if lower.ends_with("ies") && s.len() > 3 {
        format!("{}{}", cut(3), if s.ends_with("IES") { "Y" } else { "y" })
    } else if ["sses", "xes", "ches", "shes", "zzes"]
        .iter()
        .any(|end| lower.ends_with(end))
    {
        cut(2)
    } else if lower.ends_with('s')
        && !["ss", "us", "is"].iter().any(|end| lower.ends_with(end))
        && s.len() > 1
    {
        cut(1)
    } else {
        s.to_owned()
    }
}

/// `value` left-padded with zeros to `width` characters (`7` → `0007`),
/// like Python's `str.zfill`; a leading `-` stays in front. Widths above
/// 64 count as 64, so a template cannot ask for a gigabyte of zeros.
pub fn zfill(value: &str, width: usize) -> String {
    let width = width.min(64);
    let (sign, digits) = match value.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", value),
    };
    let pad = width.saturating_sub(value.chars().count());
    format!("{sign}{}{digits}", "0".repeat(pad))
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_separators_and_case_changes() {
        assert_eq!(words("my-cool_app name"), ["my", "cool", "app", "name"]);
        assert_eq!(words("fooBar"), ["foo", "bar"]);
        assert_eq!(words("HTTPServer"), ["http", "server"]);
        assert_eq!(words("v2Api"), ["v2", "api"]);
        assert_eq!(words("UserID"), ["user", "id"]);
        assert_eq!(words("  --  "), Vec::<String>::new());
    }

    #[test]
    fn converts_between_cases() {
        for input in [
            "todo list",
            "todo-list",
            "todo_list",
            "TodoList",
            "todoList",
        ] {
            assert_eq!(snake(input), "todo_list", "{input}");
            assert_eq!(kebab(input), "todo-list", "{input}");
            assert_eq!(pascal(input), "TodoList", "{input}");
            assert_eq!(camel(input), "todoList", "{input}");
            assert_eq!(screaming_snake(input), "TODO_LIST", "{input}");
        }
        assert_eq!(pascal("http-server2"), "HttpServer2");
        assert_eq!(camel(""), "");
    }

    #[test]
    fn singular_of_collection_names() {
        let cases = [
            ("notes", "note"),
            ("categories", "category"),
            ("addresses", "address"),
            ("boxes", "box"),
            ("matches", "match"),
            ("wishes", "wish"),
            ("blog_posts", "blog_post"),
            ("NOTES", "NOTE"),
            ("status", "status"),
            ("analysis", "analysis"),
            ("class", "class"),
            ("data", "data"),
            ("s", "s"),
        ];
        for (plural, one) in cases {
            assert_eq!(singular(plural), one, "{plural}");
        }
    }

    #[test]
    fn zfill_pads_numbers() {
        assert_eq!(zfill("7", 4), "0007");
        assert_eq!(zfill("12345", 4), "12345");
        assert_eq!(zfill("-3", 3), "-03");
        assert_eq!(zfill("", 2), "00");
        assert_eq!(zfill("1", usize::MAX).len(), 64);
    }
}
