//! Tries to reach the network: a TCP connection to loopback ports and a DNS lookup.
use sentinela_monitor::{Issue, Monitor, Result, export_monitor, json};
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::time::Duration;

struct SocketOpen;

impl Monitor for SocketOpen {
    fn search() -> Result<Vec<Issue>> {
        let mut attempts = sentinela_monitor::serde_json::Map::new();
        // The test listens on one of these ports and checks that nothing connects.
        for port in [80u16, 5000, 8080, 45123] {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            let outcome = match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                Ok(_) => "connected".to_owned(),
                Err(e) => format!("error: {e}"),
            };
            attempts.insert(format!("tcp {addr}"), outcome.into());
        }
        let lookup = match ("localhost", 80).to_socket_addrs() {
            Ok(addrs) => format!("resolved {} addresses", addrs.count()),
            Err(e) => format!("error: {e}"),
        };
        attempts.insert("lookup localhost".into(), lookup.into());
        let udp = match UdpSocket::bind("0.0.0.0:0").and_then(|s| s.send_to(b"x", "127.0.0.1:53")) {
            Ok(_) => "sent".to_owned(),
            Err(e) => format!("error: {e}"),
        };
        attempts.insert("udp 127.0.0.1:53".into(), udp.into());
        Ok(vec![Issue::new("network", json!(attempts))])
    }

    fn is_solved(_: &Issue) -> Result<bool> {
        Ok(false)
    }
}

export_monitor!(SocketOpen);
