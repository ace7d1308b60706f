//! The `weft` command line: `serve` (default), `migrate`, and the operator
//! commands for tenants, users, API keys and plugins.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::app::App;
use crate::config::Config;
use crate::tenancy::{NewUser, Role};

/// The Weft multi-tenant plugin host.
#[derive(Debug, Parser)]
#[command(name = "weft", version, about)]
pub struct Cli {
    /// Configuration file (missing is fine: defaults + WEFT_* variables).
    #[arg(long, global = true, default_value = "weft.toml", env = "WEFT_CONFIG")]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve HTTP (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Users.
    #[command(subcommand)]
    User(UserCommand),
    /// API keys.
    #[command(subcommand)]
    Apikey(ApiKeyCommand),
    /// Plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Measure throughput, latency, instantiation, load time and memory
    /// (build with --release first).
    Bench(crate::bench::BenchArgs),
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant.
    Create { slug: String, name: String },
    /// List tenants.
    List,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user in a tenant, or a superadmin with `--superadmin`.
    Create {
        #[arg(long, required_unless_present = "superadmin")]
        tenant: Option<String>,
        #[arg(long)]
        superadmin: bool,
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// Password (or set WEFT_USER_PASSWORD).
        #[arg(long, env = "WEFT_USER_PASSWORD")]
        password: String,
        /// user or admin.
        #[arg(long, default_value = "user")]
        role: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key; the secret is printed once.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "admin")]
        role: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Install a plugin version from its directory (plugin.toml) and component.
    Install {
        /// The plugin.toml file.
        manifest: PathBuf,
        /// The .wasm component.
        component: PathBuf,
    },
    /// List installed plugins.
    List,
    /// Enable (or with --disable, disable) a plugin for a tenant.
    Enable {
        #[arg(long)]
        tenant: String,
        name: String,
        #[arg(long)]
        disable: bool,
    },
    /// Scaffold a new plugin crate from the hello template.
    New {
        name: String,
        /// Where to create it.
        #[arg(long, default_value = "plugins")]
        dir: PathBuf,
    },
}

fn role(s: &str) -> anyhow::Result<Role> {
    Role::parse(s)
        .filter(|r| *r != Role::Superadmin)
        .context("role must be user or admin")
}

/// Runs the command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(&cli.config)?;
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Plugin(PluginCommand::New { name, dir }) = &command {
        return crate::cli_scaffold::scaffold(name, dir);
    }
    if let Command::Bench(args) = command {
        return crate::bench::run(args).await;
    }
    if let Command::Migrate = command {
        let db = crate::db::Db::connect(&config.database_url()).await?;
        db.migrate().await?;
        println!("migrations applied");
        return Ok(());
    }
    let seed = config.seed_demo;
    let app = App::start(config).await?;
    match command {
        Command::Serve => serve(app, seed).await,
        Command::Migrate => Ok(()),
        Command::Tenant(TenantCommand::Create { slug, name }) => {
            let t = app.tenants.create(&slug, &name).await?;
            println!("{}", serde_json::to_string_pretty(&t)?);
            Ok(())
        }
        Command::Tenant(TenantCommand::List) => {
            for t in app.tenants.list().await? {
                println!("{}\t{}\t{}", t.slug, t.id, t.name);
            }
            Ok(())
        }
        Command::User(UserCommand::Create {
            tenant,
            superadmin,
            email,
            name,
            password,
            role: r,
        }) => {
            let tenant = match (&tenant, superadmin) {
                (_, true) => None,
                (Some(slug), false) => Some(app.tenants.by_slug(slug).await?),
                (None, false) => anyhow::bail!("--tenant is required"),
            };
            let role = if superadmin {
                Role::Superadmin
            } else {
                role(&r)?
            };
            let user = app
                .users
                .create(NewUser {
                    tenant: tenant.as_ref().map(|t| &t.id),
                    email: &email,
                    name: &name,
                    password: &password,
                    role,
                })
                .await?;
            println!("{}", serde_json::to_string_pretty(&user)?);
            Ok(())
        }
        Command::Apikey(ApiKeyCommand::Create {
            tenant,
            name,
            role: r,
        }) => {
            let tenant = app.tenants.by_slug(&tenant).await?;
            let key = app
                .api_keys
                .create(&tenant.id, &name, role(&r)?, None)
                .await?;
            println!("{}\n(the secret is shown only now)", key.secret);
            Ok(())
        }
        Command::Plugin(PluginCommand::Install {
            manifest,
            component,
        }) => {
            let text = std::fs::read_to_string(&manifest)
                .with_context(|| format!("reading {}", manifest.display()))?;
            let bytes = std::fs::read(&component)
                .with_context(|| format!("reading {}", component.display()))?;
            let installed = app.runtime.install(&text, &bytes).await?;
            println!(
                "installed {} {} ({})",
                installed.name, installed.version, installed.component_hash
            );
            Ok(())
        }
        Command::Plugin(PluginCommand::List) => {
            for p in app.catalog.list().await? {
                println!(
                    "{}\t{}\t{}",
                    p.name,
                    p.current_version,
                    p.versions.join(",")
                );
            }
            Ok(())
        }
        Command::Plugin(PluginCommand::Enable {
            tenant,
            name,
            disable,
        }) => {
            let tenant = app.tenants.by_slug(&tenant).await?;
            let tp = app
                .configure_plugin(&tenant.id, &name, Some(!disable), None)
                .await?;
            println!(
                "{} {} for {}",
                tp.plugin,
                if tp.enabled { "enabled" } else { "disabled" },
                tenant.slug
            );
            Ok(())
        }
        Command::Plugin(PluginCommand::New { .. }) | Command::Bench(_) => Ok(()),
    }
}

async fn serve(app: Arc<App>, seed: bool) -> anyhow::Result<()> {
    crate::seed::install_bundled(&app).await?;
    if seed && let Some(banner) = crate::seed::seed_demo(&app).await? {
        println!("{banner}");
    }
    app.spawn_background();
    // The code library fetches its model on the first start, in the
    // background; it loads (seed items, indexes) on its first use, so a
    // starting server's plugin calls do not share the database and the
    // cores with it.
    let library = app.library.clone();
    tokio::spawn(async move {
        library.fetch_model_if_missing().await;
    });
    let listener = tokio::net::TcpListener::bind(app.config.bind)
        .await
        .with_context(|| format!("binding {}", app.config.bind))?;
    tracing::info!(addr = %listener.local_addr()?, "weft serving");
    println!("weft listening on http://{}", listener.local_addr()?);
    crate::api::serve(app, listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
