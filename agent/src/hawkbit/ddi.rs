//! The hawkBit DDI resources the agent uses, read from JSON, and the
//! feedback documents it sends. Reference: Eclipse hawkBit "Direct Device
//! Integration API" (`/{tenant}/controller/v1/{controllerId}` …).
//!
//! Read through `serde_json::Value` and written by hand rather than with
//! serde derives: one generic deserializer instead of one per resource
//! type keeps the device binary smaller (docs/hawkbit.md "Size").

use serde_json::Value;

/// The root resource: what the server wants.
#[derive(Debug, Default)]
pub struct Root {
    /// `config.polling.sleep` (`HH:MM:SS`).
    pub sleep: Option<String>,
    /// `_links.configData.href`.
    pub config_data: Option<String>,
    /// `_links.deploymentBase.href`.
    pub deployment_base: Option<String>,
    /// `_links.cancelAction.href`.
    pub cancel_action: Option<String>,
}

/// A deploymentBase: the action to carry out.
#[derive(Debug, Default)]
pub struct DeploymentBase {
    /// The action id (a string in DDI).
    pub id: String,
    /// `skip`, `attempt` or `forced`.
    pub download: String,
    /// `skip`, `attempt` or `forced` (`skip` with a download = download only).
    pub update: String,
    /// `available` / `unavailable` (absent: no window).
    pub maintenance_window: Option<String>,
    /// Version of the first chunk.
    pub version: String,
    /// All artifacts of all chunks.
    pub artifacts: Vec<Artifact>,
}

/// One file of a chunk.
#[derive(Debug, Default)]
pub struct Artifact {
    /// File name.
    pub filename: String,
    /// `hashes.sha1`, hex.
    pub sha1: Option<String>,
    /// `hashes.sha256`, hex.
    pub sha256: Option<String>,
    /// Size in bytes.
    pub size: Option<u64>,
    /// `_links.download.href`, else `_links.download-http.href`.
    pub href: Option<String>,
}

fn parse(bytes: &[u8], what: &str) -> Result<Value, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("{what}: {e}"))?;
    if v.is_object() {
        Ok(v)
    } else {
        Err(format!("{what}: not a JSON object"))
    }
}

fn string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn href(links: &Value, name: &str) -> Option<String> {
    links[name]["href"].as_str().map(str::to_owned)
}

impl Root {
    /// Parses the root resource.
    pub fn parse(bytes: &[u8]) -> Result<Root, String> {
        let v = parse(bytes, "root resource")?;
        let l = &v["_links"];
        Ok(Root {
            sleep: v["config"]["polling"]["sleep"].as_str().map(str::to_owned),
            config_data: href(l, "configData"),
            deployment_base: href(l, "deploymentBase"),
            cancel_action: href(l, "cancelAction"),
        })
    }
}

impl DeploymentBase {
    /// Parses a deploymentBase.
    pub fn parse(bytes: &[u8]) -> Result<DeploymentBase, String> {
        let v = parse(bytes, "deploymentBase")?;
        let id = string(&v["id"]).ok_or("deploymentBase: no id")?;
        let d = &v["deployment"];
        let mode = |k: &str| d[k].as_str().unwrap_or("forced").to_owned();
        let chunks = d["chunks"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        let mut artifacts = Vec::new();
        for c in chunks {
            for a in c["artifacts"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
                let l = &a["_links"];
                artifacts.push(Artifact {
                    filename: a["filename"].as_str().unwrap_or("").to_owned(),
                    sha1: a["hashes"]["sha1"].as_str().map(str::to_owned),
                    sha256: a["hashes"]["sha256"].as_str().map(str::to_owned),
                    size: a["size"].as_u64(),
                    href: href(l, "download").or_else(|| href(l, "download-http")),
                });
            }
        }
        Ok(DeploymentBase {
            id,
            download: mode("download"),
            update: mode("update"),
            maintenance_window: d["maintenanceWindow"].as_str().map(str::to_owned),
            version: chunks
                .first()
                .and_then(|c| c["version"].as_str())
                .unwrap_or("")
                .to_owned(),
            artifacts,
        })
    }
}

/// `cancelAction.stopId` of a cancelAction resource: the action to stop.
pub fn cancel_stop_id(bytes: &[u8]) -> Result<String, String> {
    let v = parse(bytes, "cancelAction")?;
    string(&v["cancelAction"]["stopId"]).ok_or_else(|| "cancelAction: no stopId".into())
}

/// `progress`: `cnt` of `of`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Steps {
    /// Done.
    pub cnt: u32,
    /// All.
    pub of: u32,
}

/// A feedback document (`POST …/feedback`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feedback {
    /// `proceeding`, `downloaded`, `scheduled`, `closed`, `rejected`.
    pub execution: String,
    /// `none`, `success`, `failure`.
    pub finished: String,
    /// The JSON sent (one line).
    pub json: String,
}

