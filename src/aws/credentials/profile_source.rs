//! A profile of the shared files turned into a credential source.
//!
//! The order and the rules are aws-sdk-go-v2's (`resolveCredsFromProfile`
//! and `setFromIniSections`): `role_arn` + `source_profile` (the source
//! resolved the same way, recursively, with loops detected), static keys,
//! `role_arn` + `credential_source`, `web_identity_token_file`, SSO,
//! `credential_process`. A profile reached as a `source_profile` that has
//! static keys gives those keys (its own `role_arn` is not assumed), which is
//! also what the AWS CLI does. Only one of `source_profile`,
//! `credential_source`, `credential_process` and `web_identity_token_file`
//! may be set, and the first three role kinds need `role_arn`. Nothing is
//! fetched here: the result is a `Provider` for `Chain` to call.

use std::path::PathBuf;

use super::container::Container;
use super::imds::{Availability, Imds};
use super::process::Process;
use super::profile::{Profile, SharedFiles, ACCESS_KEY, SECRET_KEY, SESSION_TOKEN};
use super::sso::{self, Sso};
use super::sts::{self, AssumeRole, WebIdentity};
use super::{env_keys, Credentials, Provider};
use crate::config::Env;
use crate::error::{Error, Result};

pub struct Context<'a> {
    pub env: &'a Env,
    pub files: &'a SharedFiles,
    pub sts: &'a sts::StsEndpoint,
}

pub enum Outcome {
    /// The profile gives credentials this way; `label` is for `-v`.
    Found { provider: Provider, label: String },
    /// The profile exists but says nothing about credentials.
    NoCredentials,
    /// Neither file has the profile.
    Missing,
}

pub fn resolve(ctx: &Context<'_>, name: &str) -> Result<Outcome> {
    if ctx.files.profile(name).is_none() {
        return Ok(Outcome::Missing);
    }
    let mut chain = Vec::new();
    Ok(match build(ctx, name, true, &mut chain)? {
        Some((provider, detail)) => Outcome::Found {
            provider,
            label: format!("profile '{name}' ({detail})"),
        },
        None => Outcome::NoCredentials,
    })
}

