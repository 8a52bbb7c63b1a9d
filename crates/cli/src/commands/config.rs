//! `capstan config`: the effective configuration, one line per setting,
//! with where each value came from (flag, environment variable, file or
//! default). Secrets are redacted. Reads nothing but the settings.

use std::process::ExitCode;

use crate::args::ConfigArgs;
use crate::settings::Settings;

pub(crate) fn run(settings: &Settings, args: &ConfigArgs) -> anyhow::Result<ExitCode> {
    let report = settings.report();
    if args.json {
        let map: serde_json::Map<String, serde_json::Value> = report
            .into_iter()
            .map(|(key, value, source)| {
                let entry = serde_json::json!({
                    "value": serde_json::to_value(&value).unwrap_or(serde_json::Value::Null),
                    "source": source.to_string(),
                });
                (key, entry)
            })
            .collect();
        println!("{}", serde_json::Value::Object(map));
    } else {
        let lines: Vec<(String, String)> = report
            .into_iter()
            .map(|(key, value, source)| (format!("{key} = {value}"), source.to_string()))
            .collect();
        let width = lines.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
        for (line, source) in lines {
            println!("{line:width$}  # {source}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
