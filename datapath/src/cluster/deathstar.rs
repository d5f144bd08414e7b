//! The Star Wars deathstar API that deathstar pods serve (port 80):
//! `POST /v1/request-landing` → 200 `Ship landed`, `PUT /v1/exhaust-port` → 200 with a panic
//! message (the joke of the demo: the port should have been protected), anything else → 404.

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{post, put};

/// Port the demo API listens on inside each deathstar pod.
pub const PORT: u16 = 80;

pub const LANDED: &str = "Ship landed\n";

pub const EXPLODED: &str = "Panic: deathstar exploded\n\n\
goroutine 1 [running]:\n\
main.HandleGarbage(0x2080c3f50, 0x2, 0x4, 0x425c0, 0x5, 0xa)\n\
\t/code/src/github.com/empire/deathstar/temp/main.go:9 +0x64\n\
main.main()\n\
\t/code/src/github.com/empire/deathstar/temp/main.go:5 +0x85\n";

async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "Not Found\n")
}

/// The routes; wrong methods on known paths are 404 as well, like the original service.
pub fn router() -> Router {
    Router::new()
        .route(
            "/v1/request-landing",
            post(|| async { LANDED }).fallback(not_found),
        )
        .route(
            "/v1/exhaust-port",
            put(|| async { EXPLODED }).fallback(not_found),
        )
        .fallback(not_found)
}

/// Serve the API on an already bound listener until the future is dropped or accept fails.
pub async fn serve(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    axum::serve(listener, router()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn request(addr: std::net::SocketAddr, method: &str, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: deathstar\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn api_answers_like_the_demo() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve(listener));

        let r = request(addr, "POST", "/v1/request-landing").await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(r.ends_with("\r\n\r\nShip landed\n"), "{r}");
        let r = request(addr, "PUT", "/v1/exhaust-port").await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(r.contains("Panic: deathstar exploded"), "{r}");
        for (m, p) in [
            ("GET", "/v1/request-landing"),
            ("POST", "/v1/exhaust-port"),
            ("GET", "/"),
        ] {
            let r = request(addr, m, p).await;
            assert!(r.starts_with("HTTP/1.1 404"), "{m} {p}: {r}");
        }
        server.abort();
    }
}
