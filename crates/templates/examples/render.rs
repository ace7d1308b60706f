//! Renders a template directory into a directory, for template authors:
//!
//! ```sh
//! cargo run -p weft-templates --example render -- \
//!     library/templates/axum-service /tmp/out '{"service_name": "billing"}'
//! ```
//!
//! The answers (a JSON object, `{}` when left out) are validated as the host
//! would; every refused answer is printed. The output directory must not
//! exist yet, so nothing is ever overwritten.

use std::error::Error;
use std::path::PathBuf;

use weft_templates::Template;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(template), Some(out)) = (args.next(), args.next()) else {
        return Err("usage: render TEMPLATE_DIR OUT_DIR [ANSWERS_JSON]".into());
    };
    let answers = args.next().unwrap_or_else(|| "{}".to_owned());
    let answers: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&answers)?;

    let template = Template::load(&PathBuf::from(template))?;
    let answers = template.validate(&answers)?;
    let files = template.render(&answers)?;

    let out = PathBuf::from(out);
    if out.exists() {
        return Err(format!("{} already exists", out.display()).into());
    }
    for file in &files {
        let path = out.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, &file.bytes)?;
        println!("{}", file.path);
    }
    Ok(())
}
