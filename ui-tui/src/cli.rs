//! clap definitions for the `periscope` command line.
//!
//! Flag groups are separate `clap::Args` structs so that other subcommands (a terminal viewer,
//! `demo`, `agent`, …) can `#[command(flatten)]` the same filter and server flags:
//! [`FilterArgs`], [`ServerArgs`], [`SelectorArgs`], [`FormatArgs`].
//! To add a subcommand, add a variant to [`Command`] and an arm in [`crate::commands::run`].

use std::ffi::OsString;
use std::time::Duration;

use clap::{
    Arg, ArgAction, ArgMatches, Args, Command as ClapCommand, FromArgMatches, Parser, Subcommand,
};

use crate::output::{ColorMode, OutputFormat};
use crate::timefmt::{self, TimeFormat};

/// Hubble's default relay address, so existing habits work.
pub const DEFAULT_SERVER: &str = "localhost:4245";

/// `periscope`: observe network flows of a Periscope (Hubble-compatible) server.
#[derive(Debug, Parser)]
#[command(
    name = "periscope",
    version,
    about = "Observe network flows of a Periscope (Hubble-compatible) server"
)]
#[command(propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level subcommands. New ones (e.g. `top`, `demo`, `agent`, `cluster …`) go here.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Observe flows and events of a Periscope/Hubble server (like `hubble observe`)
    Observe(ObserveArgs),
    /// Display the status of the server (like `hubble status`)
    Status(StatusArgs),
    /// List objects known to the server
    #[command(subcommand)]
    List(ListCommand),
    /// Live terminal flow viewer (like `top` for flows)
    Top(TopArgs),
    /// Run the Star Wars demo: cluster, agent, relay, rule1, traffic, then the DROPPED flows (root)
    Demo(DemoArgs),
    /// Apply, delete or show CiliumNetworkPolicies on the local datapath (root)
    Policy(PolicyArgs),
    /// Manage the local netns cluster: up, down, exec <pod> -- cmd, status (runs `periscope-cluster`)
    #[command(disable_help_flag = true)]
    Cluster(PassthroughArgs),
    /// Run the node agent: eBPF datapath + Observer API (runs `periscope-agent`)
    #[command(disable_help_flag = true)]
    Agent(PassthroughArgs),
}

/// `periscope demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Cluster instance prefix.
    #[arg(long, default_value = "demo")]
    pub prefix: String,
    /// Node agent Observer/Peer address (Hubble's 4244).
    #[arg(long, default_value = "127.0.0.1:4244")]
    pub agent_address: std::net::SocketAddr,
    /// Relay Observer address (Hubble's 4245).
    #[arg(long, default_value = "127.0.0.1:4245")]
    pub relay_address: std::net::SocketAddr,
    /// Prometheus metrics address (Hubble's 9965).
    #[arg(long, default_value = "127.0.0.1:9965")]
    pub metrics_address: std::net::SocketAddr,
    /// Policy to apply (default: the built-in rule1, L3/L4).
    #[arg(long)]
    pub policy: Option<std::path::PathBuf>,
    /// Pod CIDR (default: the Star Wars spec's).
    #[arg(long)]
    pub pod_cidr: Option<String>,
    /// Tear down right after printing the flows instead of waiting for Ctrl-C.
    #[arg(long)]
    pub no_wait: bool,
}

