//! `capstan token`: a new random API token (256 bits, hex) and the
//! `[[server.tokens]]` entry that holds its SHA-256. The token itself is
//! printed once, to stdout, and stored nowhere.

use std::process::ExitCode;

use crate::args::TokenArgs;

pub(crate) fn run(args: &TokenArgs) -> anyhow::Result<ExitCode> {
    let bytes: [u8; 32] = rand::random();
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let entry = capstan_server::TokenConfig {
        name: args.name.clone(),
        role: match args.role.as_str() {
            "admin" => capstan_server::Role::Admin,
            "enqueue" => capstan_server::Role::Enqueue,
            "read" => capstan_server::Role::Read,
            _ => capstan_server::Role::Worker,
        },
        queues: args.queues.clone(),
        sha256: capstan_server::hash_token(&token),
    };
    entry.validate().map_err(anyhow::Error::msg)?;
    let mut table = toml::Table::new();
    table.insert(
        "tokens".into(),
        toml::Value::Array(vec![toml::Value::try_from(&entry)?]),
    );
    let mut server = toml::Table::new();
    server.insert("server".into(), toml::Value::Table(table));
    println!(
        "# The token (give it to the client as `Authorization: Bearer <token>`; it is shown once):"
    );
    println!("# {token}");
    println!("# Add to capstan.toml (or CAPSTAN_SERVER_TOKENS):");
    print!("{}", toml::to_string(&server)?);
    Ok(ExitCode::SUCCESS)
}
