//! Tries to read host files and list directories.
use sentinela_monitor::{Issue, Monitor, Result, export_monitor, json};

struct FileRead;

fn attempt<T>(result: std::io::Result<T>) -> String {
    match result {
        Ok(_) => "succeeded".to_owned(),
        Err(e) => format!("error: {e}"),
    }
}

impl Monitor for FileRead {
    fn search() -> Result<Vec<Issue>> {
        Ok(vec![Issue::new(
            "files",
            json!({
                "read /etc/passwd": attempt(std::fs::read_to_string("/etc/passwd")),
                "read ../../etc/passwd": attempt(std::fs::read_to_string("../../etc/passwd")),
                "list /": attempt(std::fs::read_dir("/")),
                "list .": attempt(std::fs::read_dir(".")),
                "write /tmp/pwned": attempt(std::fs::write("/tmp/sentinela-pwned", "x")),
            }),
        )])
    }

    fn is_solved(_: &Issue) -> Result<bool> {
        Ok(false)
    }
}

export_monitor!(FileRead);