/// `periscope policy`.
#[derive(Debug, Clone, Args)]
pub struct PolicyArgs {
    /// Local cluster / datapath instance.
    #[arg(
        long,
        global = true,
        env = "PERISCOPE_CLUSTER_PREFIX",
        default_value = "demo"
    )]
    pub prefix: String,
    #[arg(long, global = true, env = "PERISCOPE_CLUSTER_STATE", default_value = periscope_datapath::cluster::DEFAULT_STATE_ROOT)]
    pub state_root: std::path::PathBuf,
    #[command(subcommand)]
    pub command: PolicyCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum PolicyCommand {
    /// Apply the policies in a YAML file (CiliumNetworkPolicy, NetworkPolicy)
    Apply { file: std::path::PathBuf },
    /// Delete a policy by `[ns/]name`
    Delete { name: String },
    /// Show the resolved policy per endpoint, like `cilium policy get`
    Get {
        /// Only this endpoint id.
        #[arg(long)]
        endpoint: Option<u16>,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Arguments handed unchanged to a companion binary.
#[derive(Debug, Clone, Args)]
pub struct PassthroughArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// `periscope top`: the terminal flow viewer. Takes the same filter flags as `observe` (they
/// become the initial contents of the viewer's filter bar).
#[derive(Debug, Clone, Args)]
pub struct TopArgs {
    #[command(flatten)]
    pub filters: FilterArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Flows kept in the viewer; older ones are dropped (and counted)
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub buffer: usize,
    /// Flows of history to load each time the filter changes
    #[arg(long, default_value_t = 1_000, value_name = "N")]
    pub last: u64,
    /// Frames drawn per second at most
    #[arg(long, default_value_t = 20, value_name = "FPS")]
    pub fps: u16,
    /// Print IP addresses instead of pod, service and DNS names
    #[arg(long)]
    pub numeric: bool,
}

/// `periscope list …`
#[derive(Debug, Subcommand)]
pub enum ListCommand {
    /// List nodes known to the server (the relay lists every node)
    #[command(alias = "node")]
    Nodes(ListArgs),
    /// List namespaces with recent flows
    #[command(alias = "namespace")]
    Namespaces(ListArgs),
}

/// `periscope observe`.
#[derive(Debug, Clone, Args)]
pub struct ObserveArgs {
    #[command(flatten)]
    pub selectors: SelectorArgs,
    #[command(flatten)]
    pub filters: FilterArgs,
    #[command(flatten)]
    pub format: FormatArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Print the whitelist/blacklist the flags produce as JSON, then exit without connecting
    #[arg(long)]
    pub print_raw_filters: bool,
}

/// How to reach the server. Flatten into any subcommand that talks to it.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Server")]
pub struct ServerArgs {
    /// Address of the server: host:port, or http://host:port
    #[arg(long, env = "PERISCOPE_SERVER", default_value = DEFAULT_SERVER, value_name = "ADDR")]
    pub server: String,
    /// How long to wait for the connection to be established (e.g. 5s, 500ms)
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
    /// How long to wait for a single request's answer (status, list)
    #[arg(long, default_value = "12s", value_parser = parse_duration, value_name = "DURATION")]
    pub request_timeout: Duration,
}

impl Default for ServerArgs {
    fn default() -> Self {
        Self {
            server: DEFAULT_SERVER.to_string(),
            timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(12),
        }
    }
}

fn parse_duration(s: &str) -> Result<Duration, timefmt::TimeError> {
    timefmt::parse_go_duration(s)
}

/// Which flows to ask for: how many, from when, and whether to keep following.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Selectors")]
pub struct SelectorArgs {
    /// Get the last N flows (default 20 unless --follow, --since or --until is given)
    #[arg(long, value_name = "N")]
    pub last: Option<u64>,
    /// Get the first N flows stored
    #[arg(long, value_name = "N")]
    pub first: Option<u64>,
    /// Get all flows stored (same as a very large --last)
    #[arg(long)]
    pub all: bool,
    /// Follow the flow stream as new flows arrive
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only flows after this time: a duration ago (5m, 1h30m) or an RFC 3339 time
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub since: Option<String>,
    /// Only flows before this time: a duration ago (5m, 1h30m) or an RFC 3339 time
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub until: Option<String>,
}

/// How flows are printed.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Output")]
pub struct FormatArgs {
    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Compact, ignore_case = true)]
    pub output: OutputFormat,
    /// Time format for timestamps
    #[arg(long, value_enum, default_value_t = TimeFormat::StampMilli, ignore_case = true)]
    pub time_format: TimeFormat,
    /// Colorize compact and dict output
    #[arg(long, value_enum, default_value_t = ColorMode::Auto, ignore_case = true)]
    pub color: ColorMode,
    /// Print the node name in front of each flow
    #[arg(long)]
    pub print_node_name: bool,
    /// Print IP addresses instead of pod, service and DNS names
    #[arg(long)]
    pub numeric: bool,
    /// Also print informational node status events (node connected, node gone)
    #[arg(long)]
    pub debug: bool,
}

