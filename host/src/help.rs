//! The examples at the end of each command's long help (`idhost <command> --help`), so every
//! command shows at least one line a user can copy.

/// `idhost --help`.
pub(crate) const TOP: &str = "\
Examples:
  idhost demo                                  # three simulated upstreams, two syncs, what to try next
  idhost init entra -c idhost.toml             # a commented config for one connector
  idhost check -c idhost.toml --offline        # validate with no network and no secret
  idhost sync -c idhost.toml
  idhost query -c idhost.toml access alex.doe@example.com

Global flags (-c, -o/--output, --color, --log-level, --log-format, --plugin-dir) are accepted
anywhere on the line. Data goes to stdout, logs and progress to stderr.
Exit codes: 0 success; 1 a source or operation failed; 2 the config or the command line is
invalid (or a query names something unknown); 3 a plugin could not be loaded or found.";

/// `idhost demo --help`.
pub(crate) const DEMO: &str = "\
Examples:
  idhost demo                                  # writes idhost-demo.toml and idhost-demo.db here
  idhost demo --entra-users 500 --keep         # small, and leave the simulators up
  idhost query -c idhost-demo.toml orphans     # afterwards: no simulator and no secret needed";

/// `idhost init --help`.
pub(crate) const INIT: &str = "\
Examples:
  idhost init ironclad                         # writes idhost.toml
  idhost init entra -c corp.toml
  idhost init clickwrap -c idhost.toml --force # replace an existing file";

/// `idhost provision --help`.
pub(crate) const PROVISION: &str = "\
Examples:
  idhost provision -c idhost.toml --source legal --dry-run grant --entitlement group:G:member --principal user:U
  idhost provision -c idhost.toml --source legal revoke --grant group:G:member:user:U
  idhost provision -c idhost.toml --source legal create-account --login a@example.com --generate-password
  idhost provision -c idhost.toml --source legal update --resource user:U --set title=Counsel
  idhost provision -c idhost.toml --source legal delete --resource user:U -o json";

/// `idhost run --help`.
pub(crate) const RUN: &str = "\
Examples:
  idhost run -c idhost.toml
  idhost run -c idhost.toml --listen 0.0.0.0:9464 --shutdown-grace 30s";

/// `idhost bench --help`.
pub(crate) const BENCH: &str = "\
Examples:
  idhost --log-level warn bench                # every scenario (build with --release first)
  idhost bench --scenario entra --scale 0.1";

/// `idhost query --help`.
pub(crate) const QUERY: &str = "\
Examples:
  idhost query -c idhost.toml resources --type user --search alex
  idhost query -c idhost.toml access alex.doe@example.com -o json
  idhost query -c idhost.toml who-has group:G:member
  idhost query -c idhost.toml orphans
  idhost query -c idhost.toml diff corp --since 24h";

/// `idhost query resources --help`.
pub(crate) const RESOURCES: &str = "\
Examples:
  idhost query -c idhost.toml resources --source corp --type group
  idhost query -c idhost.toml resources --search alex -o csv";

/// `idhost query entitlements --help`.
pub(crate) const ENTITLEMENTS: &str = "\
Examples:
  idhost query -c idhost.toml entitlements --source corp
  idhost query -c idhost.toml entitlements --resource group:G";

/// `idhost query grants --help`.
pub(crate) const GRANTS: &str = "\
Examples:
  idhost query -c idhost.toml grants --entitlement group:G:member
  idhost query -c idhost.toml grants --principal alex.doe@example.com -o json";

/// `idhost query who-has --help`.
pub(crate) const WHO_HAS: &str = "\
`via` is empty for a direct grant, else the groups the access flows through, outermost first.

Examples:
  idhost query -c idhost.toml who-has group:G:member
  idhost query -c idhost.toml who-has app:A:assignment --source corp -o json";

/// `idhost query access --help`.
pub(crate) const ACCESS: &str = "\
`via` is empty for a direct grant, else the groups the access flows through, outermost first.