/// The provider for profile `name` and a few words on what it does;
/// `None` when the profile has no credential settings. `chain` holds the
/// profiles visited through `source_profile`, to find loops.
fn build(
    ctx: &Context<'_>,
    name: &str,
    top: bool,
    chain: &mut Vec<String>,
) -> Result<Option<(Provider, String)>> {
    let files = ctx.files;
    let Some(p) = files.profile(name) else {
        let from = chain.last().map(String::as_str).unwrap_or(name);
        return Err(Error::Config(format!(
            "profile '{from}' has source_profile = {name}, but there is no profile '{name}' in {}",
            files.describe()
        )));
    };
    if let Some(file) = &p.partial_keys_in {
        return Err(Error::Config(format!(
            "profile '{name}' in {} has only one of {ACCESS_KEY} and {SECRET_KEY}; set both",
            files.show(file)
        )));
    }
    let keys = static_keys(p);
    if !top {
        if let Some(keys) = keys {
            return Ok(Some((Provider::Static(keys), "static keys".into())));
        }
    }
    if chain.iter().any(|n| n == name) {
        chain.push(name.to_string());
        return Err(Error::Config(format!(
            "source_profile loop: {}; one profile in the chain needs credentials of its own",
            chain.join(" -> ")
        )));
    }
    chain.push(name.to_string());

    let role_arn = p.get("role_arn");
    let kinds: Vec<(&str, &str)> = [
        "source_profile",
        "credential_source",
        "credential_process",
        "web_identity_token_file",
    ]
    .into_iter()
    .filter_map(|k| p.get(k).map(|v| (k, v)))
    .collect();
    if kinds.len() > 1 {
        return Err(Error::Config(format!(
            "profile '{name}' sets both {} and {}; keep one way to get credentials",
            kinds[0].0, kinds[1].0
        )));
    }
    if let Some((kind, _)) = kinds.first().filter(|(k, _)| *k != "credential_process") {
        if role_arn.is_none() {
            return Err(Error::Config(format!(
                "profile '{name}' sets {kind} but no role_arn; add the role to assume"
            )));
        }
    }

    if let (Some(source), Some(role)) = (p.get("source_profile"), role_arn) {
        let (inner, _) = build(ctx, source, false, chain)?.ok_or_else(|| {
            Error::Config(format!(
                "profile '{source}' (source_profile of '{name}') has no credentials; give it keys, credential_source, SSO or credential_process"
            ))
        })?;
        let provider = assume(ctx, p, name, role, inner)?;
        return Ok(Some((
            provider,
            format!("assume role {role} from profile '{source}'"),
        )));
    }
    if let Some(keys) = keys {
        return Ok(Some((Provider::Static(keys), "static keys".into())));
    }
    if let (Some(source), Some(role)) = (p.get("credential_source"), role_arn) {
        let inner = credential_source(ctx, name, source)?;
        let provider = assume(ctx, p, name, role, inner)?;
        return Ok(Some((
            provider,
            format!("assume role {role} from {source}"),
        )));
    }
    if let (Some(file), Some(role)) = (p.get("web_identity_token_file"), role_arn) {
        let provider = Provider::WebIdentity(WebIdentity {
            token_file: PathBuf::from(file),
            role_arn: role.to_string(),
            session_name: p.get("role_session_name").map(str::to_string),
            endpoint: ctx.sts.clone(),
        });
        return Ok(Some((
            provider,
            format!("web identity token file, role {role}"),
        )));
    }
    if has_sso(p) {
        let sso = sso_source(ctx, name, p)?;
        let detail = format!("SSO account {} role {}", sso.account_id, sso.role_name);
        return Ok(Some((Provider::Sso(sso), detail)));
    }
    if let Some(command) = p.get("credential_process") {
        let provider = Provider::Process(Process {
            command: command.to_string(),
            context: format!("profile '{name}'"),
        });
        return Ok(Some((provider, "credential_process".into())));
    }
    Ok(None)
}

fn static_keys(p: &Profile) -> Option<Credentials> {
    Some(Credentials {
        access_key_id: p.get(ACCESS_KEY)?.to_string(),
        secret_access_key: p.get(SECRET_KEY)?.to_string(),
        session_token: p.get(SESSION_TOKEN).map(str::to_string),
        expires_at: None,
    })
}

fn assume(
    ctx: &Context<'_>,
    p: &Profile,
    name: &str,
    role: &str,
    source: Provider,
) -> Result<Provider> {
    if p.get("mfa_serial").is_some() {
        return Err(Error::Config(format!(
            "profile '{name}' sets mfa_serial: assuming that role needs an MFA code typed in, which this tool cannot ask for; use a profile without MFA"
        )));
    }
    let duration_seconds = match p.get("duration_seconds") {
        None => None,
        Some(text) => Some(text.trim().parse::<u64>().map_err(|_| {
            Error::Config(format!(
                "profile '{name}' has duration_seconds = {text}; use a whole number of seconds"
            ))
        })?),
    };
    Ok(Provider::AssumeRole(Box::new(AssumeRole {
        role_arn: role.to_string(),
        session_name: p.get("role_session_name").map(str::to_string),
        external_id: p.get("external_id").map(str::to_string),
        duration_seconds,
        endpoint: ctx.sts.clone(),
        source,
        context: format!("profile '{name}'"),
    })))
}

fn credential_source(ctx: &Context<'_>, name: &str, source: &str) -> Result<Provider> {
    let intro = format!("profile '{name}' has credential_source = {source}");
    match source {
        "Environment" => env_keys(ctx.env)?.map(Provider::Static).ok_or_else(|| {
            Error::Config(format!(
                "{intro}, but AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set"
            ))
        }),
        "Ec2InstanceMetadata" => match Imds::from_env(ctx.env) {
            Availability::Enabled(imds) => Ok(Provider::Imds(imds)),
            Availability::Disabled(why) => Err(Error::Config(format!(
                "{intro}, but instance metadata is {why}"
            ))),
        },
        "EcsContainer" => Container::from_env(ctx.env)?
            .map(Provider::Container)
            .ok_or_else(|| {
                Error::Config(format!(
                    "{intro}, but AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (or _FULL_URI) is not set"
                ))
            }),
        _ => Err(Error::Config(format!(
            "{intro}; use Environment, Ec2InstanceMetadata or EcsContainer"
        ))),
    }
}