impl Default for FormatArgs {
    fn default() -> Self {
        Self {
            output: OutputFormat::Compact,
            time_format: TimeFormat::StampMilli,
            color: ColorMode::Auto,
            print_node_name: false,
            numeric: false,
            debug: false,
        }
    }
}

/// `-o` for `periscope status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum StatusFormat {
    #[default]
    Compact,
    Dict,
    #[value(alias = "jsonpb")]
    Json,
    #[value(alias = "tab")]
    Table,
}

/// `periscope status`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t = StatusFormat::Compact, ignore_case = true)]
    pub output: StatusFormat,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `-o` for `periscope list …`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ListFormat {
    #[default]
    Table,
    Wide,
    Json,
}

/// `periscope list nodes|namespaces`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t = ListFormat::Table, ignore_case = true)]
    pub output: ListFormat,
    #[command(flatten)]
    pub server: ServerArgs,
}

// ---------------------------------------------------------------------------------------------
// Filter flags
// ---------------------------------------------------------------------------------------------

/// One of Hubble's filter flags. `Not` is itself an entry: it negates the next filter flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FilterFlag {
    Not,
    Uuid,
    NodeName,
    NodeLabel,
    Cluster,
    FromCluster,
    ToCluster,
    Protocol,
    TcpFlags,
    Type,
    Verdict,
    DropReasonDesc,
    HttpStatus,
    HttpMethod,
    HttpPath,
    HttpUrl,
    HttpHeader,
    TraceId,
    Fqdn,
    FromFqdn,
    ToFqdn,
    Ip,
    FromIp,
    ToIp,
    SnatIp,
    Ipv4,
    Ipv6,
    IpVersion,
    Pod,
    FromPod,
    ToPod,
    Namespace,
    FromNamespace,
    ToNamespace,
    AllNamespaces,
    FromAllNamespaces,
    ToAllNamespaces,
    Label,
    FromLabel,
    ToLabel,
    Service,
    FromService,
    ToService,
    Port,
    FromPort,
    ToPort,
    Workload,
    FromWorkload,
    ToWorkload,
    Identity,
    FromIdentity,
    ToIdentity,
    TrafficDirection,
    Interface,
}

struct FlagSpec {
    flag: FilterFlag,
    long: &'static str,
    short: Option<char>,
    /// `None`: a switch without a value.
    value_name: Option<&'static str>,
    help: &'static str,
}

const fn spec(
    flag: FilterFlag,
    long: &'static str,
    short: Option<char>,
    value_name: Option<&'static str>,
    help: &'static str,
) -> FlagSpec {
    FlagSpec {
        flag,
        long,
        short,
        value_name,
        help,
    }
}

use FilterFlag as F;