Examples:
  idhost query -c idhost.toml access alex.doe@example.com
  idhost query -c idhost.toml access user:U --source legal -o json";

/// `idhost query people --help`.
pub(crate) const PEOPLE: &str = "\
Needs `[identity] authoritative = \"SOURCE\"` (and optionally `match = [\"email\", \"login\"]`).

Examples:
  idhost query -c idhost.toml people
  idhost query -c idhost.toml people --source legal -o csv";

/// `idhost query orphans --help`.
pub(crate) const ORPHANS: &str = "\
Reasons: no_match, disabled_in_authoritative, deleted_in_authoritative.

Examples:
  idhost query -c idhost.toml orphans
  idhost query -c idhost.toml orphans --source legal -o json";

/// `idhost query diff --help`.
pub(crate) const DIFF: &str = "\
Needs a sqlite sink whose `records` include \"event\".

Examples:
  idhost query -c idhost.toml diff corp --since 24h
  idhost query -c idhost.toml diff legal --sync 0193f0c2-... -o json";

/// `idhost review --help`.
pub(crate) const REVIEW: &str = "\
Columns: source, principal, principal_name, email, entitlement, entitlement_name, resource,
via, synced_at. Cells starting with =, +, -, @, tab or CR get a leading ' (no formulas).

Examples:
  idhost review -c idhost.toml -o review.xlsx
  idhost review -c idhost.toml --source legal -o legal-review.csv";

/// `idhost audit --help`.
pub(crate) const AUDIT: &str = "\
Examples:
  idhost audit -c idhost.toml
  idhost audit -c idhost.toml --source legal --since 7d -o json";

/// `idhost plugins --help`.
pub(crate) const PLUGINS: &str = "\
Examples:
  idhost plugins
  idhost plugins --plugin-dir /usr/lib/idhost/plugins -o json";

/// `idhost check --help`.
pub(crate) const CHECK: &str = "\
Examples:
  idhost check -c idhost.toml                  # also asks each upstream whether the credentials work
  idhost check -c idhost.toml --offline        # no network, no secret needed (CI)";

/// `idhost login --help`.
pub(crate) const LOGIN: &str = "\
Examples:
  idhost login -c idhost.toml --source legal             # Ironclad: open the printed URL, approve
  idhost login -c idhost.toml --source legal --port 8765 # the redirect URI registered in Ironclad
  idhost login -c idhost.toml --source corp              # Entra: enter the printed code at the URL

The refresh token goes to the vault (age-encrypted with vault_age_recipients), never to the
config or a log; `idhost sync` reads it from there and keeps the rotated ones.";

/// `idhost sync --help`.
pub(crate) const SYNC: &str = "\
Examples:
  idhost sync -c idhost.toml
  idhost sync -c idhost.toml --source legal --resources-only
  idhost sync -c idhost.toml --full -o json
  idhost sync -c idhost.toml --source corp --allow-removals   # accept a mass removal (max_removals)";

/// `idhost approve --help`.
pub(crate) const APPROVE: &str = "\
A sync whose complete listing removes more of the previous snapshot's resources, or of its
grants, than the source's `max_removals` allows (default \"20%\", and more than 10) is held:
nothing is written and no event is sent. `idhost approve` commits that held sync exactly as
if it had passed (its events, every sink's writes, the snapshot) without listing again.

Examples:
  idhost sync -c idhost.toml                      # corp: held (exit code 1)
  idhost approve -c idhost.toml --source corp     # commit what was listed
  idhost sync -c idhost.toml --restart --source corp   # or drop it and list again";

/// `idhost completions --help`.
pub(crate) const COMPLETIONS: &str = "\
Examples:
  idhost completions bash > /etc/bash_completion.d/idhost
  idhost completions zsh > \"${fpath[1]}/_idhost\"
  idhost completions fish > ~/.config/fish/completions/idhost.fish";

/// `idhost man --help`.
pub(crate) const MAN: &str = "\
Examples:
  idhost man | man -l -
  idhost man --dir /usr/local/share/man/man1";
