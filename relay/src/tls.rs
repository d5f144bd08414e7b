//! TLS settings from PEM files: the relay's listener (optionally requiring client
//! certificates) and its connections to nodes. Plaintext is simply the absence of these.

use std::path::Path;

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::RelayError;

fn read(path: &Path) -> Result<Vec<u8>, RelayError> {
    std::fs::read(path).map_err(|source| RelayError::Io {
        context: format!("reading {}", path.display()),
        source,
    })
}

/// How the relay authenticates to nodes and verifies them (PEM contents, not paths, so a
/// config can be built in memory by tests).
#[derive(Debug, Clone, Default)]
pub struct NodeTls {
    /// CA bundle that signs the nodes' certificates; `None` = the webpki/system roots are not
    /// used, so this should normally be set.
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate and key for mTLS.
    pub client_cert_pem: Option<Vec<u8>>,
    pub client_key_pem: Option<Vec<u8>>,
    /// Name to verify every node's certificate against, unless a peer announces its own.
    pub server_name: Option<String>,
}

impl NodeTls {
    pub fn from_files(
        ca: Option<&Path>,
        cert: Option<&Path>,
        key: Option<&Path>,
        server_name: Option<String>,
    ) -> Result<Self, RelayError> {
        if cert.is_some() != key.is_some() {
            return Err(RelayError::Config(
                "node TLS client certificate and key must be given together".into(),
            ));
        }
        Ok(Self {
            ca_pem: ca.map(read).transpose()?,
            client_cert_pem: cert.map(read).transpose()?,
            client_key_pem: key.map(read).transpose()?,
            server_name,
        })
    }

    /// The tonic client config for one node; `peer_server_name` (from Peer.Notify) wins over
    /// the configured name.
    pub fn client_config(&self, peer_server_name: Option<&str>) -> ClientTlsConfig {
        let mut c = ClientTlsConfig::new();
        if let Some(ca) = &self.ca_pem {
            c = c.ca_certificate(Certificate::from_pem(ca));
        }
        if let (Some(cert), Some(key)) = (&self.client_cert_pem, &self.client_key_pem) {
            c = c.identity(Identity::from_pem(cert, key));
        }
        if let Some(name) = peer_server_name
            .filter(|n| !n.is_empty())
            .or(self.server_name.as_deref())
        {
            c = c.domain_name(name);
        }
        c
    }

    /// The name a node's certificate is checked against (for GetNodes' `tls.server_name`).
    pub fn effective_server_name(&self, peer_server_name: Option<&str>) -> String {
        peer_server_name
            .filter(|n| !n.is_empty())
            .or(self.server_name.as_deref())
            .unwrap_or_default()
            .to_string()
    }
}

pub use periscope_flow_server::server::server_tls_from_pem;

pub fn server_tls_from_files(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<ServerTlsConfig, RelayError> {
    let ca = client_ca.map(read).transpose()?;
    Ok(server_tls_from_pem(
        &read(cert)?,
        &read(key)?,
        ca.as_deref(),
    ))
}