#[rustfmt::skip]
const FLAG_SPECS: &[FlagSpec] = &[
    spec(F::Not, "not", None, None, "Negate the next filter flag: it goes to the blacklist (e.g. --not --from-ip 2.2.2.2)"),
    spec(F::Uuid, "uuid", None, Some("UUID"), "Show only the flow with this unique identifier"),
    spec(F::NodeName, "node-name", None, Some("NAME"), "Show flows from nodes matching this name pattern (e.g. \"k8s*\", \"cluster/*.example.com\")"),
    spec(F::NodeLabel, "node-label", None, Some("SELECTOR"), "Show flows from nodes matching this label selector"),
    spec(F::Cluster, "cluster", None, Some("NAME"), "Show flows from or to this cluster"),
    spec(F::FromCluster, "from-cluster", None, Some("NAME"), "Show flows originating in this cluster"),
    spec(F::ToCluster, "to-cluster", None, Some("NAME"), "Show flows terminating in this cluster"),
    spec(F::Protocol, "protocol", None, Some("PROTO"), "Show flows of this L4/L7 protocol (tcp, udp, icmp, icmpv4, icmpv6, sctp, http, dns, kafka)"),
    spec(F::TcpFlags, "tcp-flags", None, Some("FLAGS"), "Show flows with all of these TCP flags set (e.g. syn, \"syn,ack\")"),
    spec(F::Type, "type", Some('t'), Some("TYPE[:SUBTYPE]"), "Filter by event type: trace, drop, policy-verdict, l7, capture, trace-sock, debug, agent, or a number; trace subtypes: to-endpoint, to-proxy, to-host, to-stack, to-overlay, to-network, to-crypto, from-endpoint, from-proxy, from-host, from-stack, from-overlay, from-network, from-crypto"),
    spec(F::Verdict, "verdict", None, Some("VERDICT"), "Show flows with this verdict (FORWARDED, DROPPED, AUDIT, REDIRECTED, ERROR, TRACED, TRANSLATED)"),
    spec(F::DropReasonDesc, "drop-reason-desc", None, Some("REASON"), "Show drops with this reason (e.g. POLICY_DENIED, STALE_OR_UNROUTABLE_IP)"),
    spec(F::HttpStatus, "http-status", None, Some("CODE"), "Show flows with this HTTP status code or prefix (e.g. 404, 5+)"),
    spec(F::HttpMethod, "http-method", None, Some("METHOD"), "Show flows with this HTTP method (e.g. get, post)"),
    spec(F::HttpPath, "http-path", None, Some("REGEX"), "Show flows whose HTTP path matches this regular expression (e.g. \"/page/\\d+\")"),
    spec(F::HttpUrl, "http-url", None, Some("REGEX"), "Show flows whose HTTP URL matches this regular expression"),
    spec(F::HttpHeader, "http-header", None, Some("KEY:VALUE"), "Show flows with this HTTP header"),
    spec(F::TraceId, "trace-id", None, Some("ID"), "Show flows with this trace ID"),
    spec(F::Fqdn, "fqdn", None, Some("NAME"), "Show flows from or to this fully qualified domain name (e.g. \"*.cilium.io\")"),
    spec(F::FromFqdn, "from-fqdn", None, Some("NAME"), "Show flows originating at this fully qualified domain name"),
    spec(F::ToFqdn, "to-fqdn", None, Some("NAME"), "Show flows terminating at this fully qualified domain name"),
    spec(F::Ip, "ip", None, Some("IP|CIDR"), "Show flows from or to this IP address or CIDR range"),
    spec(F::FromIp, "from-ip", None, Some("IP|CIDR"), "Show flows originating at this IP address or CIDR range"),
    spec(F::ToIp, "to-ip", None, Some("IP|CIDR"), "Show flows terminating at this IP address or CIDR range"),
    spec(F::SnatIp, "snat-ip", None, Some("IP|CIDR"), "Show flows whose source was translated (SNAT) to this IP address or CIDR range"),
    spec(F::Ipv4, "ipv4", Some('4'), None, "Show only IPv4 flows"),
    spec(F::Ipv6, "ipv6", Some('6'), None, "Show only IPv6 flows"),
    spec(F::IpVersion, "ip-version", None, Some("VERSION"), "Show only flows of this IP version (v4, v6, none)"),
    spec(F::Pod, "pod", None, Some("[NAMESPACE/]POD"), "Show flows from or to pods with this name prefix (namespace from -n, else \"default\")"),
    spec(F::FromPod, "from-pod", None, Some("[NAMESPACE/]POD"), "Show flows originating in pods with this name prefix"),
    spec(F::ToPod, "to-pod", None, Some("[NAMESPACE/]POD"), "Show flows terminating in pods with this name prefix"),
    spec(F::Namespace, "namespace", Some('n'), Some("NAMESPACE"), "Show flows from or to this namespace"),
    spec(F::FromNamespace, "from-namespace", None, Some("NAMESPACE"), "Show flows originating in this namespace"),
    spec(F::ToNamespace, "to-namespace", None, Some("NAMESPACE"), "Show flows terminating in this namespace"),
    spec(F::AllNamespaces, "all-namespaces", Some('A'), None, "Show flows from or to pods in any namespace"),
    spec(F::FromAllNamespaces, "from-all-namespaces", None, None, "Show flows originating in pods of any namespace"),
    spec(F::ToAllNamespaces, "to-all-namespaces", None, None, "Show flows terminating in pods of any namespace"),
    spec(F::Label, "label", Some('l'), Some("SELECTOR"), "Show flows from or to endpoints with these labels (e.g. \"key1=value1\", \"reserved:world\")"),
    spec(F::FromLabel, "from-label", None, Some("SELECTOR"), "Show flows originating at endpoints with these labels"),
    spec(F::ToLabel, "to-label", None, Some("SELECTOR"), "Show flows terminating at endpoints with these labels"),
    spec(F::Service, "service", None, Some("[NAMESPACE/]SERVICE"), "Show flows from or to this service (namespace from -n, else \"default\")"),
    spec(F::FromService, "from-service", None, Some("[NAMESPACE/]SERVICE"), "Show flows originating at this service"),
    spec(F::ToService, "to-service", None, Some("[NAMESPACE/]SERVICE"), "Show flows terminating at this service"),
    spec(F::Port, "port", None, Some("PORT"), "Show flows with this source or destination port"),
    spec(F::FromPort, "from-port", None, Some("PORT"), "Show flows with this source port"),
    spec(F::ToPort, "to-port", None, Some("PORT"), "Show flows with this destination port"),
    spec(F::Workload, "workload", None, Some("[KIND/]NAME"), "Show flows from or to endpoints of this workload"),
    spec(F::FromWorkload, "from-workload", None, Some("[KIND/]NAME"), "Show flows originating at endpoints of this workload"),
    spec(F::ToWorkload, "to-workload", None, Some("[KIND/]NAME"), "Show flows terminating at endpoints of this workload"),
    spec(F::Identity, "identity", None, Some("IDENTITY"), "Show flows from or to endpoints with this security identity (number or reserved name like world)"),
    spec(F::FromIdentity, "from-identity", None, Some("IDENTITY"), "Show flows originating at endpoints with this security identity"),
    spec(F::ToIdentity, "to-identity", None, Some("IDENTITY"), "Show flows terminating at endpoints with this security identity"),
    spec(F::TrafficDirection, "traffic-direction", None, Some("DIRECTION"), "Show flows in this traffic direction (ingress, egress)"),
    spec(F::Interface, "interface", None, Some("NAME"), "Show flows observed on this network interface"),
];