/// `s` as a JSON string literal (RFC 8259 §7).
pub fn quote(s: &str) -> String {
    crate::json::string(s)
}

impl Feedback {
    /// A feedback with `execution`, `finished`, optional progress and one detail line.
    pub fn new(
        execution: &str,
        finished: &str,
        progress: Option<Steps>,
        detail: String,
    ) -> Feedback {
        let progress = progress.map_or(String::new(), |p| {
            format!(",\"progress\":{{\"cnt\":{},\"of\":{}}}", p.cnt, p.of)
        });
        let json = format!(
            "{{\"status\":{{\"execution\":{},\"result\":{{\"finished\":{}{progress}}},\"details\":[{}]}}}}",
            quote(execution),
            quote(finished),
            quote(&detail)
        );
        Feedback {
            execution: execution.into(),
            finished: finished.into(),
            json,
        }
    }
}

/// Parses DDI's `HH:MM:SS` sleep into seconds.
pub fn parse_sleep(s: &str) -> Option<u64> {
    let mut parts = s.split(':');
    let (h, m, sec) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let n = |p: &str| p.parse::<u64>().ok();
    let (h, m, sec) = (n(h)?, n(m)?, n(sec)?);
    if m >= 60 || sec >= 60 {
        return None;
    }
    Some(h * 3600 + m * 60 + sec)
}

/// A DDI protocol error about `url` (a resource or artifact name).
pub(super) fn protocol(url: &str, why: &str) -> crate::Error {
    crate::net::NetError::new(url, crate::net::NetErrorKind::Protocol(why.to_owned())).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleep_is_parsed_and_bad_forms_refused() {
        assert_eq!(parse_sleep("00:01:00"), Some(60));
        assert_eq!(parse_sleep("12:00:05"), Some(43205));
        assert_eq!(parse_sleep("00:61:00"), None);
        assert_eq!(parse_sleep("60"), None);
        assert_eq!(parse_sleep("a:b:c"), None);
    }

    #[test]
    fn documented_resources_parse() {
        // The examples of the hawkBit DDI documentation, shortened.
        let r = Root::parse(
            br#"{"config":{"polling":{"sleep":"12:00:00"}},"_links":{
            "deploymentBase":{"href":"https://h/T/controller/v1/c/deploymentBase/5?c=-2"},
            "configData":{"href":"https://h/T/controller/v1/c/configData"}}}"#,
        )
        .unwrap();
        assert_eq!(r.sleep.as_deref(), Some("12:00:00"));
        assert!(r.deployment_base.unwrap().ends_with("/5?c=-2"));
        assert!(r.cancel_action.is_none() && r.config_data.is_some());
        let j = r#"{"id":"8","deployment":{"download":"forced","update":"skip",
          "maintenanceWindow":"available","chunks":[{"part":"os","version":"1.2","name":"rootfs",
          "artifacts":[{"filename":"b.ota","hashes":{"sha1":"aa","md5":"bb","sha256":"cc"},"size":3,
          "_links":{"download-http":{"href":"http://h/x"}}}]}]},
          "actionHistory":{"status":"RUNNING","messages":[]}}"#;
        let d = DeploymentBase::parse(j.as_bytes()).unwrap();
        assert_eq!(
            (d.id.as_str(), d.update.as_str(), d.version.as_str()),
            ("8", "skip", "1.2")
        );
        assert_eq!(d.maintenance_window.as_deref(), Some("available"));
        let a = &d.artifacts[0];
        assert_eq!((a.sha256.as_deref(), a.size), (Some("cc"), Some(3)));
        assert_eq!(a.href.as_deref(), Some("http://h/x"));
        assert_eq!(
            cancel_stop_id(br#"{"id":"9","cancelAction":{"stopId":"8"}}"#).unwrap(),
            "8"
        );
        assert!(DeploymentBase::parse(b"[1]")
            .unwrap_err()
            .contains("not a JSON object"));
        assert!(Root::parse(b"{\"_links\": [garb")
            .unwrap_err()
            .contains("root resource"));
    }

    #[test]
    fn feedback_is_ddi_json_and_escapes_details() {
        let f = Feedback::new(
            "proceeding",
            "none",
            Some(Steps { cnt: 1, of: 4 }),
            "Downloaded 50%".into(),
        );
        assert_eq!(
            f.json,
            r#"{"status":{"execution":"proceeding","result":{"finished":"none","progress":{"cnt":1,"of":4}},"details":["Downloaded 50%"]}}"#
        );
        let f = Feedback::new("closed", "failure", None, "a \"b\"\\\n\u{1}".into());
        let v: Value = serde_json::from_str(&f.json).unwrap();
        assert_eq!(v["status"]["details"][0], "a \"b\"\\\n\u{1}");
        assert!(!f.json.contains('\n'));
    }
}
