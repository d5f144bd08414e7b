//! mTLS end to end with certificates generated at test time: client ⇄ relay and relay ⇄ node
//! both require certificates signed by the test CA.

mod support;

use std::sync::Arc;
use std::time::Duration;

use periscope_flow_server::server::serve_tls;
use periscope_proto::observer::observer_client::ObserverClient;
use periscope_proto::observer::{GetFlowsRequest, GetNodesRequest};
use periscope_proto::relay::NodeState;
use periscope_relay::tls::server_tls_from_pem;
use periscope_relay::{ConnState, NodeTls, Relay, RelayConfig, ServeOptions, serve};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use support::{ServeFn, TestNode, flow_time, now_ns};
use tokio::net::TcpListener;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

struct Pem {
    cert: String,
    key: String,
}

struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

fn ca() -> Ca {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "periscope test CA");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params.self_signed(&key).expect("self-signed");
    Ca {
        pem: cert.pem(),
        params,
        key,
    }
}

fn leaf(ca: &Ca, name: &str, usage: ExtendedKeyUsagePurpose) -> Pem {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec![name.to_string()]).expect("params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![usage];
    let issuer = Issuer::from_params(&ca.params, &ca.key);
    let cert = params.signed_by(&key, &issuer).expect("sign");
    Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

/// The node serves through the flow server's own TLS listener (what `periscope-agent --tls-*` runs).
fn tls_node_server(ca_pem: String, node: Pem) -> ServeFn {
    Arc::new(move |server, listener| {
        let tls = ServerTlsConfig::new()
            .identity(Identity::from_pem(&node.cert, &node.key))
            .client_ca_root(Certificate::from_pem(&ca_pem));
        Box::pin(async move {
            let _ = serve_tls(server, listener, Some(tls), std::future::pending()).await;
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_between_client_relay_and_nodes() {
    let ca = ca();
    let server_cert = || leaf(&ca, "localhost", ExtendedKeyUsagePurpose::ServerAuth);
    let client_cert = || leaf(&ca, "periscope-client", ExtendedKeyUsagePurpose::ClientAuth);

    let node = TestNode::start_with(
        "node-1",
        None,
        1024,
        tls_node_server(ca.pem.clone(), server_cert()),
    );
    let relay_client = client_cert();
    let cfg = RelayConfig {
        static_nodes: vec![node.addr.to_string()],
        node_tls: Some(NodeTls {
            ca_pem: Some(ca.pem.clone().into_bytes()),
            client_cert_pem: Some(relay_client.cert.into_bytes()),
            client_key_pem: Some(relay_client.key.into_bytes()),
            server_name: Some("localhost".into()),
        }),
        ..RelayConfig::default()
    };
    let relay = Relay::start(cfg);
    let relay_server = server_cert();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(
        relay.clone(),
        listener,
        ServeOptions {
            tls: Some(server_tls_from_pem(
                relay_server.cert.as_bytes(),
                relay_server.key.as_bytes(),
                Some(ca.pem.as_bytes()),
            )),
            health_listener: None,
        },
        async move {
            let _ = stop_rx.await;
        },
    ));
    let up = relay
        .pool()
        .wait_until(Duration::from_secs(10), |n| {
            n.len() == 1 && n[0].state == ConnState::Connected
        })
        .await;
    assert!(
        up,
        "relay could not reach the node over mTLS: {:?}",
        relay.pool().list()
    );

    let t = now_ns();
    node.send_flows(&[t, t + 1, t + 2]);
    node.wait_head(3).await;

    let me = client_cert();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&ca.pem))
        .identity(Identity::from_pem(&me.cert, &me.key))
        .domain_name("localhost");
    let ch = Endpoint::from_shared(format!("https://{addr}"))
        .expect("uri")
        .tls_config(tls)
        .expect("tls")
        .connect()
        .await
        .expect("connect over mTLS");
    let mut c = ObserverClient::new(ch);
    let mut stream = c
        .get_flows(GetFlowsRequest::default())
        .await
        .expect("get_flows")
        .into_inner();
    let mut times = Vec::new();
    while let Some(m) = stream.message().await.expect("stream") {
        times.extend(flow_time(&m));
    }
    assert_eq!(times, vec![t as i128, t as i128 + 1, t as i128 + 2]);

    let nodes = c
        .get_nodes(GetNodesRequest {})
        .await
        .expect("nodes")
        .into_inner()
        .nodes;
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].state(), NodeState::NodeConnected);
    let tls = nodes[0].tls.clone().expect("tls info");
    assert!(tls.enabled);
    assert_eq!(tls.server_name, "localhost");

    // Without a client certificate the relay refuses the connection.
    let anon = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&ca.pem))
        .domain_name("localhost");
    let rejected = match Endpoint::from_shared(format!("https://{addr}"))
        .expect("uri")
        .tls_config(anon)
        .expect("tls")
        .connect()
        .await
    {
        Err(_) => true,
        Ok(ch) => ObserverClient::new(ch)
            .get_nodes(GetNodesRequest {})
            .await
            .is_err(),
    };
    assert!(rejected, "a client without a certificate got through");
    let _ = stop_tx.send(());
}