const ALLOWLIST_ID: &str = "allowlist";
const DENYLIST_ID: &str = "denylist";

impl FilterFlag {
    /// The long flag name, without dashes (`from-pod`).
    pub fn name(self) -> &'static str {
        FLAG_SPECS
            .iter()
            .find(|s| s.flag == self)
            .map_or("?", |s| s.long)
    }

    /// Whether the flag takes a value (`--pod x`) or is a switch (`--not`, `-4`, `-A`).
    pub fn takes_value(self) -> bool {
        FLAG_SPECS
            .iter()
            .find(|s| s.flag == self)
            .is_some_and(|s| s.value_name.is_some())
    }

    /// Looks a flag up by its long name.
    pub fn from_name(name: &str) -> Option<Self> {
        FLAG_SPECS.iter().find(|s| s.long == name).map(|s| s.flag)
    }
}

/// One filter flag occurrence, in command-line order. Switches carry an empty value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterOp {
    pub flag: FilterFlag,
    pub value: String,
}

impl FilterOp {
    pub fn new(flag: FilterFlag, value: impl Into<String>) -> Self {
        Self {
            flag,
            value: value.into(),
        }
    }
}

/// Hubble's filter flags. Order matters (`--not` applies to the next filter flag), so the
/// struct keeps every occurrence in command-line order instead of one field per flag.
/// Turn it into `FlowFilter`s with [`crate::filters::build`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterArgs {
    pub ops: Vec<FilterOp>,
    /// `--allowlist`: raw JSON `FlowFilter`s appended to the whitelist.
    pub allowlist: Vec<String>,
    /// `--denylist`: raw JSON `FlowFilter`s appended to the blacklist.
    pub denylist: Vec<String>,
}