fn has_sso(p: &Profile) -> bool {
    [
        "sso_session",
        "sso_start_url",
        "sso_region",
        "sso_account_id",
        "sso_role_name",
    ]
    .iter()
    .any(|k| p.get(k).is_some())
}

fn sso_source(ctx: &Context<'_>, name: &str, p: &Profile) -> Result<Sso> {
    let files = ctx.files;
    let mut missing = Vec::new();
    let (region, start_url, session, cache_key) = match p.get("sso_session") {
        Some(session) => {
            let section = files.sso_session(session).ok_or_else(|| {
                Error::Config(format!(
                    "profile '{name}' has sso_session = {session}, but there is no [sso-session {session}] section in {}",
                    files.config_path.as_deref().map(|c| files.show(c)).unwrap_or_else(|| "the config file".into())
                ))
            })?;
            let get = |k: &str| {
                section
                    .get(k)
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty())
            };
            let region = get("sso_region");
            let start = get("sso_start_url");
            for (key, session_value) in [("sso_region", &region), ("sso_start_url", &start)] {
                match (p.get(key), session_value) {
                    (_, None) => missing.push(key),
                    (Some(own), Some(theirs)) if own != theirs => {
                        return Err(Error::Config(format!(
                            "{key} in profile '{name}' must match {key} in [sso-session {session}]"
                        )))
                    }
                    _ => {}
                }
            }
            (
                region,
                start,
                Some(session.to_string()),
                session.to_string(),
            )
        }
        None => {
            let region = p.get("sso_region").map(str::to_string);
            let start = p.get("sso_start_url").map(str::to_string);
            if region.is_none() {
                missing.push("sso_region");
            }
            let key = start.clone().unwrap_or_default();
            if start.is_none() {
                missing.push("sso_start_url");
            }
            (region, start, None, key)
        }
    };
    let account = p.get("sso_account_id");
    let role = p.get("sso_role_name");
    if account.is_none() {
        missing.push("sso_account_id");
    }
    if role.is_none() {
        missing.push("sso_role_name");
    }
    let (Some(region), Some(_start_url), Some(account), Some(role)) =
        (region, start_url, account, role)
    else {
        return Err(Error::Config(format!(
            "profile '{name}' is configured for SSO but is missing {}",
            missing.join(", ")
        )));
    };
    let home = files.home().ok_or_else(|| {
        Error::Config(
            "HOME is not set, so the SSO token cache (~/.aws/sso/cache) cannot be found".into(),
        )
    })?;
    // The region names SSO's hosts (portal.sso.{region}.amazonaws.com).
    if !crate::aws::is_region(&region, true) {
        return Err(crate::aws::region_error(
            &format!("sso_region in profile '{name}'"),
            &region,
            true,
        ));
    }
    let (portal, oidc) = sso::endpoints(ctx.env, &region);
    Ok(Sso {
        profile: name.to_string(),
        session,
        account_id: account.to_string(),
        role_name: role.to_string(),
        cache_file: sso::cache_file(home, &cache_key),
        portal,
        oidc,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::credentials::fake_endpoints::{env_in, write};

    /// Resolves `profile` with these files; returns the outcome's label or
    /// the error text.
    fn label(
        config: &str,
        credentials: &str,
        profile: &str,
        env: &[(&str, &str)],
    ) -> std::result::Result<String, String> {
        let home = tempfile::tempdir().unwrap();
        write(home.path(), ".aws/config", config);
        write(home.path(), ".aws/credentials", credentials);
        let env = env_in(home.path(), env);
        let files = SharedFiles::load(&env).unwrap();
        let endpoint = sts::StsEndpoint::resolve(&env, None);
        let ctx = Context {
            env: &env,
            files: &files,
            sts: &endpoint,
        };
        match resolve(&ctx, profile) {
            Ok(Outcome::Found { label, .. }) => Ok(label),
            Ok(Outcome::NoCredentials) => Ok("no credentials".into()),
            Ok(Outcome::Missing) => Ok("missing".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn order_within_a_profile() {
        let keys = "aws_access_key_id = A\naws_secret_access_key = S\n";
        // source_profile comes before the profile's own keys.
        let cfg = "[profile dev]\nrole_arn = arn:aws:iam::1:role/dev\nsource_profile = base\n";
        let creds = format!("[dev]\n{keys}[base]\n{keys}");
        assert_eq!(
            label(cfg, &creds, "dev", &[]).unwrap(),
            "profile 'dev' (assume role arn:aws:iam::1:role/dev from profile 'base')"
        );
        // Keys before credential_source.
        let cfg = format!("[profile dev]\nrole_arn = r\ncredential_source = Environment\n{keys}");
        assert_eq!(
            label(&cfg, "", "dev", &[]).unwrap(),
            "profile 'dev' (static keys)"
        );
        let cfg = "[profile dev]\nrole_arn = r\ncredential_source = Ec2InstanceMetadata\nsso_session = x\n";
        assert_eq!(
            label(cfg, "", "dev", &[]).unwrap(),
            "profile 'dev' (assume role r from Ec2InstanceMetadata)"
        );
        // Web identity before SSO before credential_process.
        let cfg = "[profile dev]\nrole_arn = r\nweb_identity_token_file = /t\nsso_account_id = 1\n";
        assert_eq!(
            label(cfg, "", "dev", &[]).unwrap(),
            "profile 'dev' (web identity token file, role r)"
        );
        let cfg = "[profile dev]\nsso_start_url = https://s\nsso_region = eu-west-1\nsso_account_id = 1\nsso_role_name = R\ncredential_process = x\n";
        assert_eq!(
            label(cfg, "", "dev", &[]).unwrap(),
            "profile 'dev' (SSO account 1 role R)"
        );
        let cfg = "[profile dev]\ncredential_process = /bin/creds\nregion = x\n";
        assert_eq!(
            label(cfg, "", "dev", &[]).unwrap(),
            "profile 'dev' (credential_process)"
        );
        assert_eq!(
            label("[profile dev]\nregion = x\n", "", "dev", &[]).unwrap(),
            "no credentials"
        );
        assert_eq!(label("", "", "dev", &[]).unwrap(), "missing");
    }

    #[test]
    fn source_profile_chains_and_loops() {
        let cfg = "\
[profile a]\nrole_arn = arn:a\nsource_profile = b\n\
[profile b]\nrole_arn = arn:b\nsource_profile = c\n\
[profile c]\nrole_arn = arn:c\naws_access_key_id = A\naws_secret_access_key = S\n";
        assert_eq!(
            label(cfg, "", "a", &[]).unwrap(),
            "profile 'a' (assume role arn:a from profile 'b')"
        );

        let looped = "[profile a]\nrole_arn = arn:a\nsource_profile = b\n[profile b]\nrole_arn = arn:b\nsource_profile = a\n";
        let err = label(looped, "", "a", &[]).unwrap_err();
        assert!(err.contains("source_profile loop: a -> b -> a"), "{err}");

        // A profile may name itself as source when it has keys.
        let own = "[default]\nrole_arn = arn:x\nsource_profile = default\naws_access_key_id = A\naws_secret_access_key = S\n";
        assert_eq!(
            label(own, "", "default", &[]).unwrap(),
            "profile 'default' (assume role arn:x from profile 'default')"
        );
        let own_no_keys = "[default]\nrole_arn = arn:x\nsource_profile = default\n";
        assert!(label(own_no_keys, "", "default", &[])
            .unwrap_err()
            .contains("loop: default -> default"));

        let err = label(
            "[profile a]\nrole_arn = r\nsource_profile = nope\n",
            "",
            "a",
            &[],
        )
        .unwrap_err();
        assert!(
            err.contains("profile 'a' has source_profile = nope, but there is no profile 'nope'"),
            "{err}"
        );
        let err = label(
            "[profile a]\nrole_arn = r\nsource_profile = b\n[profile b]\nregion = x\n",
            "",
            "a",
            &[],
        )
        .unwrap_err();
        assert!(
            err.contains("profile 'b' (source_profile of 'a') has no credentials"),
            "{err}"
        );
    }

    #[test]
    fn configuration_mistakes_are_named() {
        let err = label("[profile a]\nsource_profile = b\n", "", "a", &[]).unwrap_err();
        assert!(err.contains("sets source_profile but no role_arn"), "{err}");
        let err = label(
            "[profile a]\nrole_arn = r\nsource_profile = b\ncredential_process = x\n",
            "",
            "a",
            &[],
        )
        .unwrap_err();
        assert!(
            err.contains("sets both source_profile and credential_process"),
            "{err}"
        );
        let err = label(
            "[profile a]\nrole_arn = r\ncredential_source = Somewhere\n",
            "",
            "a",
            &[],
        )
        .unwrap_err();
        assert!(
            err.contains("use Environment, Ec2InstanceMetadata or EcsContainer"),
            "{err}"
        );
        let err = label(
            "[profile a]\nrole_arn = r\ncredential_source = EcsContainer\n",
            "",
            "a",
            &[],
        )
        .unwrap_err();
        assert!(
            err.contains("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"),
            "{err}"
        );
        let err = label(
            "[profile a]\nrole_arn = r\ncredential_source = Ec2InstanceMetadata\n",
            "",
            "a",
            &[("AWS_EC2_METADATA_DISABLED", "true")],
        )
        .unwrap_err();
        assert!(err.contains("AWS_EC2_METADATA_DISABLED"), "{err}");
        let err = label(
            "[profile a]\nrole_arn = r\ncredential_source = Environment\n",
            "",
            "a",
            &[],
        )
        .unwrap_err();
        assert!(
            err.contains("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set"),
            "{err}"
        );
        assert!(label(
            "[profile a]\nrole_arn = r\ncredential_source = Environment\n",
            "",
            "a",
            &[("AWS_ACCESS_KEY_ID", "A"), ("AWS_SECRET_ACCESS_KEY", "S")]
        )
        .is_ok());
        let err = label("[profile a]\nrole_arn = r\nsource_profile = b\nmfa_serial = arn:mfa\n[profile b]\naws_access_key_id = A\naws_secret_access_key = S\n", "", "a", &[]).unwrap_err();
        assert!(err.contains("mfa_serial"), "{err}");
        let err = label("", "[a]\naws_secret_access_key = SECRETVALUE\n", "a", &[]).unwrap_err();
        assert!(
            err.contains("profile 'a' in ~/.aws/credentials has only one of"),
            "{err}"
        );
        assert!(!err.contains("SECRETVALUE"));
    }

    #[test]
    fn sso_settings() {
        let session = "[sso-session corp]\nsso_region = eu-west-1\nsso_start_url = https://d-abc123.awsapps.com/start\n";
        let ok = format!(
            "[profile dev]\nsso_session = corp\nsso_account_id = 1\nsso_role_name = R\n{session}"
        );
        assert_eq!(
            label(&ok, "", "dev", &[]).unwrap(),
            "profile 'dev' (SSO account 1 role R)"
        );
        let err = label(
            "[profile dev]\nsso_session = corp\nsso_account_id = 1\nsso_role_name = R\n",
            "",
            "dev",
            &[],
        )
        .unwrap_err();
        assert!(
            err.contains("no [sso-session corp] section in ~/.aws/config"),
            "{err}"
        );
        let mismatch = format!("[profile dev]\nsso_session = corp\nsso_region = us-east-1\nsso_account_id = 1\nsso_role_name = R\n{session}");
        let err = label(&mismatch, "", "dev", &[]).unwrap_err();
        assert!(
            err.contains("sso_region in profile 'dev' must match"),
            "{err}"
        );
        let err = label("[profile dev]\nsso_start_url = https://s\n", "", "dev", &[]).unwrap_err();
        assert!(
            err.contains("missing sso_region, sso_account_id, sso_role_name"),
            "{err}"
        );
    }
}
