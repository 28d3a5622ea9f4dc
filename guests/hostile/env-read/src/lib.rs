//! Tries to read the host's environment, where AWS keys live.
use sentinela_monitor::{Issue, Monitor, Result, export_monitor, json};

struct EnvRead;

impl Monitor for EnvRead {
    fn search() -> Result<Vec<Issue>> {
        let vars: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
        let secret = std::env::var("AWS_APPLICATION_SECRET_ACCESS_KEY").ok();
        let args: Vec<String> = std::env::args().collect();
        let cwd = std::env::current_dir()
            .map(|d| d.display().to_string())
            .ok();
        Ok(vec![Issue::new(
            "env",
            json!({ "vars": vars, "secret": secret, "args": args, "cwd": cwd }),
        )])
    }

    fn is_solved(_: &Issue) -> Result<bool> {
        Ok(false)
    }
}

export_monitor!(EnvRead);