impl FilterArgs {
    /// Convenience for tests and programmatic callers: `FilterArgs::from_ops([(F::Pod, "x")])`.
    pub fn from_ops<I, S>(ops: I) -> Self
    where
        I: IntoIterator<Item = (FilterFlag, S)>,
        S: Into<String>,
    {
        Self {
            ops: ops.into_iter().map(|(f, v)| FilterOp::new(f, v)).collect(),
            ..Self::default()
        }
    }
}

impl Args for FilterArgs {
    fn augment_args(mut cmd: ClapCommand) -> ClapCommand {
        for s in FLAG_SPECS {
            let mut arg = Arg::new(s.long)
                .long(s.long)
                .help(s.help)
                .help_heading("Filters")
                .action(ArgAction::Append);
            if let Some(c) = s.short {
                arg = arg.short(c);
            }
            arg = match s.value_name {
                Some(v) => arg.value_name(v).num_args(1),
                // Switches still use `Append` (with an implied value) so that every occurrence
                // keeps its own index: `Count`/`SetTrue` only remember the last one.
                None => arg.num_args(0).default_missing_value("true"),
            };
            cmd = cmd.arg(arg);
        }
        cmd.arg(
            Arg::new(ALLOWLIST_ID)
                .long("allowlist")
                .value_name("JSON")
                .help("Add a JSON-encoded FlowFilter to the whitelist")
                .help_heading("Raw filters")
                .action(ArgAction::Append),
        )
        .arg(
            Arg::new(DENYLIST_ID)
                .long("denylist")
                .value_name("JSON")
                .help("Add a JSON-encoded FlowFilter to the blacklist")
                .help_heading("Raw filters")
                .action(ArgAction::Append),
        )
    }

    fn augment_args_for_update(cmd: ClapCommand) -> ClapCommand {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for FilterArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut indexed: Vec<(usize, FilterOp)> = Vec::new();
        for s in FLAG_SPECS {
            let (Some(indices), Some(values)) =
                (m.indices_of(s.long), m.get_many::<String>(s.long))
            else {
                continue;
            };
            for (idx, value) in indices.zip(values) {
                let value = if s.value_name.is_some() {
                    value.clone()
                } else {
                    String::new()
                };
                indexed.push((idx, FilterOp::new(s.flag, value)));
            }
        }
        indexed.sort_by_key(|(idx, _)| *idx);
        let strings = |id: &str| -> Vec<String> {
            m.get_many::<String>(id)
                .map(|v| v.cloned().collect())
                .unwrap_or_default()
        };
        Ok(Self {
            ops: indexed.into_iter().map(|(_, op)| op).collect(),
            allowlist: strings(ALLOWLIST_ID),
            denylist: strings(DENYLIST_ID),
        })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing entry points
// ---------------------------------------------------------------------------------------------

/// Parses a full command line (including the program name).
pub fn parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    Cli::try_parse_from(args)
}

/// Parses the arguments of one subcommand's flag group on its own, e.g. for tests:
/// `parse_observe(["--pod", "x"])`.
pub fn parse_observe<I, T>(args: I) -> Result<ObserveArgs, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let argv = std::iter::once(OsString::from("periscope"))
        .chain(std::iter::once(OsString::from("observe")))
        .chain(args.into_iter().map(Into::into));
    match Cli::try_parse_from(argv)?.command {
        Command::Observe(o) => Ok(o),
        _ => Err(clap::Error::new(clap::error::ErrorKind::InvalidSubcommand)),
    }
}

/// Condenses a clap error into one line (no usage block), e.g.
/// `invalid value 'xml' for '--output <OUTPUT>' [possible values: compact, dict, json, jsonpb, table]`.
pub fn one_line_error(err: &clap::Error) -> String {
    let rendered = err.render().to_string();
    let mut parts: Vec<String> = Vec::new();
    for line in rendered.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("Usage:") || line.starts_with("For more information")
        {
            continue;
        }
        if parts.is_empty() {
            parts.push(line.strip_prefix("error: ").unwrap_or(line).to_string());
        } else if line.starts_with('[') || line.starts_with("tip:") {
            parts.push(line.to_string());
        }
    }
    if parts.is_empty() {
        return "invalid command line".to_string();
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_ops_keep_command_line_order_across_flags() {
        let o = parse_observe([
            "--from-ip",
            "1.2.3.4",
            "--not",
            "--to-ip",
            "5.5.5.5",
            "-4",
            "--not",
            "-A",
            "--from-ip=5.6.7.8",
        ])
        .expect("parses");
        let got: Vec<(FilterFlag, &str)> = o
            .filters
            .ops
            .iter()
            .map(|op| (op.flag, op.value.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (F::FromIp, "1.2.3.4"),
                (F::Not, ""),
                (F::ToIp, "5.5.5.5"),
                (F::Ipv4, ""),
                (F::Not, ""),
                (F::AllNamespaces, ""),
                (F::FromIp, "5.6.7.8"),
            ]
        );
    }

    #[test]
    fn repeated_switches_are_each_recorded() {
        let o = parse_observe(["--not", "-4", "--not", "-4"]).expect("parses");
        assert_eq!(o.filters.ops.len(), 4);
    }

    #[test]
    fn flag_names_round_trip() {
        for s in FLAG_SPECS {
            assert_eq!(FilterFlag::from_name(s.long), Some(s.flag));
            assert_eq!(s.flag.name(), s.long);
        }
    }

    #[test]
    fn bad_enum_values_render_as_one_line() {
        let err = parse_observe(["-o", "xml"]).expect_err("xml is not a format");
        let line = one_line_error(&err);
        assert!(!line.contains('\n'));
        assert!(line.contains("'xml'"), "{line}");
        assert!(line.contains("jsonpb"), "{line}");
        let err = parse_observe(["--bogus"]).expect_err("unknown flag");
        assert!(one_line_error(&err).contains("--bogus"));
    }

    /// What a future `periscope top` would do: reuse the filter and server flag groups.
    #[test]
    fn flag_groups_flatten_into_other_commands() {
        #[derive(Debug, Parser)]
        struct Top {
            #[command(flatten)]
            filters: FilterArgs,
            #[command(flatten)]
            server: ServerArgs,
            #[arg(long)]
            refresh: Option<String>,
        }
        let top = Top::try_parse_from([
            "top",
            "--pod",
            "deathstar",
            "--refresh",
            "1s",
            "--not",
            "-n",
            "kube-system",
            "--server",
            "relay:4245",
        ])
        .expect("parses");
        assert_eq!(
            top.filters.ops,
            vec![
                FilterOp::new(F::Pod, "deathstar"),
                FilterOp::new(F::Not, ""),
                FilterOp::new(F::Namespace, "kube-system"),
            ]
        );
        assert_eq!(top.server.server, "relay:4245");
        assert_eq!(top.refresh.as_deref(), Some("1s"));
        let built = crate::filters::build(&top.filters).expect("valid filters");
        assert_eq!(built.whitelist.len(), 2);
        assert_eq!(built.blacklist.len(), 2);
    }

    #[test]
    fn server_defaults_like_hubble() {
        let o = parse_observe(Vec::<String>::new()).expect("parses");
        // PERISCOPE_SERVER may be set in the environment running the tests.
        if std::env::var_os("PERISCOPE_SERVER").is_none() {
            assert_eq!(o.server.server, "localhost:4245");
        }
        assert_eq!(o.server.timeout, Duration::from_secs(5));
        assert_eq!(o.format.output, OutputFormat::Compact);
        assert!(parse_observe(["--timeout", "soon"]).is_err());
    }
}
